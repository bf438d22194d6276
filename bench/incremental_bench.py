"""Incremental benchmark: a 1,000,000-row ERP source read by cursor, by 304 and by an
identical body, against a full refresh of the same 1% change and a first load.

``.venv/bin/python bench/incremental_bench.py [--rows N] [--repeats 3] [--no-write-docs]``;
``make bench-incremental`` runs the defaults and rewrites its section of docs/benchmarks.md.
What is measured, and how, is in bench/README.md ("incremental_bench.py").
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import tempfile
import textwrap
import threading
import time
import urllib.parse
import urllib.request
from collections.abc import Iterator
from concurrent.futures import ProcessPoolExecutor
from datetime import datetime
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from itertools import islice
from multiprocessing import get_context
from pathlib import Path
from typing import Any, ClassVar, NamedTuple

import msgspec

from catalog_refresher import config
from catalog_refresher.app import Application
from catalog_refresher.domain.runs import Run, RunMode, RunStatus
from docs_section import write_section  # sibling scripts
from refresh_bench import Sample, Steps, code, erp_record, isolated, machine

INCREMENTAL_RUNS = 3
"""Incremental runs a repeat times, each on the next epoch's 1% (warm, one ``Application``)."""
NOT_MODIFIED_RUNS = 3
"""304 runs, and identical-body runs, a repeat times (the state does not move between them)."""

# --- the world ------------------------------------------------------------------------
#
# Epoch 0 is snapshot A: rows 1..n, each ``changed_at`` in the first second of the day.
# Epoch k >= 1 changes, all at hour k, oldest first: the stock of every 100th row (+k),
# n/200 new codes, and removes the rows i % 200 == k (tombstones in the change log).
# Epoch 1 is exactly refresh_bench.py's B; an updated row is never one removed (k < 100).


def stamp(epoch: int, position: int) -> str:
    """When the ``position``-th change of ``epoch`` happened (epoch 0: row ``position``)."""
    seconds, micro = divmod(position, 1_000_000)
    return f"2026-11-29T{epoch:02d}:00:{seconds:02d}.{micro:06d}Z"


def row(i: int, epoch: int, position: int) -> dict[str, Any]:
    """ERP row ``i`` as it is after the change ``position`` of ``epoch``."""
    record = erp_record(i)
    if epoch and i % 100 == 0:
        record["stock"] += epoch
    record["changed_at"] = stamp(epoch, position)
    return record


def delta(n: int, epoch: int) -> list[dict[str, Any]]:
    """Every change of ``epoch``, oldest first: tombstones, updates, then inserts (so the
    epoch's last change is in its snapshot, and a full read leaves the same cursor)."""
    added = n // 200
    changes: list[dict[str, Any]] = [
        {"product_code": f"P{i:07d}", "deleted": True} for i in range(epoch, n + 1, 200)
    ]
    changes += [row(i, epoch, 0) for i in range(100, n + 1, 100)]
    changes += [row(i, 0, 0) for i in range(n + (epoch - 1) * added + 1, n + epoch * added + 1)]
    for position, change in enumerate(changes):
        change["changed_at"] = stamp(epoch, position)
    return changes


