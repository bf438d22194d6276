"""Issue 11's table in one run: memory, first load, refresh ratios, dlt, idle CPU, drift, cycles.

``.venv/bin/python bench/issue11_bench.py [--rows 1000000] [--no-write-docs] [--skip ROW,...]``
(``make bench`` runs the defaults: every row in one run). Each row is measured in a process of
its own (the service rows: the real ``catalog-refresher run`` in a process group of its own;
dlt under a time budget per phase, dlt_merge.py), and a ratio's two sides are measured in the
same run. Method per row: bench/README.md. Writes its section of docs/benchmarks.md and the
chart docs/img/refresh_phases.png (dlt and matplotlib come from the ``bench`` extra; without
it the dlt row and the chart are skipped with a message).
"""

from __future__ import annotations

import argparse
import asyncio
import importlib.util
import json
import math
import os
import signal
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor
from contextlib import contextmanager, suppress
from datetime import datetime, timedelta
from multiprocessing import get_context
from pathlib import Path
from typing import Any

import httpx

import dlt_merge  # this and the three below: sibling scripts
from catalog_refresher.app import Application
from catalog_refresher.domain.runs import RunStatus
from catalog_refresher.domain.specs import SPECS
from docs_section import write_section
from refresh_bench import (
    COLUMNS,
    SnapshotServer,
    baseline_db,
    code,
    decode_rows,
    machine,
    rss_mb,
    staged_diff,
    write_settings,
    write_snapshot,
)

ROOT = Path(__file__).resolve().parent.parent
CHART = ROOT / "docs" / "img" / "refresh_phases.png"
RESULTS = ROOT / "docs" / "img" / "issue11_results.json"
TICK = os.sysconf("SC_CLK_TCK")


def isolated(fn: Callable[..., Any], *args: Any) -> Any:
    """``fn(*args)`` in a new spawned process: no heap or allocator state carries over."""
    with ProcessPoolExecutor(1, mp_context=get_context("spawn")) as pool:
        return pool.submit(fn, *args).result()


# --- the service as a real process ---------------------------------------------------


def group_members(group: int) -> list[int]:
    """The live processes of process group ``group`` (the service and its workers)."""
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        with suppress(OSError, ValueError):
            state, _, pgrp = stat.read_text().rpartition(")")[2].split()[:3]
            if int(pgrp) == group and state != "Z":
                found.append(int(stat.parent.name))
    return found


def status_mb(pid: int, key: str) -> float:
    with suppress(OSError, IndexError):
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(f"{key}:"):
                return int(line.split()[1]) / 1024
    return 0.0


def cpu_seconds(pids: list[int]) -> float:
    total = 0.0
    for pid in pids:
        with suppress(OSError):
            fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
            total += (int(fields[11]) + int(fields[12])) / TICK  # utime, stime
    return total


