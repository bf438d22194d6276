"""Several replicas on one PostgreSQL database (contract 7), on a shared fake clock.

Each replica is a real ``RefreshService`` over its own ``PostgresStore`` (its own
connection pool and replica id) in one schema; the stores take the fake clock as
the cluster's clock, so leases and intervals move with ``advance()``.
"""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest

from catalog_refresher.domain.runs import RunStatus, Trigger
from catalog_refresher.domain.specs import SOURCE_IDS
from catalog_refresher.errors import SourceConnectionError
from catalog_refresher.refresh.resilience import CircuitState
from catalog_refresher.store.postgres import PostgresStore
from catalog_refresher.testing import FakeClock, StaticSource
from tests.postgres import fresh_schema
from tests.service_harness import Harness, build

pytestmark = pytest.mark.postgres

LEASE = timedelta(seconds=30)
ERP = [{"product_code": "TEST-001", "product_name": "Test", "stock": 100, "location": "A1"}]


@pytest.fixture
def url() -> Iterator[str]:
    with fresh_schema("t_replicas") as url:
        yield url


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


class Cluster:
    def __init__(self, url: str, clock: FakeClock) -> None:
        self.url = url
        self.clock = clock
        self.replicas: list[Harness] = []

    def replica(self, source: StaticSource | dict[str, StaticSource], **options: Any) -> Harness:
        store = PostgresStore(self.url, lease=LEASE, clock=self.clock)
        sources = source if isinstance(source, dict) else {source.source_id: source}
        harness = build(
            None,  # type: ignore[arg-type]  # the store is given
            self.clock,
            sources,
            store=store,
            coordinator=store.coordinator,
            **options,
        )
        self.replicas.append(harness)
        return harness

    async def close(self) -> None:
        for harness in self.replicas:
            await harness.stop()
            await harness.store.aclose()
            harness.store.close()


@pytest.fixture
async def cluster(url: str, clock: FakeClock) -> Any:
    cluster = Cluster(url, clock)
    yield cluster
    await cluster.close()


def erp(clock: FakeClock, **kwargs: Any) -> StaticSource:
    return StaticSource("erp_stock", ERP, clock=clock, **kwargs)


async def test_each_scheduled_slot_runs_once_across_replicas(
    cluster: Cluster, clock: FakeClock
) -> None:
    """Two replicas, one source every 5 minutes: over 20 minutes, 5 runs in all, not 10."""
    a_source, b_source = erp(clock), erp(clock)
    a = cluster.replica(a_source)
    b = cluster.replica(b_source)
    await a.start()
    await clock.advance(7)  # B starts 7 s later, on its own grid
    await b.start()
    for _ in range(20 * 6):
        await clock.advance(10)
    runs = [r for r in a.runs("erp_stock") if r.status is not RunStatus.SKIPPED]
    assert [r.status for r in runs] == [RunStatus.SUCCEEDED] * 5
    starts = [r.started_at for r in runs]
    assert all(
        later - earlier >= timedelta(minutes=5)  # type: ignore[operator]
        for earlier, later in itertools.pairwise(starts)
    )
    assert a_source.calls + b_source.calls == 5
    assert a_source.most_active + b_source.most_active <= 2


