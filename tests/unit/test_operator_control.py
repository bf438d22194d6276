"""Pause/resume, live reload and the dry run on a real SQLite store and a fake clock
(issue 12, contract 8). No test sleeps: time moves by ``FakeClock.advance``."""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from types import MappingProxyType
from typing import Any

import pytest

from catalog_refresher.config.settings import Settings, StoreSettings
from catalog_refresher.domain.runs import RunStatus, Trigger
from catalog_refresher.domain.specs import SOURCE_IDS
from catalog_refresher.errors import ConfigError, ReloadRefused, SourceConnectionError
from catalog_refresher.refresh.events import Event, EventBus, SourcePaused
from catalog_refresher.refresh.pause import POLL_EVERY, Pauses
from catalog_refresher.refresh.reload import Reloader
from catalog_refresher.refresh.runner import Endpoints
from catalog_refresher.store.open import open_store
from catalog_refresher.testing import FakeClock, StaticSource
from tests.service_harness import Harness, build, settings_for

HOUR = timedelta(hours=1)
ERP = [
    {"product_code": f"P-{i:03}", "product_name": f"Product {i}", "stock": i, "location": "A1"}
    for i in range(20)
]


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


def erp(clock: FakeClock, records: list[dict[str, Any]] | None = None, **kw: Any) -> StaticSource:
    return StaticSource("erp_stock", ERP if records is None else records, clock=clock, **kw)


def hourly(tmp_path: Path, clock: FakeClock, source: StaticSource, **options: Any) -> Harness:
    return build(
        tmp_path / "catalog.db",
        clock,
        {"erp_stock": source},
        intervals={"erp_stock": HOUR},
        **options,
    )


# --- pause and resume -------------------------------------------------------------


async def test_a_paused_source_gets_no_scheduled_runs_keeps_its_data_and_runs_on_resume(
    tmp_path: Path, clock: FakeClock
) -> None:
    """Paused after its first run, an hourly source skips three slots quietly (no run
    recorded), keeps its rows served, and runs at once when resumed, being due."""
    source = erp(clock)
    h = hourly(tmp_path, clock, source)
    await h.start()
    assert source.calls == 1
    await h.service.pauses.pause("erp_stock", "supplier migration")
    await clock.advance(3 * HOUR.total_seconds() + 60)
    assert source.calls == 1
    assert len(h.runs("erp_stock")) == 1
    assert h.store.source_history("erp_stock").record_count == len(ERP)
    assert await h.catalog.get_json("P-001") is not None
    assert await h.service.pauses.resume("erp_stock")
    await clock.settle()
    assert source.calls == 2
    assert h.runs("erp_stock")[-1].trigger is Trigger.SCHEDULE
    await clock.advance(HOUR.total_seconds() - 1)
    assert source.calls == 2  # back on the grid: one interval after the resumed run
    await clock.advance(1)
    assert source.calls == 3
    await h.stop()


