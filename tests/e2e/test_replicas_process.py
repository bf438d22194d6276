"""Two `catalog-refresher run` processes sharing one PostgreSQL database (contract 7),
their sources on a real local HTTP server, their APIs read over real sockets."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest

from catalog_refresher.domain.specs import SPECS
from tests.e2e.test_api_process import free_port
from tests.postgres import create_schema, drop_schema
from tests.source_server import SourceServer, serve_sources

pytestmark = [pytest.mark.e2e, pytest.mark.postgres]


@pytest.fixture
def store_url() -> Iterator[str]:
    schema = f"t_e2e_{uuid.uuid4().hex[:12]}"
    yield create_schema(schema)
    drop_schema(schema)


@contextmanager
def replica(
    tmp_path: Path,
    name: str,
    store_url: str,
    sources: SourceServer,
    *,
    wait_for: str,
    options: dict[str, Any] | None = None,
    lease: str = "00:00:30",
) -> Iterator[tuple[str, list[str], subprocess.Popen[str]]]:
    """A replica in its own process; waits until its log says ``wait_for`` ten times
    (or once, for 'Serving'); yields its base URL, its log lines and the process."""
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
    seen: list[str] = []  # every line it logs, appended as they come
    with subprocess.Popen(
        [sys.executable, "-m", "catalog_refresher", "run", "--config", str(config)],
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,  # its own process group: a kill reaches its workers too
    ) as process:
        assert process.stderr is not None
        stream = process.stderr
        threading.Thread(target=lambda: [seen.append(x) for x in stream], daemon=True).start()
        try:
            wanted = len(SPECS) if wait_for == "Completed" else 1
            try:
                poll(lambda: sum(wait_for in line for line in seen), lambda n: n >= wanted, 90)
            except AssertionError:
                pytest.fail(f"{name} did not log {wait_for!r}:\n{''.join(seen)}")
            yield f"http://127.0.0.1:{port}", seen, process
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
                assert process.wait(timeout=60) == 0, "".join(seen)
        finally:
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGKILL)


def poll(read: Any, until: Any, seconds: float = 10) -> float:
    """Call ``read`` until ``until(result)``; how long it took (fails after ``seconds``)."""
    started = time.monotonic()
    while not until(result := read()):
        assert time.monotonic() - started < seconds, f"not within {seconds} s: {result}"
        time.sleep(0.1)
    return time.monotonic() - started


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

        took = poll(
            on_a,
            lambda part: (
                part
                == {
                    "run_id": run["id"],
                    "changed_at": run["finished_at"],
                    "refreshed_at": run["finished_at"],
                }
            ),
        )
        assert took < 5


def test_a_killed_replicas_source_is_taken_over(tmp_path: Path, store_url: str) -> None:
    """ERP every 5 s, lease 3 s. While both replicas live, ERP runs once per interval
    across them; after A is killed (SIGKILL, with its worker), B runs ERP within one
    interval plus one lease."""
    interval, lease = 5.0, 3.0
    options = {"ErpStockRefreshInterval": "00:00:05"}
    with (
        serve_sources(products=50) as sources,
        replica(
            tmp_path,
            "a",
            store_url,
            sources,
            wait_for="Completed",
            options=options,
            lease="00:00:03",
        ) as (_, _, a_process),
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

        def erp_runs() -> list[dict[str, Any]]:
            runs: list[dict[str, Any]] = client.get(
                f"{b}/api/runs", params={"source": "erp_stock", "limit": 100}
            ).json()["items"]
            return runs

        both_from = time.monotonic()
        time.sleep(2 * interval)  # let the shared schedule run with both replicas alive
        together = [
            r for r in erp_runs() if r["trigger"] == "schedule" and r["status"] == "succeeded"
        ]
        assert 1 <= len(together) <= 3, together  # ~10 s / 5 s, not twice that
        starts = sorted(r["started_at"] for r in together)
        assert len(set(starts)) == len(starts)

        os.killpg(a_process.pid, signal.SIGKILL)
        a_process.wait(timeout=10)
        killed_at = time.monotonic()
        seen_before = {r["id"] for r in erp_runs()}

        def new_b_run() -> list[dict[str, Any]]:
            return [
                r for r in erp_runs() if r["id"] not in seen_before and r["status"] == "succeeded"
            ]

        took = poll(new_b_run, bool, seconds=interval + lease + 10)
        assert took <= interval + lease + 3, took
        assert any("Starting ERP stock refresh" in line for line in b_log)
        assert time.monotonic() - both_from > 2 * interval
        assert killed_at > both_from