async def test_a_dead_replicas_run_is_rerun_within_two_leases_whatever_the_interval(
    cluster: Cluster, clock: FakeClock
) -> None:
    """A replica dies mid-run of an hourly source (no heartbeat, no release). Its peer
    cancels the orphaned run and runs the source within 2 x Store:Lease of the death, not at
    the next slot an hour later; then it runs the source at that slot, back on the grid."""
    interval = timedelta(hours=1)
    dead = PostgresStore(cluster.url, lease=LEASE, clock=clock)
    dead.migrate()  # its last heartbeat: it dies now, at t = 0, in the middle of a run
    claim = dead.coordinator.claim(
        "erp_stock", trigger=Trigger.SCHEDULE, forced=False, at=clock.now(), interval=interval
    )
    assert claim.granted
    assert claim.run is not None
    assert dead.mark_running(claim.run.id, at=clock.now())
    survivor_source = erp(clock)
    survivor = cluster.replica(survivor_source, intervals={"erp_stock": interval})
    await survivor.start()
    await clock.advance(LEASE.total_seconds() - 1)
    assert survivor_source.calls == 0  # the lease still covers the dead one
    await clock.advance(LEASE.total_seconds() + 1)
    assert survivor_source.calls == 1  # within two leases of the death
    orphan = survivor.store.get_run(claim.run.id)
    assert orphan is not None
    assert orphan.status is RunStatus.CANCELLED
    assert "abandoned" in (orphan.error or "")
    rerun = survivor.runs("erp_stock")[-1]
    assert (rerun.status, rerun.trigger) == (RunStatus.SUCCEEDED, Trigger.SCHEDULE)
    assert rerun.started_at is not None
    assert rerun.started_at - orphan.queued_at <= 2 * LEASE
    await clock.advance(interval.total_seconds() - 2 * LEASE.total_seconds() - 1)
    assert survivor_source.calls == 1  # nothing more until the grid's next slot
    await clock.advance(1)
    assert survivor_source.calls == 2  # t = 1 h: the slot after the orphaned one
    dead.close()


async def test_a_manual_refresh_on_a_peer_follows_the_run_in_flight(
    cluster: Cluster, clock: FakeClock
) -> None:
    """While A runs the source, a manual refresh on B returns A's run and waits for it."""
    a_source, b_source = erp(clock, delay=20), erp(clock)
    a = cluster.replica(a_source)
    b = cluster.replica(b_source)
    await a.start()
    running = a.service.in_flight("erp_stock")
    assert running is not None
    await b.service.prepare(recover=False)
    handle = await b.service.submit("erp_stock")
    assert handle.run.id == running.id
    assert not handle.done.done()
    while not handle.done.done():
        await clock.advance(1)
    finished = handle.done.result()
    assert (finished.id, finished.status) == (running.id, RunStatus.SUCCEEDED)
    assert b_source.calls == 0
    assert a_source.calls == 1


async def test_a_change_by_one_replica_reaches_the_others_cache(
    cluster: Cluster, clock: FakeClock
) -> None:
    """B has the product cached; A changes it; B's next look at the change feed drops it."""
    a_source = erp(clock)
    a = cluster.replica(a_source)
    b = cluster.replica(erp(clock))
    await a.service.prepare()
    await a.service.refresh("erp_stock")
    assert (await b.catalog.get("TEST-001")).stock.erp == 100  # type: ignore[union-attr]
    b.catalog.follow_from(b.store.latest_change())  # type: ignore[attr-defined]
    a_source.records = [{**ERP[0], "stock": 55}]
    await a.service.refresh("erp_stock")
    assert (await b.catalog.get("TEST-001")).stock.erp == 100  # type: ignore[union-attr]  # cached
    assert b.catalog.follow_changes() == 1
    assert (await b.catalog.get("TEST-001")).stock.erp == 55  # type: ignore[union-attr]


async def test_a_replica_shows_the_circuit_its_peer_opened(
    cluster: Cluster, clock: FakeClock
) -> None:
    """A's runs fail until A's circuit opens; B, which ran nothing, shows it open too
    once it re-reads its peers' circuits from the shared audit log."""
    errors = [SourceConnectionError("connection refused") for _ in range(100)]
    a = cluster.replica(erp(clock, failures=errors))
    b = cluster.replica(erp(clock))
    await a.service.prepare()
    await b.service.prepare(recover=False)
    for _ in range(5):  # CircuitBreakerFailureThreshold
        run = asyncio.create_task(a.service.refresh("erp_stock"))
        while not run.done():
            await clock.advance(1)
        assert run.result().status is RunStatus.FAILED
    assert a.service.circuit("erp_stock") is CircuitState.OPEN
    assert b.service.circuit("erp_stock") is CircuitState.CLOSED
    await b.service.follow_peer_circuits()
    assert b.service.circuit("erp_stock") is CircuitState.OPEN


