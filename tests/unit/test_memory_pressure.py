"""The memory-pressure rule (``MemoryLimitMb``): cache first, then lower-priority runs wait.

A fake RSS probe stands in for ``/proc`` and the fake clock moves the guard's
checks; the store is real SQLite. ``ProcessTreeRss`` is tested on a fake ``/proc``
tree and once on this very process.
"""

from __future__ import annotations

import json
import logging
import os
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families

from catalog_refresher.catalog import Catalog
from catalog_refresher.config import describe, load
from catalog_refresher.control import LocalControl
from catalog_refresher.domain.runs import RunStatus, Trigger
from catalog_refresher.errors import ConfigError
from catalog_refresher.observe.metrics import Metrics
from catalog_refresher.refresh.memory import (
    RESCAN_AT_LEAST_EVERY,
    RESCAN_CPU_SHARE,
    ProcessTreeRss,
)
from catalog_refresher.refresh.pressure import CACHE_SHARE, CHECK_EVERY, MB, PressureStats
from catalog_refresher.refresh.runner import inline
from catalog_refresher.status import MEMORY_ENTRY, Health, memory_health
from catalog_refresher.store.base import Store
from catalog_refresher.store.coordination import Claim, Coordinator, Solo
from catalog_refresher.store.sqlite import SqliteStore
from catalog_refresher.testing import FakeClock, StaticSource
from tests.service_harness import Harness, build

CODES = [f"P-{n}" for n in range(8)]
LIMIT_MB = 600
INTERVAL = timedelta(minutes=1)


def erp_records(stock: int) -> list[dict[str, object]]:
    return [{"product_code": code, "stock": stock} for code in CODES]


class FakeRss:
    """An RSS probe whose reading the test sets; counts how often it was read."""

    def __init__(self, mb: float) -> None:
        self.mb = mb
        self.reads = 0

    def __call__(self) -> int | None:
        self.reads += 1
        return int(self.mb * MB)


def scraped(metrics: Metrics) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    text, _ = metrics.render()
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(text.decode())
        for sample in family.samples
    }


class Pressured:
    """A service with ERP critical (priority 10) and suppliers not (0), both every minute,
    a cache of eight products, its metrics and its control, and a fake probe."""

    def __init__(
        self,
        tmp_path: Path,
        clock: FakeClock,
        *,
        suppliers_priority: int = 0,
        store: Store | None = None,
        coordinator: Coordinator | None = None,
    ) -> None:
        self.clock = clock
        self.rss = FakeRss(300)
        self.erp = StaticSource("erp_stock", erp_records(1), clock=clock)
        self.suppliers = StaticSource(
            "suppliers",
            [{"product_code": "P-0", "supplier_code": "S-1", "name": "Acme"}],
            clock=clock,
        )
        self.h: Harness = build(
            tmp_path / "c.db",
            clock,
            {"erp_stock": self.erp, "suppliers": self.suppliers},
            priorities={"erp_stock": 10, "suppliers": suppliers_priority},
            rss_probe=self.rss,
            store=store,
            coordinator=coordinator,
            memory_limit_mb=LIMIT_MB,
            intervals={"erp_stock": INTERVAL, "suppliers": INTERVAL},
        )
        self.service = self.h.service
        self.catalog = Catalog(self.h.store, max_size=len(CODES))
        self.service.bus.subscribe(self.catalog)
        self.metrics = Metrics.for_service(self.service, self.catalog)
        self.service.bus.subscribe(self.metrics)
        self.control = LocalControl(self.service, self.h.store, clock, inline)

    async def read_all(self) -> list[float | None]:
        products = [await self.catalog.get(code) for code in CODES]
        return [p.stock.erp if p is not None else None for p in products]


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
async def pressured(tmp_path: Path, clock: FakeClock):  # type: ignore[no-untyped-def]
    world = Pressured(tmp_path, clock)
    await world.h.start()
    yield world
    await world.h.stop()