class Service:
    """``catalog-refresher run --config`` in its own process group, its tree's RSS sampled."""

    def __init__(self, work: Path, document: dict[str, Any]) -> None:
        with socketless_port() as port:
            document.setdefault("Api", {})["Port"] = port
        (work / "appsettings.json").write_text(json.dumps(document))
        self.url = f"http://127.0.0.1:{port}"
        cmd = [sys.executable, "-m", "catalog_refresher", "run"]
        self.log = (work / "service.log").open("w")
        self.process = subprocess.Popen(
            [*cmd, "--config", str(work / "appsettings.json")],
            stdout=self.log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            cwd=work,
        )
        self.samples: list[tuple[float, float]] = []
        self.peaks: dict[int, float] = {}
        self.t0 = time.monotonic()
        self._stop = threading.Event()
        self._sampler = threading.Thread(target=self._sample, daemon=True)
        self._sampler.start()

    def members(self) -> list[int]:
        return group_members(self.process.pid)

    def rss(self) -> float:
        return sum(status_mb(pid, "VmRSS") for pid in self.members())

    def _sample(self) -> None:
        while not self._stop.wait(0.25):
            members = self.members()
            for pid in members:  # a worker's peak is kept even after it exits
                self.peaks[pid] = max(self.peaks.get(pid, 0.0), status_mb(pid, "VmHWM"))
            rss = sum(status_mb(pid, "VmRSS") for pid in members)
            self.samples.append((time.monotonic() - self.t0, rss))

    def peak_sum(self) -> float:
        for pid in self.members():
            self.peaks[pid] = max(self.peaks.get(pid, 0.0), status_mb(pid, "VmHWM"))
        return sum(self.peaks.values())

    def wait_answering(self, seconds: float = 120) -> float:
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            with suppress(httpx.HTTPError):
                httpx.get(f"{self.url}/health/live", timeout=2)
                return time.monotonic()
            if self.process.poll() is not None:
                sys.exit(f"ABORT: the service exited: {self.log.name}")
            time.sleep(0.02)
        sys.exit(f"ABORT: the service did not answer within {seconds} s")

    def runs(self) -> list[dict[str, Any]]:
        page = httpx.get(f"{self.url}/api/runs", params={"limit": 1000}, timeout=30).json()
        return list(page["items"])

    def stop(self) -> None:
        self._stop.set()
        self._sampler.join()
        with suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGTERM)
        try:
            self.process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait()
        self.log.close()


@contextmanager
def socketless_port() -> Iterator[int]:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = int(sock.getsockname()[1])
    yield port


def erp_document(work: Path, url: str) -> dict[str, Any]:
    return {
        "CatalogRepository": {"RefreshTimeout": "01:00:00", "ErpStockRefreshInterval": "01:00:00"},
        "Sources": {"ErpStock": {"Type": "http", "Url": url, "RequestTimeout": "00:10:00"}},
        "Store": {"Url": f"sqlite:///{work / 'catalog.db'}"},
    }


def service_memory(work: Path, server: SnapshotServer, n: int, warms: int) -> dict[str, Any]:
    """First load end to end (API answering -> last product served), ``warms`` warm 1%
    refreshes through the API, then the tree's RSS and the sum of its peaks."""
    server.show("A")
    service = Service(work, erp_document(work, server.url))
    try:
        answering = service.wait_answering()
        last = f"{service.url}/api/products/P{n:07d}"
        while httpx.get(last, timeout=30).status_code != 200:
            time.sleep(0.05)
        first = time.monotonic() - answering
        marks = [("first load", answering - service.t0, time.monotonic() - service.t0)]
        warm: list[float] = []
        seen: set[int] = set()
        for which in ("B", "A", "B", "A", "B")[:warms]:
            server.show(which)
            # Forget the validators: every refresh reads the whole snapshot (a switched file
            # can share its whole-second mtime with the If-Modified-Since sent; no 304s here).
            reset = f"{service.url}/api/sources/erp_stock/reset-cursor"
            httpx.post(reset, timeout=60).raise_for_status()
            t0 = time.monotonic()
            while True:  # a run still finishing (its worker returning) is joined: wait it out
                run = httpx.post(
                    f"{service.url}/api/sources/erp_stock/refresh",
                    params={"wait": "true"},
                    timeout=3600,
                ).json()
                if run["trigger"] == "manual" and run["id"] not in seen:
                    break
                t0 = time.monotonic()
            seen.add(run["id"])
            warm.append(time.monotonic() - t0)
            if run["status"] != "succeeded" or run["not_modified"] or not run["updated"]:
                sys.exit(f"ABORT: warm refresh {run}")
            marks.append((f"1% refresh to {which}", t0 - service.t0, time.monotonic() - service.t0))
        time.sleep(2)  # what the tree holds once the last run has settled
        rss = service.rss()
        members = len(service.members())
        peak = service.peak_sum()
        time.sleep(1)
        return {
            "first": first,
            "warm": warm,
            "rss": rss,
            "peak": peak,
            "members": members,
            "samples": service.samples,
            "marks": marks,
        }
    finally:
        service.stop()


