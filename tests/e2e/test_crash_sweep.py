"""The crash sweep: SIGKILL `catalog-refresher run` at many points of a 200,000-row refresh.

A local server serves ERP snapshot A or B (a fifth of the rows differ, B drops a twentieth
of A's rows and adds as many new ones), streamed in 64 KiB chunks. A calibration run (a
fresh service on a store holding A, refreshed to B) measures the refresh's timeline: when
the body has been served, how the WAL grows, when the run completes. Each sweep point then
starts the service on the store as the previous kill left it, checks it (the restart), and
asks for the other snapshot; the whole process group (service and refresh worker) is
SIGKILLed at the point:

- ``fetch-N%``: the server pauses once N% of the body's bytes are out, the kill lands
  while the service is reading it;
- ``body+N%``: N% of the calibrated time from the end of the body to the run's completion
  (decode, validate, diff, apply and commit happen there, in that order);
- ``wal-N%``: the WAL has grown by N% of the growth the calibration run saw (the apply);
- ``completed`` / ``completed+visible``: as soon as the log says the run completed, and once
  the store shows the new rows.

After each kill the next start must find exactly snapshot A or exactly snapshot B (a
checksum of every ERP row and every product, read with sqlite3) and no run queued or
running, in the store and in ``/api/runs``. Kills during the fetch must leave the old
snapshot, kills after completion the new one. No test hook in the service: the points are
chosen from what can be seen from outside.
"""

from __future__ import annotations

import hashlib
import json
import os
import sqlite3
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler
from pathlib import Path

import httpx
import pytest

from tests.e2e.processes import ServiceProcess, free_port, poll
from tests.local_http import serving

pytestmark = pytest.mark.e2e

ROWS = 200_000
CHUNK = 64 * 1024
FETCH_POINTS = (1, 25, 50, 75, 99)
BODY_POINTS = (2, 10, 20, 35, 50, 65, 80, 90, 95, 99)
WAL_POINTS = (20, 50, 90)
AFTER_POINTS = ("completed", "completed+visible")
POINTS = (
    [f"fetch-{n}%" for n in FETCH_POINTS]
    + [f"body+{n}%" for n in BODY_POINTS]
    + [f"wal-{n}%" for n in WAL_POINTS]
    + list(AFTER_POINTS)
)


