"""dlt's merge of snapshot B into A on SQLite, in a process of its own, under a time budget.

``run(work, n, keyed=..., budget=...)`` loads refresh_bench.py's snapshot A with
``dlt.pipeline`` into a SQLite file (the ``sqlalchemy`` destination),
``write_disposition="merge"``, ``primary_key="product_code"``, then merges B, each phase
timed. ``keyed`` sets the destination's ``create_primary_keys``: with it the tables get a
``PRIMARY KEY`` that SQLite indexes; without it (dlt's default) the merge's
``DELETE ... WHERE EXISTS (SELECT 1 FROM staging WHERE key = ...)`` scans the whole staging
table for every destination row, so it grows with the square of the rows (bench/README.md).

Each phase that runs longer than ``budget`` seconds is killed with the process group, and
the result says how long it had run: a lower bound on its time, not a measurement.
Used by issue11_bench.py; dlt comes from the ``bench`` extra, never a service dependency.
"""

from __future__ import annotations

import os
import signal
import sqlite3
import statistics
import time
from contextlib import suppress
from multiprocessing import get_context
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

PHASES = (("first", "A"), ("merge", "B"))


def _load_and_merge(conn: Connection, work: str, n: int, keyed: bool) -> None:
    """The measured process: each phase's start and seconds, then the rows dlt left."""
    os.setsid()  # a group of its own: the kill at the budget takes whatever dlt started too
    os.environ["RUNTIME__LOG_LEVEL"] = "WARNING"
    os.environ["DLT_DATA_DIR"] = f"{work}/dlt-data"
    import dlt

    from refresh_bench import snapshot  # a sibling script

    database = Path(work) / "dlt.db"
    pipeline = dlt.pipeline(
        pipeline_name="erp",
        destination=dlt.destinations.sqlalchemy(f"sqlite:///{database}", create_primary_keys=keyed),
        dataset_name="main",
        pipelines_dir=f"{work}/dlt-pipelines",
    )
    for phase, which in PHASES:
        resource = dlt.resource(
            snapshot(n, which), name="erp", write_disposition="merge", primary_key="product_code"
        )
        conn.send(("start", phase))
        t0 = time.perf_counter()
        pipeline.run(resource)
        conn.send(("done", phase, time.perf_counter() - t0))
    with sqlite3.connect(database) as db:
        conn.send(("left", db.execute("SELECT count(*) FROM erp").fetchone()[0]))
    conn.close()


def expected_rows(n: int) -> int:
    """What a merge by key leaves: A's rows and B's new ones. B's removals stay, since a
    merge only upserts the rows it is given."""
    return n + n // 200


def run(work: Path, n: int, *, keyed: bool, budget: float) -> dict[str, Any]:
    """``{"first": s, "merge": s, "left": rows}`` of the phases that finished; a phase cut at
    the budget as ``"unfinished": {"phase": ..., "after": s}``; a crash as ``"error"``."""
    work.mkdir(parents=True, exist_ok=True)
    context = get_context("spawn")
    ours, theirs = context.Pipe(duplex=False)
    process = context.Process(target=_load_and_merge, args=(theirs, str(work), n, keyed))
    got: dict[str, Any] = {"keyed": keyed, "budget": budget}
    phase, started = PHASES[0][0], time.monotonic()  # the first phase's budget covers imports
    process.start()
    theirs.close()
    try:
        while True:
            remaining = budget - (time.monotonic() - started)
            if remaining <= 0:
                got["unfinished"] = {"phase": phase, "after": time.monotonic() - started}
                break
            if not ours.poll(remaining):
                continue
            try:
                kind, *values = ours.recv()
            except EOFError:  # the process ended: after its last message, or by a crash
                if "left" not in got:
                    got["error"] = f"the dlt process exited ({process.exitcode}) in {phase}"
                break
            if kind == "start":
                phase, started = values[0], time.monotonic()
            elif kind == "done":
                got[values[0]] = values[1]
            else:
                got["left"] = values[0]
    finally:
        with suppress(ProcessLookupError, PermissionError):  # no group yet: before setsid
            os.killpg(process.pid, signal.SIGKILL)
        process.kill()
        process.join()
        ours.close()
    if "left" in got and got["left"] != expected_rows(n):
        got["error"] = f"dlt left {got['left']:,} rows, not {expected_rows(n):,}"
    return got


def versus(dlt: dict[str, Any], ours: float | None) -> tuple[str, str]:
    """The measured cell and the verdict of one dlt run against ours (seconds, same size)."""
    if "error" in dlt:
        return f"dlt failed: {dlt['error']}", "–"
    cut = dlt.get("unfinished")
    if cut and cut["phase"] == "first":
        return f"dlt's load of A did not finish in {cut['after']:.0f} s; merge not run", "–"
    first = f"its load of A {dlt['first']:.1f} s"
    if ours is None:
        took = f"{dlt['merge']:.1f} s" if "merge" in dlt else f"> {cut['after']:.0f} s"
        return f"dlt {took} ({first}); ours not measured at this size", "not compared"
    if cut:
        bound = cut["after"] / ours
        cell = (
            f"dlt did not finish in {cut['after']:.0f} s ({first}) vs ours {ours:.2f} s:"
            f" ours ≥ {bound:.1f}× (lower bound)"
        )
        return cell, "met (lower bound)" if bound >= 15 else f"not decided (≥ {bound:.1f}×)"
    ratio = dlt["merge"] / ours
    cell = f"dlt {dlt['merge']:.1f} s ({first}) vs ours {ours:.2f} s = {ratio:.1f}×"
    return cell, "met" if ratio >= 15 else f"**missed** ({ratio:.1f}×)"


def table_rows(got: dict[str, Any], ours_at_n: float | None) -> list[tuple[str, str, str, int]]:
    """(what, measured, verdict, rows) for issue 11's table: keyed at the full size, then keyed
    and dlt's defaults at the small size, where ours was measured in the same step, with the
    defaults' growth to twice the small size."""
    keyed, small = got["keyed"], got["small_rows"]
    ours_small = statistics.median(got["ours_small"])
    what = '`write_disposition="merge"`, `primary_key`'
    rows = [
        (
            f"dlt merge of B into A ({what}; sqlalchemy destination into SQLite,"
            f" `create_primary_keys=True`), {keyed['rows']:,} rows, vs ours: the warm 1% row",
            *versus(keyed, ours_at_n),
            keyed["rows"],
        ),
        (
            f"the same at {small:,} rows, vs ours at {small:,} rows (warm 1% through the API,"
            " median of 3)",
            *versus(got["keyed_small"], ours_small),
            small,
        ),
    ]
    cell, verdict = versus(got["default_small"], ours_small)
    full, double = got["default_small"], got["default_double"]
    if "merge" in full and "merge" in double:  # twice the rows: 2 times if linear, 4 if quadratic
        growth = double["merge"] / full["merge"]
        cell += (
            f"; at {double['rows']:,} rows {double['merge']:.1f} s, ×{growth:.1f} for twice"
            " the rows (×2 if it grew linearly)"
        )
    elif "unfinished" in double:
        cell += f"; at {double['rows']:,} rows it did not finish in {double['budget']:.0f} s"
    rows.append(
        (
            f"dlt's defaults (no key constraint: its merge's `EXISTS` scans the staging table"
            f" for each row) at {small:,} rows, vs ours at {small:,} rows",
            cell,
            verdict,
            small,
        )
    )
    return rows
