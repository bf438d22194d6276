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
import time
from collections.abc import Callable
from email.utils import formatdate

import uvicorn
from uvicorn.server import ServerState

from catalog_refresher.app import Application
from catalog_refresher.errors import ServeError

log = logging.getLogger("catalog_refresher")


async def serve(application: Application, stop: asyncio.Event) -> None:
    """Run the service and its API until ``stop`` is set (or the API server ends)."""
    settings = application.settings
    server = QuietServer(
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


class _DatedState(ServerState):
    """uvicorn's shared state, its ``Date`` header made when a response reads it."""

    def __init__(self, config: uvicorn.Config, *, wall: Callable[[], float] = time.time) -> None:
        """``wall``: seconds since the epoch (the date a response carries)."""
        self._wall = wall
        self._extra = list(config.encoded_headers)
        self._dated = config.date_header
        self._second = -1
        self._headers: list[tuple[bytes, bytes]] = self._extra
        super().__init__()

    @property  # a plain attribute in uvicorn
    def default_headers(self) -> list[tuple[bytes, bytes]]:
        if self._dated and (now := int(self._wall())) != self._second:
            self._second = now
            self._headers = [(b"date", formatdate(now, usegmt=True).encode()), *self._extra]
        return self._headers

    @default_headers.setter
    def default_headers(self, value: list[tuple[bytes, bytes]]) -> None:
        """uvicorn's ``__init__`` sets it empty; nothing else does without the tick."""


class QuietServer(uvicorn.Server):
    """``uvicorn.Server`` without its 100 ms tick: an idle service wakes for nothing.

    uvicorn's main loop wakes ten times a second to refresh the ``Date`` header and
    to see whether ``should_exit`` was set. On an idle service those wakes were
    nearly all of its CPU (0.2-0.7% of a core, issue 11). Here the date is made
    when a response asks for it (at most once a second), and setting
    ``should_exit`` (our ``serve``, or uvicorn's own signal handler) wakes the main
    loop through ``call_soon_threadsafe``, which is safe from a signal handler too.
    Not supported (asserted): ``limit_max_requests`` and ``callback_notify``, which
    only the tick checked; the service sets neither.
    """

    def __init__(self, config: uvicorn.Config) -> None:
        assert config.limit_max_requests is None
        assert config.callback_notify is None
        self._exit_flag = False
        self._exit_loop: asyncio.AbstractEventLoop | None = None
        self._exit = asyncio.Event()
        super().__init__(config)
        self.server_state = _DatedState(config)

    @property  # a plain attribute in uvicorn
    def should_exit(self) -> bool:
        return self._exit_flag

    @should_exit.setter
    def should_exit(self, value: bool) -> None:
        self._exit_flag = value
        if value and self._exit_loop is not None and not self._exit_loop.is_closed():
            self._exit_loop.call_soon_threadsafe(self._exit.set)

    async def main_loop(self) -> None:
        self._exit_loop = asyncio.get_running_loop()  # before the check: no set is missed
        if not self._exit_flag:
            await self._exit.wait()