# --- the service under pressure ----------------------------------------------------------


async def test_above_the_limit_the_cache_shrinks_and_a_low_priority_run_waits(
    pressured: Pressured,
) -> None:
    """Above the ceiling the cache keeps a quarter of its size, suppliers' run waits queued
    while ERP's runs and publishes, health is Degraded saying so, the metrics count it, and
    every product is still read, with ERP's new stock."""
    world, clock = pressured, pressured.clock
    assert await world.read_all() == [1.0] * len(CODES)
    assert world.catalog.stats().size == len(CODES)

    world.rss.mb = 812
    await clock.advance(CHECK_EVERY)  # the guard's periodic check sees it
    kept = int(len(CODES) * CACHE_SHARE)
    assert world.catalog.stats().size == kept
    assert world.catalog.stats().pressure_evictions == len(CODES) - kept

    world.erp.records = erp_records(2)
    await clock.advance(INTERVAL.total_seconds())  # both sources are due
    erp = world.h.runs("erp_stock")
    suppliers = world.h.runs("suppliers")
    assert [r.status for r in erp] == [RunStatus.SUCCEEDED, RunStatus.SUCCEEDED]
    assert [r.status for r in suppliers] == [RunStatus.SUCCEEDED, RunStatus.QUEUED]
    assert world.suppliers.calls == 1  # the deferred run has not called its source

    assert await world.read_all() == [2.0] * len(CODES)  # reads go on, nothing lost
    assert world.catalog.stats().size == kept  # and the cache stays small

    report = await world.control.health()
    assert report.status is Health.DEGRADED
    memory = report.entries[MEMORY_ENTRY]
    assert (memory.status, memory.description) == (
        Health.DEGRADED,
        "memory 812 MB above the 600 MB limit; cache shrunk, 1 run deferred",
    )
    assert report.entries["catalog-refresh"].status is Health.HEALTHY

    metrics = scraped(world.metrics)
    assert metrics[("catalog_memory_rss_bytes", frozenset())] == 812 * MB
    assert metrics[("catalog_memory_limit_bytes", frozenset())] == LIMIT_MB * MB
    assert metrics[("catalog_memory_above_limit", frozenset())] == 1
    assert metrics[("catalog_memory_deferred_runs", frozenset())] == 1
    assert metrics[("catalog_cache_pressure_evictions_total", frozenset())] == len(CODES) - kept
    deferred = "catalog_refresh_deferred_total"
    assert metrics[(deferred, frozenset({("data_type", "suppliers")}))] == 1
    assert metrics[(deferred, frozenset({("data_type", "erp_stock")}))] == 0


async def test_back_below_the_limit_the_deferred_run_runs_and_the_cache_grows(
    pressured: Pressured,
) -> None:
    """When a check finds the memory below the ceiling again, the waiting run of suppliers
    runs and succeeds, health is Healthy again and the cache fills up to its full size."""
    world, clock = pressured, pressured.clock
    world.rss.mb = 812
    await clock.advance(INTERVAL.total_seconds())
    assert world.h.runs("suppliers")[-1].status is RunStatus.QUEUED

    world.rss.mb = 400
    await clock.advance(CHECK_EVERY)
    suppliers = world.h.runs("suppliers")
    assert [r.status for r in suppliers] == [RunStatus.SUCCEEDED, RunStatus.SUCCEEDED]
    assert world.suppliers.calls == 2

    report = await world.control.health()
    assert report.status is Health.HEALTHY
    memory = report.entries[MEMORY_ENTRY]
    assert memory.description == "memory 400 MB, within the 600 MB limit"
    await world.read_all()
    assert world.catalog.stats().size == len(CODES)
    assert scraped(world.metrics)[("catalog_memory_deferred_runs", frozenset())] == 0


