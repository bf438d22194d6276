"""Two `catalog-refresher run` processes sharing one PostgreSQL database (contract 7),
their sources on a real local HTTP server, their APIs read over real sockets."""

from __future__ import annotations

import contextlib
import itertools
import json
import re
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest

from catalog_refresher.domain.specs import SPECS
from tests.e2e.processes import ServiceProcess, free_port, poll
from tests.postgres import fresh_schema
from tests.source_server import SourceServer, serve_sources

pytestmark = [pytest.mark.e2e, pytest.mark.postgres]


def at(text: str) -> datetime:
    return datetime.fromisoformat(text)


@pytest.fixture
def store_url() -> Iterator[str]:
    with fresh_schema("t_e2e") as url:
        yield url


@contextmanager
def replica(
    tmp_path: Path,
    name: str,
    store_url: str,
    sources: SourceServer,
    *,
    wait_for: str | None,
    options: dict[str, Any] | None = None,
    lease: str = "00:00:30",
) -> Iterator[tuple[str, list[str], ServiceProcess]]:
    """A replica in its own process; waits until its log says ``wait_for`` ten times
    (or once, for 'Serving'; not at all for None); yields its base URL, its log
    lines and the process."""
    port = free_port()
    config = tmp_path / f"{name}.json"
    config.write_text(
        json.dumps(
            {
                "CatalogRepository": options or {},
                "Sources": {
                    spec.config_key: {"Url": f"{sources.url}/{spec.id}"} for spec in SPECS.values()
                },
                "Store": {"Url": store_url, "Lease": lease},
                "Api": {"Port": port},
            }
        )
    )
    with ServiceProcess(config, f"http://127.0.0.1:{port}") as process:
        if wait_for is not None:
            process.wait_for(wait_for, len(SPECS) if wait_for == "Completed" else 1)
        yield process.url, process.log, process
        if process.alive:  # not one a test killed
            assert process.stop() == 0, process.output()


def test_two_replicas_share_the_work_and_the_data(tmp_path: Path, store_url: str) -> None:
    """B starts after A refreshed all ten: B runs none of them again, serves A's data,
    and a refresh made through B reaches A's API within seconds."""
    with (
        serve_sources(products=150) as sources,
        replica(tmp_path, "a", store_url, sources, wait_for="Completed") as (a, _, _),
        replica(tmp_path, "b", store_url, sources, wait_for="Serving") as (b, b_log, _),
        httpx.Client(timeout=30) as client,
    ):
        fetched = len(sources.requests)
        runs = client.get(f"{b}/api/runs", params={"limit": 100}).json()
        assert runs["total"] == len(SPECS), runs
        assert not any(" Starting " in line for line in b_log)

        code = client.get(f"{b}/api/products", params={"limit": 1}).json()["items"][0][
            "product_code"
        ]
        assert (
            client.get(f"{a}/api/products/{code}").json()
            == client.get(f"{b}/api/products/{code}").json()
        )

        run = client.post(f"{b}/api/sources/erp_stock/refresh", params={"wait": "true"}).json()
        assert (run["status"], run["trigger"]) == ("succeeded", "manual")
        assert len(sources.requests) == fetched + 1  # one fetch, by B
        changed = [
            p["product_code"]
            for p in client.get(f"{b}/api/products", params={"limit": 500}).json()["items"]
            if p["lineage"].get("erp_stock", {}).get("run_id") == run["id"]
        ]
        assert changed, "the demo world moves every fetch; some ERP stock changed"

        def on_a() -> dict[str, Any]:
            body: dict[str, Any] = client.get(f"{a}/api/products/{changed[0]}").json()
            return body["lineage"]["erp_stock"]

        # The part changed when B's run had its data ready, and counts as refreshed when
        # that run's writes were done (its finished_at, stamped just before the commit).
        took = poll(
            on_a,
            lambda part: (
                (part["run_id"], part["refreshed_at"]) == (run["id"], run["finished_at"])
                and at(run["started_at"]) <= at(part["changed_at"]) <= at(run["finished_at"])
            ),
        )
        assert took < 5


