"""What the HTTP API may see and do of the refresh service.

The API depends on this small surface, not on the service's internals: source
status and health for reads, ``refresh`` for operators. ``LocalControl`` serves
it from a service in the same process.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Protocol

from catalog_refresher.clock import Clock, timeout
from catalog_refresher.domain.runs import Run, Trigger
from catalog_refresher.domain.specs import SOURCE_IDS, SPECS
from catalog_refresher.errors import ReloadRefused, StoreError, UnknownSourceError
from catalog_refresher.refresh.dry_run import Preview
from catalog_refresher.refresh.reload import Reloaded, Reloader
from catalog_refresher.refresh.runner import Offload
from catalog_refresher.refresh.service import RefreshService
from catalog_refresher.status import (
    HealthReport,
    SourceStatus,
    health_report,
    ready,
    source_status,
    store_busy,
    store_unreadable,
    with_memory,
    with_refused_write,
    with_store_outage,
)
from catalog_refresher.store.base import Pause, SourceHistory, Store


@dataclass(frozen=True, slots=True)
class Submitted:
    """A refresh request's run as first recorded, and a way to await its end."""

    run: Run
    done: asyncio.Future[Run]


class Control(Protocol):
    async def sources(self) -> list[SourceStatus]:
        """Every one of the ten sources, configured or not, in contract order."""
        ...

    async def health(self) -> HealthReport: ...

    async def ready(self) -> bool: ...

    async def refresh(self, source: str, *, force: bool) -> Submitted:
        """Start a run, or join the one in flight (``RunConflict`` for a forced join).

        Raises ``UnknownSourceError`` and ``SourceNotEnabled``.
        """
        ...

    async def dry_run(self, source: str, *, force: bool) -> Preview:
        """What a run would publish now; nothing is written (``refresh/dry_run.py``)."""
        ...

    async def pause(self, source: str, reason: str | None) -> Pause:
        """Take ``source`` off its schedule, on every replica (``UnknownSourceError``)."""
        ...

    async def resume(self, source: str) -> bool:
        """Put ``source`` back on its schedule; false if it was not paused."""
        ...

    async def reload(self) -> Reloaded:
        """Re-read the configuration; ``ReloadRefused`` says why a bad one is refused."""
        ...


#: Kubernetes gives a probe 1 s by default: health answers within this, saying the store
#: is too busy to read in time (another process holding its write lock) rather than
#: waiting on it.
HEALTH_BUDGET = 0.8


class LocalControl:
    """``Control`` over a ``RefreshService`` in this process."""

    def __init__(
        self,
        service: RefreshService,
        store: Store,
        clock: Clock,
        offload: Offload,
        reloader: Reloader | None = None,
    ) -> None:
        self.service = service
        self.reloader = reloader
        self.store = store
        self.clock = clock
        self.offload = offload
        self._reading: asyncio.Future[_Read] | None = None
        self._ready = False

    async def sources(self) -> list[SourceStatus]:
        read = await self._histories()
        settings, options, now = self.service.settings, self.service.options, self.clock.now()
        refused = self.service.outage.failing()
        statuses = []
        for source in SOURCE_IDS:
            history = read.histories[source]
            configured = settings.sources.get(source)
            statuses.append(
                with_refused_write(
                    source_status(
                        source=source,
                        interval=options.interval(SPECS[source]),
                        enabled=source in self.service.enabled_sources,
                        priority=configured.priority if configured else 0,
                        history=history,
                        circuit_state=self.service.circuit(source),
                        next_run_at=self.service.next_run_at.get(source),
                        service_started_at=self.service.started_at,
                        options=options,
                        now=now,
                        tls_unverified=configured is not None
                        and any(
                            not endpoint.request.tls.verify
                            for endpoint in (configured.primary, configured.backup)
                            if endpoint is not None
                        ),
                        pause=read.pauses.get(source),
                        freshness=configured.freshness if configured else None,
                    ),
                    refused.get(source),
                )
            )
        return statuses

    async def _histories(self) -> _Read:
        """Every source's history, read in one trip off the loop.

        One read at a time: callers that come while it runs share it, so probes
        polling a store that is slow to answer never pile up blocked threads.
        """
        if self._reading is None or self._reading.done():
            self._reading = asyncio.ensure_future(self.offload(self._read_histories))
        return await asyncio.shield(self._reading)

    def _read_histories(self) -> _Read:
        histories = {source: self.store.source_history(source) for source in SOURCE_IDS}
        return _Read(histories, self.store.pauses())

    async def health(self) -> HealthReport:
        """The report of the sources and the refresh, and of the memory when it is limited."""
        return with_memory(await self._health(), self.service.pressure.stats())

    async def _health(self) -> HealthReport:
        failing = self.service.outage.failing()
        try:
            async with timeout(self.clock, HEALTH_BUDGET):
                sources = await self.sources()
        except TimeoutError:
            # Busy, unless the store's writes already fail for want of a connection.
            unreachable = [f.error for f in failing.values() if f.unreachable]
            return store_unreadable(unreachable[0]) if unreachable else store_busy(HEALTH_BUDGET)
        except StoreError as exc:
            return store_unreadable(exc)
        report = health_report(
            sources,
            started_at=self.service.started_at,
            options=self.service.options,
            now=self.clock.now(),
        )
        return with_store_outage(report, failing)

    async def ready(self) -> bool:
        """Ready once every enabled source has data or a finished run; a store too busy
        to answer in time keeps the last answer (a ready replica serves what it has)."""
        try:
            async with timeout(self.clock, HEALTH_BUDGET):
                self._ready = ready(await self.sources())
        except TimeoutError:
            return self._ready
        except StoreError:
            return False
        return self._ready

    async def refresh(self, source: str, *, force: bool) -> Submitted:
        handle = await self.service.submit(source, Trigger.MANUAL, force=force)
        return Submitted(handle.run, handle.done)

    async def dry_run(self, source: str, *, force: bool) -> Preview:
        return await self.service.dry_run(source, force=force)

    async def pause(self, source: str, reason: str | None) -> Pause:
        _known(source)
        return await self.service.pauses.pause(source, reason)

    async def resume(self, source: str) -> bool:
        _known(source)
        return await self.service.pauses.resume(source)

    async def reload(self) -> Reloaded:
        if self.reloader is None:
            raise ReloadRefused("this process was not started from a configuration file")
        return await self.reloader.reload()


def _known(source: str) -> None:
    if source not in SPECS:
        raise UnknownSourceError(source)


@dataclass(frozen=True, slots=True)
class _Read:
    """What one trip to the store reads for ``sources()``."""

    histories: dict[str, SourceHistory]
    pauses: dict[str, Pause]
