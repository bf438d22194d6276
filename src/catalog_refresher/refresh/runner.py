"""One refresh run, start to finish: fetch, validate, diff, guard, apply.

Every run ends in exactly one recorded status. The data is written by
``Store.apply`` together with the run's success, in one transaction that only
commits while the run is still ``running``; so a run that timed out or was
cancelled changes nothing, even if its apply was already under way on a
worker thread when the time ran out.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, date, timedelta
from typing import ParamSpec, Protocol, TypeVar

from catalog_refresher.clock import Clock, timeout
from catalog_refresher.config.settings import (
    IncrementalSettings,
    RepositoryOptions,
    SourceSettings,
    ValidatorSettings,
)
from catalog_refresher.domain.runs import Run, RunOutcome, RunStatus, Trigger
from catalog_refresher.domain.specs import SPECS, SourceSpec
from catalog_refresher.domain.window import Window
from catalog_refresher.errors import CatalogRefresherError, SourceError, describe
from catalog_refresher.progress import phase as report_phase
from catalog_refresher.refresh.dry_run import Preview
from catalog_refresher.refresh.events import (
    DataChanged,
    EventBus,
    FailingOver,
    RunFinished,
    RunRetrying,
)
from catalog_refresher.refresh.incremental import plan as plan_run
from catalog_refresher.refresh.pipeline import Job, Pipeline, Processed
from catalog_refresher.refresh.resilience import with_retries
from catalog_refresher.refresh.store_outage import StoreOutage
from catalog_refresher.sources.base import FetchState, Payload, Source
from catalog_refresher.store.base import Applied, Store
from catalog_refresher.store.version_types import VersionPolicy

log = logging.getLogger("catalog_refresher.refresh")

P = ParamSpec("P")
T = TypeVar("T")


class Offload(Protocol):
    """Runs blocking work (decoding, SQL) off the event loop: ``asyncio.to_thread``."""

    async def __call__(self, fn: Callable[P, T], /, *args: P.args, **kwargs: P.kwargs) -> T: ...


async def inline(fn: Callable[P, T], /, *args: P.args, **kwargs: P.kwargs) -> T:
    """An ``Offload`` that runs the work on the loop itself (tests, small data)."""
    return fn(*args, **kwargs)


#: Runs the CPU-heavy half of a run somewhere: a worker thread, or a worker process.
Process = Callable[[Job, Payload], Awaitable[Processed]]


@dataclass(frozen=True, slots=True)
class Endpoints:
    """A source's primary system and its optional backup."""

    primary: Source
    backup: Source | None = None


@dataclass(slots=True)
class _Progress:
    """What a run has done so far, for the audit entry however it ends."""

    attempts: int = 0
    used_backup: bool = False


@dataclass(slots=True, kw_only=True)
class _Result:
    outcome: RunOutcome
    valid: int
    applied: Applied | None = None
    preview: Preview | None = None


def window_for(spec: SourceSpec, options: RepositoryOptions, today: date) -> Window | None:
    """Contract 1: [``today`` - RetentionDays, ``today``] for history sources, UTC dates."""
    days = options.retention_days(spec)
    if days is None:
        return None
    return Window(date_from=today - timedelta(days=days), date_to=today)


