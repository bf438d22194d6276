"""The cells of the fault matrix: how each fault is made, then ``Checker`` on every invariant.

Each cell is a function of a work folder returning its ``Cell``; the test module runs
them side by side (each is its own service process on its own ports and store).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import sqlite3
import subprocess
import tempfile
import time
import traceback
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from tests.e2e.fault_matrix import (
    BYSTANDER,
    REFRESH_TIMEOUT,
    VICTIM,
    Api,
    Cell,
    Checker,
    PostgresView,
    SqliteView,
    deadline_poll,
    failures_of,
    now,
    start,
)
from tests.e2e.processes import free_port
from tests.fault_source import GENERATION, FaultSource, code, serve_faults

#: The log line of a run that did not succeed.
ERROR = "Error refreshing ERP stock data"
#: The log line of a failure outside any recorded run (a claim the store refused).
REFUSED = "The store cannot be written"


@dataclass(frozen=True)
class SourceFault:
    """A fault of the victim's HTTP answers: the mode of ``FaultSource`` that makes it,
    and how the run must end."""

    mode: str
    status: str
    error_type: str
    victim: dict[str, object] | None = None
    """Options of the victim source for this fault."""


SOURCE_FAULTS = {
    "http_5xx": SourceFault("http_500", "failed", "http_status"),
    "timeout": SourceFault("timeout", "failed", "timeout", {"RequestTimeout": "00:00:01"}),
    "connection_refused": SourceFault("refused", "failed", "connection"),
    # Each chunk comes within ReadTimeout, and the whole request may take a minute: only
    # RefreshTimeout (10 s) can end it.
    "slow_trickle": SourceFault(
        "trickle",
        "timed_out",
        "timeout",
        {"RequestTimeout": "00:01:00", "ReadTimeout": "00:00:02"},
    ),
    "malformed_json": SourceFault("malformed", "failed", "invalid_payload"),
    "wrong_shape": SourceFault("wrong_shape", "failed", "invalid_payload"),
    "invalid_rows": SourceFault("invalid_rows", "rejected", "rejected"),
    "empty_snapshot": SourceFault("empty", "rejected", "rejected"),
    "page_missing": SourceFault("page_missing", "failed", "http_status"),
}


def guarded(fault: str, body: Callable[[Cell, Path], None], work: Path) -> Cell:
    """Run one cell; an exception ends it, recorded (with the traceback) rather than raised."""
    cell = Cell(fault)
    started = time.monotonic()
    try:
        body(cell, work)
    except BaseException as exc:  # pytest.fail is a BaseException; keep the row anyway
        cell.error = "".join(traceback.format_exception(exc))
    cell.seconds = time.monotonic() - started
    return cell


def source_cell(fault: str, work: Path) -> Cell:
    spec = SOURCE_FAULTS[fault]

    def body(cell: Cell, work: Path) -> None:
        db = work / "catalog.db"
        with (
            serve_faults() as source,
            start(work, source, f"sqlite:///{db}", spec.victim) as service,
        ):
            try:
                api = Api(service.url)
                checker = Checker(cell, api, SqliteView(db))
                checker.wait_healthy_start()
                before = failures_of(api, spec.error_type)
                source.generation = 2  # the source moves on, but answers with its fault
                since = now()
                source.set_mode(spec.mode)
                run = checker.wait_run(since, {spec.status})
                checker.served(gen=1)
                checker.atomic(allowed=(1,))
                checker.truth(run, spec.status, spec.error_type, before, health="Degraded")
                checker.schedule(since)
                checker.none_stuck()
                source.release.set()
                source.set_mode("ok")
                checker.converges(gen=2)
            finally:
                cell.check("settled", service.stop() == 0, "the service did not exit 0")
                cell.log = service.output()
        checker.settled()

    return guarded(fault, body, work)


# -- the store ---------------------------------------------------------------------------


def sqlite_locked_cell(work: Path) -> Cell:
    """Another connection takes ``BEGIN EXCLUSIVE`` on the store while the victim's run is
    fetching, and holds it until that run has ended (RefreshTimeout) or 12 s have passed."""

    def body(cell: Cell, work: Path) -> None:
        db = work / "catalog.db"
        with (
            serve_faults(slow_seconds=0.4) as source,
            start(work, source, f"sqlite:///{db}") as service,
        ):
            try:
                api = Api(service.url)
                checker = Checker(cell, api, SqliteView(db))
                checker.wait_healthy_start()
                before = failures_of(api, "timeout")
                source.generation = 2
                since = now()
                asked = len(source.requests)
                source.set_mode("slow")  # the run is in flight when the lock comes
                deadline_poll(lambda: victim_requests(source, asked), bool, 10)
                flying = deadline_poll(lambda: checker.in_flight(since), bool, 10)
                lock = sqlite3.connect(db, timeout=5, isolation_level=None)
                lock.execute("BEGIN EXCLUSIVE")
                locked_at = time.monotonic()
                try:
                    # Held until the run in flight is past its RefreshTimeout.
                    late = REFRESH_TIMEOUT + 1
                    deadline_poll(lambda: checker.running_for(since), lambda a: a > late, 20)
                    held = time.monotonic() - locked_at
                    cell.notes.append(f"write lock held {held:.1f} s")
                    # Reads go on beside the lock (WAL): the old data, or the new if the run
                    # committed just before the lock came; one whole generation either way.
                    checker.served(gen=(1, 2))
                    started = time.monotonic()
                    code, body = api.get("/health")
                    took = time.monotonic() - started
                    cell.check("truth", took < 1.0, f"/health took {took:.1f} s while locked")
                    cell.notes.append(f"/health while locked: {code} {body.get('status')}")
                finally:
                    lock.rollback()
                    lock.close()
                released = time.monotonic()
                source.set_mode("ok")
                run = checker.wait_finished(flying)
                cell.notes.append(
                    f"run {run['id']} recorded {run['status']} "
                    f"{time.monotonic() - released:.1f} s after the lock was released"
                )
                if run["status"] == "succeeded":
                    # Its apply waited for the lock and committed before the timeout's
                    # status write could: the fenced apply wins, reported as succeeded.
                    checker.atomic(allowed=(2,))
                    listed = api.sources()[VICTIM]
                    cell.check(
                        "truth",
                        listed["last_status"] == "succeeded",
                        f"/api/sources says {listed['last_status']} of a committed run",
                    )
                else:
                    checker.atomic(allowed=(1,))
                    checker.truth(run, run["status"], "timeout", before, health="Degraded")
                checker.none_stuck()
                checker.converges(gen=2)
                checker.schedule(now())
            finally:
                cell.check("settled", service.stop() == 0, "the service did not exit 0")
                cell.log = service.output()
        checker.settled()

    return guarded("sqlite_locked", body, work)


@contextlib.contextmanager
def small_disk(work: Path, size: str = "4m") -> Iterator[Path]:
    """A tmpfs of ``size`` mounted at ``work/disk`` (we are root in CI)."""
    mount = work / "disk"
    mount.mkdir()
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={size},mode=0700", "tmpfs", str(mount)],
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0:
        raise RuntimeError(f"cannot mount a tmpfs: {done.stderr.strip()}")
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)


def fill(folder: Path) -> Path:
    """Write a file in ``folder`` until the file system is full."""
    filler = folder / "filler"
    # Unbuffered, and the open inside the suppress: a buffered file's close flushes what the
    # full disk refused and raises ENOSPC again, outside the suppress (seen in CI).
    with contextlib.suppress(OSError), filler.open("wb", buffering=0) as file:
        while True:
            file.write(b"\0" * 65536)
    return filler


def disk_full_cell(work: Path) -> Cell:
    """The store's file system fills up (a 4 MB tmpfs); then space comes back."""

    def body(cell: Cell, work: Path) -> None:
        products = 2_000  # generation 2 doubles them: the store must grow, and cannot
        with small_disk(work) as disk:
            db = disk / "catalog.db"
            with (
                serve_faults(products=products) as source,
                start(work, source, f"sqlite:///{db}") as service,
            ):
                try:
                    api = Api(service.url)
                    checker = Checker(cell, api, SqliteView(db), products=products)
                    checker.wait_healthy_start()
                    before = failures_of(api, "store")
                    filler = fill(disk)
                    source.generation = 2
                    source.products = 2 * products
                    # While the disk is full no run can be recorded (nor the end of the one
                    # in flight): the refused writes are counted, logged, and told by
                    # /health and /api/sources instead of the audit log.
                    counted = deadline_poll(
                        lambda: failures_of(api, "store"), lambda n: n > before, 40
                    )
                    cell.notes.append(f"store failures counted while full: {counted}")
                    checker.served(gen=1)
                    checker.atomic(allowed=(1,))
                    told = api.sources()[VICTIM]
                    refused = {"id": "-", "status": "not recorded", "error": told["last_error"]}
                    checker.truth(refused, "failed", "store", before, health="Degraded")
                    filler.unlink()
                    # The run in flight records its end once the disk has room again.
                    stuck = deadline_poll(
                        lambda: checker.running_for(datetime.min.replace(tzinfo=UTC)),
                        lambda age: age <= REFRESH_TIMEOUT + 2,
                        20,
                    )
                    cell.notes.append(f"longest victim run still running after freeing: {stuck}")
                    checker.none_stuck()
                    checker.products = 2 * products
                    checker.converges(gen=2)
                    # The store is shared: the bystander's runs could not be recorded while
                    # it was full either; its schedule is checked once it has room and the
                    # victim has caught up. During the victim's catch-up (4,000 rows fetched
                    # five at a time, then applied) the bystander's run waited for it: 3.8
                    # to 7.0 s under the whole matrix on two cores, before and after the
                    # first-load change of 2026-12-02 alike (docs/reliability.md).
                    checker.schedule(now())
                finally:
                    cell.check("settled", service.stop() == 0, "the service did not exit 0")
                    cell.log = service.output()
            checker.settled()

    return guarded("disk_full", body, work)


