"""``/api/sources`` reads and ``POST /api/sources/{id}/refresh`` against a real service."""

from __future__ import annotations

import asyncio
import contextlib
from datetime import timedelta
from typing import Any

from fastapi.routing import APIRoute

from catalog_refresher.api.app import ROUTERS
from catalog_refresher.api.params import KnownQueryOnly
from catalog_refresher.domain.runs import RunOutcome, RunStatus
from catalog_refresher.domain.specs import SOURCE_IDS
from catalog_refresher.store.base import Changeset, SyncState
from catalog_refresher.testing import FakeClock, StaticSource
from tests.api.support import ERP, Api, ApiFactory, assert_problem, failing
from tests.helpers import T0, start_run

SOURCE_FIELDS = {
    "id",
    "interval_seconds",
    "enabled",
    "priority",
    "last_success_at",
    "last_attempt_at",
    "last_status",
    "last_error",
    "next_run_at",
    "circuit_state",
    "consecutive_failures",
    "record_count",
    "stale",
    "used_backup",
    "pinned",
    "pinned_run_id",
    "paused",
    "paused_at",
    "pause_reason",
    "freshness",
    "age_seconds",
}
RUN_FIELDS = {
    "id",
    "source",
    "trigger",
    "status",
    "started_at",
    "finished_at",
    "queued_at",
    "attempts",
    "fetched",
    "inserted",
    "updated",
    "deleted",
    "invalid",
    "used_backup",
    "error",
    "error_type",
    "forced",
    "invalid_reasons",
    "mode",
    "cursor_before",
    "cursor_after",
    "not_modified",
}


def slow_erp(clock: FakeClock, delay: float = 10) -> dict[str, StaticSource]:
    """Only ERP configured, each fetch taking ``delay`` seconds of fake time."""
    return {"erp_stock": StaticSource("erp_stock", ERP, clock=clock, delay=delay)}


async def test_sources_list_all_ten_in_contract_order(started: Api) -> None:
    """The list is a JSON array of the ten sources in contract order, each with every field."""
    response = await started.client.get("/api/sources")
    assert response.status_code == 200
    sources = response.json()
    assert [s["id"] for s in sources] == list(SOURCE_IDS)
    assert all(set(s) == SOURCE_FIELDS for s in sources)
    erp = sources[0]
    assert erp["interval_seconds"] == 300
    assert (erp["enabled"], erp["last_status"], erp["circuit_state"]) == (
        True,
        "succeeded",
        "closed",
    )
    assert erp["record_count"] == len(ERP)
    assert erp["last_success_at"] == erp["last_attempt_at"] == "2026-11-29T10:00:00Z"
    assert erp["next_run_at"] == "2026-11-29T10:05:00Z"
    assert (erp["stale"], erp["used_backup"], erp["consecutive_failures"]) == (False, False, 0)
    assert erp["last_error"] is None


async def test_unconfigured_source_is_listed_disabled(
    make_api: ApiFactory, clock: FakeClock
) -> None:
    """A source missing from the configuration is listed, disabled, with no next run."""
    api = make_api(slow_erp(clock, delay=0))
    await api.start()
    eshop = (await api.client.get("/api/sources/eshop_stock")).json()
    assert (eshop["enabled"], eshop["next_run_at"], eshop["last_status"]) == (False, None, None)


async def test_one_source_by_id(started: Api) -> None:
    """``GET /api/sources/{id}`` answers that source's object."""
    response = await started.client.get("/api/sources/lots")
    assert response.status_code == 200
    assert response.json()["id"] == "lots"
    assert response.json()["interval_seconds"] == 900


async def test_unknown_source_is_404(started: Api) -> None:
    """An unknown source id is a 404 problem naming it."""
    body = assert_problem(await started.client.get("/api/sources/nope"), 404)
    assert body["type"].endswith(":unknown-source")
    assert "nope" in body["detail"]


async def test_refresh_starts_a_run_and_answers_202(api: Api) -> None:
    """A refresh answers 202 with the new manual run and its location; the run then succeeds."""
    response = await api.client.post("/api/sources/erp_stock/refresh")
    assert response.status_code == 202
    run = response.json()
    assert set(run) == RUN_FIELDS
    assert (run["source"], run["trigger"], run["forced"]) == ("erp_stock", "manual", False)
    assert run["status"] in ("queued", "running")
    assert response.headers["location"] == f"/api/runs/{run['id']}"
    await api.clock.settle()
    done = (await api.client.get(f"/api/runs/{run['id']}")).json()
    assert (done["status"], done["fetched"], done["inserted"]) == ("succeeded", len(ERP), len(ERP))


