"""A `catalog-refresher run` process killed (SIGKILL, its refresh worker too) between an
incremental fetch and its commit: the stored cursor stays where it was, and after a
restart the next run asks the source for the same changes again and ends with exactly
the source's rows. The source is a real local HTTP server; the store is read with sqlite3.

The window is hit without sleeping and without a hook in the service: the incremental
answer is large (100,000 changed records), so validating and applying it takes seconds,
and the server knows when the fetch is over: the answer says ``Connection: close``, and
the client closes its end only after reading the body to the last byte. Then the test
checks the run is ``running`` and the cursor unmoved in the store, and kills.
"""

from __future__ import annotations

import json
import sqlite3
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import ClassVar
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest

from tests.e2e.processes import ServiceProcess, free_port
from tests.incremental_world import ErpWorld
from tests.local_http import serving

pytestmark = pytest.mark.e2e

#: Changes in the answer the process is killed over: enough for seconds of apply.
CHANGED = 100_000


class _Erp(BaseHTTPRequestHandler):
    """``ErpWorld`` over HTTP: ``?changed_since=`` answers the changes after it. Each
    answer is whole once the client has closed the connection: ``fetched`` is set."""

    world: ClassVar[ErpWorld]
    asked: ClassVar[list[str | None]] = []
    fetched: ClassVar[threading.Event] = threading.Event()
    lock: ClassVar[threading.Lock] = threading.Lock()

    def do_GET(self) -> None:
        cursor = parse_qs(urlsplit(self.path).query).get("changed_since", [None])[0]
        with self.lock:
            self.asked.append(cursor)
            body = json.dumps(self.world.answer(cursor)).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Connection", "close")
        self.end_headers()
        self.wfile.write(body)
        self.wfile.flush()
        self.connection.settimeout(60)
        while self.connection.recv(65536):  # until the client closes: it has read it all
            pass
        self.fetched.set()

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def erp() -> Iterator[str]:
    world = ErpWorld()
    for n in range(1000):
        world.put(f"P-{n:06}", n)
    _Erp.world = world
    _Erp.asked.clear()
    _Erp.fetched.clear()
    with serving(_Erp) as base:
        yield f"{base}/erp_stock"


def _config(tmp_path: Path, url: str, port: int) -> Path:
    path = tmp_path / "appsettings.json"
    path.write_text(
        json.dumps(
            {
                "CatalogRepository": {"ErpStockRefreshInterval": "01:00:00"},
                "Sources": {
                    "ErpStock": {
                        "Url": url,
                        "Incremental": {
                            "CursorField": "changed_at",
                            "CursorParameter": "changed_since",
                            "Tombstone": {"Path": "deleted", "Equals": True},
                        },
                    }
                },
                "Store": {"Url": f"sqlite:///{tmp_path / 'catalog.db'}"},
                "Api": {"Port": port},
                "Refresh": {"WorkerProcesses": 1},
            }
        ),
        encoding="utf-8",
    )
    return path


def _store(tmp_path: Path) -> tuple[str | None, list[str], int]:
    """The stored cursor, the statuses of erp_stock's runs, and its row count."""
    with sqlite3.connect(f"file:{tmp_path / 'catalog.db'}?mode=ro", uri=True) as db:
        row = db.execute("SELECT sync_cursor FROM source_state WHERE source = 'erp_stock'")
        cursor = (row.fetchone() or (None,))[0]
        statuses = [s for (s,) in db.execute("SELECT status FROM runs ORDER BY id")]
        (rows,) = db.execute("SELECT count(*) FROM records WHERE source = 'erp_stock'").fetchone()
    return cursor, statuses, rows


def _rows(tmp_path: Path) -> dict[str, float]:
    with sqlite3.connect(f"file:{tmp_path / 'catalog.db'}?mode=ro", uri=True) as db:
        found = db.execute("SELECT key, data FROM records WHERE source = 'erp_stock'")
        return {key: json.loads(data)["stock"] for key, data in found}


def test_a_kill_between_fetch_and_commit_leaves_the_cursor_and_the_next_run_refetches(
    tmp_path: Path, erp: str
) -> None:
    """Run 1 is full (1,000 rows) and stores its cursor. Run 2 fetches 100,000 changes
    and one tombstone and is SIGKILLed before its commit: the cursor, the rows and the
    run stay as they were. After a restart (the run is marked cancelled) run 3 sends the
    same cursor, succeeds, and the store holds exactly the world's rows."""
    port = free_port()
    config = _config(tmp_path, erp, port)
    api = f"http://127.0.0.1:{port}"
    with ServiceProcess(config, api) as service:
        service.wait_for("Completed ERP stock refresh", seconds=60)
        cursor, statuses, rows = _store(tmp_path)
        assert (statuses, rows) == (["succeeded"], 1000), service.output()
        assert cursor == _Erp.world.stamp(1000)
        with _Erp.lock:
            for n in range(CHANGED):
                _Erp.world.put(f"N-{n:06}", n)
            _Erp.world.remove("P-000007")
        _Erp.fetched.clear()
        answer = httpx.post(f"{api}/api/sources/erp_stock/refresh", timeout=10)
        assert answer.status_code == 202, answer.text
        assert _Erp.fetched.wait(60), service.output()
        during = _store(tmp_path)
        assert during == (cursor, ["succeeded", "running"], 1000), service.output()
        service.kill()
    assert _Erp.asked == [None, cursor]
    assert _store(tmp_path) == (cursor, ["succeeded", "running"], 1000)

    with ServiceProcess(config, api) as restarted:
        restarted.wait_for("Serving the API on", seconds=60)
        finished = httpx.post(
            f"{api}/api/sources/erp_stock/refresh", params={"wait": "true"}, timeout=120
        )
        assert finished.status_code == 200, finished.text
        run = finished.json()
        assert run["status"] == "succeeded", run
        assert (run["mode"], run["cursor_before"]) == ("incremental", cursor), run
        assert (run["inserted"], run["deleted"]) == (CHANGED, 1), run
        assert restarted.stop() == 0
    assert _Erp.asked == [None, cursor, cursor]
    stored, statuses, rows = _store(tmp_path)
    assert statuses == ["succeeded", "cancelled", "succeeded"]
    assert stored == _Erp.world.stamp(1000 + CHANGED + 1)
    expected = {code: stock for code, (stock, _) in _Erp.world.live.items()}
    assert rows == len(expected) == 1000 + CHANGED - 1
    assert _rows(tmp_path) == expected