def test_a_replica_killed_mid_run_loses_its_source_to_its_peer(
    tmp_path: Path, store_url: str
) -> None:
    """ERP every 5 s, each fetch taking 2 s, lease 3 s. While both replicas live, ERP
    runs once per interval across them. The replica running ERP is killed mid-fetch
    (SIGKILL, its worker too): its run is cancelled as abandoned and the peer runs
    ERP, all within an interval and a lease of the kill (plus the fetch)."""
    interval, lease, fetch = 5.0, 3.0, 2.0
    options = {"ErpStockRefreshInterval": "00:00:05"}
    with (
        serve_sources(products=50, slow={"erp_stock": fetch}) as sources,
        replica(
            tmp_path,
            "a",
            store_url,
            sources,
            wait_for="Completed",
            options=options,
            lease="00:00:03",
        ) as (a, a_log, a_process),
        replica(
            tmp_path,
            "b",
            store_url,
            sources,
            wait_for="Serving",
            options=options,
            lease="00:00:03",
        ) as (b, b_log, b_process),
        httpx.Client(timeout=30) as client,
    ):

        def erp_runs() -> list[dict[str, Any]]:
            runs: list[dict[str, Any]] = client.get(
                f"{b}/api/runs", params={"source": "erp_stock", "limit": 100}
            ).json()["items"]
            return runs

        def starts(log: list[str]) -> list[int]:
            return [
                int(re.findall(r"run=(\d+)", line)[0])
                for line in list(log)
                if "Starting ERP stock refresh" in line
            ]

        # Both alive for two intervals: the scheduled ERP runs start an interval apart.
        seen_a, seen_b = len(starts(a_log)), len(starts(b_log))
        poll(
            lambda: len(starts(a_log)) + len(starts(b_log)) - seen_a - seen_b, lambda n: n >= 2, 15
        )
        scheduled = sorted(
            datetime.fromisoformat(r["started_at"])
            for r in erp_runs()
            # A run just claimed has no start yet (claimed, then marked running).
            if r["trigger"] == "schedule" and r["started_at"] is not None
        )
        assert all(
            (later - earlier).total_seconds() >= interval - 0.5
            for earlier, later in itertools.pairwise(scheduled)
        ), scheduled

        # Kill whichever replica starts the next ERP run, while it fetches.
        before = (len(starts(a_log)), len(starts(b_log)))
        poll(lambda: (len(starts(a_log)), len(starts(b_log))), lambda n: n != before, 10)
        a_runs = len(starts(a_log)) > before[0]
        victim, log, survivor_log = (
            (a_process, a_log, b_log) if a_runs else (b_process, b_log, a_log)
        )
        orphan = starts(log)[-1]
        victim.kill()
        survivor = a if not a_runs else b
        runs_before = len(starts(survivor_log))

        def orphan_and_takeover() -> tuple[str, str]:
            runs = {
                r["id"]: r
                for r in client.get(
                    f"{survivor}/api/runs", params={"source": "erp_stock", "limit": 100}
                ).json()["items"]
            }
            newer = [r for i, r in runs.items() if i > orphan and r["status"] == "succeeded"]
            return runs[orphan]["status"], "succeeded" if newer else "not yet"

        took = poll(orphan_and_takeover, lambda got: got == ("cancelled", "succeeded"), 30)
        assert took <= interval + lease + fetch + 3, took
        assert len(starts(survivor_log)) > runs_before
        error = client.get(f"{survivor}/api/runs/{orphan}").json()["error"]
        assert "abandoned" in error


def test_replicas_started_together_on_an_empty_database_run_each_source_once(
    tmp_path: Path, store_url: str
) -> None:
    """Three replicas start at the same moment on an empty database: the schema is
    created once, and each of the ten sources is refreshed by one of them, once."""
    with (
        serve_sources(products=50) as sources,
        replicas_together(tmp_path, store_url, sources, 3) as processes,
        httpx.Client(timeout=30) as client,
    ):
        logs = [log for _, log, _ in processes]

        def completed() -> int:
            return sum(" Completed " in line for log in logs for line in list(log))

        poll(completed, lambda n: n >= len(SPECS), 60)
        base = processes[0][0]
        runs = client.get(f"{base}/api/runs", params={"limit": 100}).json()
        assert runs["total"] == len(SPECS), runs["items"]
        assert sorted(r["source"] for r in runs["items"]) == sorted(SPECS)
        assert all(r["status"] == "succeeded" for r in runs["items"])
        assert len(sources.requests) == len(SPECS)
        assert completed() == len(SPECS)
        assert all(p.alive for _, _, p in processes)


@contextmanager
def replicas_together(
    tmp_path: Path, store_url: str, sources: SourceServer, count: int
) -> Iterator[list[tuple[str, list[str], ServiceProcess]]]:
    """``count`` replicas started at once, then waited for until each serves its API."""
    with contextlib.ExitStack() as stack:
        started = [
            stack.enter_context(replica(tmp_path, f"r{i}", store_url, sources, wait_for=None))
            for i in range(count)
        ]
        for _, _, process in started:
            process.wait_for("Serving")
        yield started


def test_a_dead_replicas_run_is_rerun_within_two_leases_not_at_its_next_slot(
    tmp_path: Path, store_url: str
) -> None:
    """ERP every 60 s, lease 3 s. A is killed (SIGKILL, its worker too) while it fetches ERP
    (the source holds A's request until then, however long B takes to start); B, whose next
    ERP slot is a minute away, starts ERP within 2 leases of the kill and finishes it: the
    lost run does not wait for the schedule."""
    lease, fetch = 3.0, 2.0
    options = {"ErpStockRefreshInterval": "00:01:00"}
    hold = threading.Event()
    with (
        serve_sources(products=50, held={"erp_stock": hold}) as sources,
        replica(
            tmp_path, "a", store_url, sources, wait_for=None, options=options, lease="00:00:03"
        ) as (_, a_log, a_process),
    ):
        a_process.wait_for("Starting ERP stock refresh", seconds=60)
        with (
            replica(
                tmp_path,
                "b",
                store_url,
                sources,
                wait_for="Serving",
                options=options,
                lease="00:00:03",
            ) as (b, b_log, _),
            httpx.Client(timeout=30) as client,
        ):
            assert not any("Starting ERP stock refresh" in line for line in b_log)
            (orphan,) = [
                int(re.findall(r"run=(\d+)", line)[0])
                for line in a_log
                if "Starting ERP stock refresh" in line
            ]
            a_process.kill()
            killed_at = datetime.now(UTC)
            sources.slow["erp_stock"] = fetch
            hold.set()

            def rerun() -> dict[str, Any] | None:
                runs = client.get(
                    f"{b}/api/runs", params={"source": "erp_stock", "limit": 100}
                ).json()["items"]
                newer = [r for r in runs if r["id"] > orphan and r["status"] == "succeeded"]
                return newer[0] if newer else None

            poll(rerun, lambda run: run is not None, 60)
            run = rerun()
            assert run is not None
            # Started within two leases (and a second of polling) of the death; how long
            # the run itself takes on a loaded machine is not the point.
            waited = (datetime.fromisoformat(run["started_at"]) - killed_at).total_seconds()
            assert waited <= 2 * lease + 1, (waited, b_log)
            orphaned = client.get(f"{b}/api/runs/{orphan}").json()
            assert (orphaned["status"], "abandoned" in orphaned["error"]) == ("cancelled", True)
