"""Serving: the refresh service and the HTTP API in one process, until told to stop.

Shutdown order (contract 5b): stop scheduling, give in-flight runs the grace
period to commit, cancel the rest, then close the API and the connections.
The API keeps answering during the grace period, so probes see the service
draining rather than gone.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging

import uvicorn

from catalog_refresher.app import Application
from catalog_refresher.errors import ServeError

log = logging.getLogger("catalog_refresher")


async def serve(application: Application, stop: asyncio.Event) -> None:
    """Run the service and its API until ``stop`` is set (or the API server ends)."""
    settings = application.settings
    server = uvicorn.Server(
        uvicorn.Config(
            application.api,
            host=settings.api.host,
            port=settings.api.port,
            log_level="warning",
            access_log=False,
            lifespan="off",
            # Our own handlers decide when to stop; see cli._serve.
            timeout_graceful_shutdown=5,
        )
    )
    # uvicorn installs its own SIGINT/SIGTERM handlers while it serves and re-raises
    # the signal when it returns; either way ``stop`` ends up set.
    api = asyncio.create_task(_serve_api(server), name="api")
    await application.start()
    # Everything allocated so far (the imported libraries, the app) lives as long
    # as the process: keep the collector's full passes from walking it on every
    # cycle, which showed up as tens of milliseconds of read latency.
    gc.collect()
    gc.freeze()
    log.info(
        "Serving the API on http://%s:%d",
        settings.api.host,
        settings.api.port,
        extra={"source": None, "run_id": None},
    )
    stopping = asyncio.create_task(stop.wait())
    try:
        await asyncio.wait([api, stopping], return_when=asyncio.FIRST_COMPLETED)
    finally:
        await application.service.stop()
        server.should_exit = True
        with contextlib.suppress(asyncio.CancelledError):
            await api
        stopping.cancel()
    if api.done() and (error := api.exception()) is not None:
        raise error


async def _serve_api(server: uvicorn.Server) -> None:
    try:
        await server.serve()
    except SystemExit as exc:  # uvicorn exits this way when it cannot bind
        config = server.config
        raise ServeError(f"cannot serve the API on {config.host}:{config.port}") from exc
