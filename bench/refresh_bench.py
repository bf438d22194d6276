"""Refresh benchmark: a 1,000,000-row ERP snapshot over local HTTP, end to end.

``.venv/bin/python bench/refresh_bench.py [--rows N] [--repeats 3] [--no-write-docs]``;
``make bench`` runs the defaults and rewrites its section of docs/benchmarks.md.
What is measured, and how, is in bench/README.md.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib
import inspect
import json
import os
import platform
import re
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ProcessPoolExecutor
from contextlib import suppress
from itertools import chain, islice
from multiprocessing import get_context
from pathlib import Path
from typing import Any, ClassVar, NamedTuple

import httpx
import msgspec

from catalog_refresher import config
from catalog_refresher.app import Application
from catalog_refresher.domain.runs import RunStatus
from docs_section import write_section  # a sibling script

ROOT = Path(__file__).resolve().parent.parent
NOUNS = ("Šroub", "Matice", "Podložka", "Hmoždinka", "Vrut", "Nýt", "Kolík", "Pružina", "Těsnění")
ADJECTIVES = ("pozinkovaný", "nerezový", "mosazný", "černěný", "zesílený", "samořezný", "plochý")


def erp_record(i: int, *, changed: bool = False) -> dict[str, Any]:
    """ERP row ``i``: deterministic, ~128 bytes of JSON; ``changed`` bumps its stock."""
    stock = (i * 7919) % 10_000
    return {
        "product_code": f"P{i:07d}",
        "product_name": f"{NOUNS[i % 9]} {ADJECTIVES[i // 9 % 7]} DIN {912 + i % 30}"
        f" M{4 + i % 9}×{10 + i % 12 * 10} mm bal. {(10, 25, 50, 100, 200)[i % 5]} ks",
        "stock": stock + 1 if changed else stock,
        "location": f"{'ABCDEFGH'[i % 8]}{1 + i // 8 % 40:02d}-R{1 + i // 320 % 12:02d}",
    }


def snapshot(n: int, which: str) -> Iterator[dict[str, Any]]:
    """A: rows 1..n. B: every 100th row changed, every 200th (+1) removed, n/200 rows added."""
    if which == "A":
        return (erp_record(i) for i in range(1, n + 1))
    kept = (erp_record(i, changed=i % 100 == 0) for i in range(1, n + 1) if i % 200 != 1)
    return chain(kept, (erp_record(i) for i in range(n + 1, n + 1 + n // 200)))


def expected(n: int) -> dict[str, int]:
    """The counts of the A -> B refresh."""
    return {"inserted": n // 200, "updated": n // 100, "deleted": (n + 199) // 200}


def write_snapshot(n: int, which: str, path: Path) -> int:
    """Write snapshot ``which`` as one JSON array, 100,000 records at a time; its size."""
    records, separator = snapshot(n, which), b""
    with path.open("wb") as out:
        out.write(b"[")
        while chunk := list(islice(records, 100_000)):
            out.write(separator + msgspec.json.encode(chunk)[1:-1])
            separator = b","
        out.write(b"]")
    return path.stat().st_size


class ErpRow(msgspec.Struct, gc=False):
    """The baseline's decode target: the four typed columns, nothing more."""

    product_code: str
    stock: float
    product_name: str | None = None
    location: str | None = None


def decode_rows(body: bytes) -> list[tuple[Any, ...]]:
    rows = msgspec.json.decode(body, type=list[ErpRow])
    return [(r.product_code, r.product_name, r.stock, r.location) for r in rows]


class SnapshotServer:
    """``/erp.json`` over HTTP from a separate process, so it does not compete for our GIL."""

    def __init__(self, root: Path, files: dict[str, Path]) -> None:
        self.root, self.files = root / "www", files
        self.root.mkdir()
        cmd = [sys.executable, "-u", "-m", "http.server", "-b", "127.0.0.1", "-d", self.root, "0"]
        out = subprocess.PIPE
        self.process = subprocess.Popen(cmd, stdout=out, stderr=subprocess.DEVNULL, text=True)
        port = re.findall(r"port (\d+)", self.process.stdout.readline())  # type: ignore[union-attr]
        self.url, self.pid = f"http://127.0.0.1:{port[0]}/erp.json", self.process.pid

    def __getstate__(self) -> dict[str, Any]:
        """Measuring processes get all but the process handle; they switch snapshots too."""
        return {k: v for k, v in vars(self).items() if k != "process"}

    def show(self, which: str) -> None:
        """Serve snapshot ``which`` from now on: atomically, by a hard link and a rename."""
        staged = self.root / ".erp.json.new"
        staged.unlink(missing_ok=True)
        os.link(self.files[which], staged)
        # The service asks with If-Modified-Since (whole seconds): a switched snapshot must
        # be newer by a whole second than the one served before, as a system's new export
        # is, or http.server rightly answers 304 and the run measures nothing.
        self.modified = max(int(time.time()) + 1, getattr(self, "modified", 0) + 1)
        os.utime(staged, (self.modified, self.modified))
        os.replace(staged, self.root / "erp.json")