def sqlite_baselines(work: Path, server: SnapshotServer, n: int) -> dict[str, float]:
    """A bare INSERT of A's rows in one transaction, and the staged SQL diff A -> B."""
    rows_a = decode_rows(server.files["A"].read_bytes())
    conn = sqlite3.connect(work / "bare.db", isolation_level=None)
    for pragma in ("journal_mode = WAL", "synchronous = NORMAL", "temp_store = MEMORY"):
        conn.execute(f"PRAGMA {pragma}")
    conn.execute(f"CREATE TABLE erp {COLUMNS}")
    t0 = time.perf_counter()
    conn.execute("BEGIN")
    conn.executemany("INSERT INTO erp VALUES (?, ?, ?, ?)", rows_a)
    conn.execute("COMMIT")
    bare = time.perf_counter() - t0
    conn.close()
    conn = baseline_db(work / "staged.db", rows_a)
    del rows_a
    rows_b = decode_rows(server.files["B"].read_bytes())
    staged = []
    for _ in range(3):  # each on a fresh table holding A
        t0 = time.perf_counter()
        staged_diff(conn, rows_b, n)
        staged.append(time.perf_counter() - t0)
        conn.close()
        rows_a = decode_rows(server.files["A"].read_bytes())
        conn = baseline_db(work / f"staged-{len(staged)}.db", rows_a)
    conn.close()
    return {"bare": bare, "staged": statistics.median(staged)}


# --- PostgreSQL and dlt ----------------------------------------------------------------


def postgres_row(work: Path, server: SnapshotServer, n: int) -> dict[str, float] | str:
    try:
        import postgres_refresh  # a sibling script; needs psycopg and the server
    except ImportError as exc:
        return f"skipped: {exc}"
    try:
        got = asyncio.run(postgres_refresh.repeat(work, server, n, server.files))
    except Exception as exc:  # no server: say so, do not fail the other rows
        return f"skipped: {type(exc).__name__}: {str(exc).splitlines()[0][:120]}"
    return {k: float(v) for k, v in got.items()}


def dlt_rows(work: Path, n: int, small: int, budget: float) -> dict[str, Any] | str:
    """dlt's merge of B into A (dlt_merge.py), each phase cut at ``budget`` s: keyed at ``n``
    rows (ours at ``n``: the memory row); at ``small`` rows keyed and with dlt's defaults,
    side by side with ours there (the service, as in the memory row, on snapshots of that
    size); the defaults also at twice ``small``, so that their growth shows in every run."""
    if importlib.util.find_spec("dlt") is None:
        return "skipped: dlt is not installed (pip install -e '.[bench]')"
    files = {which: work / f"small-{which}.json" for which in "AB"}
    for which, path in files.items():
        write_snapshot(small, which, path)
    server = SnapshotServer(work, files)
    try:
        (work / "ours").mkdir()
        ours = isolated(service_memory, work / "ours", server, small, 3)["warm"]
    finally:
        server.process.terminate()
        server.process.wait(timeout=10)
    got: dict[str, Any] = {"small_rows": small, "ours_small": ours, "budget": budget}
    for name, rows, keyed in (
        ("keyed_small", small, True),
        ("default_small", small, False),
        ("default_double", 2 * small, False),
        ("keyed", n, True),
    ):
        got[name] = dlt_merge.run(work / name, rows, keyed=keyed, budget=budget) | {"rows": rows}
        print(f"#   dlt {name} ({rows:,} rows): {got[name]}", flush=True)
    return got


# --- the scheduler: idle CPU and drift -------------------------------------------------


