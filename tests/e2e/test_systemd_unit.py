"""deploy/systemd/catalog-refresher.service's command and environment run the installed
service, started as systemd starts it (tests/e2e/recipes.py ``start_unit``), and stop it
as ``KillMode=mixed`` does: SIGTERM to the main process only."""

from __future__ import annotations

import signal
import sqlite3
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.deploy import FakeRoot, service, setting, timespan
from tests.e2e.installed import Installed
from tests.e2e.processes import free_port, group_members, poll
from tests.e2e.recipes import start_unit
from tests.source_server import SourceServer, serve_sources

pytestmark = pytest.mark.e2e

TOKEN = "admin-token-from-the-credstore"


@pytest.fixture
def sources() -> Iterator[SourceServer]:
    with serve_sources(products=150) as server:
        yield server


def test_the_units_command_and_environment_run_the_service(
    installed: Installed, tmp_path: Path, sources: SourceServer
) -> None:
    """ExecStart in WorkingDirectory with the unit's Environment=: the service serves,
    turns ready, takes the admin token from its credential, keeps its store in the
    state directory, and on SIGTERM to its main process ends every process of its
    group itself, with exit 0, well within TimeoutStopSec."""
    root = FakeRoot(tmp_path)
    port = free_port()
    with (
        start_unit(installed, root, sources.url, port, {"admin-token": TOKEN + "\n"}) as unit,
        httpx.Client(base_url=unit.url, timeout=10) as client,
    ):
        unit.wait_for("Serving the API on")
        live = client.get("/health/live")
        print(f"GET /health/live -> {live.status_code} {live.text}")
        assert live.status_code == 200
        took = poll(lambda: client.get("/health/ready").status_code, lambda s: s == 200, 60)
        print(f"GET /health/ready -> 200 after {took:.1f} s")

        refresh = "/api/sources/erp_stock/refresh"
        assert client.post(refresh).status_code == 401
        done = client.post(
            refresh, params={"wait": "true"}, headers={"Authorization": f"Bearer {TOKEN}"}
        )
        print(f"POST {refresh}?wait=true with the credential's token -> {done.status_code}")
        assert (done.status_code, done.json()["status"]) == (200, "succeeded")
        assert "catalog_refresh_success_total" in client.get("/metrics").text

        group = unit.process.pid  # its own process group, as its own cgroup under systemd
        started = time.monotonic()
        code = unit.stop(seconds=timespan(setting("TimeoutStopSec")).total_seconds())
        print(f"SIGTERM to the main process: exit {code} after {time.monotonic() - started:.1f} s")
        assert code == 0, unit.output()
        # Nothing is left for KillMode=mixed's SIGKILL: the workers were ended by the
        # service, and multiprocessing's resource tracker ends as its pipe closes.
        poll(lambda: group_members(group), lambda members: not members, 5)
    assert "Traceback" not in unit.output()
    store = root.path("/var/lib/catalog-refresher/catalog.db")
    with sqlite3.connect(store) as db:
        assert db.execute("SELECT count(*) FROM runs WHERE status = 'succeeded'").fetchone()[0] > 0
    assert TOKEN not in unit.output()


def test_exec_reload_sends_sighup_and_the_service_reloads_and_lives_on(
    installed: Installed, tmp_path: Path, sources: SourceServer
) -> None:
    """`systemctl reload` sends SIGHUP (ExecReload=); the running unit re-reads its
    configuration, logs the reload, and keeps serving."""
    assert service()["ExecReload"] == ["/bin/kill -HUP $MAINPID"]
    root = FakeRoot(tmp_path)
    port = free_port()
    with start_unit(installed, root, sources.url, port, {"admin-token": TOKEN}) as unit:
        unit.wait_for("Serving the API on")
        unit.process.send_signal(signal.SIGHUP)
        unit.wait_for("Configuration reloaded")
        assert unit.alive
        with httpx.Client(base_url=f"http://127.0.0.1:{port}") as client:
            assert client.get("/health/live").status_code == 200