def counts(n: int, epoch: int) -> dict[str, int]:
    """What applying ``epoch``'s changes to epoch ``epoch - 1`` does."""
    return {"inserted": n // 200, "updated": n // 100, "deleted": len(range(epoch, n + 1, 200))}


def state(n: int, epoch: int) -> Iterator[dict[str, Any]]:
    """The whole snapshot after ``epoch`` (0 or 1: the snapshots served whole)."""
    assert epoch in (0, 1)
    if epoch == 0:
        yield from (row(i, 0, i) for i in range(1, n + 1))
        return
    tombstones, updates = len(range(1, n + 1, 200)), n // 100
    for i in range(1, n + 1):
        if i % 200 == 1:
            continue
        yield row(i, 1, tombstones + i // 100 - 1) if i % 100 == 0 else row(i, 0, i)
    for t, i in enumerate(range(n + 1, n + n // 200 + 1)):
        yield row(i, 0, 0) | {"changed_at": stamp(1, tombstones + updates + t)}


def write_state(n: int, epoch: int, path: Path) -> int:
    """Write the snapshot after ``epoch`` as one JSON array; its size."""
    records, separator = state(n, epoch), b""
    with path.open("wb") as out:
        out.write(b"[")
        while chunk := list(islice(records, 100_000)):
            out.write(separator + msgspec.json.encode(chunk)[1:-1])
            separator = b","
        out.write(b"]")
    return path.stat().st_size


# --- the server (a process of its own) ------------------------------------------------


class World:
    """What the server shows: its epoch, whether it sends an ETag, what it answered."""

    def __init__(self, n: int, files: dict[int, Path]) -> None:
        self.n, self.files, self.epoch, self.etags = n, files, 0, True
        self.answers: list[dict[str, Any]] = []
        self.deltas: dict[tuple[int, str], bytes] = {}
        self.lock = threading.Lock()

    def show(self, epoch: int) -> None:
        """Show ``epoch``: its changes are encoded now, for the cursor a client holds after
        reading the epoch before (as a real system answers from its change log's index)."""
        self.epoch = epoch
        if epoch and (epoch, self.last(epoch - 1)) not in self.deltas:
            self.deltas = {(epoch, self.last(epoch - 1)): self.changes(self.last(epoch - 1))}

    def last(self, epoch: int) -> str:
        """The cursor of a client that has read everything up to ``epoch``."""
        return (
            stamp(0, self.n)
            if epoch == 0
            else stamp(epoch, sum(counts(self.n, epoch).values()) - 1)
        )

    def since(self, cursor: str) -> bytes:
        """Every change after ``cursor`` up to the current epoch."""
        found = self.deltas.get((self.epoch, cursor))
        return self.changes(cursor) if found is None else found

    def changes(self, cursor: str) -> bytes:
        """Every change after ``cursor`` up to the current epoch, a key's last change only."""
        after = datetime.fromisoformat(cursor)
        changes: dict[str, dict[str, Any]] = {}
        for epoch in range(1, self.epoch + 1):
            if datetime.fromisoformat(stamp(epoch + 1, 0)) <= after:
                continue  # all of that epoch is older than the cursor
            for change in delta(self.n, epoch):
                if datetime.fromisoformat(change["changed_at"]) > after:
                    changes.pop(change["product_code"], None)
                    changes[change["product_code"]] = change
        return msgspec.json.encode(list(changes.values()))


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    world: World

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def do_POST(self) -> None:
        """``/control?epoch=K&etags=0|1``: the world from now on; the answers since, back."""
        query = dict(urllib.parse.parse_qsl(urllib.parse.urlsplit(self.path).query))
        world = self.world
        with world.lock:
            world.show(int(query.get("epoch", world.epoch)))
            world.etags = query.get("etags", "1" if world.etags else "0") == "1"
            body, world.answers = json.dumps(world.answers).encode(), []
        self._send(HTTPStatus.OK, {"Content-Type": "application/json"}, body)

    def do_GET(self) -> None:
        world, url = self.world, urllib.parse.urlsplit(self.path)
        cursor = dict(urllib.parse.parse_qsl(url.query)).get("changed_since")
        with world.lock:
            epoch = world.epoch
            tag = f'"erp-{epoch}"' if cursor is None else f'"erp-{epoch}-since-{cursor}"'
            headers = {"Content-Type": "application/json"}
            if world.etags:
                headers["ETag"] = tag
            if world.etags and self.headers.get("If-None-Match") == tag:
                status, body, path = HTTPStatus.NOT_MODIFIED, b"", None
            elif cursor is not None:
                status, body, path = HTTPStatus.OK, world.since(cursor), None
            else:
                status, body, path = HTTPStatus.OK, b"", world.files[epoch]
            world.answers.append(
                {"status": status.value, "cursor": cursor, "etag": headers.get("ETag")}
            )
        if path is None:
            self._send(status, headers, body)
            return
        with path.open("rb") as file:
            size = os.fstat(file.fileno()).st_size
            self._send(status, headers | {"Content-Length": str(size)}, None)
            self.connection.sendfile(file)

    def _send(self, status: HTTPStatus, headers: dict[str, str], body: bytes | None) -> None:
        self.send_response(status)
        if body is not None and status is not HTTPStatus.NOT_MODIFIED:
            headers = headers | {"Content-Length": str(len(body))}
        for name, value in headers.items():
            self.send_header(name, value)
        self.end_headers()
        if body:
            self.wfile.write(body)


def serve(n: int, files: dict[int, Path]) -> None:
    """The server process: prints its port, then serves until terminated."""
    Handler.world = World(n, files)
    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    print(server.server_address[1], flush=True)
    server.serve_forever()


class Server:
    """The bench's handle on the server process (picklable: URLs only)."""

    def __init__(self, n: int, files: dict[int, Path]) -> None:
        command = [sys.executable, __file__, "--rows", str(n), "--serve", *map(str, files.values())]
        self.process: subprocess.Popen[str] | None = subprocess.Popen(
            command, stdout=subprocess.PIPE, text=True
        )
        assert self.process.stdout is not None
        base = f"http://127.0.0.1:{int(self.process.stdout.readline())}"
        self.url, self.control = f"{base}/erp.json", f"{base}/control"

    def __getstate__(self) -> dict[str, Any]:
        return {k: v for k, v in vars(self).items() if k != "process"}

    def show(self, **world: int) -> list[dict[str, Any]]:
        """Set the world (``epoch``, ``etags``); the answers given since the last call."""
        url = f"{self.control}?{urllib.parse.urlencode(world)}"
        with urllib.request.urlopen(urllib.request.Request(url, method="POST")) as answer:
            answers: list[dict[str, Any]] = json.loads(answer.read())
            return answers

    def stop(self) -> None:
        if self.process is not None:
            self.process.terminate()
            self.process.wait(timeout=10)


# --- the measuring process --------------------------------------------------------------


class RunSteps(Steps):
    """refresh_bench.py's step timers, with the two steps only an incremental run takes."""

    TARGETS: ClassVar[dict[str, str]] = {
        "fetch (HTTP GET)": Steps.TARGETS["fetch (HTTP GET)"],
        "probe (cursor, tombstones)": "catalog_refresher.refresh.pipeline:probe",
        "decode + validate": Steps.TARGETS["decode + validate"],
        "fingerprint index build": Steps.TARGETS["fingerprint index build"],
        "diff (full run)": Steps.TARGETS["diff"],
        "upserts (incremental run)": "catalog_refresher.refresh.diff:upserts",
        **{k: v for k, v in Steps.TARGETS.items() if k not in ("fetch (HTTP GET)", "diff")},
    }
    TOP: ClassVar[list[str]] = [k for k in TARGETS if not k.startswith(" ")]


def write_settings(
    work: Path, name: str, url: str, incremental: bool, workers: int | None
) -> config.Settings:
    """A real appsettings.json: the ERP only, the repeat's SQLite store, generous timeouts."""
    erp: dict[str, Any] = {"Type": "http", "Url": url, "RequestTimeout": "00:10:00"}
    if incremental:
        erp["Incremental"] = {
            "CursorField": "changed_at",
            "CursorParameter": "changed_since",
            "Tombstone": {"Path": "deleted", "Equals": True},
        }
    document: dict[str, Any] = {
        "CatalogRepository": {"RefreshTimeout": "01:00:00"},
        "Sources": {"ErpStock": erp},
        "Store": {"Url": f"sqlite:///{work / 'catalog.db'}"},  # both settings: one store
    }
    if workers is not None:  # else the shipped default
        document["Refresh"] = {"WorkerProcesses": workers}
    (work / f"{name}.json").write_text(json.dumps(document))
    return config.load(work / f"{name}.json", environment=None, environ={})


class Expect(NamedTuple):
    """What a run must show, or the benchmark aborts."""

    counts: dict[str, int]
    mode: RunMode = RunMode.FULL
    not_modified: bool = False
    answer: dict[str, Any] | None = None
    """The one answer the server must have given for it (``None``: only a 200)."""


NOTHING = {"inserted": 0, "updated": 0, "deleted": 0}


async def timed(app: Application, server: Server, expect: Expect) -> tuple[float, Run]:
    """One ``refresh("erp_stock")``, checked against ``expect`` and the server's answers."""
    server.show()  # forget earlier answers
    t0 = time.perf_counter()
    run = await app.service.refresh("erp_stock")
    seconds = time.perf_counter() - t0
    got = {k: getattr(run.counts, k) for k in expect.counts}
    answers = server.show()
    want = expect.answer or {"status": 200}
    wrong = (
        run.status is not RunStatus.SUCCEEDED
        or run.attempts != 1
        or got != expect.counts
        or run.mode is not expect.mode
        or run.not_modified is not expect.not_modified
        or len(answers) != 1
        or any(answers[0].get(k) != v for k, v in want.items())
    )
    if wrong:
        sys.exit(f"ABORT: run {run.id}: {run.status} {got}, expected {expect}; {answers}: {run}")
    return seconds, run


async def measure(
    work: Path, server: Server, n: int, workers: int | None
) -> dict[str, list[Sample]]:
    """One repeat: every phase, on one fresh store."""
    samples: dict[str, list[Sample]] = {}
    steps = RunSteps()

    async def take(phase: str, app: Application, expect: Expect) -> Run:
        steps.take()
        seconds, run = await timed(app, server, expect)
        samples.setdefault(phase, []).append(Sample(seconds, steps.take()))
        print(f"#   {phase}: {seconds:.3f} s", flush=True)
        return run

    async def started(settings: config.Settings) -> Application:
        app = Application.build(settings)
        await app.service.prepare()
        return app

    unchanged = Expect(NOTHING, not_modified=True, answer={"status": 304})
    # A source without Incremental: first load, 304s, identical bodies, the full 1%.
    server.show(epoch=0, etags=1)
    plain = write_settings(work, "plain", server.url, incremental=False, workers=workers)
    app = await started(plain)
    try:
        await take("first", app, Expect({"inserted": n, "updated": 0, "deleted": 0}))
        for _ in range(NOT_MODIFIED_RUNS):
            await take("304", app, unchanged)
        server.show(etags=0)
        for _ in range(NOT_MODIFIED_RUNS):
            same = Expect(NOTHING, not_modified=True, answer={"status": 200, "etag": None})
            await take("identical", app, same)
        server.show(epoch=1, etags=1)
        await take("full", app, Expect(counts(n, 1)))
    finally:
        await app.aclose()
    app = await started(plain)  # as after a restart: no worker process, no index yet
    try:
        await take("304 cold", app, unchanged)
    finally:
        await app.aclose()
    # The same source and store with Incremental: its first run is full (B again, nothing
    # to change; the cursor becomes B's largest), then each epoch's 1% by cursor.
    incremental = write_settings(work, "incremental", server.url, incremental=True, workers=workers)
    app = await started(incremental)
    try:
        run = await take("reconcile cold", app, Expect(NOTHING, answer={"cursor": None}))
        for epoch in range(2, INCREMENTAL_RUNS + 2):
            server.show(epoch=epoch)
            asked = {"status": 200, "cursor": run.cursor_after}
            expect = Expect(counts(n, epoch), RunMode.INCREMENTAL, answer=asked)
            run = await take("incremental", app, expect)
    finally:
        await app.aclose()
    epoch = INCREMENTAL_RUNS + 2
    server.show(epoch=epoch)
    app = await started(incremental)
    try:
        asked = {"status": 200, "cursor": run.cursor_after}
        expect = Expect(counts(n, epoch), RunMode.INCREMENTAL, answer=asked)
        await take("incremental cold", app, expect)
    finally:
        await app.aclose()
    return samples


def repeat(work: Path, server: Server, n: int, workers: int | None) -> dict[str, list[Sample]]:
    """One repeat in a new (spawned) process, as refresh_bench.py does: no heap carried over."""
    return asyncio.run(measure(work, server, n, workers))


# --- the report ---------------------------------------------------------------------------

PHASES = {
    "first": "first load (no `Incremental`): the 304/identical baseline",
    "full": "full refresh, 1% changed (no `Incremental`, warm): the incremental baseline",
    "incremental": "incremental, 1% changed since the cursor (warm)",
    "304": "`304 Not Modified` (ETag, warm)",
    "identical": "byte-identical body, no validators (hash, warm)",
    "304 cold": "`304 Not Modified`, first run after a restart",
    "reconcile cold": "full run of the `Incremental` source, nothing changed, after a restart",
    "incremental cold": "incremental, 1% changed, first run after a restart",
}
TARGETS = {"incremental": ("full", 0.10), "304": ("first", 0.05), "identical": ("first", 0.05)}


def load() -> str:
    return "/".join(f"{x:.2f}" for x in os.getloadavg())


STEPPED = ("full", "incremental", "incremental cold", "identical", "304 cold")


def _machine_state(info: dict) -> str:
    """Quiet or shared, from the 1-minute load averages at the start and the end."""
    highest = max(float(str(info[k]).split("/")[0]) for k in ("load_before", "load_after"))
    if highest <= (os.cpu_count() or 1):
        return "A quiet machine"
    return "**The machine was shared with other sessions' builds and tests**"


def report(n: int, runs: dict[str, list[Sample]], sizes: dict[int, int], info: dict) -> str:
    """The markdown section for docs/benchmarks.md."""
    secs = {k: [s.seconds for s in v] for k, v in runs.items()}
    med = {k: statistics.median(v) for k, v in secs.items()}
    table = [
        "| phase | runs | median s | min s | max s | / full 1% | / first load |",
        "|---|--:|--:|--:|--:|--:|--:|",
    ]
    for key, name in PHASES.items():
        v = secs[key]
        table.append(
            f"| {name} | {len(v)} | {med[key]:.3f} | {min(v):.3f} | {max(v):.3f}"
            f" | {med[key] / med['full']:.1%} | {med[key] / med['first']:.1%} |"
        )
    verdicts = []
    for key, (base, target) in TARGETS.items():
        ratio = med[key] / med[base]
        met = "met" if ratio <= target else "NOT met"
        verdicts.append(
            f"- **{PHASES[key].split(' (')[0]}: {med[key]:.3f} s = {ratio:.1%} of the"
            f" {'full 1% run' if base == 'full' else 'first load'} (target ≤ {target:.0%}:"
            f" {met})**"
        )
    steps = ""
    if info["workers"] == 0:  # else the pipeline's steps run in the worker, unseen

        def step(key: str, label: str) -> float:
            if label.startswith("other"):  # what the wrapped steps do not cover
                return statistics.median(
                    s.seconds - sum((s.steps or {}).get(k, 0) for k in RunSteps.TOP)
                    for s in runs[key]
                )
            return statistics.median((s.steps or {}).get(label, 0.0) for s in runs[key])

        rows = [f"| step: median s | {' | '.join(STEPPED)} |", "|---" + "|--:" * len(STEPPED) + "|"]
        for label in [*RunSteps.TARGETS, "other (run audit, threads, events, hand-offs)"]:
            cells = [(step(k, label), med[k]) for k in STEPPED]
            text = [f"{v:.3f} ({v / total:.0%})" if v >= 0.0005 else "–" for v, total in cells]
            rows.append(f"| {label.strip()} | {' | '.join(text)} |")
        steps = "\n".join(rows)
    c = counts(n, 1)
    version = " then ".join(info["codes"]) + (
        " (CHANGED DURING THE RUN)" if len(info["codes"]) > 1 else ""
    )
    workers = info["workers"]
    mode = "shipped defaults (1 refresh worker process)"
    option = ""
    if workers is not None:
        mode, option = f"`WorkerProcesses` {workers}", f" --workers {workers}"
    text = f"""## {title(n, workers)}

`.venv/bin/python bench/incremental_bench.py --rows {n} --repeats {info["repeats"]}{option}`
(`make bench-incremental`), {time.strftime("%Y-%m-%d")}: {machine()}, code {version}; {mode},
SQLite store. Snapshot A: {n:,} ERP records with
`changed_at`, {sizes[0] / 1e6:.0f} MB of JSON; B: {c["updated"]:,} changed, {c["deleted"]:,}
removed, {c["inserted"]:,} added ({sizes[1] / 1e6:.0f} MB). The incremental runs ask
`?changed_since=<cursor>` and get only the changes since: {c["updated"]:,} updates,
{c["inserted"]:,} new records and {c["deleted"]:,} tombstones (each epoch another 1% of the same
kind). Method in bench/README.md. Medians of every run of a phase over {info["repeats"]}
repeats ({info["minutes"]:.1f} minutes in all).
{_machine_state(info)}: load average (1/5/15 min) {info["load_before"]} at the start,
{info["load_after"]} at the end, on {os.cpu_count()} CPUs; single runs vary by 10-30% or more:
compare medians of one run only.

{chr(10).join(table)}

{chr(10).join(verdicts)}

{steps}
"""
    blocks = [
        b if b[0] in "|-" else textwrap.fill(" ".join(b.split()), 96)
        for b in text.split("\n\n")
        if b.strip()
    ]
    return "\n\n".join(blocks).rstrip() + "\n"


def title(n: int, workers: int | None) -> str:
    """The docs section's title: one per ``--workers`` setting."""
    suffix = "" if workers is None else f" (WorkerProcesses {workers})"
    return f"Incremental refresh and conditional requests: {n:,}-row ERP source{suffix}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--write-docs", action=argparse.BooleanOptionalAction, default=True)
    parser.add_argument(
        "--workers", type=int, help="Refresh:WorkerProcesses (default: as shipped); 0 times steps"
    )
    parser.add_argument("--serve", nargs=2, type=Path, help=argparse.SUPPRESS)  # Server's
    args = parser.parse_args()
    if args.serve:
        serve(args.rows, dict(enumerate(args.serve)))
        return
    n, runs, codes = args.rows, {}, {code(): None}
    started, load_before = time.monotonic(), load()
    print(f"# {machine()}, code {code()}, load {load_before}", flush=True)
    with tempfile.TemporaryDirectory(prefix="incremental-bench-") as tmp:
        root = Path(tmp)
        files = {epoch: root / f"epoch-{epoch}.json" for epoch in (0, 1)}
        with ProcessPoolExecutor(2, mp_context=get_context("spawn")) as pool:
            sizes = dict(
                zip(files, pool.map(write_state, [n, n], files, files.values()), strict=True)
            )
        print(f"# snapshot A {sizes[0] / 1e6:.0f} MB, B {sizes[1] / 1e6:.0f} MB", flush=True)
        server = Server(n, files)
        try:
            for number in range(1, args.repeats + 1):
                print(f"# repeat {number} (load {load()})", flush=True)
                work = root / f"repeat-{number}"
                work.mkdir()
                got = isolated(repeat, work, server, n, args.workers)
                for phase, samples in got.items():
                    runs.setdefault(phase, []).extend(samples)
                for db in work.glob("*.db*"):
                    db.unlink()
                codes[code()] = None
        finally:
            server.stop()
    info = {
        "workers": args.workers,
        "codes": codes,
        "repeats": args.repeats,
        "load_before": load_before,
        "load_after": load(),
        "minutes": (time.monotonic() - started) / 60,
    }
    section = report(n, runs, sizes, info)
    print(section, flush=True)
    if args.write_docs:
        print(f"# wrote {write_section(section)}")


if __name__ == "__main__":
    main()