def simulated_document(work: Path, simulator: str, interval: str) -> dict[str, Any]:
    """The ten sources of the demo, read from the simulator, every ``interval``."""
    repository: dict[str, Any] = {spec.interval_option: interval for spec in SPECS.values()} | {
        "MaxConcurrentRefreshes": 10,
        "RefreshTimeout": "00:02:00",
    }
    sources = {
        "".join(part.title() for part in spec.id.split("_")): {
            "Type": "http",
            "Url": f"{simulator}/{spec.id}",
        }
        for spec in SPECS.values()
    }
    return {
        "CatalogRepository": repository,
        "Sources": sources,
        "Store": {"Url": f"sqlite:///{work / 'catalog.db'}"},
    }


class Simulator:
    def __init__(self, work: Path) -> None:
        with socketless_port() as port:
            self.url = f"http://127.0.0.1:{port}"
        self.log = (work / "simulator.log").open("w")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "catalog_refresher", "simulate", "--port", str(port)],
            stdout=self.log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            with suppress(httpx.HTTPError):
                httpx.get(f"{self.url}/", timeout=2)
                return
            time.sleep(0.05)
        sys.exit("ABORT: the simulator did not answer")

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(timeout=30)
        self.log.close()


def finished_runs(service: Service) -> list[dict[str, Any]]:
    return [r for r in service.runs() if r["status"] not in ("queued", "running")]


def idle_cpu(work: Path, seconds: float) -> dict[str, float]:
    """Ten sources scheduled hourly: after their first runs, the tree's CPU over ``seconds``."""
    simulator = Simulator(work)
    service = Service(work, simulated_document(work, simulator.url, "01:00:00"))
    try:
        service.wait_answering()
        deadline = time.monotonic() + 300
        while len(finished_runs(service)) < len(SPECS) and time.monotonic() < deadline:
            time.sleep(0.5)
        time.sleep(5)  # let the last run's follow-ups (cache, metrics) settle
        members = service.members()
        c0, t0 = cpu_seconds(members), time.monotonic()
        time.sleep(seconds)
        used, wall = cpu_seconds(members) - c0, time.monotonic() - t0
        return {"share": used / wall, "seconds": wall, "members": len(members)}
    finally:
        service.stop()
        simulator.stop()


def drift(work: Path, runs_wanted: int) -> dict[str, Any]:
    """Ten sources every second until ``runs_wanted`` scheduled runs: each run's recorded
    start minus the slot the service planned for it (``next_run_at`` of ``/api/sources``,
    polled every 50 ms; a run's slot is the latest one planned before it was queued)."""
    simulator = Simulator(work)
    service = Service(work, simulated_document(work, simulator.url, "00:00:01"))
    planned: dict[str, set[datetime]] = {}
    try:
        service.wait_answering()
        deadline = time.monotonic() + 900
        with httpx.Client(timeout=30) as client:
            polled = time.monotonic()
            while time.monotonic() < deadline:
                for source in client.get(f"{service.url}/api/sources").json():
                    if source.get("next_run_at"):
                        at = datetime.fromisoformat(source["next_run_at"])
                        planned.setdefault(source["id"], set()).add(at)
                time.sleep(0.05)
                if time.monotonic() - polled > 2:
                    polled = time.monotonic()
                    done = [r for r in finished_runs(service) if r["trigger"] == "schedule"]
                    if len(done) >= runs_wanted + 20:  # a margin for the runs left out
                        break
    finally:
        service.stop()
        simulator.stop()
    late: list[float] = []
    overran = 0
    finished: dict[str, datetime] = {}  # each source's previous run's end
    for run in sorted(done, key=lambda r: r["id"]):
        if len(late) == runs_wanted:
            break
        queued = datetime.fromisoformat(run["queued_at"])
        slots = [p for p in planned.get(run["source"], ()) if p <= queued + timedelta(seconds=0.5)]
        previous_end = finished.get(run["source"])
        if run.get("finished_at"):
            finished[run["source"]] = datetime.fromisoformat(run["finished_at"])
        if not (slots and run.get("started_at")):
            continue
        if previous_end is not None and previous_end > max(slots):
            # A source runs once at a time: a slot that came while its previous run was
            # still retrying (the simulator's planned failures) waits for that run's end
            # by design. That is the run overrunning its interval, not the clock drifting.
            overran += 1
            continue
        late.append((datetime.fromisoformat(run["started_at"]) - max(slots)).total_seconds())
    late.sort()
    p99 = percentile(late, 0.99) if late else float("nan")
    median = statistics.median(late) if late else 0.0
    return {"runs": len(late), "p99": p99, "p50": median, "overran": overran}


