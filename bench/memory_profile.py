"""Where memory goes in a 1M-row ERP first load and a warm 1% refresh (issue 11, step 1).

``.venv/bin/python bench/memory_profile.py [--rows N] [--tracemalloc] [--workers 0|1]``

Runs the real service pieces (``config.load``, ``Application.build``, ``service.refresh``)
on the snapshots of ``bench/refresh_bench.py`` and prints, after each phase, ``VmRSS`` and
``VmHWM`` (peak since the phase began) of the measuring process and of its refresh worker.
With ``--tracemalloc`` (use ``--workers 0``: everything in this process) it also prints the
largest live allocations by line at the end of each phase and the traced peak.
"""

from __future__ import annotations

import argparse
import asyncio
import tempfile
import time
import tracemalloc
from pathlib import Path

from catalog_refresher.app import Application
from refresh_bench import SnapshotServer, expected, rss_mb, write_settings, write_snapshot


def tree(server: int) -> str:
    rss, hwm = rss_mb("VmRSS", server), rss_mb("VmHWM", server)
    anon, file = rss_mb("RssAnon", server), rss_mb("RssFile", server)
    return ", ".join(
        f"pid {p}: rss {rss[p]:.0f} MB (anon {anon.get(p, 0):.0f}, file {file.get(p, 0):.0f})"
        f" peak {hwm.get(p, 0):.0f} MB"
        for p in rss
    )


async def phases(work: Path, server: SnapshotServer, n: int, workers: int, trace: bool) -> None:
    settings = write_settings(work, server.url, workers)
    server.show("A")
    app = Application.build(settings)
    await app.service.prepare()
    print(f"# started: {tree(server.pid)}", flush=True)
    for name, which, counts in (
        ("first load", "A", {"inserted": n, "updated": 0, "deleted": 0}),
        ("warm 1%", "B", expected(n)),
    ):
        server.show(which)
        rss_mb("VmRSS", server.pid, reset=True)
        if trace:
            tracemalloc.start(1)
        t0 = time.perf_counter()
        run = await app.service.refresh("erp_stock")
        seconds = time.perf_counter() - t0
        got = {k: getattr(run.counts, k) for k in counts}
        print(f"# {name}: {run.status} {got} in {seconds:.2f} s; {tree(server.pid)}", flush=True)
        if trace:
            snap = tracemalloc.take_snapshot()
            _, peak = tracemalloc.get_traced_memory()
            tracemalloc.stop()
            print(f"#   traced peak {peak / 1e6:.0f} MB; live by line:")
            for stat in snap.statistics("lineno")[:12]:
                print(f"#     {stat.size / 1e6:8.1f} MB {stat.count:>9} {stat.traceback[0]}")
    await app.aclose()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--tracemalloc", action="store_true")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="memory-profile-") as tmp:
        root = Path(tmp)
        files = {which: root / f"snapshot-{which}.json" for which in "AB"}
        for which, path in files.items():
            write_snapshot(args.rows, which, path)
        server = SnapshotServer(root, files)
        try:
            (root / "work").mkdir()
            asyncio.run(phases(root / "work", server, args.rows, args.workers, args.tracemalloc))
        finally:
            server.process.terminate()
            server.process.wait(timeout=10)


if __name__ == "__main__":
    main()
