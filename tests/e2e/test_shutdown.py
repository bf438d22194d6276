"""Stopping `catalog-refresher run` the ways operators do: a signal to the whole process
group (Ctrl-C in a terminal, systemd's default `KillMode=control-group`, `kill -TERM -PGID`).

The run in flight must finish within `ShutdownGracePeriod`, whichever process of the
group the signal reaches: the refresh worker leaves shutdown to the service.
"""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler
from pathlib import Path

import pytest

from tests.e2e.processes import ServiceProcess, free_port, poll, refresh_workers
from tests.local_http import serving

pytestmark = pytest.mark.e2e

#: Enough records that the worker is still busy (starting, or decoding) when the signal comes.
ROWS = 150_000


class _ErpServer:
    def __init__(self) -> None:
        records = [
            {"product_code": f"P{n:07d}", "product_name": f"Product {n}", "stock": n % 97}
            for n in range(ROWS)
        ]
        self.body = json.dumps(records).encode()
        self.sent = threading.Event()
        self.url = ""


@contextmanager
def _serve_erp() -> Iterator[_ErpServer]:
    state = _ErpServer()

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(state.body)))
            self.end_headers()
            self.wfile.write(state.body)
            self.wfile.flush()
            state.sent.set()

        def log_message(self, *args: object) -> None:
            pass

    with serving(Handler) as state.url:
        yield state


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_a_signal_to_the_process_group_lets_the_run_in_flight_commit(
    tmp_path: Path, signum: signal.Signals
) -> None:
    """SIGTERM or SIGINT to the whole group as the worker takes the payload: the run commits
    within the grace period, the service exits 0, and no worker died."""
    db = tmp_path / "catalog.db"
    config = tmp_path / "appsettings.json"
    with _serve_erp() as erp:
        config.write_text(
            json.dumps(
                {
                    "CatalogRepository": {"ShutdownGracePeriod": "00:01:00"},
                    "Sources": {"ErpStock": {"Url": f"{erp.url}/erp"}},
                    "Store": {"Url": f"sqlite:///{db}"},
                    "Api": {"Port": free_port()},
                }
            )
        )
        with ServiceProcess(config, "") as service:
            assert erp.sent.wait(60), service.output()
            # The moment a refresh worker exists: starting up (imports) or taking the payload.
            poll(lambda: refresh_workers(service.process.pid), bool, seconds=60)
            os.killpg(service.process.pid, signum)
            assert service.process.wait(timeout=90) == 0, service.output()
            log = service.output()
    assert "Completed ERP stock refresh. Updated 150000 products" in log, log
    assert "worker process died" not in log
    with sqlite3.connect(db) as conn:
        runs = conn.execute("SELECT status, inserted FROM runs WHERE source = 'erp_stock'")
        assert runs.fetchall() == [("succeeded", ROWS)]