# --- many cycles -------------------------------------------------------------------------


async def _cycles(work: Path, server: SnapshotServer, cycles: int) -> dict[str, Any]:
    settings = write_settings(work, server.url, None)
    app = Application.build(settings)
    rss: dict[int, float] = {}
    try:
        await app.service.prepare()
        for cycle in range(1, cycles + 1):
            server.show("B" if cycle % 2 else "A")
            run = await app.service.refresh("erp_stock")
            if run.status is not RunStatus.SUCCEEDED:
                sys.exit(f"ABORT: cycle {cycle}: {run}")
            if cycle in (100, cycles) or cycle % 100 == 0:
                rss[cycle] = sum(rss_mb("VmRSS", server.pid).values())
    finally:
        await app.aclose()
    return {"rss": rss}


def many_cycles(work: Path, n: int, cycles: int) -> dict[str, Any]:
    """``cycles`` refreshes of an ``n``-row ERP snapshot (alternating A/B, 1% each way) in
    one Application with its worker; the tree's RSS after every 100th."""
    files = {which: work / f"small-{which}.json" for which in "AB"}
    for which, path in files.items():
        write_snapshot(n, which, path)
    server = SnapshotServer(work, files)
    try:
        server.show("A")
        return asyncio.run(_cycles(work, server, cycles))
    finally:
        server.process.terminate()
        server.process.wait(timeout=10)


# --- the chart and the report -----------------------------------------------------------


def chart(memory: dict[str, Any], rows: int, path: Path = CHART) -> str:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return "chart skipped: matplotlib is not installed (pip install -e '.[bench]')"
    times = [t for t, _ in memory["samples"]]
    rss = [r for _, r in memory["samples"]]
    fig, ax = plt.subplots(figsize=(9, 4), dpi=100)
    colours = ["#f4c7a1", "#b7d7a8", "#a4c2f4", "#b7d7a8"]
    for (label, start, end), colour in zip(memory["marks"], colours, strict=False):
        ax.axvspan(start, end, color=colour, alpha=0.6, label=f"{label} ({end - start:.1f} s)")
    ax.plot(times, rss, color="black", linewidth=1.2, label="RSS of the service's process tree")
    ax.axhline(400, color="red", linestyle="--", linewidth=0.8, label="target after refreshes")
    ax.axhline(600, color="darkred", linestyle=":", linewidth=0.8, label="target: sum of peaks")
    ax.set_xlabel("seconds since the service started")
    ax.set_ylabel("MB")
    refreshes = len(memory["warm"])
    ax.set_title(
        f"catalog-refresher run, {rows:,} ERP products: first load, then {refreshes}"
        " 1% refreshes through the API"
    )
    ax.legend(loc="upper right", fontsize=7)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    plt.close(fig)
    return f"chart: {path}"


def verdict(value: float, target: float, *, at_most: bool = True) -> str:
    ok = value <= target if at_most else value >= target
    if ok:
        return "met"
    return f"**missed** by {value / target:.2f}×" if at_most else f"**missed** ({value:.1f}×)"


def _machine_state(results: dict[str, Any]) -> str:
    """What the rows' load averages say of the machine: quiet, or shared."""
    highest = max(
        (float(part) for entry in results.values() for part in str(entry["load"]).split("-")),
        default=0.0,
    )
    cpus = os.cpu_count() or 1
    if highest <= cpus:
        return (
            f"The 1-minute load average stayed at or below {highest:.1f} on {cpus} CPUs in"
            " every row: a quiet machine (single runs still vary by 10-30%)."
        )
    return (
        f"**The machine was shared with other jobs** (1-minute load up to {highest:.1f} on"
        f" {cpus} CPUs): figures are noisy and slow; rerun on a quiet machine before judging."
    )