async def test_each_run_measures_before_it_starts(pressured: Pressured) -> None:
    """A run due between two periodic checks measures first: memory that rose since the last
    check defers it at once, without waiting for the next tick."""
    world, clock = pressured, pressured.clock
    reads = world.rss.reads
    world.rss.mb = 900
    run = (await world.service.submit("suppliers", Trigger.MANUAL)).run
    await clock.settle()
    assert world.rss.reads > reads
    assert world.h.store.get_run(run.id).status is RunStatus.QUEUED  # type: ignore[union-attr]
    world.rss.mb = 100
    await clock.advance(CHECK_EVERY)
    assert world.h.store.get_run(run.id).status is RunStatus.SUCCEEDED  # type: ignore[union-attr]


async def test_a_deferred_run_is_cancelled_cleanly_when_the_service_stops(
    tmp_path: Path, clock: FakeClock
) -> None:
    """Stopping while a run waits for the memory records it cancelled, never started."""
    world = Pressured(tmp_path, clock)
    await world.h.start()
    world.rss.mb = 812
    await clock.advance(INTERVAL.total_seconds())
    assert world.h.runs("suppliers")[-1].status is RunStatus.QUEUED
    await world.h.stop()
    last = world.h.runs("suppliers")[-1]
    assert last.status is RunStatus.CANCELLED
    assert last.error == "cancelled: the service stopped before it started"
    assert world.suppliers.calls == 1


class _WithPeers(Solo):
    """Solo's claims, but heart-beating as a replica with peers does: the service then
    takes a slot before it claims a scheduled run."""

    heartbeat_every = timedelta(seconds=5)

    def __init__(self, store: Store) -> None:
        super().__init__(store)
        self.claims: list[str] = []

    def claim(self, source: str, **kwargs: Any) -> Claim:
        self.claims.append(source)
        return super().claim(source, **kwargs)


async def test_with_peers_a_deferred_source_is_not_claimed_until_the_memory_falls(
    tmp_path: Path, clock: FakeClock
) -> None:
    """A replica with peers defers before it claims: under pressure it records no run of
    suppliers (a peer may take the slot) and claims it once the memory is below again."""
    store = SqliteStore(tmp_path / "c.db")
    coordinator = _WithPeers(store)
    world = Pressured(tmp_path, clock, store=store, coordinator=coordinator)
    await world.h.start()
    world.rss.mb = 812
    await clock.advance(INTERVAL.total_seconds())
    assert coordinator.claims.count("erp_stock") == 2
    assert coordinator.claims.count("suppliers") == 1
    assert [r.status for r in world.h.runs("suppliers")] == [RunStatus.SUCCEEDED]
    assert world.service.pressure.stats().waiting == 1  # type: ignore[union-attr]
    world.rss.mb = 300
    await clock.advance(CHECK_EVERY)
    assert coordinator.claims.count("suppliers") == 2
    assert [r.status for r in world.h.runs("suppliers")] == [RunStatus.SUCCEEDED] * 2
    await world.h.stop()


async def test_sources_of_equal_priority_all_run_under_pressure(
    tmp_path: Path, clock: FakeClock
) -> None:
    """With no source more critical than another, none waits; the cache still shrinks."""
    world = Pressured(tmp_path, clock, suppliers_priority=10)
    await world.h.start()
    await world.read_all()
    world.rss.mb = 812
    await clock.advance(INTERVAL.total_seconds())
    assert [r.status for r in world.h.runs("suppliers")] == [RunStatus.SUCCEEDED] * 2
    assert world.catalog.stats().size == int(len(CODES) * CACHE_SHARE)
    report = await world.control.health()
    assert report.entries[MEMORY_ENTRY].description.endswith("cache shrunk, 0 runs deferred")
    await world.h.stop()


