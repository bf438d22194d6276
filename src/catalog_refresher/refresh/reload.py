"""Live configuration reload (contract 8): SIGHUP and ``POST /api/config/reload``.

The file is read again as at start (same path, environment and variables) and
validated whole before anything changes: an invalid one is refused naming its key,
and the running configuration stays. A valid one that changes what only a restart
can change (``RESTART_ONLY``: the store, the API's address and token, the worker
processes, the cache, logging, alerts, ``EnableMetrics``) is refused saying so.
Otherwise it takes effect at once: intervals, sources added, removed, enabled or
disabled, priorities, limits, headers and secrets. A source whose endpoints changed
gets new ones (its next run uses them; a run in flight keeps the old); a changed
interval moves the next slot to the last start plus the new interval, with no run
twice and no slot missed (``RefreshService.reschedule``). Every reload, applied or
refused, is a log line (``ConfigReloaded``) and a row of ``config_reloads``.
"""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass
from typing import NoReturn

from catalog_refresher.config.settings import Settings
from catalog_refresher.config.values import format_timespan
from catalog_refresher.domain.specs import SPECS
from catalog_refresher.errors import CatalogRefresherError, ConfigError, ReloadRefused, describe
from catalog_refresher.refresh.events import ConfigReloaded
from catalog_refresher.refresh.runner import Endpoints
from catalog_refresher.refresh.service import RefreshService

#: The sections (and options) a running service cannot change: a reload that changes
#: one is refused, asking for a restart.
RESTART_ONLY = ("Store", "Api", "Refresh", "Cache", "Logging", "Alerts")

#: Opens the endpoints of the given sources under new settings (``app.py``).
OpenEndpoints = Callable[[Settings, Collection[str]], Mapping[str, Endpoints]]


@dataclass(frozen=True, slots=True)
class Reloaded:
    """An applied reload: its id in ``config_reloads`` and what it changed."""

    id: int
    changes: tuple[str, ...]


def restart_needed(old: Settings, new: Settings) -> list[str]:
    """What ``new`` changes that only a restart can, by the file's names."""
    needed = [
        name for name in RESTART_ONLY if getattr(old, name.lower()) != getattr(new, name.lower())
    ]
    if old.repository.enable_metrics != new.repository.enable_metrics:
        needed.append("CatalogRepository:EnableMetrics")
    return needed


def changes(old: Settings, new: Settings) -> list[str]:
    """What ``new`` changes, one line per source or option (secrets never shown)."""
    found = []
    for spec in SPECS.values():
        name = spec.config_key
        before, after = old.sources.get(spec.id), new.sources.get(spec.id)
        if before is None and after is not None:
            found.append(f"Sources:{name} added")
        elif before is not None and after is None:
            found.append(f"Sources:{name} removed")
        elif before != after:
            found.append(f"Sources:{name} changed")
        was, now = old.repository.interval(spec), new.repository.interval(spec)
        if was != now:
            found.append(f"{spec.interval_option} {format_timespan(was)} -> {format_timespan(now)}")
    plain_old = dataclasses.replace(old.repository, intervals=new.repository.intervals)
    for option in dataclasses.fields(plain_old):
        if option.name == "intervals":
            continue
        if getattr(plain_old, option.name) != getattr(new.repository, option.name):
            found.append(f"CatalogRepository:{option.name} changed")
    return found


async def _apply(
    service: RefreshService, new: Settings, endpoints: Mapping[str, Endpoints]
) -> None:
    """Runs from now on take ``new``; the sources whose schedule changed start again."""
    old = service.settings
    service.settings, service.options, service.endpoints = new, new.repository, endpoints
    service.runner.options = new.repository
    service.slots.resize(new.repository.max_concurrent_refreshes)
    await service.follow_peer_circuits()  # the breakers under the new threshold
    service.restart_loops(
        source
        for source in SPECS
        if old.enabled(source) != new.enabled(source)
        or old.repository.intervals[source] != new.repository.intervals[source]
    )


class Reloader:
    """Reads the configuration again and applies it to ``service``, or refuses it."""

    def __init__(
        self,
        service: RefreshService,
        load: Callable[[], Settings],
        open_endpoints: OpenEndpoints,
        on_applied: Callable[[Settings], None] | None = None,
    ) -> None:
        """``load`` reads the file as at start; ``on_applied`` tells the rest of the
        application (the API's view of the settings)."""
        self.service = service
        self.load = load
        self.open_endpoints = open_endpoints
        self.on_applied = on_applied
        self._lock = asyncio.Lock()

    async def reload(self) -> Reloaded:
        """Apply the file as it is now; ``ReloadRefused`` with the reason if not."""
        async with self._lock:  # two SIGHUPs at once apply one after the other
            service = self.service
            old = service.settings
            try:
                new = await service.offload(self.load)
            except ConfigError as exc:
                await self._refused(f"invalid configuration: {describe(exc)}")
            needed = restart_needed(old, new)
            if needed:
                await self._refused(f"needs a restart to change {', '.join(needed)}")
            changed = changes(old, new)
            renewed = [
                source
                for source, config in new.sources.items()
                if old.sources.get(source) != config
            ]
            try:
                endpoints = dict(service.endpoints)
                for source in set(endpoints) - set(new.sources):
                    del endpoints[source]
                endpoints.update(self.open_endpoints(new, renewed))
            except CatalogRefresherError as exc:
                await self._refused(f"cannot open the new endpoints: {describe(exc)}")
            await _apply(service, new, endpoints)
            if self.on_applied is not None:
                self.on_applied(new)
            detail = "; ".join(changed) or "nothing changed"
            at = service.clock.now()
            reload_id = await service.offload(
                service.store.record_reload, at=at, outcome="applied", detail=detail
            )
            service.bus.emit(ConfigReloaded(changes=tuple(changed)))
            return Reloaded(id=reload_id, changes=tuple(changed))

    async def _refused(self, reason: str) -> NoReturn:
        """Audit and announce a refusal, then raise it (``NoReturn`` in effect)."""
        service = self.service
        await service.offload(
            service.store.record_reload, at=service.clock.now(), outcome="refused", detail=reason
        )
        service.bus.emit(ConfigReloaded(error=reason))
        raise ReloadRefused(reason, restart=reason.startswith("needs a restart"))