def _overran(drift: dict[str, Any]) -> str:
    """The drift row's note on the runs left out: slots that came while the source's
    previous run was still running."""
    n = drift.get("overran", 0)
    return f"; {n} runs left out: their source's previous run was still retrying" if n else ""


def percentile(values: Sequence[float], share: float) -> float:
    """The nearest-rank percentile of sorted ``values``: of 100 runs, p99 is the 99th (the
    largest would be p100)."""
    return values[max(0, math.ceil(share * len(values)) - 1)]


def report(results: dict[str, Any], carried: Sequence[str] = (), kept: Path = RESULTS) -> str:
    """The docs section: one table row per issue row, each with when, where and at what size
    it was measured; ``carried``: the rows not measured in this run (``--skip``), taken from
    ``kept``, said so."""
    r = {name: entry["result"] for name, entry in results.items()}

    def run(*names: str, rows: int | None = None) -> str:
        parts = []
        for name in names:
            if (entry := results.get(name)) is not None:
                size = f"{rows or entry['rows']:,} rows, " if rows or entry.get("rows") else ""
                parts.append(f"{size}{entry['at']}, load {entry['load']}, {entry['code']}")
        return "; ".join(dict.fromkeys(parts))

    rows = ["| what | measured | target | verdict | run |", "|---|--:|--:|---|---|"]
    mem, base = r.get("memory"), r.get("sqlite")
    if mem:
        n = results["memory"]["rows"]
        rows.append(
            f"| RSS of the service's process tree ({mem['members']} processes) with {n:,}"
            f" products resident, after {len(mem['warm'])} refreshes | {mem['rss']:,.0f} MB |"
            f" ≤ 400 MB | {verdict(mem['rss'], 400)} | {run('memory')} |"
        )
        rows.append(
            f"| sum of the tree's peak RSS (first load and refreshes) | {mem['peak']:,.0f} MB"
            f" | ≤ 600 MB | {verdict(mem['peak'], 600)} | {run('memory')} |"
        )
    pair = ("memory", "sqlite")
    if not base and r.get("memory_small") and r.get("sqlite_small"):
        pair, mem, base = ("memory_small", "sqlite_small"), r["memory_small"], r["sqlite_small"]
    if mem and base:
        ratio = mem["first"] / base["bare"]
        rows.append(
            f"| first load end to end (API answering → last product served) vs bare INSERT in"
            f" one transaction | {mem['first']:.1f} s vs {base['bare']:.2f} s = {ratio:.1f}× |"
            f" ≤ 2× | {verdict(ratio, 2)} | {run(*pair)} |"
        )
        warm = statistics.median(mem["warm"])
        ratio = warm / base["staged"]
        rows.append(
            f"| warm 1% refresh through the API (median of {len(mem['warm'])}) vs staged SQL"
            f" diff (median of 3) | {warm:.2f} s vs {base['staged']:.2f} s = {ratio:.2f}× |"
            f" ≤ 0.8× | {verdict(ratio, 0.8)} | {run(*pair)} |"
        )
    pg = r.get("postgres")
    if isinstance(pg, dict):
        ratio = pg["warm"] / pg["baseline"]
        rows.append(
            f"| warm 1% refresh on PostgreSQL vs COPY + MERGE + anti-join DELETE |"
            f" {pg['warm']:.2f} s vs {pg['baseline']:.2f} s = {ratio:.2f}× | ≤ 1.0× |"
            f" {verdict(ratio, 1.0)} | {run('postgres')} |"
        )
    elif pg:
        rows.append(f"| warm 1% refresh on PostgreSQL | {pg} | ≤ 1.0× | – | {run('postgres')} |")
    dl = r.get("dlt")
    if isinstance(dl, dict):
        full = results.get("memory")
        same = full and full["rows"] == dl["keyed"]["rows"]
        ours = statistics.median(full["result"]["warm"]) if same else None
        for what, measured, judged, size in dlt_merge.table_rows(dl, ours):
            where = run("dlt", rows=size)
            rows.append(f"| {what} | {measured} | ours ≥ 15× faster | {judged} | {where} |")
    elif dl:
        rows.append(f"| dlt merge on the same rows | {dl} | ours ≥ 15× faster | – | {run('dlt')} |")
    if cpu := r.get("cpu"):
        rows.append(
            f"| CPU with ten sources scheduled and nothing due, over {cpu['seconds']:.0f} s |"
            f" {cpu['share']:.2%} of one core | ≤ 0.5% | {verdict(cpu['share'], 0.005)} |"
            f" {run('cpu')} |"
        )
    if d := r.get("drift"):
        rows.append(
            f"| schedule drift (recorded start − planned slot `next_run_at`) over {d['runs']}"
            f" scheduled runs at 1 s | p99 {d['p99'] * 1000:.0f} ms (p50 {d['p50'] * 1000:.0f}"
            f" ms{_overran(d)}) | p99 ≤ 50 ms | {verdict(d['p99'], 0.05)} | {run('drift')} |"
        )
    if cy := r.get("cycles"):
        rss = {int(k): v for k, v in cy["rss"].items()}
        last = max(rss)
        growth = rss[last] / rss[100] - 1
        rows.append(
            f"| RSS after {last:,} refresh cycles of 10,000 rows vs after 100 |"
            f" {rss[last]:.0f} MB vs {rss[100]:.0f} MB ({growth:+.1%}) | within 10% |"
            f" {'met' if abs(growth) <= 0.10 else '**missed**'} | {run('cycles')} |"
        )
    lines = [
        "## Issue 11: memory, first load, ratios, scheduler",
        "",
        "`.venv/bin/python bench/issue11_bench.py` (`make bench`: every row in one run):"
        f" {machine()}. Each row says at what size, when, under what 1-minute load average"
        f" (2 CPUs) and on which commit it was measured. {_machine_state(results)}"
        " Method: bench/README.md.",
        "",
        *rows,
        "",
    ]
    if carried:
        lines[4:4] = [  # after the paragraph above
            f"**Not measured in this run** (`--skip`): {', '.join(carried)}; their rows are"
            f" from the earlier runs their *run* column names (kept in"
            f" `{kept.relative_to(ROOT) if kept.is_relative_to(ROOT) else kept}`).",
            "",
        ]
    if isinstance(r.get("dlt"), dict):
        lines += [
            "dlt's merge writes every row of B (its staging table, then delete + insert by"
            " key) and keeps the 0.5% of rows B no longer has; ours writes the 1.5% that"
            " changed or are new and deletes the 0.5% removed. Each dlt phase is killed after"
            f" {r['dlt']['budget']:.0f} s; a row cut there gives a lower bound.",
            "",
        ]
    mem = r.get("memory")
    if mem:
        lines += [
            f"Warm refreshes through the API, s: {', '.join(f'{w:.2f}' for w in mem['warm'])}.",
            "",
            "![RSS of the service's process tree over a first load and 1% refreshes]"
            "(img/refresh_phases.png)",
            "",
        ]
    return "\n".join(lines)