class PrivatePostgres:
    """A PostgreSQL server of the test's own: its data folder, its port, user postgres."""

    def __init__(self) -> None:
        bins = sorted(Path("/usr/lib/postgresql").glob("*/bin"))
        if not bins:
            raise RuntimeError("no PostgreSQL binaries under /usr/lib/postgresql")
        self.bin = bins[-1]
        self.folder = Path(tempfile.mkdtemp(prefix="fault-matrix-pg-"))
        shutil.chown(self.folder, "postgres", "postgres")
        self.port = free_port()
        self.dsn = f"postgresql://postgres@127.0.0.1:{self.port}/postgres"
        self._as_postgres(
            "initdb", "-D", str(self.folder / "data"), "-A", "trust", "-U", "postgres", "--no-sync"
        )

    def _as_postgres(self, tool: str, *args: str) -> None:
        command = [str(self.bin / tool), *args]
        if os.geteuid() == 0:
            command = ["runuser", "-u", "postgres", "--", *command]
        subprocess.run(command, check=True, capture_output=True, timeout=60)

    def start(self) -> None:
        options = (
            f"-p {self.port} -k {self.folder} -c listen_addresses=127.0.0.1 -c fsync=off"
            " -c full_page_writes=off"
        )
        data = str(self.folder / "data")
        log = str(self.folder / "log")
        self._as_postgres("pg_ctl", "-D", data, "-o", options, "-l", log, "-w", "start")

    def stop(self) -> None:
        self._as_postgres("pg_ctl", "-D", str(self.folder / "data"), "-m", "fast", "-w", "stop")

    def remove(self) -> None:
        with contextlib.suppress(subprocess.CalledProcessError):
            self.stop()
        shutil.rmtree(self.folder, ignore_errors=True)


