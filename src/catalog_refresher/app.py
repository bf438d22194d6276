"""The composition root: settings in, a wired service out.

This is the only place that knows every part; each part knows only the
protocols it is given (``Store``, ``Source``, ``Clock``).
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from datetime import date

import httpx

from catalog_refresher.catalog import Catalog
from catalog_refresher.clock import Clock, SystemClock
from catalog_refresher.errors import ConfigError
from catalog_refresher.observability import RunLog
from catalog_refresher.refresh.events import EventBus
from catalog_refresher.refresh.runner import Endpoints
from catalog_refresher.refresh.service import RefreshService
from catalog_refresher.settings import Settings, reveal
from catalog_refresher.sources.demo import DemoWorld
from catalog_refresher.sources.http import build_client, open_source
from catalog_refresher.store.base import Store
from catalog_refresher.store.sqlite import SqliteStore, sqlite_path


def open_store(settings: Settings) -> Store:
    """The store named by ``Store:Url``, migrated."""
    url = reveal(settings.store.url)
    if url.startswith("sqlite:///"):
        store = SqliteStore(sqlite_path(url))
    else:
        raise ConfigError("Store:Url", "only sqlite:/// stores are available in this version")
    store.migrate()
    return store


@dataclass
class Application:
    settings: Settings
    store: Store
    catalog: Catalog
    service: RefreshService
    bus: EventBus
    client: httpx.AsyncClient

    @classmethod
    def build(
        cls,
        settings: Settings,
        *,
        clock: Clock | None = None,
        world: DemoWorld | None = None,
        client: httpx.AsyncClient | None = None,
    ) -> Application:
        clock = clock or SystemClock()
        store = open_store(settings)
        catalog = Catalog(store)
        bus = EventBus()
        bus.subscribe(RunLog())
        bus.subscribe(catalog.on_event)
        client = client or build_client()
        if world is None and any(s.primary.type == "demo" for s in settings.sources.values()):
            world = DemoWorld(clock_today=lambda: _today(clock))
        endpoints = {
            source_id: Endpoints(
                open_source(source_id, config.primary, client, world=world),
                open_source(source_id, config.backup, client, world=world)
                if config.backup
                else None,
            )
            for source_id, config in settings.sources.items()
        }
        service = RefreshService(
            settings=settings,
            store=store,
            clock=clock,
            endpoints=endpoints,
            bus=bus,
            offload=asyncio.to_thread,
            on_applied=catalog.on_applied,
        )
        return cls(settings, store, catalog, service, bus, client)

    async def aclose(self) -> None:
        await self.client.aclose()
        self.store.close()


def _today(clock: Clock) -> date:
    return clock.now().date()
