"""Retention (contract 1): history past its window is purged at start and hourly,
whether or not the sources are healthy (retention is a compliance rule)."""

from __future__ import annotations

from datetime import UTC, timedelta

from catalog_refresher.clock import Clock
from catalog_refresher.config.settings import RepositoryOptions
from catalog_refresher.domain.specs import SPECS
from catalog_refresher.refresh.events import EventBus, Purged
from catalog_refresher.refresh.runner import Offload, window_for
from catalog_refresher.store.base import Store

#: How often retention is enforced; the contract asks for at least daily.
HOUSEKEEPING_EVERY = timedelta(hours=1)
#: How long the change feed is kept for caches that follow it from other processes.
CHANGE_FEED_KEPT = timedelta(days=1)


async def purge_expired(
    store: Store, options: RepositoryOptions, clock: Clock, offload: Offload, bus: EventBus
) -> int:
    """Delete history rows older than each history source's window; how many in all."""
    total = 0
    today = clock.now().astimezone(UTC).date()
    for spec in SPECS.values():
        window = window_for(spec, options, today)
        if window is None:
            continue
        rows = await offload(store.purge_before, spec.id, window.date_from, at=clock.now())
        if rows:
            bus.emit(Purged(source=spec.id, rows=rows))
        total += rows
    return total
