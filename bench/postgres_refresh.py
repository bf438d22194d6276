"""Refresh benchmark on the PostgreSQL store: a 1,000,000-row ERP snapshot, end to end.

``.venv/bin/python bench/postgres_refresh.py [--rows N] [--repeats 3] [--write-docs]``

The same snapshots and snapshot server as ``refresh_bench.py`` (SQLite). Each
repeat, in a schema of its own on the server at ``CATALOG_BENCH_POSTGRES``
(default ``postgresql://postgres@127.0.0.1:5432/test``), times through the real
service (``Application``, worker process as shipped): the first load of A, and
the warm 1% refresh to B. The baseline, in the same process right after: the
set-based diff PostgreSQL does best, rows already decoded in memory (``COPY``
into a staging table, ``MERGE`` where changed, anti-join ``DELETE``, one
transaction) on a plain typed table holding A.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any
from urllib.parse import quote

import psycopg

sys.path.insert(0, str(Path(__file__).resolve().parent))

from catalog_refresher import config
from catalog_refresher.app import Application
from docs_section import write_section
from refresh_bench import (
    SnapshotServer,
    Steps,
    decode_rows,
    expected,
    timed_refresh,
    write_snapshot,
)

SECTION = "## Refresh on PostgreSQL"
SERVER = os.environ.get("CATALOG_BENCH_POSTGRES", "postgresql://postgres@127.0.0.1:5432/test")

MERGE = (
    "MERGE INTO erp USING stage s ON erp.product_code = s.product_code"
    " WHEN MATCHED AND (erp.product_name IS DISTINCT FROM s.product_name"
    "   OR erp.stock IS DISTINCT FROM s.stock OR erp.location IS DISTINCT FROM s.location)"
    " THEN UPDATE SET product_name = s.product_name, stock = s.stock, location = s.location"
    " WHEN NOT MATCHED THEN INSERT VALUES (s.product_code, s.product_name, s.stock, s.location)"
)
ANTI_JOIN = (
    "DELETE FROM erp WHERE NOT EXISTS"
    " (SELECT 1 FROM stage s WHERE s.product_code = erp.product_code)"
)


def settings_for(work: Path, url: str, store: str) -> config.Settings:
    document: dict[str, Any] = {
        "CatalogRepository": {"RefreshTimeout": "01:00:00"},
        "Sources": {"ErpStock": {"Type": "http", "Url": url, "RequestTimeout": "00:10:00"}},
        "Store": {"Url": store},
    }
    (work / "appsettings.json").write_text(json.dumps(document))
    return config.load(work / "appsettings.json", environment=None, environ={})


def copy_rows(conn: psycopg.Connection[Any], table: str, rows: list[tuple[Any, ...]]) -> None:
    with conn.cursor().copy(f"COPY {table} FROM STDIN") as copy:
        for row in rows:
            copy.write_row(row)


def baseline(store: str, rows_a: list[tuple[Any, ...]], rows_b: list[tuple[Any, ...]]) -> float:
    """COPY B into a staging table, MERGE where changed, anti-join DELETE: seconds."""
    with psycopg.connect(store, autocommit=True) as conn:
        conn.execute(
            'CREATE TABLE erp (product_code TEXT COLLATE "C" PRIMARY KEY, product_name TEXT,'
            " stock DOUBLE PRECISION, location TEXT)"
        )
        copy_rows(conn, "erp", rows_a)
        conn.execute("VACUUM ANALYZE erp")
        t0 = time.perf_counter()
        with conn.transaction():
            conn.execute("CREATE TEMP TABLE stage (LIKE erp) ON COMMIT DROP")
            copy_rows(conn, "stage", rows_b)
            conn.execute("ANALYZE stage")
            changed = conn.execute(MERGE).rowcount
            deleted = conn.execute(ANTI_JOIN).rowcount
        seconds = time.perf_counter() - t0
    n = len(rows_a)
    want = expected(n)
    if (changed, deleted) != (want["updated"] + want["inserted"], want["deleted"]):
        sys.exit(f"ABORT: baseline changed {changed}, deleted {deleted}; expected {want}")
    return seconds


async def repeat(work: Path, server: SnapshotServer, n: int, files: dict[str, Path]) -> dict:
    schema = f"bench_{uuid.uuid4().hex[:10]}"
    base = SERVER
    with psycopg.connect(base, autocommit=True) as conn:
        conn.execute(f"CREATE SCHEMA {schema}")
    store = f"{base}?options={quote(f'-csearch_path={schema}')}"
    try:
        settings = settings_for(work, server.url, store)
        steps = Steps()
        server.show("A")
        app = Application.build(settings)
        try:
            await app.service.prepare()
            first = await timed_refresh(app, {"inserted": n, "updated": 0, "deleted": 0}, steps, 0)
            server.show("B")
            warm = await timed_refresh(app, expected(n), steps, 0)
        finally:
            await app.aclose()
        rows_a = decode_rows(files["A"].read_bytes())
        rows_b = decode_rows(files["B"].read_bytes())
        base_s = baseline(store, rows_a, rows_b)
    finally:
        with psycopg.connect(base, autocommit=True) as conn:
            conn.execute(f"DROP SCHEMA {schema} CASCADE")
    return {"first": first.seconds, "warm": warm.seconds, "baseline": base_s}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--write-docs", action="store_true")
    args = parser.parse_args()
    n = args.rows
    results: dict[str, list[float]] = {"first": [], "warm": [], "baseline": []}
    with tempfile.TemporaryDirectory(prefix="pg-bench-") as tmp:
        work = Path(tmp)
        files = {w: work / f"{w}.json" for w in "AB"}
        for which, path in files.items():
            size = write_snapshot(n, which, path)
            print(f"snapshot {which}: {size / 1e6:.0f} MB", flush=True)
        server = SnapshotServer(work, files)
        try:
            for i in range(args.repeats):
                got = asyncio.run(repeat(work, server, n, files))
                print(
                    f"repeat {i + 1}: first load {got['first']:.2f} s, warm 1% refresh"
                    f" {got['warm']:.2f} s, baseline COPY+MERGE {got['baseline']:.2f} s,"
                    f" ratio {got['warm'] / got['baseline']:.2f}",
                    flush=True,
                )
                for key, value in got.items():
                    results[key].append(value)
        finally:
            server.process.terminate()
    ratios = [w / b for w, b in zip(results["warm"], results["baseline"], strict=True)]
    lines = [
        "| phase | median s | min | max |",
        "|---|--:|--:|--:|",
        *(
            f"| {label} | {statistics.median(results[key]):.2f} | {min(results[key]):.2f}"
            f" | {max(results[key]):.2f} |"
            for key, label in (
                ("first", "first load (1 worker process, as shipped)"),
                ("warm", "1% refresh (1% changed, 0.5% removed, 0.5% added), warm"),
                ("baseline", "baseline: COPY + MERGE + anti-join DELETE, rows in memory"),
            )
        ),
        "",
        f"Warm refresh / baseline, per repeat: {', '.join(f'{r:.2f}' for r in ratios)};"
        f" median {statistics.median(ratios):.2f}x.",
    ]
    print("\n".join(lines))
    if args.write_docs:
        write_docs(lines, args)


def write_docs(lines: list[str], args: argparse.Namespace) -> None:
    with psycopg.connect(SERVER) as conn:
        version = conn.execute("SHOW server_version").fetchone()[0]  # type: ignore[index]
    body = "\n".join(
        [
            SECTION,
            "",
            f"`.venv/bin/python bench/postgres_refresh.py --rows {args.rows}"
            f" --repeats {args.repeats}` on {time.strftime('%Y-%m-%d')}, PostgreSQL {version}"
            " on the same machine (2 cores), psycopg"
            f" {psycopg.__version__}. The refresh_bench snapshots ({args.rows:,} ERP rows)"
            " over local HTTP from a separate process; each repeat in a fresh schema, the"
            " service's phases first, then the baseline in the same process.",
            "",
            *lines,
            "",
        ]
    )
    write_section(body)


if __name__ == "__main__":
    main()
