"""Operator control over HTTP (contract 8): pause, resume, reload, dry run."""

from __future__ import annotations

import dataclasses
from datetime import timedelta
from typing import Any

from catalog_refresher.config.settings import Settings, StoreSettings
from catalog_refresher.control import LocalControl
from catalog_refresher.errors import ConfigError
from catalog_refresher.refresh.reload import Reloader
from catalog_refresher.refresh.runner import Endpoints, inline
from tests.api.support import AUTH, ERP, TOKEN, Api, ApiFactory, assert_problem


async def _source(api: Api, source: str) -> dict[str, Any]:
    response = await api.client.get(f"/api/sources/{source}")
    assert response.status_code == 200
    body: dict[str, Any] = response.json()
    return body


async def test_pause_shows_in_sources_and_health_and_resume_clears_it(started: Api) -> None:
    """POST pause (with a reason) answers the pause; /api/sources shows paused, paused_at
    and the reason; the health entry is Degraded and says paused; resume clears it all."""
    response = await started.client.post("/api/sources/erp_stock/pause?reason=price+audit")
    assert response.status_code == 200
    assert response.json()["paused"] is True
    source = await _source(started, "erp_stock")
    assert (source["paused"], source["pause_reason"]) == (True, "price audit")
    assert source["paused_at"].endswith("Z")
    entry = (await started.client.get("/health")).json()["entries"]["erp_stock"]
    assert entry["status"] == "Degraded"
    assert "paused: price audit" in entry["description"]
    assert source["record_count"] == len(ERP)  # the data stays served
    assert (await started.client.get("/api/products/TEST-001")).status_code == 200
    resumed = await started.client.post("/api/sources/erp_stock/resume")
    assert (resumed.json()["paused"], resumed.json()["resumed"]) == (False, True)
    source = await _source(started, "erp_stock")
    assert (source["paused"], source["paused_at"], source["pause_reason"]) == (False, None, None)
    again = await started.client.post("/api/sources/erp_stock/resume")
    assert again.json()["resumed"] is False


async def test_pause_refuses_unknown_sources_and_parameters(api: Api) -> None:
    """An unknown source is a 404 problem, an unknown query parameter a 422 naming it."""
    assert_problem(await api.client.post("/api/sources/nope/pause"), 404)
    assert_problem(await api.client.post("/api/sources/nope/resume"), 404)
    body = assert_problem(await api.client.post("/api/sources/erp_stock/pause?why=x"), 422)
    assert "why" in str(body)


async def test_pause_needs_the_admin_token(make_api: ApiFactory) -> None:
    """With a token configured, pause, resume and reload without it are 401."""
    api = make_api(token=TOKEN)
    for path in ("/api/sources/erp_stock/pause", "/api/sources/erp_stock/resume"):
        assert_problem(await api.client.post(path), 401)
    assert_problem(await api.client.post("/api/config/reload"), 401)
    assert (await api.client.post("/api/sources/erp_stock/pause", headers=AUTH)).status_code == 200


def _with_reloader(api: Api, load: Any) -> None:
    service = api.harness.service

    def open_endpoints(settings: Settings, sources: Any) -> dict[str, Endpoints]:
        return {s: service.endpoints[s] for s in sources if s in service.endpoints}

    control = LocalControl(
        service, api.harness.store, api.clock, inline, Reloader(service, load, open_endpoints)
    )
    api.app.state.context = dataclasses.replace(api.app.state.context, control=control)


async def test_reload_applies_names_a_bad_key_and_refuses_a_restart_change(api: Api) -> None:
    """200 with the changes for a good file; 422 naming the key for a bad one; 409 for a
    store change; and 422 when the process has no file to read again."""
    assert_problem(await api.client.post("/api/config/reload"), 422)
    service = api.harness.service
    good = dataclasses.replace(
        service.settings,
        repository=dataclasses.replace(
            service.settings.repository, intervals={"erp_stock": timedelta(minutes=7)}
        ),
    )
    _with_reloader(api, lambda: good)
    response = await api.client.post("/api/config/reload")
    assert response.status_code == 200, response.text
    assert any("ErpStockRefreshInterval" in change for change in response.json()["changes"])
    assert (await _source(api, "erp_stock"))["interval_seconds"] == 7 * 60

    def bad() -> Settings:
        raise ConfigError("Sources:ErpStock:Priority", "expected an integer")

    _with_reloader(api, bad)
    body = assert_problem(await api.client.post("/api/config/reload"), 422)
    assert "Sources:ErpStock:Priority" in body["detail"]
    moved = dataclasses.replace(good, store=StoreSettings(url="sqlite:///elsewhere.db"))
    _with_reloader(api, lambda: moved)
    body = assert_problem(await api.client.post("/api/config/reload"), 409)
    assert "restart" in body["detail"]
    assert (await _source(api, "erp_stock"))["interval_seconds"] == 7 * 60


async def test_dry_run_answers_what_would_change_and_publishes_nothing(started: Api) -> None:
    """?dry_run=true answers 200 with counts, first keys and verdicts, and records no run."""
    source = started.harness.service.endpoints["erp_stock"].primary
    source.records = [*ERP[1:], {**ERP[0], "product_code": "NEW-1"}]  # type: ignore[attr-defined]
    runs_before = (await started.client.get("/api/runs?source=erp_stock")).json()["total"]
    response = await started.client.post("/api/sources/erp_stock/refresh?dry_run=true")
    assert response.status_code == 200, response.text
    body = response.json()
    assert (body["dry_run"], body["would_publish"]) == (True, True)
    assert (body["inserted"], body["deleted"]) == (1, 1)
    assert body["first_inserted"] == ["NEW-1"]
    assert body["first_deleted"] == ["TEST-001"]
    assert body["guard"]["passed"] is True
    assert (await started.client.get("/api/runs?source=erp_stock")).json()["total"] == runs_before
    assert (await started.client.get("/api/products/NEW-1")).status_code == 404
    assert_problem(await started.client.post("/api/sources/nope/refresh?dry_run=true"), 404)
