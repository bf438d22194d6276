"""Read latency of ``GET /api/products/{code}``, idle and during a 1M-row refresh.

The service runs as its own process (``catalog-refresher run``); its ERP source
is a static file server in a second process; the load comes from ``wrk`` in a
third. Each phase is measured ``--repeats`` times and the median reported.

    .venv/bin/python bench/api_latency.py [--rows 1000000] [--repeats 3] [--write-docs]

Needs ``wrk`` (Debian: ``apt-get install wrk``).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import re
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import httpx
import msgspec

from docs_section import write_section  # a sibling script

ROOT = Path(__file__).resolve().parent.parent
SECTION = "## API read latency"


@dataclass
class Load:
    p50_ms: float
    p99_ms: float
    rps: float


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def write_snapshots(folder: Path, rows: int) -> list[str]:
    """Snapshot A, and B with 1% changed, 0.5% removed, 0.5% added; returns some codes."""
    rng = random.Random(42)
    a = [
        {
            "product_code": f"P{i:07d}",
            "product_name": f"Product {i:07d} in the demo catalog",
            "stock": rng.randint(0, 500),
            "location": f"A{i % 50:02d}-R{i % 20:02d}",
        }
        for i in range(rows)
    ]
    b = [dict(row) for row in a[: rows - rows // 200]]
    for row in rng.sample(b, rows // 100):
        row["stock"] += 1
    b += [{**a[0], "product_code": f"N{i:07d}"} for i in range(rows // 200)]
    (folder / "a.json").write_bytes(msgspec.json.encode(a))
    (folder / "b.json").write_bytes(msgspec.json.encode(b))
    return [row["product_code"] for row in rng.sample(a[: rows // 2], 20_000)]


def serve(folder: Path) -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    server = subprocess.Popen(
        [sys.executable, "-m", "http.server", str(port), "--bind", "127.0.0.1"],
        cwd=folder,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    return server, f"http://127.0.0.1:{port}"


def switch(folder: Path, name: str) -> None:
    """Make ``erp.json`` the given snapshot, atomically."""
    tmp = folder / "erp.json.tmp"
    shutil.copyfile(folder / name, tmp)
    tmp.replace(folder / "erp.json")


def start_service(
    work: Path, source_url: str, workers: int, store: str | None = None
) -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    config = work / "appsettings.json"
    config.write_text(
        json.dumps(
            {
                "CatalogRepository": {
                    "ErpStockRefreshInterval": "1.00:00:00",
                    "RefreshTimeout": "01:00:00",
                },
                "Sources": {"ErpStock": {"Url": f"{source_url}/erp.json"}},
                "Store": {"Url": store or f"sqlite:///{work / 'catalog.db'}"},
                "Api": {"Port": port},
                "Refresh": {"WorkerProcesses": workers},
                "Logging": {"Level": "WARNING"},
            }
        )
    )
    process = subprocess.Popen(
        [str(ROOT / ".venv" / "bin" / "catalog-refresher"), "run", "--config", str(config)],
        stdout=subprocess.DEVNULL,
    )
    return process, f"http://127.0.0.1:{port}"


def wait_for_run(base: str, client: httpx.Client, run_id: int | None = None) -> float:
    """Wait until ERP's run (the given one, or the first) succeeded; its duration in s."""
    while True:
        try:
            runs = client.get(f"{base}/api/runs", params={"source": "erp_stock"}).json()["items"]
        except httpx.HTTPError:
            runs = []
        for run in runs:
            if (run_id is None or run["id"] == run_id) and run["status"] not in (
                "queued",
                "running",
            ):
                if run["status"] != "succeeded":
                    raise SystemExit(f"refresh did not succeed: {run}")
                started = msgspec.json.decode(
                    json.dumps(run["started_at"]), type=__import__("datetime").datetime
                )
                finished = msgspec.json.decode(
                    json.dumps(run["finished_at"]), type=__import__("datetime").datetime
                )
                return (finished - started).total_seconds()
        time.sleep(0.2)


def wrk(base: str, script: Path | None, seconds: float, connections: int = 4) -> Load:
    """Load ``base`` (the paths in ``script``, or ``base`` itself) for ``seconds``."""
    out = subprocess.run(
        [
            "wrk",
            "-t1",
            f"-c{connections}",
            f"-d{max(1, round(seconds))}s",
            "--latency",
            *(["-s", str(script)] if script else []),
            base,
        ],
        capture_output=True,
        text=True,
        check=True,
    ).stdout

    def ms(label: str) -> float:
        match = re.search(rf"^\s+{label}%\s+([\d.]+)(us|ms|s)\s*$", out, re.M)
        assert match, out
        value, unit = float(match.group(1)), match.group(2)
        return value / 1000 if unit == "us" else value * 1000 if unit == "s" else value

    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]
    return Load(p50_ms=ms("50"), p99_ms=ms("99"), rps=rps)


