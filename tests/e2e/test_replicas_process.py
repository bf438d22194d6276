"""Two `catalog-refresher run` processes sharing one PostgreSQL database (contract 7),
their sources on a real local HTTP server, their APIs read over real sockets."""

from __future__ import annotations

import json
import os
import queue
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
    tmp_path: Path, name: str, store_url: str, sources: SourceServer, *, wait_for: str
) -> Iterator[tuple[str, list[str]]]:
    """A replica in its own process; waits until its log says ``wait_for`` ten times
    (or once, for 'Serving'); yields its base URL and its log lines."""
    port = free_port()
    config = tmp_path / f"{name}.json"
    config.write_text(
        json.dumps(
            {
                "Sources": {
                    spec.config_key: {"Url": f"{sources.url}/{spec.id}"} for spec in SPECS.values()
                },
                "Store": {"Url": store_url},
                "Api": {"Port": port},
            }
        )
    )
    lines: queue.Queue[str] = queue.Queue()
    seen: list[str] = []
    with subprocess.Popen(
        [sys.executable, "-m", "catalog_refresher", "run", "--config", str(config)],
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,  # its own process group: a kill reaches its workers too
    ) as process:
        assert process.stderr is not None
        stream = process.stderr
        threading.Thread(target=lambda: [lines.put(x) for x in stream], daemon=True).start()
        try:
            wanted = len(SPECS) if wait_for == "Completed" else 1
            deadline = time.monotonic() + 90
            while sum(wait_for in line for line in seen) < wanted:
                try:
                    seen.append(lines.get(timeout=max(0.1, deadline - time.monotonic())))
                except queue.Empty:
                    pytest.fail(f"{name} did not log {wait_for!r}:\n{''.join(seen)}")
            yield f"http://127.0.0.1:{port}", seen
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
        replica(tmp_path, "a", store_url, sources, wait_for="Completed") as (a, _),
        replica(tmp_path, "b", store_url, sources, wait_for="Serving") as (b, b_log),
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
