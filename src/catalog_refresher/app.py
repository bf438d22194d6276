"""The composition root: settings in, a wired service out.

This is the only place that knows every part; each part knows only the
protocols it is given (``Store``, ``Source``, ``Clock``).
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import itertools
import logging
import shutil
import tempfile
from collections.abc import Callable, Collection
from dataclasses import dataclass
from datetime import date
from pathlib import Path

import httpx
from fastapi import FastAPI

from catalog_refresher.api.app import create_app
from catalog_refresher.catalog import Catalog
from catalog_refresher.clock import Clock, SystemClock
from catalog_refresher.config.settings import Settings, reveal
from catalog_refresher.control import LocalControl
from catalog_refresher.domain.specs import SOURCE_IDS, SPECS
from catalog_refresher.errors import StoreError
from catalog_refresher.observe.alerts import WebhookNotifier
from catalog_refresher.observe.logs import RunLog
from catalog_refresher.observe.metrics import Metrics
from catalog_refresher.refresh.events import EventBus
from catalog_refresher.refresh.memory import process_tree_rss
from catalog_refresher.refresh.reload import Reloader
from catalog_refresher.refresh.runner import Endpoints, Offload
from catalog_refresher.refresh.service import RefreshService
from catalog_refresher.refresh.workers import WorkerPool
from catalog_refresher.sources.demo import DemoWorld
from catalog_refresher.sources.http import build_client, open_source
from catalog_refresher.sources.http_client import HttpClients
from catalog_refresher.store.base import Store
from catalog_refresher.store.open import open_store
from catalog_refresher.store.postgres import PostgresStore

log = logging.getLogger("catalog_refresher")

#: How often a replica reads what its peers changed; bounds how stale its cache can be.
FOLLOW_PEERS_EVERY = 1.0
#: How often a replica re-reads its peers' circuits (ten small queries each time).
FOLLOW_PEER_CIRCUITS_EVERY = 5


@dataclass
class Application:
    settings: Settings
    store: Store
    catalog: Catalog
    service: RefreshService
    bus: EventBus
    client: httpx.AsyncClient
    metrics: Metrics
    notifier: WebhookNotifier
    api: FastAPI
    pool: WorkerPool | None = None
    spool: Path | None = None
    clients: HttpClients | None = None
    """The clients of endpoints with their own TLS or proxy settings."""
    reloader: Reloader | None = None
    _peers: asyncio.Task[None] | None = None

    @classmethod
    def build(
        cls,
        settings: Settings,
        *,
        clock: Clock | None = None,
        world: DemoWorld | None = None,
        client: httpx.AsyncClient | None = None,
        load: Callable[[], Settings] | None = None,
    ) -> Application:
        """``load`` reads the configuration file again, as at start: with it the
        service reloads on ``POST /api/config/reload`` (and SIGHUP, ``cli/serve.py``)."""
        clock = clock or SystemClock()
        store = open_store(reveal(settings.store.url), lease=settings.store.lease)
        catalog = Catalog(store, max_size=settings.cache.max_size)
        bus = EventBus()
        client = client or build_client()
        if world is None and any(s.primary.type == "demo" for s in settings.sources.values()):
            world = DemoWorld(clock_today=lambda: _today(clock))
        workers = settings.refresh.worker_processes
        pool = WorkerPool(reveal(settings.store.url), workers) if workers else None
        # With worker processes, HTTP bodies are spooled to files the workers read.
        spool = Path(tempfile.mkdtemp(prefix="catalog-refresher-")) if pool else None
        clients = HttpClients(client)

        def open_endpoints(settings: Settings, sources: Collection[str]) -> dict[str, Endpoints]:
            """The endpoints of ``sources`` as ``settings`` configure them."""
            opened = {}
            for source_id in sources:
                config = settings.sources[source_id]
                key = f"Sources:{config.spec.config_key}"
                opened[source_id] = Endpoints(
                    open_source(
                        source_id,
                        config.primary,
                        clients.for_endpoint(config.primary, key),
                        world=world,
                        spool=spool,
                        clock=clock,
                    ),
                    open_source(
                        source_id,
                        config.backup,
                        clients.for_endpoint(config.backup, f"{key}:Backup"),
                        world=world,
                        spool=spool,
                        clock=clock,
                    )
                    if config.backup
                    else None,
                )
            return opened

        endpoints = open_endpoints(settings, list(settings.sources))
        offload: Offload = asyncio.to_thread
        # Replicas sharing PostgreSQL agree through it on who runs what (contract 7).
        coordinator = store.coordinator if isinstance(store, PostgresStore) else None
        service = RefreshService(
            settings=settings,
            store=store,
            clock=clock,
            endpoints=endpoints,
            bus=bus,
            offload=offload,
            process=pool,
            coordinator=coordinator,
            rss_probe=process_tree_rss() if settings.repository.memory_limit_mb else None,
        )
        metrics = Metrics.for_service(service, catalog)
        notifier = WebhookNotifier(settings.alerts, client, clock, circuit=service.circuit)
        # Everything that reacts to runs, told in this order: the cache drops what a
        # run changed (DataChanged) before anyone hears that the run finished.
        for observer in (RunLog(), catalog, metrics, notifier):
            bus.subscribe(observer)
        reloader = None
        if load is not None:

            def on_applied(new: Settings) -> None:
                context = api.state.context
                api.state.context = dataclasses.replace(context, settings=new)
                metrics.intervals = {  # what the staleness alert divides by
                    source: new.repository.interval(SPECS[source])
                    for source in service.enabled_sources
                }

            reloader = Reloader(service, load, open_endpoints, on_applied)
        api = create_app(
            control=LocalControl(service, store, clock, offload, reloader),
            catalog=catalog,
            store=store,
            settings=settings,
            clock=clock,
            offload=offload,
            metrics=metrics.render,
        )
        return cls(
            settings,
            store,
            catalog,
            service,
            bus,
            client,
            metrics,
            notifier,
            api,
            pool,
            spool,
            clients,
            reloader,
        )

    async def start(self) -> None:
        """Recover from the audit log, then start the schedules and the notifier."""
        await self.service.prepare()
        histories = {
            source: await asyncio.to_thread(self.store.source_history, source)
            for source in SOURCE_IDS
        }
        last_success = {source: h.last_success_at for source, h in histories.items()}
        self.metrics.load_last_success(last_success)
        self.catalog.load_refreshed(last_success)
        self.notifier.load_failing(s for s, h in histories.items() if h.consecutive_failures)
        self.notifier.start()
        self.service.start()
        if isinstance(self.store, PostgresStore):
            self.catalog.follow_from(await asyncio.to_thread(self.store.latest_change))
            self._peers = asyncio.create_task(self._follow_peers(self.store), name="follow-peers")

    async def _follow_peers(self, store: PostgresStore) -> None:
        """Keep this replica's cache in step with what its peers write (contract 7)."""
        for tick in itertools.count(1):
            await self.service.clock.sleep(FOLLOW_PEERS_EVERY)
            try:
                last_success = await asyncio.to_thread(store.last_successes)
                await asyncio.to_thread(self.catalog.follow_changes)
                if tick % FOLLOW_PEER_CIRCUITS_EVERY == 0:
                    await self.service.follow_peer_circuits()
            except StoreError as exc:  # one line; the traceback for whoever debugs
                log.debug("cannot read peers' changes", exc_info=True)
                log.warning("cannot read peers' changes (%s); retrying", exc)
                continue
            self.catalog.load_refreshed(last_success)
            self.metrics.load_last_success(last_success)

    async def aclose(self) -> None:
        if self._peers is not None:
            self._peers.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._peers
        if self.pool is not None:
            await asyncio.to_thread(self.pool.shutdown)
        await self.notifier.aclose()
        if self.clients is not None:
            await self.clients.aclose()
        await self.client.aclose()
        await self.store.aclose()
        self.store.close()
        if self.spool is not None:
            shutil.rmtree(self.spool, ignore_errors=True)


def _today(clock: Clock) -> date:
    return clock.now().date()
