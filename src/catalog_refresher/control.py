"""What the HTTP API may see and do of the refresh service.

The API depends on this small surface, not on the service's internals: source
status and health for reads, ``refresh`` for operators. ``LocalControl`` serves
it from a service in the same process.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Protocol

from catalog_refresher.clock import Clock
from catalog_refresher.domain.runs import Run, Trigger
from catalog_refresher.domain.specs import SOURCE_IDS, SPECS
from catalog_refresher.errors import StoreError
from catalog_refresher.refresh.runner import Offload
from catalog_refresher.refresh.service import RefreshService
from catalog_refresher.status import (
    HealthReport,
    SourceStatus,
    health_report,
    ready,
    source_status,
    store_unreadable,
)
from catalog_refresher.store.base import Store


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


class LocalControl:
    """``Control`` over a ``RefreshService`` in this process."""

    def __init__(
        self, service: RefreshService, store: Store, clock: Clock, offload: Offload
    ) -> None:
        self.service = service
        self.store = store
        self.clock = clock
        self.offload = offload

    async def sources(self) -> list[SourceStatus]:
        settings, options, now = self.service.settings, self.service.options, self.clock.now()
        statuses = []
        for source in SOURCE_IDS:
            history = await self.offload(self.store.source_history, source)
            configured = settings.sources.get(source)
            statuses.append(
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
                )
            )
        return statuses

    async def health(self) -> HealthReport:
        try:
            sources = await self.sources()
        except StoreError as exc:
            return store_unreadable(exc)
        return health_report(
            sources,
            started_at=self.service.started_at,
            options=self.service.options,
            now=self.clock.now(),
        )

    async def ready(self) -> bool:
        try:
            return ready(await self.sources())
        except StoreError:
            return False

    async def refresh(self, source: str, *, force: bool) -> Submitted:
        handle = await self.service.submit(source, Trigger.MANUAL, force=force)
        return Submitted(handle.run, handle.done)