def rss_mb(key: str, server: int, reset: bool = False) -> dict[int, float]:
    """``VmRSS``/``VmHWM`` (MB) of this process and its children (refresh workers) but the
    server; ``reset`` first restarts their peaks (Linux >= 4.0)."""
    found, me = {}, os.getpid()
    for status in Path("/proc").glob("[0-9]*/status"):
        with suppress(OSError, IndexError, ValueError):
            pid, text = int(status.parent.name), status.read_text()
            if pid == me or (pid != server and f"\nPPid:\t{me}\n" in text):
                if reset:
                    (status.parent / "clear_refs").write_text("5")
                    text = status.read_text()
                found[pid] = int(re.findall(rf"{key}:\s+(\d+)", text)[0]) / 1024
    return found


class Sample(NamedTuple):
    seconds: float
    steps: dict[str, float] | None = None
    extra_rss_mb: float | None = None


class Steps:
    """Wall time per refresh step, by wrapping the service's functions (src stays untouched).

    Only calls in this process are seen: with a worker process, validate -> apply are not.
    A target that no longer exists is skipped. The wrappers cost microseconds per run.
    """

    TARGETS: ClassVar[dict[str, str]] = {  # "  " labels are part of the step above
        "fetch (HTTP GET)": "catalog_refresher.sources.http:HttpSource.fetch",
        "decode + validate": "catalog_refresher.refresh.pipeline:validate",
        "fingerprint index build": "catalog_refresher.refresh.diff:FingerprintIndex.build",
        "diff": "catalog_refresher.refresh.diff:diff",
        "changeset encode": "catalog_refresher.refresh.diff:changeset",
        "store apply (1 transaction)": "catalog_refresher.store.sqlite:SqliteStore.apply",
        "  of which lineage/products/feed": (
            "catalog_refresher.store.sqlite:SqliteStore._record_touched"
        ),
        "index update": "catalog_refresher.refresh.diff:FingerprintIndex.update",
        "cache invalidation": "catalog_refresher.catalog:Catalog.on_event",
    }
    TOP: ClassVar[list[str]] = [k for k in TARGETS if not k.startswith(" ")]

    def __init__(self) -> None:
        self.spent: dict[str, float] = {}
        for label, target in self.TARGETS.items():
            module, _, path = target.partition(":")
            owner: Any = importlib.import_module(module)
            *parents, name = path.split(".")
            for parent in parents:
                owner = getattr(owner, parent)
            if not hasattr(owner, name):
                print(f"# step {label!r}: {target} not found, not timed", flush=True)
                continue
            setattr(owner, name, self._wrap(label, getattr(owner, name)))

    def _wrap(self, label: str, fn: Callable[..., Any]) -> Callable[..., Any]:
        def timed(*args: Any, **kwargs: Any) -> Any:
            t0 = time.perf_counter()
            try:
                return fn(*args, **kwargs)
            finally:
                self.spent[label] = self.spent.get(label, 0.0) + time.perf_counter() - t0

        async def timed_async(*args: Any, **kwargs: Any) -> Any:
            t0 = time.perf_counter()
            try:
                return await fn(*args, **kwargs)
            finally:
                self.spent[label] = self.spent.get(label, 0.0) + time.perf_counter() - t0

        return timed_async if inspect.iscoroutinefunction(fn) else timed

    def take(self) -> dict[str, float]:
        spent, self.spent = self.spent, {}
        return spent


def write_settings(work: Path, url: str, workers: int | None) -> config.Settings:
    """A real appsettings.json: the ERP only, generous timeouts for a 1M-row run."""
    document: dict[str, Any] = {
        "CatalogRepository": {"RefreshTimeout": "01:00:00"},
        "Sources": {"ErpStock": {"Type": "http", "Url": url, "RequestTimeout": "00:10:00"}},
        "Store": {"Url": f"sqlite:///{work / 'catalog.db'}"},
    }
    if workers is not None:  # else the shipped default
        document["Refresh"] = {"WorkerProcesses": workers}
    (work / "appsettings.json").write_text(json.dumps(document))
    return config.load(work / "appsettings.json", environment=None, environ={})