ROWS = ("memory", "sqlite", "postgres", "dlt", "cpu", "drift", "cycles")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--cycles", type=int, default=1000)
    parser.add_argument("--idle-seconds", type=float, default=60)
    parser.add_argument("--warm", type=int, default=3, help="warm refreshes in the memory row")
    parser.add_argument(
        "--dlt-budget",
        type=float,
        default=180,
        help="seconds each dlt phase may run before it is killed (the row gives a lower bound)",
    )
    parser.add_argument(
        "--dlt-small-rows",
        type=int,
        default=20_000,
        help="the size where dlt's defaults are measured side by side with ours",
    )
    parser.add_argument(
        "--results",
        type=Path,
        help=f"rows are kept here (default with --write-docs: {RESULTS.relative_to(ROOT)});"
        " with --skip, the skipped rows are taken from it, so a run of some rows adds to the"
        " others; without --skip every row is this run's",
    )
    parser.add_argument("--skip", default="", help=f"comma-separated, of {', '.join(ROWS)}")
    parser.add_argument("--write-docs", action=argparse.BooleanOptionalAction, default=True)
    args = parser.parse_args()
    skip, n = set(filter(None, args.skip.split(","))), args.rows
    kept: Path | None = args.results or (RESULTS if args.write_docs else None)
    results: dict[str, Any] = {}
    if skip and kept and kept.exists():  # only a partial run carries rows over
        results = {k: v for k, v in json.loads(kept.read_text()).items() if k in skip}
    loads = [os.getloadavg()[0]]
    print(f"# {machine()}, code {code()}; load {loads[0]:.1f}", flush=True)
    with tempfile.TemporaryDirectory(prefix="issue11-bench-") as tmp:
        root = Path(tmp)
        files = {which: root / f"snapshot-{which}.json" for which in "AB"}
        with ProcessPoolExecutor(2, mp_context=get_context("spawn")) as pool:
            list(pool.map(write_snapshot, [n, n], "AB", files.values()))
        server = SnapshotServer(root, files)
        steps: list[tuple[str, Callable[[Path], Any]]] = [
            ("memory", lambda w: isolated(service_memory, w, server, n, args.warm)),
            ("sqlite", lambda w: isolated(sqlite_baselines, w, server, n)),
            ("postgres", lambda w: isolated(postgres_row, w, server, n)),
            ("dlt", lambda w: dlt_rows(w, n, min(args.dlt_small_rows, n), args.dlt_budget)),
            ("cpu", lambda w: idle_cpu(w, args.idle_seconds)),
            ("drift", lambda w: drift(w, 100)),
            ("cycles", lambda w: isolated(many_cycles, w, 10_000, args.cycles)),
        ]
        try:
            for name, step in steps:
                if name in skip:
                    continue
                work = root / name
                work.mkdir()
                t0 = time.monotonic()
                got = step(work)
                load_now = os.getloadavg()[0]
                loads.append(load_now)
                results[name] = {
                    "result": got,
                    "rows": n if name in ("memory", "sqlite", "postgres", "dlt") else None,
                    "at": time.strftime("%Y-%m-%d %H:%M"),
                    "load": f"{min(loads[-2], load_now):.1f}-{max(loads[-2], load_now):.1f}",
                    "code": code(),
                }
                if kept:
                    kept.parent.mkdir(parents=True, exist_ok=True)
                    kept.write_text(json.dumps(results, indent=1, default=str))
                shown = (
                    {k: v for k, v in got.items() if k != "samples"}
                    if isinstance(got, dict)
                    else got
                )
                print(f"# {name} ({time.monotonic() - t0:.0f} s): {shown}", flush=True)
                for db in work.glob("**/*.db*"):
                    db.unlink()
        finally:
            server.process.terminate()
            server.process.wait(timeout=10)
    if "memory" in results and "memory" not in skip:
        memory = results["memory"]
        # --no-write-docs leaves docs/ as it is: the chart of such a run goes to /tmp
        path = CHART if args.write_docs else Path(tempfile.gettempdir()) / CHART.name
        print(f"# {chart(memory['result'], memory['rows'], path)}", flush=True)
    section = report(results, sorted(set(results) & skip), kept or RESULTS)
    print(section, flush=True)
    if args.write_docs:
        print(f"# wrote {write_section(section)}")


if __name__ == "__main__":
    main()