class Runner:
    """Executes runs; knows nothing of schedules."""

    def __init__(
        self,
        *,
        options: RepositoryOptions,
        store: Store,
        clock: Clock,
        bus: EventBus,
        offload: Offload,
        process: Process | None = None,
        outage: StoreOutage | None = None,
    ) -> None:
        """``process`` runs the pipeline; by default on ``offload`` in this process."""
        self.options = options
        self.store = store
        self.clock = clock
        self.bus = bus
        self.offload = offload
        self.outage = outage or StoreOutage(clock, bus, store, offload)
        if process is None:
            pipeline = Pipeline(store, clock.now)

            async def process(job: Job, payload: Payload) -> Processed:
                return await offload(pipeline.process, job, payload)

        self.process: Process = process

    async def execute(
        self,
        run: Run,
        endpoints: Endpoints,
        *,
        max_delete_share: float,
        incremental: IncrementalSettings | None = None,
        validators: ValidatorSettings | None = None,
    ) -> RunFinished:
        """Take a ``running`` run to its end; returns it as recorded, for the caller to announce.

        Committed data is announced here (``DataChanged``, so the cache drops
        what changed before anyone hears the run finished); the caller emits
        the ``RunFinished`` after updating what depends on the outcome (the
        circuit breaker), so listeners see a consistent state.
        """
        started = self.clock.monotonic()
        progress = _Progress()
        result: _Result
        try:
            async with timeout(self.clock, self.options.refresh_timeout.total_seconds()):
                deadline = started + self.options.refresh_timeout.total_seconds()
                result = await self._refresh(
                    run, endpoints, max_delete_share, incremental, progress, deadline, validators
                )
        except TimeoutError:
            limit = self.options.refresh_timeout
            result = self._failed(
                progress, RunStatus.TIMED_OUT, f"timed out after {limit}", "timeout"
            )
        except asyncio.CancelledError:
            # Shield the audit write: the run must not be left 'running'.
            outcome = self._failed(progress, RunStatus.CANCELLED, "cancelled", None).outcome
            await asyncio.shield(self.offload(self.store.finish_run, run.id, outcome))
            raise
        except CatalogRefresherError as exc:
            # The audit entry gets one line; the traceback (a worker's included) is for
            # whoever debugs, at debug level.
            log.debug("run %d of %s failed", run.id, run.source, exc_info=exc)
            result = self._failed(progress, RunStatus.FAILED, describe(exc), exc.error_type)
        except Exception as exc:  # a bug must fail one run, never the loop
            log.debug("run %d of %s failed unexpectedly", run.id, run.source, exc_info=exc)
            error = f"unexpected {type(exc).__name__}"
            if str(exc).strip():  # else describe() would only name the type again
                error += f": {describe(exc)}"
            result = self._failed(progress, RunStatus.FAILED, error, "other")

        if result.applied is None:
            # False when the run was finished meanwhile, e.g. an apply on a worker
            # thread committed just before the timeout: the record below tells. A store
            # refusing the write (a full disk) is retried until it takes it.
            await self.outage.record_end(
                run.source,
                run.id,
                lambda: self.offload(self.store.finish_run, run.id, result.outcome),
            )
        recorded = await self.offload(self.store.get_run, run.id)
        assert recorded is not None
        if result.applied is not None:
            applied = result.applied
            self.bus.emit(
                DataChanged(source=run.source, products=applied.products, version=applied.version)
            )
        elif recorded.status is RunStatus.SUCCEEDED:
            # The apply won the race against the timeout (or a cancellation): its data is
            # committed, but which products it changed is lost with the worker's answer.
            version = await self.offload(self.store.data_version, run.source)
            self.bus.emit(DataChanged(source=run.source, products=None, version=version))
        return RunFinished(
            run=recorded, valid=result.valid, duration=self.clock.monotonic() - started
        )

    def _failed(
        self, progress: _Progress, status: RunStatus, error: str, error_type: str | None
    ) -> _Result:
        outcome = RunOutcome(
            status=status,
            finished_at=self.clock.now(),
            attempts=progress.attempts,
            used_backup=progress.used_backup,
            error=error,
            error_type=error_type,
        )
        return _Result(outcome=outcome, valid=0)

    async def _refresh(
        self,
        run: Run,
        endpoints: Endpoints,
        max_delete_share: float,
        incremental: IncrementalSettings | None,
        progress: _Progress,
        deadline: float,
        validators: ValidatorSettings | None = None,
        *,
        dry_run: bool = False,
    ) -> _Result:
        spec = SPECS[run.source]
        assert run.started_at is not None
        window = window_for(spec, self.options, run.started_at.astimezone(UTC).date())
        # Read from the store, shared by the replicas: the last good fetch, whoever made it.
        sync = await self.offload(self.store.sync_state, run.source)
        plan = plan_run(
            incremental,
            sync,
            forced=run.forced,
            now=self.clock.now(),
            unconditional_every=self.options.unconditional_every,
        )
        report_phase("fetching")
        payload = await self._fetch(run, endpoints, window, plan.state, progress, deadline)
        job = Job(
            run_id=run.id,
            source=run.source,
            forced=run.forced,
            window=window,
            max_delete_share=max_delete_share,
            attempts=progress.attempts,
            used_backup=progress.used_backup,
            plan=plan,
            incremental=incremental,
            versions=VersionPolicy(
                kept=self.options.versions_kept, retention=self.options.versions_retention or None
            ),
            validators=validators,
            dry_run=dry_run,
        )
        try:
            processed = await self.process(job, payload)
        finally:
            payload.discard()
        return _Result(
            outcome=processed.outcome,
            valid=processed.valid,
            applied=processed.applied,
            preview=processed.preview,
        )

    async def dry_run(
        self, config: SourceSettings, endpoints: Endpoints, *, force: bool
    ) -> Preview:
        """What a run of ``config``'s source would publish now, as a run that is never
        recorded (``refresh/dry_run.py``); fetch errors and a ``RefreshTimeout`` raise."""
        now, share = self.clock.now(), config.max_delete_share
        run = Run(
            id=0, source=config.id, trigger=Trigger.MANUAL, status=RunStatus.RUNNING,
            forced=force, queued_at=now, started_at=now,
        )  # fmt: skip
        started = self.clock.monotonic()
        limit = self.options.refresh_timeout.total_seconds()
        async with timeout(self.clock, limit):
            result = await self._refresh(
                run,
                endpoints,
                self.options.max_delete_share if share is None else share,
                config.incremental,
                _Progress(),
                started + limit,
                config.validators,
                dry_run=True,
            )
        assert result.preview is not None
        return result.preview

    async def _fetch(
        self,
        run: Run,
        endpoints: Endpoints,
        window: Window | None,
        state: FetchState,
        progress: _Progress,
        deadline: float,
    ) -> Payload:
        """Fetch with retries, never waiting past ``deadline`` (the run's RefreshTimeout);
        when the primary fails, fail over to the backup if any."""
        options = self.options

        def retrying(attempt: int, exc: BaseException) -> None:
            progress.attempts += 1
            self.bus.emit(
                RunRetrying(
                    run=run, attempt=attempt, attempts=options.retry_attempts, error=describe(exc)
                )
            )

        async def fetch_from(source: Source) -> Payload:
            try:
                payload, _ = await with_retries(
                    lambda: source.fetch(window, state),
                    attempts=options.retry_attempts,
                    base_delay=options.retry_base_delay,
                    clock=self.clock,
                    on_retry=retrying,
                    deadline=deadline,
                )
            except BaseException:
                progress.attempts += 1  # the last attempt, which is not retried
                raise
            progress.attempts += 1
            return payload

        try:
            return await fetch_from(endpoints.primary)
        except SourceError as primary_error:
            if endpoints.backup is None:
                raise
            self.bus.emit(FailingOver(run=run, error=describe(primary_error)))
            progress.used_backup = True
            # The validators are the primary's: the backup is another system, asked whole.
            state = FetchState(cursor=state.cursor, cursor_parameter=state.cursor_parameter)
            try:
                return await fetch_from(endpoints.backup)
            except SourceError as backup_error:
                both = SourceError(f"backup failed too: {describe(backup_error)}")
                both.error_type = backup_error.error_type
                raise both from primary_error
