"""Pause on two replicas sharing one PostgreSQL database (contract 8 and 7): a pause
made through one replica holds on the other, survives a restart, and a resume goes on
at once on whichever replica is due. Fake clock; no sleeps."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest

from catalog_refresher.refresh.pause import POLL_EVERY
from catalog_refresher.store.postgres import PostgresStore
from catalog_refresher.testing import FakeClock, StaticSource
from tests.postgres import fresh_schema
from tests.service_harness import Harness, build

pytestmark = pytest.mark.postgres

LEASE = timedelta(seconds=30)
INTERVAL = timedelta(minutes=5)
ERP = [{"product_code": "TEST-001", "product_name": "Test", "stock": 100, "location": "A1"}]


@pytest.fixture
def url() -> Iterator[str]:
    with fresh_schema("t_pause") as url:
        yield url


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
async def replicas(url: str, clock: FakeClock) -> Any:
    made: list[Harness] = []

    def replica(source: StaticSource) -> Harness:
        store = PostgresStore(url, lease=LEASE, clock=clock)
        harness = build(
            None,  # type: ignore[arg-type]  # the store is given
            clock,
            {"erp_stock": source},
            store=store,
            coordinator=store.coordinator,
            intervals={"erp_stock": INTERVAL},
        )
        made.append(harness)
        return harness

    yield replica
    for harness in made:
        await harness.stop()
        await harness.store.aclose()
        harness.store.close()


async def test_a_pause_holds_on_a_second_replica_and_after_a_restart(
    replicas: Any, clock: FakeClock
) -> None:
    """A pauses erp_stock; over 30 minutes neither A nor B runs it (B reads the pause
    from the database), a third replica started afterwards sees it too; B resumes it and
    the source runs within a poll of the resume, once across the cluster."""
    a_source, b_source = (
        StaticSource("erp_stock", ERP, clock=clock),
        StaticSource("erp_stock", ERP, clock=clock),
    )
    a, b = replicas(a_source), replicas(b_source)
    await a.start()
    await b.start()
    assert a_source.calls + b_source.calls == 1  # the startup slot, run once
    await a.service.pauses.pause("erp_stock", "supplier outage")
    for _ in range(30 * 6):
        await clock.advance(10)
    assert a_source.calls + b_source.calls == 1
    assert b.store.pauses()["erp_stock"].reason == "supplier outage"
    assert "erp_stock" in b.service.pauses.known  # what B's API and metrics show
    c_source = StaticSource("erp_stock", ERP, clock=clock)
    c = replicas(c_source)  # a restart: a new process on the same database
    await c.start()
    await clock.advance(60)
    assert c_source.calls == 0
    assert await b.service.pauses.resume("erp_stock")
    await clock.advance(POLL_EVERY + 1)
    assert a_source.calls + b_source.calls + c_source.calls == 2
    for _ in range(4 * 6):
        await clock.advance(10)
    assert a_source.calls + b_source.calls + c_source.calls == 2  # no double run