async def test_the_crossings_are_logged(
    pressured: Pressured, caplog: pytest.LogCaptureFixture
) -> None:
    """Going above, a deferred run and coming back below each leave one log line."""
    caplog.set_level(logging.INFO, "catalog_refresher")
    world, clock = pressured, pressured.clock
    world.rss.mb = 812
    await clock.advance(INTERVAL.total_seconds())
    world.rss.mb = 300
    await clock.advance(CHECK_EVERY)
    assert (
        "Memory 812 MB above the 600 MB limit: cache shrunk to 25% of its size;"
        " runs of lower-priority sources wait"
    ) in caplog.messages
    assert "suppliers waits: memory 812 MB above the 600 MB limit" in caplog.messages
    assert "Memory 300 MB within the 600 MB limit again: deferred runs go" in caplog.messages


async def test_without_a_limit_nothing_is_measured(tmp_path: Path, clock: FakeClock) -> None:
    """MemoryLimitMb unset: the probe is never read, health has no memory entry and the
    metrics no catalog_memory_* sample."""
    rss = FakeRss(10_000)
    sources = {"suppliers": StaticSource("suppliers", [], clock=clock)}
    h = build(tmp_path / "c.db", clock, sources, rss_probe=rss)
    await h.start()
    await clock.advance(CHECK_EVERY * 3)
    assert rss.reads == 0
    assert h.service.pressure.stats() is None
    report = await LocalControl(h.service, h.store, clock, inline).health()
    assert MEMORY_ENTRY not in report.entries
    names = {name for name, _ in scraped(Metrics.for_service(h.service, h.catalog))}
    assert not {name for name in names if name.startswith("catalog_memory_")}
    await h.stop()


# --- health, pure --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("rss", "above", "waiting", "status", "description"),
    [
        (None, False, 0, Health.HEALTHY, "not measured yet; limit 600 MB"),
        (512 * MB, False, 0, Health.HEALTHY, "memory 512 MB, within the 600 MB limit"),
        (
            812 * MB,
            True,
            3,
            Health.DEGRADED,
            "memory 812 MB above the 600 MB limit; cache shrunk, 3 runs deferred",
        ),
    ],
)
def test_memory_health_says_what_gave_way(
    rss: int | None, above: bool, waiting: int, status: Health, description: str
) -> None:
    """The memory entry is Healthy within the limit and Degraded above it, with the reason."""
    stats = PressureStats(limit=600 * MB, rss=rss, above=above, waiting=waiting, deferred=9)
    entry = memory_health(stats)
    assert (entry.status, entry.description) == (status, description)


# --- configuration -------------------------------------------------------------------------


def _load(tmp_path: Path, value: object) -> object:
    path = tmp_path / "appsettings.json"
    path.write_text(json.dumps({"CatalogRepository": {"memorylimitmb": value}}), "utf-8")
    return load(path, environment=None, environ={}).repository.memory_limit_mb


def test_memory_limit_is_read_and_printed_by_check_config(tmp_path: Path) -> None:
    """MemoryLimitMb (any case) is read as a count of MB, check-config prints it, and null
    or 0 leave it off."""
    assert _load(tmp_path, 600) == 600
    assert _load(tmp_path, None) is None
    assert _load(tmp_path, 0) is None
    settings = load(tmp_path / "appsettings.json", environment=None, environ={})
    assert describe(settings)["CatalogRepository"]["MemoryLimitMb"] is None
    environ = {"CatalogRepository__MemoryLimitMb": "750"}
    from_env = load(None, environment=None, environ=environ)
    assert describe(from_env)["CatalogRepository"]["MemoryLimitMb"] == 750


@pytest.mark.parametrize(
    ("value", "problem"),
    [
        (-1, "must be between 0 and 1048576, got -1"),
        (600_000_000, "must be between 0 and 1048576, got 600000000"),
        ("600MB", "expected an integer, got a string"),
        (1.5, "expected an integer, got a number"),
    ],
)
def test_a_bad_memory_limit_is_refused_naming_the_key(
    tmp_path: Path, value: object, problem: str
) -> None:
    """A negative, absurd (bytes for MB) or non-integer MemoryLimitMb is a one-line error."""
    with pytest.raises(ConfigError) as caught:
        _load(tmp_path, value)
    assert (caught.value.key, caught.value.problem) == ("CatalogRepository:MemoryLimitMb", problem)