def _snapshots() -> dict[str, bytes]:
    """Narrow ERP records: A, and B with a fifth changed, a twentieth removed and added."""
    a = [
        {"product_code": f"P{n:07d}", "product_name": f"Product {n}", "stock": n % 97}
        for n in range(ROWS)
    ]
    b = [
        {**row, "stock": row["stock"] + 1, "product_name": f"Item {n}"} if n % 5 == 1 else row
        for n, row in enumerate(a)
        if n % 20
    ]
    b += [
        {"product_code": f"N{n:07d}", "product_name": f"New {n}", "stock": 1}
        for n in range(ROWS // 20)
    ]
    return {"A": json.dumps(a).encode(), "B": json.dumps(b).encode()}


@dataclass
class _Erp:
    bodies: dict[str, bytes]
    serving: str = "A"
    pause_at: int | None = None
    """Pause the next answer once this many bytes are out (until ``release``)."""
    paused: threading.Event = field(default_factory=threading.Event)
    release: threading.Event = field(default_factory=threading.Event)
    body_sent_at: float | None = None
    url: str = ""

    def arm(self, serving: str, pause_at: int | None = None) -> None:
        self.serving, self.pause_at, self.body_sent_at = serving, pause_at, None
        self.paused.clear()
        self.release.clear()


@contextmanager
def _serve(erp: _Erp) -> Iterator[None]:
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            body, pause_at = erp.bodies[erp.serving], erp.pause_at
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            try:
                for start in range(0, len(body), CHUNK):
                    self.wfile.write(body[start : start + CHUNK])
                    if pause_at is not None and start + CHUNK >= pause_at:
                        pause_at = None
                        self.wfile.flush()
                        erp.paused.set()
                        erp.release.wait(timeout=60)
                self.wfile.flush()
                erp.body_sent_at = time.monotonic()
            except OSError:
                pass  # the service was killed mid-body

        def log_message(self, *args: object) -> None:
            pass

    with serving(Handler) as erp.url:
        yield


def _checksum(db: Path) -> str:
    """Every ERP row and every product, hashed in key order."""
    digest = hashlib.sha256()
    with sqlite3.connect(db, timeout=30) as conn:
        for query in (
            "SELECT key, data FROM records WHERE source = 'erp_stock' ORDER BY key",
            "SELECT code, name FROM products ORDER BY code",
        ):
            for row in conn.execute(query):
                digest.update(repr(row).encode())
    conn.close()
    return digest.hexdigest()


def _open_runs(db: Path) -> int:
    with sqlite3.connect(db, timeout=30) as conn:
        (count,) = conn.execute(
            "SELECT count(*) FROM runs WHERE status IN ('queued', 'running')"
        ).fetchone()
    conn.close()
    return int(count)


def _wal(db: Path) -> int:
    try:
        return os.stat(f"{db}-wal").st_size
    except FileNotFoundError:
        return 0


class _Sweep:
    def __init__(self, folder: Path, erp: _Erp) -> None:
        self.db = folder / "catalog.db"
        self.config = folder / "appsettings.json"
        self.port = free_port()
        self.api = f"http://127.0.0.1:{self.port}"
        self.config.write_text(
            json.dumps(
                {
                    # Long enough that only the first start and the test's POSTs refresh.
                    "CatalogRepository": {
                        "ErpStockRefreshInterval": "1.00:00:00",
                        "RefreshTimeout": "00:05:00",
                        "RetryAttempts": 1,
                    },
                    "Sources": {"ErpStock": {"Type": "http", "Url": f"{erp.url}/erp"}},
                    "Store": {"Url": f"sqlite:///{self.db}"},
                    "Api": {"Host": "127.0.0.1", "Port": self.port},
                }
            )
        )
        self.erp = erp
        self.expected: dict[str, str] = {}

    def start(self) -> ServiceProcess:
        service = ServiceProcess(self.config, self.api)
        try:
            service.wait_for("Serving the API on", seconds=60)
        except BaseException:
            service.__exit__(None, None, None)
            raise
        return service

    def refresh(self) -> None:
        answer = httpx.post(f"{self.api}/api/sources/erp_stock/refresh", timeout=30)
        assert answer.status_code in (200, 202), answer.text

    def check(self, service: ServiceProcess) -> None:
        """What a restart must see: no run open, in the store and in the API."""
        assert _open_runs(self.db) == 0
        runs = httpx.get(f"{self.api}/api/runs", params={"limit": 100}, timeout=30).json()
        assert not [r for r in runs["items"] if r["status"] in ("queued", "running")], runs
        assert service.alive


@dataclass
class _Timeline:
    body_to_completed: float = 0.0
    wal_growth: int = 0
    outcomes: dict[str, str] = field(default_factory=dict)


def _calibrate(sweep: _Sweep, erp: _Erp) -> tuple[dict[str, str], _Timeline]:
    """Load A (first start), then time a fresh service's refresh to B; both checksums."""
    erp.arm("A")
    with sweep.start() as service:
        service.wait_for(" Completed ", seconds=120)
    checksums = {"A": _checksum(sweep.db)}
    erp.arm("B")
    timeline = _Timeline()
    with sweep.start() as service:
        wal_before = _wal(sweep.db)
        sweep.refresh()
        while not service.count(" Completed "):
            assert service.alive
            assert " Error refreshing " not in service.output()
            timeline.wal_growth = max(timeline.wal_growth, _wal(sweep.db) - wal_before)
            time.sleep(0.005)
        completed_at = time.monotonic()
        assert erp.body_sent_at is not None
        timeline.body_to_completed = completed_at - erp.body_sent_at
    checksums["B"] = _checksum(sweep.db)
    assert checksums["A"] != checksums["B"]
    return checksums, timeline


def _sigkill(service: ServiceProcess) -> None:
    """SIGKILL to the service's process group; its log pipe closed."""
    service.kill()
    service.__exit__(None, None, None)


def _kill_at(point: str, sweep: _Sweep, service: ServiceProcess, timeline: _Timeline) -> None:
    """Start the refresh and SIGKILL the service's process group at ``point``."""
    erp, body = sweep.erp, sweep.erp.bodies[sweep.erp.serving]
    if point.startswith("fetch-"):
        erp.pause_at = len(body) * int(point[6:-1]) // 100
        sweep.refresh()
        assert erp.paused.wait(timeout=60), "the service never asked for the snapshot"
        _sigkill(service)
        erp.release.set()
        return
    wal_before = _wal(sweep.db)
    sweep.refresh()
    if point.startswith("body+"):
        poll(lambda: erp.body_sent_at, lambda at: at is not None, seconds=60)
        assert erp.body_sent_at is not None
        due = erp.body_sent_at + timeline.body_to_completed * int(point[5:-1]) / 100
        while time.monotonic() < due and not service.count(" Completed "):
            time.sleep(0.002)  # a busy wait for the chosen instant, not to let time pass
    elif point.startswith("wal-"):
        grown = timeline.wal_growth * int(point[4:-1]) // 100
        poll(
            lambda: _wal(sweep.db) - wal_before,
            lambda size: size >= grown or service.count(" Completed ") > 0,
            seconds=120,
        )
    else:
        service.wait_for(" Completed ", seconds=120)
        if point == "completed+visible":
            target = erp.serving
            poll(lambda: _checksum(sweep.db), lambda c: c == sweep.expected[target], 30)
    _sigkill(service)


def test_sigkill_at_any_point_of_a_refresh_leaves_the_old_or_the_new_snapshot() -> None:
    """At each of 20 points across a 200,000-row refresh (fetch, decode/diff/apply/commit,
    after commit) a SIGKILL of the service and its worker leaves, at the next start, exactly
    the old or exactly the new snapshot and no run open; fetch kills keep the old one,
    kills after completion the new one."""
    started = time.monotonic()
    erp = _Erp(_snapshots())
    shm = Path("/dev/shm")
    with (
        tempfile.TemporaryDirectory(dir=shm if shm.is_dir() else None) as tmp,
        _serve(erp),
    ):
        sweep = _Sweep(Path(tmp), erp)
        sweep.expected, timeline = _calibrate(sweep, erp)
        print(f"{time.monotonic() - started:6.1f} s calibrated: {timeline}", flush=True)
        holds = "B"
        service = sweep.start()
        try:
            for point in POINTS:
                sweep.check(service)
                other = "A" if holds == "B" else "B"
                erp.arm(other)
                _kill_at(point, sweep, service, timeline)
                service = sweep.start()  # the restart
                now = _checksum(sweep.db)
                assert now in (sweep.expected[holds], sweep.expected[other]), point
                outcome = "new" if now == sweep.expected[other] else "old"
                timeline.outcomes[point] = outcome
                holds = other if outcome == "new" else holds
                print(f"{time.monotonic() - started:6.1f} s {point}: {outcome}", flush=True)
            sweep.check(service)
        finally:
            _sigkill(service)
    took = time.monotonic() - started
    report = ", ".join(f"{point} {outcome}" for point, outcome in timeline.outcomes.items())
    print(
        f"crash sweep: {len(POINTS)} points in {took:.1f} s (body->completed "
        f"{timeline.body_to_completed:.2f} s, WAL growth {timeline.wal_growth:,} B): {report}"
    )
    assert all(timeline.outcomes[f"fetch-{n}%"] == "old" for n in FETCH_POINTS)
    assert timeline.outcomes["completed+visible"] == "new"