async def test_paused_sources_poll_the_store_together_once_per_period(
    tmp_path: Path, clock: FakeClock
) -> None:
    """Ten paused sources reaching their slots at different times each read the store once
    at the slot, then share one read per ``POLL_EVERY`` on a common grid; a pause lifted
    by a peer (straight in the store) lets its waiter go at the next poll."""
    store = open_store(f"sqlite:///{tmp_path / 'catalog.db'}")
    reads = 0

    async def offload(fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Any:
        nonlocal reads
        reads += fn == store.pauses
        return fn(*args, **kwargs)

    pauses = Pauses(store, clock, offload, EventBus())
    for source in SOURCE_IDS:
        store.pause_source(source, at=clock.now(), reason=None)
    waiters = {}
    for source in SOURCE_IDS:
        waiters[source] = asyncio.create_task(pauses.wait_until_resumed(source))
        await clock.advance(0.3)  # slots at different times within one period
    assert reads == len(SOURCE_IDS)
    await clock.advance(3 * POLL_EVERY)
    assert reads == len(SOURCE_IDS) + 3
    store.resume_source("erp_stock")  # a peer replica (or the CLI) resumes it
    await clock.advance(POLL_EVERY)
    assert waiters["erp_stock"].done()
    assert waiters["erp_stock"].result() is True
    assert not any(w.done() for s, w in waiters.items() if s != "erp_stock")
    for waiter in waiters.values():
        waiter.cancel()
    await asyncio.gather(*waiters.values(), return_exceptions=True)
    store.close()


async def test_a_manual_refresh_of_a_paused_source_still_runs(
    tmp_path: Path, clock: FakeClock
) -> None:
    """Pause stops the schedule, not the operator: a manual refresh runs and succeeds."""
    source = erp(clock)
    h = hourly(tmp_path, clock, source)
    await h.service.prepare()
    await h.service.pauses.pause("erp_stock", None)
    run = await h.service.refresh("erp_stock")
    assert run.status is RunStatus.SUCCEEDED
    assert source.calls == 1


async def test_a_pause_survives_a_restart(tmp_path: Path, clock: FakeClock) -> None:
    """A new service on the same store finds the source paused: its due startup run
    waits, and the pause (time and reason) reads back as it was written."""
    first = hourly(tmp_path, clock, erp(clock))
    await first.service.prepare()
    pause = await first.service.pauses.pause("erp_stock", "wrong prices upstream")
    first.store.close()
    source = erp(clock)
    second = hourly(tmp_path, clock, source)
    await second.start()
    await clock.advance(2 * HOUR.total_seconds())
    assert source.calls == 0
    assert second.store.pauses()["erp_stock"] == pause
    assert second.service.pauses.known["erp_stock"].reason == "wrong prices upstream"
    await second.stop()


async def test_auto_pause_after_consecutive_failures_is_announced(
    tmp_path: Path, clock: FakeClock
) -> None:
    """With AutoPauseAfterFailures 2, the second failed run in a row pauses the source
    (an auto SourcePaused event, which the webhook notifier turns into an alert)."""
    source = erp(clock, failures=[SourceConnectionError("down")] * 10)
    h = build(
        tmp_path / "c.db",
        clock,
        {"erp_stock": source},
        intervals={"erp_stock": timedelta(minutes=1)},
        retry_attempts=1,
        auto_pause_after_failures=2,
    )
    seen: list[Event] = []
    h.service.bus.subscribe(type("Spy", (), {"on_event": lambda self, e: seen.append(e)})())
    await h.start()
    await clock.advance(60)
    paused = [e for e in seen if isinstance(e, SourcePaused)]
    assert len(paused) == 1
    assert paused[0].auto
    assert "2 consecutive failed runs" in (paused[0].reason or "")
    calls = source.calls
    await clock.advance(10 * 60)
    assert source.calls == calls == 2  # no more scheduled runs
    await h.stop()


# --- live reload --------------------------------------------------------------------


def reloader(h: Harness, load: Any) -> Reloader:
    def open_endpoints(settings: Settings, sources: Any) -> dict[str, Endpoints]:
        return {s: h.service.endpoints[s] for s in sources if s in h.service.endpoints}

    return Reloader(h.service, load, open_endpoints)


def with_interval(h: Harness, interval: timedelta, **options: Any) -> Settings:
    return settings_for(h.service.settings.sources, intervals={"erp_stock": interval}, **options)


async def test_a_reloaded_interval_moves_the_next_slot_from_the_last_start_once(
    tmp_path: Path, clock: FakeClock
) -> None:
    """Hourly, started at t0; at t0+30 min the interval becomes 40 min: exactly one run at
    t0+40 min (last start + new interval), none at the old slot t0+60 min, the next at
    t0+80 min."""
    source = erp(clock)
    h = hourly(tmp_path, clock, source)
    await h.start()
    t0 = h.runs("erp_stock")[0].started_at
    assert t0 is not None
    await clock.advance(30 * 60)
    reloaded = await reloader(h, lambda: with_interval(h, timedelta(minutes=40))).reload()
    assert "ErpStockRefreshInterval 01:00:00 -> 00:40:00" in reloaded.changes
    await clock.advance(10 * 60 - 1)
    assert source.calls == 1
    await clock.advance(1)
    assert source.calls == 2
    await clock.advance(30 * 60)  # t0 + 70 min: past the old slot
    assert source.calls == 2
    await clock.advance(10 * 60)
    assert source.calls == 3
    starts = [r.started_at - t0 for r in h.runs("erp_stock") if r.started_at]
    assert starts == [timedelta(0), timedelta(minutes=40), timedelta(minutes=80)]
    assert h.store.list_reloads()[0].outcome == "applied"
    await h.stop()


async def test_a_reload_during_a_run_does_not_run_twice(tmp_path: Path, clock: FakeClock) -> None:
    """A reload that comes while the source's run is in flight lets the run finish and
    schedules the next from its start: one run, not two."""
    source = erp(clock, delay=120)
    h = hourly(tmp_path, clock, source)
    await h.start()  # the startup run takes 2 minutes
    await clock.advance(30)
    await reloader(h, lambda: with_interval(h, timedelta(minutes=10))).reload()
    await clock.advance(9 * 60)
    assert source.calls == 1
    await clock.advance(60 + 120)
    assert source.calls == 2
    assert [r.status for r in h.runs("erp_stock")] == [RunStatus.SUCCEEDED] * 2
    await h.stop()


async def test_a_bad_reload_keeps_the_running_configuration_and_names_the_key(
    tmp_path: Path, clock: FakeClock
) -> None:
    """A file that no longer validates is refused with its key; the interval in force and
    the schedule stay as they were, and the refusal is in the reload audit."""
    source = erp(clock)
    h = hourly(tmp_path, clock, source)
    await h.start()
    before = h.service.settings

    def load() -> Settings:
        raise ConfigError("CatalogRepository:ErpStockRefreshInterval", "cannot parse 'soon'")

    with pytest.raises(ReloadRefused, match="CatalogRepository:ErpStockRefreshInterval"):
        await reloader(h, load).reload()
    assert h.service.settings is before
    await clock.advance(HOUR.total_seconds())
    assert source.calls == 2  # the hourly slot, as before
    audit = h.store.list_reloads()[0]
    assert (audit.outcome, "ErpStockRefreshInterval" in audit.detail) == ("refused", True)
    await h.stop()


async def test_a_reload_that_needs_a_restart_is_refused_saying_so(
    tmp_path: Path, clock: FakeClock
) -> None:
    """A new store URL cannot be taken live: refused, ``restart`` set, nothing changed."""
    h = hourly(tmp_path, clock, erp(clock))
    await h.service.prepare()
    moved = dataclasses.replace(h.service.settings, store=StoreSettings(url="sqlite:///x.db"))
    with pytest.raises(ReloadRefused, match="needs a restart to change Store") as refused:
        await reloader(h, lambda: moved).reload()
    assert refused.value.restart
    assert h.service.settings.store != moved.store


async def test_a_reload_adds_and_removes_sources(tmp_path: Path, clock: FakeClock) -> None:
    """A source added by a reload starts its schedule (due: runs at once); one removed
    stops being scheduled."""
    erp_source = erp(clock)
    eshop = StaticSource("eshop_stock", [{"product_code": "P-001", "stock": 3}], clock=clock)
    h = hourly(tmp_path, clock, erp_source)
    await h.start()
    base = h.service.settings
    eshop_settings = dataclasses.replace(base.sources["erp_stock"], id="eshop_stock")
    added = dataclasses.replace(base, sources=MappingProxyType({"eshop_stock": eshop_settings}))

    def open_endpoints(settings: Settings, sources: Any) -> dict[str, Endpoints]:
        return {s: Endpoints(eshop) for s in sources}

    reloaded = await Reloader(h.service, lambda: added, open_endpoints).reload()
    await clock.settle()
    assert {"Sources:ErpStock removed", "Sources:EshopStock added"} <= set(reloaded.changes)
    assert eshop.calls == 1
    await clock.advance(2 * HOUR.total_seconds())
    assert erp_source.calls == 1
    assert h.service.enabled_sources == ["eshop_stock"]
    await h.stop()


# --- dry run --------------------------------------------------------------------------


async def test_a_dry_run_changes_nothing_and_reports_what_the_real_run_records(
    tmp_path: Path, clock: FakeClock
) -> None:
    """After a first run, the source changes (2 new, 3 updated, 4 gone). The dry run
    writes nothing (no run, same rows, same data version, same sync state) and its
    counts and keys are the ones the real run then records."""
    source = erp(clock)
    h = hourly(tmp_path, clock, source)
    await h.service.prepare()
    await h.service.refresh("erp_stock")
    changed = [dict(r, stock=r["stock"] + 1000) if 5 <= i < 8 else r for i, r in enumerate(ERP)]
    changed = changed[4:] + [dict(ERP[0], product_code=f"NEW-{i}") for i in range(2)]
    source.records = changed
    rows_before = sorted(h.store.iter_rows("erp_stock"))
    version, sync = h.store.data_version("erp_stock"), h.store.sync_state("erp_stock")
    preview = await h.service.dry_run("erp_stock")
    assert sorted(h.store.iter_rows("erp_stock")) == rows_before
    assert (h.store.data_version("erp_stock"), h.store.sync_state("erp_stock")) == (version, sync)
    assert len(h.runs("erp_stock")) == 1
    assert (preview.inserted, preview.updated, preview.deleted) == (2, 3, 4)
    assert preview.first_inserted == ("NEW-0", "NEW-1")
    assert preview.first_deleted == ("P-000", "P-001", "P-002", "P-003")
    assert preview.would_publish
    run = await h.service.refresh("erp_stock")
    counts = run.counts
    assert (counts.inserted, counts.updated, counts.deleted) == (2, 3, 4)
    assert (counts.fetched, counts.invalid) == (preview.fetched, preview.invalid)


async def test_a_dry_run_says_the_guard_would_reject(tmp_path: Path, clock: FakeClock) -> None:
    """An empty snapshot over stored rows: the dry run reports the guard's rejection and
    its reason, and the rows stay."""
    source = erp(clock)
    h = hourly(tmp_path, clock, source)
    await h.service.prepare()
    await h.service.refresh("erp_stock")
    source.records = []
    preview = await h.service.dry_run("erp_stock")
    assert not preview.would_publish
    assert not preview.guard.passed
    assert "empty snapshot" in preview.guard.detail
    assert h.store.source_history("erp_stock").record_count == len(ERP)


async def test_a_failing_validator_rejects_the_run_and_the_dry_run_shows_each_verdict(
    tmp_path: Path, clock: FakeClock
) -> None:
    """MinRecords 18 on a source that drops to 16 rows: the dry run lists MinRecords as
    failed (MaxChangedShare passing), and the real run is ``rejected`` with that reason,
    the 20 stored rows still served."""
    from catalog_refresher.config.policy_settings import ValidatorSettings

    source = erp(clock)
    h = hourly(tmp_path, clock, source)
    config = dataclasses.replace(
        h.service.settings.sources["erp_stock"],
        validators=ValidatorSettings(min_records=18, max_changed_share=0.5),
    )
    h.service.settings = dataclasses.replace(
        h.service.settings, sources=MappingProxyType({"erp_stock": config})
    )
    await h.service.prepare()
    assert (await h.service.refresh("erp_stock")).status is RunStatus.SUCCEEDED
    source.records = ERP[:16]
    preview = await h.service.dry_run("erp_stock")
    assert [(v.name, v.passed) for v in preview.validators] == [
        ("MinRecords", False),
        ("MaxChangedShare", True),
    ]
    assert preview.guard.passed
    assert not preview.would_publish
    run = await h.service.refresh("erp_stock")
    assert run.status is RunStatus.REJECTED
    assert run.error == "validator MinRecords failed: 16 records, at least 18 wanted"
    assert h.store.source_history("erp_stock").record_count == len(ERP)


async def test_a_reload_with_a_new_secret_reopens_only_that_source_and_never_shows_it(
    tmp_path: Path, clock: FakeClock
) -> None:
    """A changed header secret reopens that source's endpoints (its next run uses them);
    the change reads ``Sources:ErpStock changed``, without the secret."""
    from catalog_refresher.config.settings import EndpointSettings, EndpointType, Secret

    old_source, new_source = erp(clock), erp(clock, ERP[:5])
    h = hourly(tmp_path, clock, old_source)
    await h.service.prepare()
    base = h.service.settings
    endpoint = EndpointSettings(
        type=EndpointType.DEMO, headers=MappingProxyType({"X-Token": Secret("hunter2")})
    )
    config = dataclasses.replace(base.sources["erp_stock"], primary=endpoint)
    new = dataclasses.replace(base, sources=MappingProxyType({"erp_stock": config}))
    opened: list[str] = []

    def open_endpoints(settings: Settings, sources: Any) -> dict[str, Endpoints]:
        opened.extend(sources)
        return {s: Endpoints(new_source) for s in sources}

    reloaded = await Reloader(h.service, lambda: new, open_endpoints).reload()
    assert reloaded.changes == ("Sources:ErpStock changed",)
    assert "hunter2" not in str(reloaded) + str(h.store.list_reloads())
    assert opened == ["erp_stock"]
    await h.service.refresh("erp_stock")
    assert (old_source.calls, new_source.calls) == (0, 1)