def postgres_restart_cell(work: Path) -> Cell:
    """The PostgreSQL store stops (fast shutdown) for a few run intervals, then comes back."""

    def body(cell: Cell, work: Path) -> None:
        server = PrivatePostgres()
        try:
            server.start()
            with serve_faults() as source, start(work, source, server.dsn) as service:
                try:
                    api = Api(service.url)
                    checker = Checker(cell, api, PostgresView(server.dsn))
                    checker.wait_healthy_start()
                    checker.served(gen=1, one_by_one=True)  # read: now they are cached
                    before = failures_of(api, "store")
                    source.generation = 2
                    errors = service.count(REFUSED)
                    server.stop()
                    stopped = time.monotonic()
                    try:
                        down = deadline_poll(lambda: api.get("/health"), lambda r: r[0] == 503, 15)
                        cell.notes.append(f"/health while stopped: {down and down[0]}")
                        cell.check(
                            "truth",
                            down is not None and down[0] == 503,
                            f"/health said {down and down[0]}, not 503 Unhealthy",
                        )
                        checker.served_or_unavailable(gen=1)
                        asked = time.monotonic()
                        try:
                            listing: object = api.get("/api/products", timeout=10)[0]
                        except OSError as exc:
                            listing = exc
                        took = time.monotonic() - asked
                        cell.notes.append(f"GET /api/products while stopped: {listing}")
                        cell.check(
                            "served",
                            listing in (200, 503) and took < 10,
                            f"GET /api/products with the store down: {listing} after {took:.0f} s",
                        )
                        # Down until both sources' claims were refused (none can be written):
                        # counted as store failures, though no run can be recorded.
                        deadline_poll(lambda: service.count(REFUSED), lambda n: n >= errors + 4, 15)
                        counted = failures_of(api, "store")
                        cell.notes.append(f"store failures counted while down: {counted:g}")
                        cell.check(
                            "truth",
                            counted > before,
                            f"store failures stayed {counted:g}",
                        )
                    finally:
                        server.start()
                    cell.notes.append(f"store down {time.monotonic() - stopped:.1f} s")
                    back = time.monotonic()
                    answered = deadline_poll(lambda: api.runs(VICTIM), bool, 30)
                    cell.check("converges", answered is not None, "the API never read the store")
                    cell.notes.append(f"store read again {time.monotonic() - back:.1f} s later")
                    checker.atomic(allowed=(1, 2))
                    checker.none_stuck()
                    checker.converges(gen=2)
                    checker.schedule(now())
                finally:
                    cell.check("settled", service.stop() == 0, "the service did not exit 0")
                    cell.log = service.output()
            checker.settled()
        finally:
            server.remove()

    return guarded("postgres_restart", body, work)