def lua_script(folder: Path, codes: list[str]) -> Path:
    script = folder / "paths.lua"
    paths = ",".join(f'"/api/products/{code}"' for code in codes)
    script.write_text(
        f"local paths = {{{paths}}}\n"
        "request = function()\n"
        "  return wrk.format(nil, paths[math.random(#paths)])\n"
        "end\n"
    )
    return script


def measure(
    rows: int, repeats: int, workers: int, seconds: float, store: str | None = None
) -> dict[str, list[Load]]:
    # floor: /health/live, which reads nothing: what the HTTP stack alone costs here.
    results: dict[str, list[Load]] = {"floor": [], "idle": [], "refresh": []}
    with tempfile.TemporaryDirectory(prefix="api-bench-") as tmp:
        folder = Path(tmp)
        codes = write_snapshots(folder, rows)
        switch(folder, "a.json")
        server, source_url = serve(folder)
        service, base = start_service(folder, source_url, workers, store)
        script = lua_script(folder, codes)
        try:
            with httpx.Client(timeout=30) as client:
                wait_for_run(base, client)
                wrk(base, script, 3)  # warm up the cache and the connection paths
                snapshot = "b.json"
                for _ in range(repeats):
                    # idle starts right after the previous refresh committed.
                    results["idle"].append(wrk(base, script, seconds))
                    results["floor"].append(wrk(f"{base}/health/live", None, seconds))
                    switch(folder, snapshot)
                    snapshot = "a.json" if snapshot == "b.json" else "b.json"
                    run = client.post(f"{base}/api/sources/erp_stock/refresh").json()
                    # Load for the refresh's whole length (3-5 s for 1M rows on 2 cores).
                    results["refresh"].append(wrk(base, script, seconds))
                    took = wait_for_run(base, client, run["id"])
                    print(f"  refresh took {took:.1f} s (load ran {seconds:.0f} s)", flush=True)
        finally:
            service.terminate()
            service.wait(60)
            server.terminate()
            server.wait(10)
    return results


def summary(loads: list[Load]) -> Load:
    return Load(
        p50_ms=statistics.median(x.p50_ms for x in loads),
        p99_ms=statistics.median(x.p99_ms for x in loads),
        rps=statistics.median(x.rps for x in loads),
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--workers", default="1,0", help="WorkerProcesses settings to compare")
    parser.add_argument("--write-docs", action="store_true")
    parser.add_argument(
        "--store",
        help="a Store:Url to use instead of a new SQLite file (e.g. an empty"
        " PostgreSQL schema: postgresql://...?options=-csearch_path%%3Dbench)",
    )
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        raise SystemExit("wrk is needed: apt-get install wrk")
    lines = [
        "| WorkerProcesses | phase | p50 ms | p99 ms | requests/s | p99 of each run (ms) |",
        "|---|---|--:|--:|--:|---|",
    ]
    for workers in (int(w) for w in args.workers.split(",")):
        print(f"WorkerProcesses={workers}: {args.rows:,} rows, {args.repeats} repeats", flush=True)
        results = measure(args.rows, args.repeats, workers, args.seconds, args.store)
        for phase, loads in results.items():
            s = summary(loads)
            runs = ", ".join(f"{x.p99_ms:.1f}" for x in loads)
            print(
                f"  {phase:8} p50 {s.p50_ms:6.2f} ms  p99 {s.p99_ms:7.2f} ms  "
                f"{s.rps:8.0f} req/s   (p99 of each run: {runs})",
                flush=True,
            )
            lines.append(
                f"| {workers} | {phase} | {s.p50_ms:.2f} | {s.p99_ms:.2f} | {s.rps:,.0f} | {runs} |"
            )
    if args.write_docs:
        write_docs(lines, args)


def write_docs(lines: list[str], args: argparse.Namespace) -> None:
    body = "\n".join(
        [
            SECTION,
            "",
            f"`.venv/bin/python bench/api_latency.py --rows {args.rows} --repeats {args.repeats}`"
            f" on {time.strftime('%Y-%m-%d')}, {os.cpu_count()} cores. `GET /api/products/{{code}}`"
            " over 20,000 random codes (cache of 10,000), `wrk -t1 -c4` from its own process;"
            f" {args.seconds:.0f} s per phase, median of {args.repeats}. *refresh* is load during a"
            " manual refresh of a 1,000,000-row ERP snapshot with 1% changed, 0.5% removed,"
            " 0.5% added; *idle* starts right after the previous refresh committed; *floor* is"
            " `GET /health/live`, which reads nothing (what the HTTP stack alone costs)."
            " The service, the source server and wrk share the machine's two cores.",
            "",
            *lines,
            "",
        ]
    )
    write_section(body)


if __name__ == "__main__":
    main()
