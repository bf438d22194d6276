"""The event bus: observers, the order a run's events come in, and observers that fail."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import pytest

from catalog_refresher.domain.runs import RunStatus
from catalog_refresher.refresh.events import (
    DataChanged,
    Event,
    EventBus,
    Purged,
    RunFinished,
    RunStarted,
)
from catalog_refresher.testing import FakeClock, StaticSource
from tests.service_harness import build

ERP = [
    {"product_code": "TEST-001", "product_name": "Test Product 1", "stock": 100, "location": "A1"}
]


@dataclass
class Recorder:
    """An observer that keeps every event it is told, in order."""

    events: list[Event] = field(default_factory=list)

    def on_event(self, event: Event) -> None:
        self.events.append(event)


class Broken:
    """An observer with a bug: it raises on every event."""

    def on_event(self, event: Event) -> None:
        raise RuntimeError("observer bug")


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


def test_observers_are_told_in_subscription_order_despite_a_failing_one() -> None:
    """Every observer hears every event; one that raises is counted and skipped."""
    bus = EventBus()
    told: list[str] = []

    class Named:
        def __init__(self, name: str) -> None:
            self.name = name

        def on_event(self, event: Event) -> None:
            told.append(self.name)

    for observer in (Named("first"), Broken(), Named("last")):
        bus.subscribe(observer)
    bus.emit(Purged(source="erp_stock", rows=1))
    assert told == ["first", "last"]
    assert bus.listener_errors == 1


async def test_committed_data_is_announced_before_the_run_finishes(
    tmp_path: Path, clock: FakeClock
) -> None:
    """A run that commits emits DataChanged with the changed codes, between start and finish."""
    h = build(tmp_path / "c.db", clock, {"erp_stock": StaticSource("erp_stock", ERP)})
    recorder = Recorder()
    h.service.bus.subscribe(recorder)
    await h.start()
    of_runs = (RunStarted, DataChanged, RunFinished)
    started, changed, finished = (e for e in recorder.events if isinstance(e, of_runs))
    assert isinstance(started, RunStarted)
    assert isinstance(changed, DataChanged)
    assert (changed.source, changed.products) == ("erp_stock", frozenset({"TEST-001"}))
    assert changed.version == h.store.data_version("erp_stock")
    assert isinstance(finished, RunFinished)
    assert finished.run.status is RunStatus.SUCCEEDED
    await h.stop()


async def test_a_run_that_commits_nothing_announces_no_change(
    tmp_path: Path, clock: FakeClock
) -> None:
    """A rejected run (an empty snapshot after a good one) emits no DataChanged."""
    erp = StaticSource("erp_stock", ERP)
    h = build(tmp_path / "c.db", clock, {"erp_stock": erp})
    await h.start()
    recorder = Recorder()
    h.service.bus.subscribe(recorder)
    erp.records = []
    await clock.advance(300)
    finished = [e for e in recorder.events if isinstance(e, RunFinished)]
    assert [e.run.status for e in finished] == [RunStatus.REJECTED]
    assert not [e for e in recorder.events if isinstance(e, DataChanged)]
    await h.stop()


async def test_a_failing_observer_never_stops_a_run(tmp_path: Path, clock: FakeClock) -> None:
    """With an observer that raises on every event, the run still succeeds and is recorded."""
    h = build(tmp_path / "c.db", clock, {"erp_stock": StaticSource("erp_stock", ERP)})
    h.service.bus.subscribe(Broken())
    await h.start()
    (run,) = h.runs("erp_stock")
    assert run.status is RunStatus.SUCCEEDED
    assert h.service.bus.listener_errors >= 3  # started, data changed, finished
    await h.stop()
