"""The one service loop: every source on its own schedule, in parallel.

Each enabled source gets a loop that sleeps until its next slot and submits a
run. ``submit`` is also how manual refreshes come in: a source never has two
runs in flight, so a manual refresh while a run is queued or running joins it,
and a scheduled slot that comes while a manual run is in flight waits for that
run instead of starting another. Runs share ``MaxConcurrentRefreshes`` slots.

A housekeeping loop purges history past its retention at start and hourly,
whether or not the sources are healthy (retention is a compliance rule).

Every run starts with a claim from the ``Coordinator`` (``store/coordination.py``). Alone,
every claim is granted. With peers sharing the store, a scheduled slot that a
peer already ran is skipped quietly until the cluster's next due time; a manual
refresh while a peer runs the source follows that peer's run; and the circuit
is read from the shared audit log before each run.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta

from catalog_refresher.clock import Clock
from catalog_refresher.config.settings import Settings
from catalog_refresher.domain.runs import Run, RunOutcome, RunStatus, Trigger
from catalog_refresher.domain.specs import SOURCE_IDS, SPECS
from catalog_refresher.errors import (
    NotOurTurn,
    RunConflict,
    ServiceStopping,
    SourceNotEnabled,
    StoreError,
    UnknownSourceError,
)
from catalog_refresher.refresh.dry_run import Preview
from catalog_refresher.refresh.events import (
    EventBus,
    RunFinished,
    RunStarted,
    SourceNotConfigured,
)
from catalog_refresher.refresh.housekeeping import (
    CHANGE_FEED_KEPT,
    HOUSEKEEPING_EVERY,
    purge_expired,
)
from catalog_refresher.refresh.memory import RssProbe
from catalog_refresher.refresh.pause import Pauses
from catalog_refresher.refresh.pressure import MemoryGuard
from catalog_refresher.refresh.resilience import CircuitBreaker, CircuitState
from catalog_refresher.refresh.runner import Endpoints, Offload, Process, Runner
from catalog_refresher.refresh.schedule import Slot, first_slot, next_slot
from catalog_refresher.refresh.slots import PrioritySlots
from catalog_refresher.refresh.tasks import (
    report_loops_end,
    sleep_or_wake,
    survive,
    wait_on_clock,
)
from catalog_refresher.store.base import SourceHistory, Store
from catalog_refresher.store.coordination import Claim, Coordinator, Solo

log = logging.getLogger("catalog_refresher")

#: How often a manual refresh looks at a run a peer replica has in flight.
FOLLOW_PEER_RUN_EVERY = 1.0
#: How often a loop asks again for its source's history when the store cannot be read.
FIRST_HISTORY_RETRY_EVERY = 5.0


@dataclass(frozen=True, slots=True)
class RunHandle:
    """A submitted run: as first recorded, and the task that finishes it."""

    run: Run
    done: asyncio.Task[Run]


class RefreshService:
    def __init__(
        self,
        *,
        settings: Settings,
        store: Store,
        clock: Clock,
        endpoints: Mapping[str, Endpoints],
        bus: EventBus | None = None,
        offload: Offload = asyncio.to_thread,
        process: Process | None = None,
        coordinator: Coordinator | None = None,
        rss_probe: RssProbe | None = None,
    ) -> None:
        self.settings = settings
        self.coordinator: Coordinator = coordinator or Solo(store)
        self.options = settings.repository
        self.store = store
        self.clock = clock
        self.endpoints = endpoints
        self.bus = bus or EventBus()
        self.offload = offload
        self.runner = Runner(
            options=self.options,
            store=store,
            clock=clock,
            bus=self.bus,
            offload=offload,
            process=process,
        )
        self.outage = self.runner.outage
        """The writes the store refused (a full disk, a database down), for health."""
        self.slots = PrioritySlots(self.options.max_concurrent_refreshes)
        self.pauses = Pauses(store, clock, offload, self.bus)
        self.breakers: dict[str, CircuitBreaker] = {}
        self.next_run_at: dict[str, datetime] = {}
        self.started_at = clock.now()
        self._inflight: dict[str, RunHandle] = {}
        self._submit_locks = {source: asyncio.Lock() for source in SOURCE_IDS}
        self._wake = {source: asyncio.Event() for source in SOURCE_IDS}
        """Set to run a source's slot at once: a dead peer left its run unfinished."""
        self._loops: asyncio.Task[None] | None = None
        self._group: asyncio.TaskGroup | None = None
        self._source_loops: dict[str, asyncio.Task[None]] = {}
        self._sleeping: set[str] = set()  # loops waiting for their slot: a reload restarts them
        self._stale_loops: set[str] = set()  # busy at a reload: restart once their run ends
        self._stopping = False
        self._started_runs: set[int] = set()
        """Runs that have called (or are calling) their source; the rest are still queued."""
        self._prepared = False
        priority = {s: settings.sources[s].priority for s in self.enabled_sources}
        self.pressure = MemoryGuard.of(self.options, priority, rss_probe, clock, self.bus, offload)

    # --- life cycle -------------------------------------------------------------

    @property
    def _has_peers(self) -> bool:
        """Replicas share the store (the coordinator asks for heartbeats)."""
        return self.coordinator.heartbeat_every is not None

    @property
    def enabled_sources(self) -> list[str]:
        return [s for s in SOURCE_IDS if self.settings.enabled(s) and s in self.endpoints]

    async def prepare(self, *, recover: bool = True) -> None:
        """Restore each circuit from the audit log; with ``recover``, end abandoned runs.

        ``recover`` is for the long-running service only: a one-shot ``refresh``
        beside a running service must not cancel that service's live runs.
        """
        if self._prepared:
            return
        self._prepared = True
        self.started_at = self.clock.now()
        if recover:
            await self.offload(self.store.cancel_abandoned_runs, at=self.started_at)
        await self.pauses.read()
        for source in SOURCE_IDS:
            await self._restore_circuit(source)
            if source not in self.settings.sources:
                self.bus.emit(SourceNotConfigured(source=source, reason="not in Sources"))
            elif not self.settings.enabled(source):
                self.bus.emit(SourceNotConfigured(source=source, reason="interval is 00:00:00"))

    async def _restore_circuit(self, source: str) -> None:
        """The source's circuit as its trailing failures in the audit log make it."""
        history = await self.offload(self.store.source_history, source)
        self.breakers[source] = CircuitBreaker(
            threshold=self.options.circuit_breaker_failure_threshold,
            open_for=self.options.circuit_breaker_open_duration,
            failures=history.consecutive_failures,
            last_failure_at=history.last_failure_at,
        )

    async def follow_peer_circuits(self) -> None:
        """Re-read the circuits of the sources this replica has no run of in flight, so
        that its API shows the circuits its peers' runs opened or closed."""
        for source in self.enabled_sources:
            if self.in_flight(source) is None:
                await self._restore_circuit(source)
        await self.pauses.read()  # a peer may have paused or resumed a source

    def start(self) -> None:
        """Start the schedule loops and housekeeping (``prepare`` must have run)."""
        assert self._prepared, "call prepare() first"
        assert self._loops is None, "already started"
        self._loops = asyncio.create_task(self._run_loops(), name="refresh-loops")
        self._loops.add_done_callback(report_loops_end)

    async def _run_loops(self) -> None:
        """Every loop of the service, in one ``TaskGroup``: stopping is one cancellation.

        The loops never end by themselves: each iteration's failure is caught and
        reported (``survive``). Runs are not in the group: a run must outlive the
        cancellation of its loop for the shutdown grace period, so ``submit``
        tracks them in ``_inflight`` instead.
        """
        async with asyncio.TaskGroup() as group:
            self._group = group
            for source in self.enabled_sources:
                self._start_loop(source)
            group.create_task(self._housekeeping(), name="housekeeping")
            group.create_task(self.pressure.watch(), name="memory")  # ends at once if off
            if self.coordinator.heartbeat_every is not None:
                every = self.coordinator.heartbeat_every.total_seconds()
                group.create_task(self._heartbeat(every), name="heartbeat")

    def _start_loop(self, source: str, *, reloaded: bool = False) -> None:
        assert self._group is not None
        loop = self._group.create_task(self._schedule(source, reloaded=reloaded))
        loop.set_name(f"loop-{source}")
        self._source_loops[source] = loop

    def restart_loops(self, sources: Iterable[str]) -> None:
        """After a reload (``refresh/reload.py``): the loops of ``sources`` start again from
        their last start; one busy with a run starts again once the run has ended."""
        for source in sources if self._group is not None else ():
            loop = self._source_loops.pop(source, None)
            if loop is not None and source not in self._sleeping:
                self._source_loops[source] = loop
                self._stale_loops.add(source)
                continue
            if loop is not None:
                loop.cancel()
            if source in self.enabled_sources:
                self._start_loop(source, reloaded=True)

    async def stop(self) -> None:
        """Stop scheduling; give in-flight runs the grace period, then cancel them.

        No run starts once ``stop`` is called: runs still queued for a slot are
        cancelled at once and never call their source, and a refresh asked for
        meanwhile is refused (``ServiceStopping``).
        """
        self._stopping = True
        loops, self._loops = self._loops, None
        if loops is not None:
            loops.cancel()
            await asyncio.gather(loops, return_exceptions=True)
        queued = [h.done for h in self._inflight.values() if h.run.id not in self._started_runs]
        for task in queued:
            task.cancel()
        await asyncio.gather(*queued, return_exceptions=True)
        pending = {handle.done for handle in self._inflight.values()}
        if pending:
            grace = self.options.shutdown_grace_period.total_seconds()
            pending = await wait_on_clock(self.clock, pending, grace)
            for task in pending:
                task.cancel()
            await asyncio.gather(*pending, return_exceptions=True)

    # --- runs ---------------------------------------------------------------------

    async def submit(
        self, source: str, trigger: Trigger = Trigger.MANUAL, *, force: bool = False
    ) -> RunHandle:
        """Start a run of ``source``, or join the one already queued or running."""
        handle, _ = await self._submit(source, trigger, force=force, slot_held=False)
        return handle

    async def _submit(
        self, source: str, trigger: Trigger, *, force: bool, slot_held: bool
    ) -> tuple[RunHandle, bool]:
        """``submit``; with ``slot_held`` the caller holds a concurrency slot, which a new
        run of ours takes over (then the second value is true; else the caller keeps it)."""
        self._check_enabled(source)
        if self._stopping:
            raise ServiceStopping()
        async with self._submit_locks[source]:
            current = self._inflight.get(source)
            if current is not None and not current.done.done():
                if force and not current.run.forced:
                    raise RunConflict(
                        f"run {current.run.id} of {source} is in flight; force it once it ends"
                    )
                return current, False
            await self.prepare()
            scheduled = trigger is not Trigger.MANUAL
            claiming = asyncio.ensure_future(
                self.offload(
                    self.coordinator.claim,
                    source,
                    trigger=trigger,
                    forced=force,
                    at=self.clock.now(),
                    interval=self.options.interval(SPECS[source]) if scheduled else None,
                )
            )
            try:
                claim = await asyncio.shield(claiming)
                self.outage.taken(source)
            except asyncio.CancelledError:
                await self._cancel_late_claim(claiming)
                raise
            if not claim.granted:
                if claim.run is None or scheduled:
                    raise NotOurTurn(source, claim.retry_after or timedelta(0))
                if force and not claim.run.forced:
                    raise RunConflict(
                        f"run {claim.run.id} of {source} is in flight on a peer replica;"
                        " force it once it ends"
                    )
                follow = asyncio.create_task(self._follow(claim.run))
                return RunHandle(claim.run, follow), False
            assert claim.run is not None
            run = claim.run
            execute = self._execute(run, slot_held=slot_held)
            handle = RunHandle(run, asyncio.create_task(execute, name=f"run-{run.id}"))
            self._inflight[source] = handle
            handle.done.add_done_callback(lambda _: self._inflight.pop(source, None))
            return handle, slot_held

    async def _cancel_late_claim(self, claiming: asyncio.Future[Claim]) -> None:
        """The caller was cancelled (the service stops) while its claim was being written on
        a thread, which goes on: a run that claim inserts is recorded cancelled, never left
        ``queued`` in the store."""
        with contextlib.suppress(Exception):
            claim = await claiming
            if claim.granted and claim.run is not None:
                run = claim.run
                try:
                    reason = "cancelled: the service stopped before it started"
                    await self._finish_unstarted(run, RunStatus.CANCELLED, reason)
                finally:
                    await self.offload(self.coordinator.release, run.source, run.id)

    async def refresh(self, source: str, *, force: bool = False) -> Run:
        """Run ``source`` now (or join its run in flight) and wait for the end."""
        handle = await self.submit(source, Trigger.MANUAL, force=force)
        return await handle.done

    async def dry_run(self, source: str, *, force: bool = False) -> Preview:
        """What a run of ``source`` would publish now; nothing is written or recorded."""
        self._check_enabled(source)
        config = self.settings.sources[source]
        return await self.runner.dry_run(config, self.endpoints[source], force=force)

    def _check_enabled(self, source: str) -> None:
        if source not in SPECS:
            raise UnknownSourceError(source)
        if source not in self.enabled_sources:
            raise SourceNotEnabled(f"source {source!r} is not configured or is disabled")

    def in_flight(self, source: str) -> Run | None:
        handle = self._inflight.get(source)
        return handle.run if handle else None

    def circuit(self, source: str) -> CircuitState:
        breaker = self.breakers.get(source)
        return breaker.state(self.clock.now()) if breaker else CircuitState.CLOSED

    async def _follow(self, run: Run) -> Run:
        """Wait for a run a peer replica has in flight, by reading the audit log."""
        while True:
            recorded = await self.offload(self.store.get_run, run.id)
            if recorded is None or recorded.status.finished:
                return recorded or run
            await self.clock.sleep(FOLLOW_PEER_RUN_EVERY)

    async def _execute(self, run: Run, *, slot_held: bool = False) -> Run:
        """Run a claimed run; ``slot_held``: it owns a slot taken before the claim."""
        try:
            return await self._execute_claimed(run, slot_held=slot_held)
        except StoreError as exc:  # e.g. its start could not be written: never left open
            return await self.outage.end_refused(run, exc)
        finally:
            self._started_runs.discard(run.id)
            if slot_held:
                self.slots.release()
            with contextlib.suppress(StoreError):  # else its lease runs out by itself
                await asyncio.shield(self.offload(self.coordinator.release, run.source, run.id))

    async def _execute_claimed(self, run: Run, *, slot_held: bool) -> Run:
        source = run.source
        if self._has_peers:
            # Peers' runs count too: the circuit is the cluster's, read from the audit log.
            await self._restore_circuit(source)
        breaker = self.breakers[source]
        if not breaker.allow(self.clock.now(), manual=run.trigger is Trigger.MANUAL):
            return await self._finish_unstarted(run, RunStatus.SKIPPED, "circuit open")
        config = self.settings.sources[source]
        share = config.max_delete_share
        started: float | None = None
        try:
            if not slot_held:  # (a held slot waited for the memory before it was taken)
                await self.pressure.admit(source, run)
            slot = contextlib.nullcontext() if slot_held else self.slots.hold(config.priority)
            async with slot:
                if self._stopping:  # the slot came as the service began to stop
                    raise asyncio.CancelledError
                now = self.clock.now()
                self._started_runs.add(run.id)
                if not await self.offload(self.store.mark_running, run.id, at=now):
                    breaker.record_neutral()
                    recorded = await self.offload(self.store.get_run, run.id)
                    assert recorded is not None
                    return recorded
                started = self.clock.monotonic()
                run = dataclasses.replace(run, status=RunStatus.RUNNING, started_at=now)
                self.bus.emit(RunStarted(run=run))
                finished = await self.runner.execute(
                    run,
                    self.endpoints[source],
                    max_delete_share=self.options.max_delete_share if share is None else share,
                    incremental=config.incremental,
                    validators=config.validators,
                )
        except asyncio.CancelledError:
            breaker.record_neutral()
            if started is None:
                reason = (
                    "cancelled: the service stopped before it started"
                    if self._stopping
                    else "cancelled"
                )
                await asyncio.shield(self._finish_unstarted(run, RunStatus.CANCELLED, reason))
            else:
                recorded = await asyncio.shield(self.offload(self.store.get_run, run.id))
                assert recorded is not None
                duration = self.clock.monotonic() - started
                self.bus.emit(RunFinished(run=recorded, valid=0, duration=duration))
            raise
        status = finished.run.status
        if status is RunStatus.SUCCEEDED:
            breaker.record_success()
        elif status.counts_against_circuit:
            breaker.record_failure(self.clock.now())
            limit = self.options.auto_pause_after_failures
            await survive(self.pauses.auto_pause(source, breaker.failures, limit))
        else:
            breaker.record_neutral()
        self.bus.emit(finished)
        return finished.run

    async def _finish_unstarted(self, run: Run, status: RunStatus, reason: str) -> Run:
        outcome = RunOutcome(status=status, finished_at=self.clock.now(), error=reason)
        await self.offload(self.store.finish_run, run.id, outcome)
        recorded = await self.offload(self.store.get_run, run.id)
        assert recorded is not None
        self.bus.emit(RunFinished(run=recorded, valid=0, duration=0.0))
        return recorded

    # --- loops --------------------------------------------------------------------

    async def _schedule(self, source: str, *, reloaded: bool = False) -> None:
        """``reloaded``: started again by a reload, so a due slot is a scheduled one."""
        interval = self.options.interval(SPECS[source])
        history = await self._first_history(source)
        slot: Slot = first_slot(
            last_started_at=history.last_started_at, interval=interval, now=self.clock.now()
        )
        at_once = slot.run_at <= self.clock.now() and not reloaded
        trigger = Trigger.STARTUP if at_once else Trigger.SCHEDULE
        while True:
            if source in self._stale_loops:  # a reload came during the run
                self._stale_loops.discard(source)
                self._source_loops.pop(source, None)
                if source in self.enabled_sources:
                    self._start_loop(source, reloaded=True)
                return
            self.next_run_at[source] = slot.run_at
            self._sleeping.add(source)
            try:
                woken = await sleep_or_wake(self.clock, self._wake[source], slot.run_at)
            finally:
                self._sleeping.discard(source)
            # A dead peer's run (woken) is recovered paused or not: it was in flight.
            if not woken and await self.pauses.wait_until_resumed(source):
                now = self.clock.now()  # resumed: one run now, then a grid from it
                slot = Slot(run_at=now, grid=now)
            if woken:
                # A peer died in the middle of this source's slot: run it now, then
                # wait for the slot this loop was waiting for (back on the grid).
                with contextlib.suppress(NotOurTurn):  # another peer was quicker
                    await survive(self._run_slot(source, Trigger.SCHEDULE))
                continue
            try:
                await survive(self._run_slot(source, trigger))
            except NotOurTurn as turn:
                # A peer ran it (or runs it): the cluster's next due time, by its clock.
                due = self.clock.now() + turn.retry_after
                slot = Slot(run_at=due, grid=due)
                continue
            trigger = Trigger.SCHEDULE
            slot = next_slot(slot, interval=interval, now=self.clock.now())

    async def _run_slot(self, source: str, trigger: Trigger) -> None:
        # With peers, claim only once a local slot is free: a busy replica leaves due
        # sources to idle peers instead of claiming them and queueing them behind its
        # own runs. (Alone, the run is recorded `queued` while it waits for a slot.)
        slot_held = self._has_peers
        if slot_held:
            await self.pressure.admit(source)
            await self.slots.acquire(self.settings.sources[source].priority)
        took = False
        try:
            handle, took = await self._submit(source, trigger, force=False, slot_held=slot_held)
        except StoreError as exc:  # no run could be recorded: counted and told instead
            self.outage.failed(source, exc)
            return
        finally:
            if slot_held and not took:
                self.slots.release()
        # Wait for the run (ours, or a manual one we joined) without owning it:
        # cancelling this loop at shutdown must leave the run its grace period.
        await asyncio.wait([handle.done])

    async def _first_history(self, source: str) -> SourceHistory:
        """The source's past runs, read before its first slot; a store that cannot be
        read yet (a database restarting) is asked again rather than ending the loop."""
        while True:
            try:
                history: SourceHistory = await self.offload(self.store.source_history, source)
                return history
            except Exception:
                log.exception("cannot read the history of %s; retrying", source)
            await self.clock.sleep(FIRST_HISTORY_RETRY_EVERY)

    async def _heartbeat(self, every: float) -> None:
        """Keep this replica's claims, and pick up the runs of peers that died."""
        while True:
            await survive(self.offload(self.coordinator.heartbeat))
            await survive(self._recover_orphans())
            await self.clock.sleep(every)

    async def _recover_orphans(self) -> None:
        """Wake the loop of each source a dead peer left mid-run (within a lease and a
        heartbeat of its death), instead of letting it wait for its next slot."""
        for source in await self.offload(self.coordinator.orphaned):
            if source in self._wake and self.in_flight(source) is None:
                self._wake[source].set()

    async def _housekeeping(self) -> None:
        while True:
            await survive(self.purge_expired())
            await survive(
                self.offload(self.store.trim_changes, self.clock.now() - CHANGE_FEED_KEPT)
            )
            await self.clock.sleep(HOUSEKEEPING_EVERY.total_seconds())

    async def purge_expired(self) -> int:
        """Delete history rows older than each history source's window."""
        return await purge_expired(self.store, self.options, self.clock, self.offload, self.bus)