# -- signals -----------------------------------------------------------------------------


def sigterm_cell(target: str, work: Path) -> Cell:
    """SIGTERM while the victim's run is fetching: to the service (``process``) or to its
    whole process group (``group``: Ctrl-C, systemd's control-group kill)."""

    def body(cell: Cell, work: Path) -> None:
        db = work / "catalog.db"
        view = SqliteView(db)
        with serve_faults(slow_seconds=0.4) as source:
            with start(work, source, f"sqlite:///{db}") as service:
                try:
                    api = Api(service.url)
                    checker = Checker(cell, api, view)
                    checker.wait_healthy_start()
                    source.generation = 2
                    source.set_mode("slow")  # each page takes 0.4 s: the run stays in flight
                    # A run that reads generation 2 from its first page on (one that began
                    # before would commit a mix of both, as the source served them).
                    began = source.first_pages
                    deadline_poll(lambda: source.first_pages, lambda n: n > began + 1, 30)
                    signalled = now()
                    if target == "group":
                        os.killpg(service.process.pid, signal.SIGTERM)
                    else:
                        service.process.send_signal(signal.SIGTERM)
                    code = service.process.wait(timeout=30)
                    cell.check("settled", code == 0, f"exit code {code}")
                finally:
                    cell.log = service.output()
                    service.kill()
            checker.settled()
            checker.atomic(allowed=(2,))  # the run in flight commits within the grace period
            late = [line for line in _lines_after(cell.log, signalled) if " Starting " in line]
            cell.check("schedule", not late, f"runs started after SIGTERM: {late[:2]}")
            cell.check(
                "truth",
                "worker process died" not in cell.log and "Completed ERP stock" in cell.log,
                "the run in flight did not complete",
            )
            source.set_mode("ok")
            source.generation = 3
            with start(work, source, f"sqlite:///{db}") as again:
                try:
                    again.wait_for("Serving the API on", seconds=60)
                    api = Api(again.url)
                    checker = Checker(cell, api, view)
                    checker.served(gen=2)  # at once, before any run of the new process
                    checker.converges(gen=3)
                finally:
                    again.stop()
                    cell.log += "--- restarted ---\n" + again.output()

    return guarded(f"sigterm_{target}", body, work)