async def test_refresh_joins_the_run_in_flight(make_api: ApiFactory, clock: FakeClock) -> None:
    """A second refresh while a run is in flight answers 202 with that same run, no new one."""
    api = make_api(slow_erp(clock))
    first = await api.client.post("/api/sources/erp_stock/refresh")
    await clock.advance(1)
    second = await api.client.post("/api/sources/erp_stock/refresh")
    assert (first.status_code, second.status_code) == (202, 202)
    assert first.json()["id"] == second.json()["id"]
    assert second.json()["status"] == "running"
    await clock.advance(10)
    assert len(api.harness.runs("erp_stock")) == 1


async def test_refresh_wait_answers_200_with_the_finished_run(
    make_api: ApiFactory, clock: FakeClock
) -> None:
    """With ``wait=true`` the answer is 200 once the run has finished, with its end recorded."""
    api = make_api(slow_erp(clock))
    request = asyncio.create_task(api.client.post("/api/sources/erp_stock/refresh?wait=true"))
    await clock.advance(10)
    response = await request
    assert response.status_code == 200
    run = response.json()
    assert run["status"] == "succeeded"
    assert run["finished_at"] == "2026-11-29T10:00:10Z"


async def test_refresh_wait_answers_a_failed_run_too(
    make_api: ApiFactory, clock: FakeClock
) -> None:
    """``wait=true`` answers 200 whatever the run's status, here a failed one."""
    api = make_api({"erp_stock": failing("erp_stock", clock)})
    request = asyncio.create_task(api.client.post("/api/sources/erp_stock/refresh?wait=1"))
    await clock.advance(60)  # through the retries' backoff
    response = await request
    assert response.status_code == 200
    assert (response.json()["status"], response.json()["error_type"]) == ("failed", "connection")
    source = (await api.client.get("/api/sources/erp_stock")).json()
    assert source["last_status"] == "failed"
    assert source["last_error"] == response.json()["error"]
    assert "connection refused" in source["last_error"]


async def test_refresh_wait_gives_up_with_202_after_the_timeout_and_margin(
    make_api: ApiFactory, clock: FakeClock
) -> None:
    """A run still in flight after RefreshTimeout plus the margin is answered 202 as it stands."""
    sources = {
        "erp_stock": StaticSource("erp_stock", ERP, clock=clock, delay=1000),
        "eshop_stock": StaticSource("eshop_stock", [], clock=clock, delay=50),
    }
    # One slot: eshop waits 60 s for ERP to time out, then runs 50 s, past the 90 s bound.
    api = make_api(sources, max_concurrent_refreshes=1, refresh_timeout=timedelta(seconds=60))
    await api.client.post("/api/sources/erp_stock/refresh")
    await clock.settle()
    request = asyncio.create_task(api.client.post("/api/sources/eshop_stock/refresh?wait=true"))
    await clock.advance(89)
    assert not request.done()
    await clock.advance(1)
    response = await request
    assert response.status_code == 202
    assert response.json()["status"] == "running"
    await clock.advance(20)
    assert api.harness.runs("eshop_stock")[0].status.value == "succeeded"


async def test_hanging_up_on_wait_does_not_cancel_the_run(
    make_api: ApiFactory, clock: FakeClock
) -> None:
    """A client that gives up on ``wait=true`` leaves the run to finish."""
    api = make_api(slow_erp(clock))
    request = asyncio.create_task(api.client.post("/api/sources/erp_stock/refresh?wait=true"))
    await clock.advance(1)
    request.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await request
    await clock.advance(10)
    assert [run.status.value for run in api.harness.runs("erp_stock")] == ["succeeded"]


async def test_forced_refresh_runs_forced(api: Api) -> None:
    """``force=true`` with nothing in flight starts a forced run."""
    response = await api.client.post("/api/sources/erp_stock/refresh", params={"force": "true"})
    assert response.status_code == 202
    assert response.json()["forced"] is True


async def test_forced_refresh_over_an_unforced_run_is_409(
    make_api: ApiFactory, clock: FakeClock
) -> None:
    """``force=true`` while an unforced run is in flight is a 409 run-conflict problem."""
    api = make_api(slow_erp(clock))
    await api.client.post("/api/sources/erp_stock/refresh")
    body = assert_problem(await api.client.post("/api/sources/erp_stock/refresh?force=true"), 409)
    assert body["type"].endswith(":run-conflict")
    await clock.advance(10)