async def test_a_busy_replica_leaves_due_sources_to_idle_peers(
    cluster: Cluster, clock: FakeClock
) -> None:
    """Three replicas, ten sources due at once, three slots each, every fetch 10 s: each
    replica claims only what it has a free slot for, so the ten runs spread over all
    three (instead of one replica claiming ten and queueing seven)."""
    replicas = [
        cluster.replica({s: StaticSource(s, [], clock=clock, delay=10) for s in SOURCE_IDS})
        for _ in range(3)
    ]
    for harness in replicas:
        await harness.service.prepare()
    for harness in replicas:
        harness.service.start()
    peak = [0, 0, 0]
    for _ in range(40):
        await clock.advance(1)
        for i, harness in enumerate(replicas):
            sources = harness.service.endpoints.values()
            peak[i] = max(peak[i], sum(e.primary.active for e in sources))  # type: ignore[attr-defined]
    runs = replicas[0].runs()
    assert sorted(r.source for r in runs) == sorted(SOURCE_IDS)
    assert all(r.status is RunStatus.SUCCEEDED for r in runs)
    fetched = [sum(e.primary.calls for e in h.service.endpoints.values()) for h in replicas]  # type: ignore[attr-defined]
    assert sum(fetched) == len(SOURCE_IDS)
    assert max(peak) <= 3
    assert min(fetched) >= 3, fetched


async def test_a_forgotten_replica_rejoins_with_its_next_heartbeat(
    url: str, clock: FakeClock
) -> None:
    """A replica cut off for over a day is deleted by its peers' cleanup; its next
    heartbeat brings it back, so its runs are not cancelled as a dead replica's."""
    a = PostgresStore(url, lease=LEASE, clock=clock)
    b = PostgresStore(url, lease=LEASE, clock=clock)
    try:
        a.migrate()
        b.migrate()
        run = a.create_run(source="lots", trigger=Trigger.MANUAL, forced=False, at=clock.now())
        await clock.advance(timedelta(days=2).total_seconds())  # a silent for two days...
        b.coordinator.heartbeat()  # ...so b's cleanup forgets it
        a.coordinator.heartbeat()  # a is back
        assert b.cancel_abandoned_runs(at=clock.now()) == 0
        assert b.get_run(run.id).status is RunStatus.QUEUED  # type: ignore[union-attr]
    finally:
        a.close()
        b.close()


async def test_a_pin_on_one_replica_holds_on_its_peer_and_after_a_restart(
    cluster: Cluster, clock: FakeClock
) -> None:
    """A pins an old version: B's cache drops the product through the change feed and
    serves the old value, B's run of the source publishes nothing (``skipped``,
    ``pinned``), a restarted replica still serves it, and unpin on B serves the newest."""
    a_source = erp(clock)
    a = cluster.replica(a_source)
    b_source = erp(clock)
    b = cluster.replica(b_source)
    await a.service.prepare()
    old = await a.service.refresh("erp_stock")
    a_source.records = b_source.records = [{**ERP[0], "stock": 55}]
    new = await a.service.refresh("erp_stock")
    assert (await b.catalog.get("TEST-001")).stock.erp == 55  # type: ignore[union-attr]
    b.catalog.follow_from(b.store.latest_change())  # type: ignore[attr-defined]
    a.store.pin("erp_stock", old.id, at=clock.now())
    assert b.catalog.follow_changes() == 1
    assert (await b.catalog.get("TEST-001")).stock.erp == 100  # type: ignore[union-attr]
    await b.service.prepare()
    skipped = await b.service.refresh("erp_stock")
    assert (skipped.status, skipped.error) == (RunStatus.SKIPPED, "pinned")
    restarted = cluster.replica(erp(clock))
    assert (await restarted.catalog.get("TEST-001")).stock.erp == 100  # type: ignore[union-attr]
    assert restarted.store.source_history("erp_stock").pinned_run_id == old.id
    b.store.unpin("erp_stock", at=clock.now())
    assert restarted.catalog.follow_changes() >= 1
    assert (await restarted.catalog.get("TEST-001")).stock.erp == 55  # type: ignore[union-attr]
    assert restarted.store.versions("erp_stock").served_run_id == new.id