def victim_requests(source: FaultSource, since: int) -> list[tuple[float, str, str]]:
    """The victim's requests after the first ``since`` requests of both systems."""
    return [request for request in source.requests[since:] if request[1] == "/erp"]


def _lines_after(log: str, moment: object) -> list[str]:
    """The log lines stamped after ``moment`` (a UTC datetime)."""
    stamp = moment.strftime("%Y-%m-%dT%H:%M:%S.%f")[:23]  # type: ignore[attr-defined]
    return [line for line in log.splitlines() if line[:23] > stamp]


def sigkill_apply_cell(work: Path) -> Cell:
    """SIGKILL to the whole group while the worker's apply transaction is open (the test
    sees the store's write lock taken after the last page was served)."""

    def body(cell: Cell, work: Path) -> None:
        products = 10_000
        db = work / "catalog.db"
        view = SqliteView(db)
        with serve_faults(products=products) as source:
            with start(work, source, f"sqlite:///{db}") as service:
                try:
                    api = Api(service.url)
                    checker = Checker(cell, api, view, products=products)
                    checker.wait_healthy_start(seconds=90)
                    source.generation = 2
                    sent = source.last_pages_sent
                    deadline_poll(lambda: source.last_pages_sent, lambda n: n > sent, 20)
                    applying = deadline_poll(lambda: _write_locked(db), bool, 20)
                    os.killpg(service.process.pid, signal.SIGKILL)
                    cell.notes.append(f"killed {'in' if applying else 'NOT in'} an apply")
                    cell.check("atomic", bool(applying), "never saw the apply's write lock")
                finally:
                    cell.log = service.output()
                    service.kill()
            found = checker.atomic(allowed=(1, 2))
            cell.notes.append(f"after the kill the store held generation {sorted(found)}")
            with start(work, source, f"sqlite:///{db}") as again:
                try:
                    again.wait_for("Serving the API on", seconds=60)
                    api = Api(again.url)
                    checker = Checker(cell, api, view, products=products)
                    gen = min(found) if found else 1
                    checker.served(gen=gen)
                    checker.converges(gen=2, seconds=60)
                    since = now()  # the first heavy run of the new process is behind us
                    stored = {int(v) // GENERATION for _, v in view.victim_rows()}
                    uncached = api.get(f"/api/products/{code(1)}")[1]["stock"]["erp"]
                    cell.notes.append(
                        f"the store holds generation {sorted(stored)}; an uncached product "
                        f"reads {uncached:g}; /api/cache {api.get('/api/cache')[1]}"
                    )
                    checker.schedule(since, seconds=20)
                    cancelled = [r for r in api.runs(VICTIM) if r["status"] == "cancelled"] + [
                        r for r in api.runs(BYSTANDER) if r["status"] == "cancelled"
                    ]
                    cell.check(
                        "truth",
                        bool(cancelled),
                        "the killed run was not marked cancelled after the restart",
                    )
                    checker.none_stuck()
                finally:
                    again.stop()
                    cell.log += "--- restarted ---\n" + again.output()
            checker.settled()

    return guarded("sigkill_apply", body, work)


def _write_locked(db: Path) -> bool:
    """Whether another connection holds the store's write lock right now."""
    conn = sqlite3.connect(db, timeout=0, isolation_level=None)
    try:
        conn.execute("BEGIN IMMEDIATE")
        conn.rollback()
        return False
    except sqlite3.OperationalError:
        return True
    finally:
        conn.close()


CELLS: dict[str, Callable[[Path], Cell]] = {
    **{name: (lambda work, name=name: source_cell(name, work)) for name in SOURCE_FAULTS},
    "postgres_restart": postgres_restart_cell,
    "sqlite_locked": sqlite_locked_cell,
    "disk_full": disk_full_cell,
    "sigterm_process": lambda work: sigterm_cell("process", work),
    "sigterm_group": lambda work: sigterm_cell("group", work),
    "sigkill_apply": sigkill_apply_cell,
}