async def test_refresh_of_an_unconfigured_source_is_409(
    make_api: ApiFactory, clock: FakeClock
) -> None:
    """A refresh of a source not in the configuration is a 409 saying so."""
    api = make_api(slow_erp(clock, delay=0))
    body = assert_problem(await api.client.post("/api/sources/eshop_stock/refresh"), 409)
    assert body["type"].endswith(":source-not-enabled")
    assert "not configured" in body["detail"]


async def test_refresh_of_a_disabled_source_is_409(make_api: ApiFactory, clock: FakeClock) -> None:
    """A refresh of a source whose interval is 00:00:00 is a 409 saying it is disabled."""
    api = make_api(slow_erp(clock, delay=0), intervals={"erp_stock": timedelta(0)})
    body = assert_problem(await api.client.post("/api/sources/erp_stock/refresh"), 409)
    assert "disabled" in body["detail"]


async def test_refresh_of_an_unknown_source_is_404(api: Api) -> None:
    """A refresh of an unknown source id is a 404 problem."""
    body = assert_problem(await api.client.post("/api/sources/nope/refresh"), 404)
    assert body["type"].endswith(":unknown-source")


async def test_an_unknown_query_parameter_on_a_write_is_422_and_runs_nothing(api: Api) -> None:
    """``?forse=true`` (a typo) or a parameter this version lacks is refused, naming it; no run."""
    for query in ("forse=true", "preview=true", "wait=true&x=1"):
        response = await api.client.post(f"/api/sources/erp_stock/refresh?{query}")
        body = assert_problem(response, 422)
        unknown = query.split("&")[-1].split("=")[0]
        assert [(e["in"], e["name"]) for e in body["errors"]] == [("query", unknown)]
        assert "this endpoint takes dry_run, force, wait" in body["errors"][0]["detail"]
    runs = (await api.client.get("/api/runs")).json()
    assert runs["items"] == []


async def test_every_write_endpoint_refuses_unknown_query_parameters(api: Api) -> None:
    """Each POST route of the API has the known-parameters guard, so a new one cannot forget it."""
    writes = [
        route
        for router in ROUTERS
        for route in router.routes
        if isinstance(route, APIRoute) and route.methods - {"GET", "HEAD"}
    ]
    assert writes
    for route in writes:
        guards = [d.dependency for d in route.dependencies]
        assert KnownQueryOnly.dependency in guards, route.path
    response = await api.client.post("/api/cache/invalidate?all=true")
    assert assert_problem(response, 422)["errors"][0]["name"] == "all"


async def test_a_refresh_while_the_service_stops_is_503_with_retry_after(api: Api) -> None:
    """Once shutdown began no run starts: a refresh is a 503 a client may retry elsewhere."""
    await api.harness.service.stop()
    response = await api.client.post("/api/sources/erp_stock/refresh")
    body = assert_problem(response, 503)
    assert body["type"] == "urn:catalog-refresher:problem:service-stopping"
    assert response.headers["retry-after"] == "1"
    assert (await api.client.get("/api/runs")).json()["items"] == []


async def test_reset_cursor_forgets_the_sources_sync_state(api: Api) -> None:
    """POST reset-cursor answers 204 and clears the stored cursor and validators; an
    unknown source is a 404 and an unknown query parameter a 422."""
    store = api.harness.store
    store.reset_sync("erp_stock")
    _write_sync(store)
    assert store.sync_state("erp_stock").cursor == "42"
    response = await api.client.post("/api/sources/erp_stock/reset-cursor")
    assert response.status_code == 204
    assert store.sync_state("erp_stock") == SyncState()
    assert_problem(await api.client.post("/api/sources/nope/reset-cursor"), 404)
    assert_problem(await api.client.post("/api/sources/erp_stock/reset-cursor?x=1"), 422)


def _write_sync(store: Any) -> None:
    """Give erp_stock a cursor and an ETag, as an incremental run's apply would."""
    run = start_run(store, "erp_stock")
    outcome = RunOutcome(status=RunStatus.SUCCEEDED, finished_at=T0)
    changes = Changeset(
        source="erp_stock", expected_version=0, sync=SyncState(cursor="42", etag='"a"')
    )
    store.apply(run.id, changes, outcome)