# --- the probe -------------------------------------------------------------------------------


def _stat(proc: Path, pid: int, ppid: int, pages: int, name: str = "python") -> None:
    folder = proc / str(pid)
    folder.mkdir(exist_ok=True)
    # The fields of proc(5) /proc/PID/stat; the name may hold spaces and parentheses.
    fields = ["S", str(ppid), *["0"] * 18, "1000", str(pages), *["0"] * 20]
    (folder / "stat").write_text(f"{pid} ({name}) {' '.join(fields)}\n")


def test_the_probe_sums_the_process_and_its_descendants(tmp_path: Path) -> None:
    """RSS is the service's plus its workers' and theirs, never an unrelated process's; a
    worker that ends drops out at once, a new one joins at the next scan, which comes as
    often as a scan may take a thousandth of the time."""
    proc = tmp_path / "proc"
    proc.mkdir()
    _stat(proc, 100, 1, 1000)
    _stat(proc, 101, 100, 200, name="worker (spawn) x")
    _stat(proc, 102, 101, 30)
    _stat(proc, 200, 1, 99_999)
    now = [0.0]

    def monotonic() -> float:
        now[0] += 0.01  # every look at the clock: a scan takes 10 ms, so one per 10 s
        return now[0]

    probe = ProcessTreeRss(100, proc=proc, monotonic=monotonic)
    page = os.sysconf("SC_PAGE_SIZE")
    assert probe() == 1230 * page
    (proc / "102" / "stat").unlink()
    assert probe() == 1200 * page
    _stat(proc, 103, 100, 5)
    assert probe() == 1200 * page  # not seen until the next scan
    now[0] += 0.01 / RESCAN_CPU_SHARE
    assert probe() == 1205 * page


def test_the_probe_walks_the_threads_children_files_where_the_kernel_has_them(
    tmp_path: Path,
) -> None:
    """With ``task/TID/children`` the tree is read from them alone, every thread's (a child
    is listed under the thread that started it): a process that only claims our pid as
    its parent in its ``stat`` is not walked to, and one started since is seen at the
    next scan."""
    proc = tmp_path / "proc"
    proc.mkdir()
    _stat(proc, 100, 1, 1000)
    _stat(proc, 101, 100, 200)
    _stat(proc, 102, 101, 30)
    _stat(proc, 103, 100, 7)
    _stat(proc, 200, 100, 99_999)  # listed nowhere: the full scan would have counted it

    def threads(pid: int, **children: str) -> None:
        for tid, listed in children.items():
            (proc / str(pid) / "task" / tid.lstrip("t")).mkdir(parents=True)
            (proc / str(pid) / "task" / tid.lstrip("t") / "children").write_text(listed)

    threads(100, t100="101 ", t110="")
    threads(101, t101="102 ")
    threads(102, t102="")
    threads(103, t103="")
    now = [0.0]
    probe = ProcessTreeRss(100, proc=proc, monotonic=lambda: now[0])
    page = os.sysconf("SC_PAGE_SIZE")
    assert probe() == 1230 * page
    (proc / "100" / "task" / "110" / "children").write_text("103 ")  # a thread starts one
    now[0] += RESCAN_AT_LEAST_EVERY
    assert probe() == 1237 * page


def test_the_probe_reads_this_process(tmp_path: Path) -> None:
    """On this machine's /proc the probe of this process agrees with its own VmRSS."""
    probe = ProcessTreeRss()
    measured = probe()
    assert measured is not None
    status = Path("/proc/self/status").read_text()
    vm_rss = next(int(line.split()[1]) for line in status.splitlines() if line.startswith("VmRSS"))
    assert 0.5 * vm_rss * 1024 <= measured <= 2 * vm_rss * 1024 + 512 * MB
