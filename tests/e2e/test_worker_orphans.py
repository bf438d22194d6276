"""A refresh worker dies with its service: a service killed outright (SIGKILL, the
out-of-memory killer) leaves no worker behind (``refresh/workers.py`` ``_die_with``)."""

from __future__ import annotations

import json
import os
import signal
from http.server import BaseHTTPRequestHandler
from pathlib import Path

import pytest

from tests.e2e.processes import ServiceProcess, free_port, poll, refresh_workers, running
from tests.local_http import serving

pytestmark = pytest.mark.e2e

BODY = json.dumps([{"product_code": f"P{n}", "stock": n} for n in range(100)]).encode()


class _Erp(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(BODY)))
        self.end_headers()
        self.wfile.write(BODY)

    def log_message(self, *args: object) -> None:
        pass


def test_a_worker_ends_when_its_service_is_killed(tmp_path: Path) -> None:
    """SIGKILL to the service's process alone (not its group): its refresh worker, idle
    after the first run, is gone within seconds, not left waiting for jobs."""
    config = tmp_path / "appsettings.json"
    with serving(_Erp) as url:
        config.write_text(
            json.dumps(
                {
                    "Sources": {"ErpStock": {"Url": f"{url}/erp"}},
                    "Store": {"Url": f"sqlite:///{tmp_path / 'catalog.db'}"},
                    "Api": {"Port": free_port()},
                    "Refresh": {"WorkerProcesses": 1},
                }
            )
        )
        with ServiceProcess(config, "") as service:
            service.wait_for("Completed ERP stock refresh")
            (worker,) = refresh_workers(service.process.pid)
            os.kill(service.process.pid, signal.SIGKILL)
            service.process.wait(timeout=10)
            poll(lambda: running(worker), lambda alive: not alive, seconds=15)
