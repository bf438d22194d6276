"""Soak: the service on all ten simulated sources, one-second intervals, 10% faults.

``catalog-refresher simulate`` (its own process) serves the ten systems with 10% of
requests misbehaving (4% HTTP 503, 2% JSON cut short, 2% empty answers, 2% slow
trickle); ``catalog-refresher run`` (its own process group) reads every source each
second into a fresh SQLite store. Every minute the script samples the service's whole
process tree (the service and its refresh workers): resident memory (sum of VmRSS),
open file descriptors, threads, and the store's size on disk (database + WAL + SHM),
plus the runs finished so far by outcome (read from ``/api/runs``' total and the log).

The judgement is "flat after warm-up": RSS, fds and threads at the last minute may be
at most 10% above their value at minute 5 (minute 1 when the soak is shorter than 5
minutes). The store is expected to grow with the audit log (one row a run) and is
reported as bytes per finished run rather than judged flat.

    .venv/bin/python bench/soak.py [--minutes 10] [--write-docs]

``--write-docs`` replaces the ``## Soak`` section of docs/reliability.md.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import httpx

from catalog_refresher.domain.specs import SPECS
from docs_section import write_section  # a sibling script

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs" / "reliability.md"
SECTION = "## Soak"
# The ten sources by config key, and each one's interval option, from the one table.
SOURCES = {spec.config_key: spec.id for spec in SPECS.values()}
INTERVAL_KEYS = {spec.config_key: spec.interval_option for spec in SPECS.values()}
FAULTS = {
    "--error-rate": "0.04",
    "--malformed-rate": "0.02",
    "--empty-rate": "0.02",
    "--trickle-rate": "0.02",
    "--trickle-seconds": "2",
}
GROWTH_LIMIT = 0.10


@dataclass
class Sample:
    minute: int
    rss_mb: float
    fds: int
    threads: int
    processes: int
    store_mb: float
    runs: int
    completed: int
    failed: int


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def tree(root: int) -> list[int]:
    """``root`` and all its live descendants (by parent pid, from /proc)."""
    parents: dict[int, int] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        with contextlib.suppress(OSError, ValueError):
            state, ppid = stat.read_text().rpartition(")")[2].split()[:2]
            if state != "Z":
                parents[int(stat.parent.name)] = int(ppid)
    members, frontier = [root], [root]
    while frontier:
        frontier = [pid for pid, ppid in parents.items() if ppid in frontier]
        members += frontier
    return members


def status_field(pid: int, field: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    return 0


def sample(minute: int, pid: int, store: Path, api: str, log: Path) -> Sample:
    rss = fds = threads = 0
    members = tree(pid)
    for member in members:
        with contextlib.suppress(OSError):
            rss += status_field(member, "VmRSS")
            threads += status_field(member, "Threads")
            fds += len(os.listdir(f"/proc/{member}/fd"))
    size = sum(p.stat().st_size for p in store.parent.glob(store.name + "*") if p.is_file())
    text = log.read_text(errors="replace")
    completed = text.count(" Completed ")
    failed = text.count(" Error refreshing ")
    runs = completed + failed
    with contextlib.suppress(httpx.HTTPError, ValueError, KeyError):
        answer = httpx.get(f"{api}/api/runs", params={"limit": 1}, timeout=5).json()
        runs = int(answer.get("total", runs)) if isinstance(answer, dict) else runs
    return Sample(
        minute, rss / 1024, fds, threads, len(members), size / 2**20, runs, completed, failed
    )


def config(folder: Path, simulator: str, api_port: int) -> Path:
    path = folder / "appsettings.json"
    path.write_text(
        json.dumps(
            {
                "CatalogRepository": {
                    **dict.fromkeys(INTERVAL_KEYS.values(), "00:00:01"),
                    "MaxConcurrentRefreshes": 3,
                    "RefreshTimeout": "00:00:20",
                    "RetryAttempts": 2,
                    "RetryBaseDelay": "00:00:00.200",
                },
                "Sources": {
                    key: {"Type": "http", "Url": f"{simulator}/{source}"}
                    for key, source in SOURCES.items()
                },
                "Store": {"Url": f"sqlite:///{folder / 'soak.db'}"},
                "Api": {"Host": "127.0.0.1", "Port": api_port},
                "Logging": {"Level": "Information", "Format": "text"},
            },
            indent=2,
        )
    )
    return path


def wait_http(url: str, seconds: float = 60) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        with contextlib.suppress(httpx.HTTPError):
            httpx.get(url, timeout=2)
            return
        time.sleep(0.2)
    raise SystemExit(f"soak: nothing answers on {url}")


def growth(samples: list[Sample], field: str, base_minute: int) -> float:
    base = next(s for s in samples if s.minute >= base_minute)
    last = samples[-1]
    before, after = float(getattr(base, field)), float(getattr(last, field))
    return (after - before) / before if before else 0.0


def table(samples: list[Sample]) -> str:
    lines = [
        "| minute | RSS, tree (MB) | open fds | threads | processes | store (MB) | runs "
        "| completed | failed |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    lines += [
        f"| {s.minute} | {s.rss_mb:.1f} | {s.fds} | {s.threads} | {s.processes} "
        f"| {s.store_mb:.2f} | {s.runs} | {s.completed} | {s.failed} |"
        for s in samples
    ]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--minutes", type=int, default=10)
    parser.add_argument("--write-docs", action="store_true")
    args = parser.parse_args()
    if args.minutes < 1:
        raise SystemExit("soak: --minutes must be 1 or more")
    with tempfile.TemporaryDirectory(prefix="soak-") as tmp:
        folder = Path(tmp)
        sim_port, api_port = free_port(), free_port()
        simulator_url, api = f"http://127.0.0.1:{sim_port}", f"http://127.0.0.1:{api_port}"
        options = [item for pair in FAULTS.items() for item in pair]
        simulate = [sys.executable, "-m", "catalog_refresher", "simulate", "--port"]
        simulator = subprocess.Popen(
            [*simulate, str(sim_port), *options],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        log = folder / "service.log"
        service = None
        try:
            wait_http(simulator_url + "/")
            with log.open("w") as out:
                settings = config(folder, simulator_url, api_port)
                service = subprocess.Popen(
                    [sys.executable, "-m", "catalog_refresher", "run", "--config", str(settings)],
                    stdout=out,
                    stderr=out,
                    start_new_session=True,
                )
            wait_http(api + "/health/live")
            started = time.monotonic()
            samples: list[Sample] = []
            for minute in range(1, args.minutes + 1):
                time.sleep(max(0.0, started + 60 * minute - time.monotonic()))
                if service.poll() is not None:
                    raise SystemExit(f"soak: the service exited ({service.returncode})")
                samples.append(sample(minute, service.pid, folder / "soak.db", api, log))
                s = samples[-1]
                print(
                    f"minute {s.minute:>3}: RSS {s.rss_mb:7.1f} MB  fds {s.fds:4}  "
                    f"threads {s.threads:3}  processes {s.processes}  store "
                    f"{s.store_mb:7.2f} MB  runs {s.runs} ({s.failed} failed)",
                    flush=True,
                )
            health = httpx.get(api + "/health/live", timeout=5).status_code
        finally:
            if service is not None:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(service.pid, signal.SIGTERM)
                try:
                    service.wait(timeout=60)
                except subprocess.TimeoutExpired:
                    os.killpg(service.pid, signal.SIGKILL)
                    service.wait()
            simulator.terminate()
            simulator.wait(timeout=30)
        tracebacks = log.read_text(errors="replace").count("Traceback")
    base_minute = 5 if args.minutes > 5 else 1
    verdicts = {
        field: growth(samples, field, base_minute) for field in ("rss_mb", "fds", "threads")
    }
    flat = all(value <= GROWTH_LIMIT for value in verdicts.values())
    runs = samples[-1].runs - samples[0].runs
    store_per_run = (samples[-1].store_mb - samples[0].store_mb) * 2**20 / runs if runs > 0 else 0.0
    print(table(samples))
    summary = (
        f"Growth from minute {base_minute} to minute {samples[-1].minute}: RSS "
        f"{verdicts['rss_mb']:+.1%}, open fds {verdicts['fds']:+.1%}, threads "
        f"{verdicts['threads']:+.1%} (limit +{GROWTH_LIMIT:.0%}): "
        f"**{'flat after warm-up' if flat else 'NOT flat'}**. The store grew "
        f"{store_per_run:,.0f} bytes per finished run after minute 1 (the audit log: one "
        f"row a run). `/health/live` at the end: {health}; tracebacks in the log: "
        f"{tracebacks}."
    )
    print(summary)
    if args.write_docs:
        section = f"""{SECTION}

`bench/soak.py --minutes {args.minutes} --write-docs`: the service (`catalog-refresher run`, its
own process group) on all ten sources with one-second intervals against `catalog-refresher
simulate` with 10% of requests faulty ({", ".join(f"`{k} {v}`" for k, v in FAULTS.items())}),
`MaxConcurrentRefreshes` 3, a fresh SQLite store. Sampled every minute over the whole process
tree (service + refresh workers). Measured on the shared 2-core machine while other work ran
(figures are noisy).

{table(samples)}

{summary}
"""
        write_section(section, DOCS)
        print(f"wrote {DOCS.relative_to(ROOT)}")
    if not flat:
        raise SystemExit(1)


if __name__ == "__main__":
    main()