async def timed_refresh(
    app: Application, counts: dict[str, int], steps: Steps, server: int
) -> Sample:
    """One ``refresh("erp_stock")``; aborts the benchmark on anything but the expected run."""
    steps.take()
    before = rss_mb("VmRSS", server, reset=True)
    t0 = time.perf_counter()
    run = await app.service.refresh("erp_stock")
    seconds = time.perf_counter() - t0
    peak = rss_mb("VmHWM", server)
    got = {k: getattr(run.counts, k) for k in counts}
    if run.status is not RunStatus.SUCCEEDED or got != counts or run.attempts != 1:
        sys.exit(f"ABORT: run {run.id}: {run.status}, {got} != {counts}: {run}")
    extra = sum(mb - before.get(pid, 0.0) for pid, mb in peak.items()) if peak else None
    return Sample(seconds, steps.take(), extra)


async def measure_service(
    settings: config.Settings, server: SnapshotServer, n: int, steps: Steps
) -> dict[str, Sample]:
    """First load of A, warm refresh to B, back to A (not timed), cold refresh to B."""
    counts, pid, samples = expected(n), server.pid, {}
    server.show("A")
    app = Application.build(settings)
    try:
        await app.service.prepare()
        first = {"inserted": n, "updated": 0, "deleted": 0}
        samples["first"] = await timed_refresh(app, first, steps, pid)
        server.show("B")
        samples["warm"] = await timed_refresh(app, counts, steps, pid)
        server.show("A")  # so that the store holds A again for the cold refresh
        back = counts | {"inserted": counts["deleted"], "deleted": counts["inserted"]}
        await timed_refresh(app, back, steps, pid)
    finally:
        await app.aclose()
    server.show("B")
    app = Application.build(settings)  # as after a restart: no fingerprint index yet
    try:
        await app.service.prepare()
        samples["cold"] = await timed_refresh(app, counts, steps, pid)
    finally:
        await app.aclose()
    return samples


def service_repeat(work: Path, server: SnapshotServer, n: int, workers: int | None) -> dict:
    """One repeat of our phases. ``main`` runs each in a new process, so no heap, allocator or
    GC state carries over from earlier repeats (as in a service that has just started)."""
    settings = write_settings(work, server.url, workers)
    return asyncio.run(measure_service(settings, server, n, Steps()))


COLUMNS = "(product_code TEXT PRIMARY KEY, product_name TEXT, stock REAL, location TEXT)"
UPSERT = (
    "INSERT INTO erp SELECT * FROM stage WHERE true ON CONFLICT (product_code) DO UPDATE"
    " SET product_name = excluded.product_name, stock = excluded.stock,"
    " location = excluded.location WHERE erp.product_name IS NOT excluded.product_name"
    " OR erp.stock IS NOT excluded.stock OR erp.location IS NOT excluded.location"
)
ANTI_JOIN = (
    "DELETE FROM erp WHERE NOT EXISTS"
    " (SELECT 1 FROM stage s WHERE s.product_code = erp.product_code)"
)


def baseline_db(path: Path, rows_a: list[tuple[Any, ...]]) -> sqlite3.Connection:
    """A plain typed table holding A (not timed), with the PRAGMAs of store/sqlite.py."""
    conn = sqlite3.connect(path, isolation_level=None)
    for pragma in ("journal_mode = WAL", "synchronous = NORMAL", "temp_store = MEMORY"):
        conn.execute(f"PRAGMA {pragma}")
    conn.execute(f"CREATE TABLE erp {COLUMNS}")
    conn.execute("BEGIN")
    conn.executemany("INSERT INTO erp VALUES (?, ?, ?, ?)", rows_a)
    conn.execute("COMMIT")
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    return conn


def staged_diff(conn: sqlite3.Connection, rows_b: list[tuple[Any, ...]], n: int) -> None:
    """Stage B, upsert where changed, delete by anti-join: one transaction."""
    conn.execute("BEGIN IMMEDIATE")
    conn.execute(f"CREATE TEMP TABLE stage {COLUMNS}")
    conn.executemany("INSERT INTO stage VALUES (?, ?, ?, ?)", rows_b)
    written, deleted = conn.execute(UPSERT).rowcount, conn.execute(ANTI_JOIN).rowcount
    conn.execute("DROP TABLE stage")
    conn.execute("COMMIT")
    c = expected(n)
    if (written, deleted) != (c["inserted"] + c["updated"], c["deleted"]):
        sys.exit(f"ABORT: baseline wrote {written} and deleted {deleted}, expected {c}")


def measure_baseline(work: Path, server: SnapshotServer, n: int) -> dict[str, Sample]:
    """The staged diff given B's decoded rows, then again including fetch + msgspec decode."""
    rows_a = decode_rows(server.files["A"].read_bytes())
    conn = baseline_db(work / "baseline-1.db", rows_a)
    rows_b = decode_rows(server.files["B"].read_bytes())
    t0 = time.perf_counter()
    staged_diff(conn, rows_b, n)
    samples = {"sql": Sample(time.perf_counter() - t0)}
    conn.close()
    del rows_b
    conn = baseline_db(work / "baseline-2.db", rows_a)
    del rows_a
    with httpx.Client(timeout=600) as client:  # the server still shows B
        t0 = time.perf_counter()
        staged_diff(conn, decode_rows(client.get(server.url).raise_for_status().content), n)
        samples["sql+fetch"] = Sample(time.perf_counter() - t0)
    conn.close()
    return samples


PHASES = {"first": "first load", "warm": "1% refresh, warm", "cold": "1% refresh, cold"}
MODES = {"worker": "ours (default: 1 worker process)", "inline": "ours (WorkerProcesses 0)"}
BASELINES = {"sql": "staged SQL diff, rows in memory", "sql+fetch": "fetch + decode + staged diff"}


def code() -> str:
    """The commit measured; ``-dirty`` when something outside ``docs/`` has uncommitted
    changes (the benchmarks write their results there, row by row); git is only read."""
    git = ["git", "-C", str(ROOT)]
    commit = subprocess.run([*git, "describe", "--always"], capture_output=True, text=True)
    changed = subprocess.run(
        [*git, "status", "--porcelain", "--untracked-files=no", "--", ".", ":(exclude)docs"],
        capture_output=True,
        text=True,
    )
    label = commit.stdout.strip() or "?"
    return f"{label}-dirty" if changed.stdout.strip() else label


def machine() -> str:
    cpu = re.findall(r"model name\s*:\s*(.+)", Path("/proc/cpuinfo").read_text()) or ["?"]
    return (
        f"{os.cpu_count()} CPUs ({cpu[0].strip()}), Python {platform.python_version()},"
        f" SQLite {sqlite3.sqlite_version}, msgspec {msgspec.__version__}"
    )


def report(n: int, runs: dict[str, list[Sample]], size_mb: float, codes: dict[str, None]) -> tuple:
    """The markdown section for docs/benchmarks.md, and its title."""
    med = {k: statistics.median(s.seconds for s in v) for k, v in runs.items()}

    def step(key: str, label: str) -> float:
        spent = [(s.steps or {}).get(label, 0.0) for s in runs[key]]
        if label.startswith("other"):  # what the wrapped steps do not cover
            spent = [
                s.seconds - sum((s.steps or {}).get(k, 0) for k in Steps.TOP) for s in runs[key]
            ]
        return statistics.median(spent)

    table = ["| phase | median s | min s | max s | extra peak RSS MB |", "|---|--:|--:|--:|--:|"]
    names = {f"{m}/{p}": f"{MODES[m]}: {PHASES[p]}" for m in MODES for p in PHASES}
    for key, name in (names | {k: f"baseline: {v}" for k, v in BASELINES.items()}).items():
        secs = [s.seconds for s in runs[key]]
        rss = max((s.extra_rss_mb for s in runs[key] if s.extra_rss_mb), default=None)
        peak = "–" if rss is None else f"{rss:,.0f}"
        table.append(f"| {name} | {med[key]:.2f} | {min(secs):.2f} | {max(secs):.2f} | {peak} |")
    ratios = [
        f"- {names[k]} / staged SQL diff: {med[k] / med['sql']:.2f}×;"
        f" / fetch + decode + staged diff: {med[k] / med['sql+fetch']:.2f}×"
        for k in ("worker/warm", "worker/cold", "inline/warm", "inline/cold")
    ]
    steps = ["| step, WorkerProcesses 0: median s | first load | warm 1% | cold 1% |"]
    steps.append("|---|--:|--:|--:|")
    for label in [*Steps.TARGETS, "other (run audit, threads, events)"]:
        cells = [(step(f"inline/{p}", label), med[f"inline/{p}"]) for p in PHASES]
        text = [f"{v:.2f} ({v / total:.0%})" if v >= 0.005 else "–" for v, total in cells]
        steps.append(f"| {label.strip()} | {' | '.join(text)} |")
    top = sorted(((step("inline/warm", k), k) for k in Steps.TOP), reverse=True)[:4]
    every = sum(step("inline/warm", k) for k in ("fetch (HTTP GET)", "decode + validate", "diff"))
    handoff = (f"{med[f'worker/{p}'] - med[f'inline/{p}']:+.2f} s ({PHASES[p]})" for p in PHASES)
    target, c = med["worker/warm"] / med["sql"], expected(n)
    fastest = min(s.seconds for s in runs["worker/warm"]) / min(s.seconds for s in runs["sql"])
    title = f"Refresh: {n:,}-row ERP snapshot"
    version = " then ".join(codes) + (" (CHANGED DURING THE RUN)" if len(codes) > 1 else "")
    text = f"""## {title}

`.venv/bin/python bench/refresh_bench.py --rows {n} --repeats {len(runs["sql"])}`
(`make bench`), {time.strftime("%Y-%m-%d")}: {machine()}, code {version}.
A: {n:,} ERP records, {size_mb:.0f} MB of JSON; B: {c["updated"]:,} changed,
{c["deleted"]:,} removed, {c["inserted"]:,} added. Method in bench/README.md. Median, min, max
of {len(runs["sql"])} runs. The machine is shared and noisy (single runs vary by ±30%): compare
medians of one run only.

{chr(10).join(table)}

- **Acceptance: warm 1% refresh (default) / staged SQL diff = {target:.2f}× (medians; target
  ≤ 2×: {"met" if target <= 2 else "NOT met"})**; ratio of the fastest runs: {fastest:.2f}×
{chr(10).join(ratios)}

{chr(10).join(steps)}

In process, the warm 1% refresh is dominated by {", ".join(f"{k} ({v:.2f} s)" for v, k in top)}.
Only the {sum(c.values()):,} changed rows are written; fetch, decode + validate and diff touch
every record ({every:.2f} s of {med["inline/warm"]:.2f} s). The default hands the payload to a
worker process, so that decoding never stalls the API (the main process's fetch, spooling the
body to a file: {step("worker/warm", "fetch (HTTP GET)"):.2f} s); worker minus in-process medians:
{", ".join(handoff)}; the first load and the cold refresh include starting the worker. The
first load writes every row with its lineage, product-list and change-feed entries (store apply
{step("inline/first", "store apply (1 transaction)"):.2f} s of {med["inline/first"]:.2f} s).
A cold refresh first rebuilds the fingerprint index from the store
({step("inline/cold", "fingerprint index build"):.2f} s), once per source after a start.
"""
    blocks = [
        b if b[0] in "|-#" else textwrap.fill(" ".join(b.split()), 96) for b in text.split("\n\n")
    ]
    return "\n\n".join(blocks).rstrip() + "\n", title


def isolated(fn: Callable[..., Any], *args: Any) -> Any:
    """``fn(*args)`` in a new process (spawned: nothing inherited but the arguments)."""
    with ProcessPoolExecutor(1, mp_context=get_context("spawn")) as pool:
        return pool.submit(fn, *args).result()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--write-docs", action=argparse.BooleanOptionalAction, default=True)
    args = parser.parse_args()
    n, runs, codes = args.rows, {}, {code(): None}
    print(f"# {machine()}, code {code()}\n# noisy machine: compare medians of one run", flush=True)
    with tempfile.TemporaryDirectory(prefix="refresh-bench-") as tmp:
        root = Path(tmp)
        files = {which: root / f"snapshot-{which}.json" for which in "AB"}
        with ProcessPoolExecutor(2, mp_context=get_context("spawn")) as pool:
            sizes = list(pool.map(write_snapshot, [n, n], "AB", files.values()))
        print(f"# snapshot A {sizes[0] / 1e6:.0f} MB, B {sizes[1] / 1e6:.0f} MB", flush=True)
        server = SnapshotServer(root, files)
        try:
            for repeat in range(1, args.repeats + 1):
                samples: dict[str, Sample] = {}
                for mode, workers in (("worker", None), ("inline", 0)):
                    work = root / f"{mode}-{repeat}"
                    work.mkdir()
                    got = isolated(service_repeat, work, server, n, workers)
                    samples |= {f"{mode}/{phase}": sample for phase, sample in got.items()}
                samples |= isolated(measure_baseline, work, server, n)
                for key, sample in samples.items():
                    runs.setdefault(key, []).append(sample)
                done = ", ".join(f"{k} {s.seconds:.2f} s" for k, s in samples.items())
                print(f"# repeat {repeat}: {done}", flush=True)
                for db in root.glob("*/*.db*"):
                    db.unlink()  # about 1 GB a repeat
                codes[code()] = None
        finally:
            server.process.terminate()
            server.process.wait(timeout=10)
    section, _ = report(n, runs, sizes[0] / 1e6, codes)
    print(section, flush=True)
    if args.write_docs:
        print(f"# wrote {write_section(section)}")


if __name__ == "__main__":
    main()
