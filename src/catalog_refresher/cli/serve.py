"""Commands that serve: ``run`` (the service), ``demo`` (on simulated systems), ``simulate``."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import threading
from collections.abc import Callable, Coroutine
from dataclasses import replace
from types import MappingProxyType
from typing import Annotated, Any

import typer

from catalog_refresher import config
from catalog_refresher.app import Application
from catalog_refresher.cli.common import (
    ConfigOption,
    EnvironmentOption,
    app,
    fail,
    in_process,
    load_settings,
    setup_command_logging,
)
from catalog_refresher.clock import SystemClock
from catalog_refresher.config.settings import (
    EndpointSettings,
    EndpointType,
    Settings,
    SourceSettings,
)
from catalog_refresher.domain.runs import RunStatus
from catalog_refresher.domain.specs import SPECS
from catalog_refresher.errors import CatalogRefresherError, describe
from catalog_refresher.observe.logs import setup_logging
from catalog_refresher.server import serve
from catalog_refresher.simulator import Faults, Simulator, serving
from catalog_refresher.sources.demo import DemoWorld


@app.command()
def run(config_path: ConfigOption = None, environment: EnvironmentOption = None) -> None:
    """Run the service in the foreground until SIGINT or SIGTERM; SIGHUP reloads the file."""
    settings = load_settings(config_path, environment)
    setup_command_logging(settings)

    def load() -> Settings:  # a reload reads the file as at start (SIGHUP, the API)
        return config.load(config_path, environment=environment, environ=os.environ)

    _run_service(_serve(settings, world=None, load=load))


@app.command()
def demo(
    config_path: ConfigOption = None,
    environment: EnvironmentOption = None,
    products: Annotated[int, typer.Option(help="Products in the simulated systems.")] = 3000,
    failure_rate: Annotated[float, typer.Option(help="Chance that a fetch fails.")] = 0.05,
    duration: Annotated[
        float | None, typer.Option(help="Stop after this many seconds (default: run until signal).")
    ] = None,
    once: Annotated[
        bool, typer.Option("--once", help="Refresh every source once, then exit.")
    ] = False,
) -> None:
    """Run the service on simulated external systems and a local SQLite file."""
    settings = load_settings(config_path, environment)
    demo_endpoint = EndpointSettings(type=EndpointType.DEMO)
    settings = replace(
        settings,
        sources=MappingProxyType({s: SourceSettings(id=s, primary=demo_endpoint) for s in SPECS}),
    )
    setup_command_logging(settings)
    clock = SystemClock()
    world = DemoWorld(
        products=products, failure_rate=failure_rate, clock_today=lambda: clock.now().date()
    )
    if once:
        failed = asyncio.run(_refresh_all(settings, world))
        if failed:
            fail(f"not refreshed: {', '.join(failed)}", code=1)
        return
    _run_service(_serve(settings, world=world, duration=duration))


async def _refresh_all(settings: Settings, world: DemoWorld) -> list[str]:
    """Refresh every source once, in parallel; the ones that did not succeed."""
    application = Application.build(in_process(settings), world=world)
    try:
        await application.service.prepare()
        runs = await asyncio.gather(*(application.service.refresh(s) for s in settings.sources))
        return [run.source for run in runs if run.status is not RunStatus.SUCCEEDED]
    finally:
        await application.aclose()


def _run_service(main: Coroutine[Any, Any, None]) -> None:
    """Serve until stopped; a store or port it cannot use is one line and exit 1."""
    try:
        _run_fast(main)
    except CatalogRefresherError as exc:
        fail(f"cannot run: {describe(exc)}", code=1)


def _run_fast(main: Coroutine[Any, Any, None]) -> None:
    """``asyncio.run`` on uvloop where it is installed: the API answers faster on it."""
    try:
        import uvloop
    except ImportError:
        asyncio.run(main)
    else:
        uvloop.run(main)


async def _serve(
    settings: Settings,
    *,
    world: DemoWorld | None,
    duration: float | None = None,
    load: Callable[[], Settings] | None = None,
) -> None:
    application = Application.build(settings, world=world, load=load)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    reloads: set[asyncio.Task[object]] = set()
    if application.reloader is not None:
        reloader = application.reloader

        def reload() -> None:  # a refused reload is logged and audited by the reloader
            task = asyncio.ensure_future(_reload_quietly(reloader.reload()))
            reloads.add(task)
            task.add_done_callback(reloads.discard)

        loop.add_signal_handler(signal.SIGHUP, reload)
    if duration is not None:
        loop.call_later(duration, stop.set)
    try:
        await serve(application, stop)
    finally:
        await application.aclose()


async def _reload_quietly(reload: Coroutine[Any, Any, object]) -> object:
    with contextlib.suppress(CatalogRefresherError):
        return await reload
    return None


@app.command()
def simulate(
    host: Annotated[str, typer.Option(help="Address to serve on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(min=0, max=65535, help="Port (0: any free one).")] = 8100,
    products: Annotated[int, typer.Option(min=1, help="Products in the simulated systems.")] = 3000,
    seed: Annotated[int, typer.Option(help="Seeds the data and the faults.")] = 7,
    error_rate: Annotated[float, typer.Option(help="Chance of a 503 per request.")] = 0.05,
    latency: Annotated[float, typer.Option(help="Seconds before every answer.")] = 0.0,
    trickle_rate: Annotated[
        float, typer.Option(help="Chance that a body is dribbled out slowly.")
    ] = 0.0,
    trickle_seconds: Annotated[float, typer.Option(help="How long a dribbled body takes.")] = 5.0,
    malformed_rate: Annotated[float, typer.Option(help="Chance of JSON cut short.")] = 0.0,
    empty_rate: Annotated[float, typer.Option(help="Chance of an empty array.")] = 0.0,
) -> None:
    """Serve the ten external systems over HTTP, simulated, until SIGINT or SIGTERM."""
    try:
        faults = Faults(
            error_rate=error_rate,
            latency=latency,
            trickle_rate=trickle_rate,
            trickle_seconds=trickle_seconds,
            malformed_rate=malformed_rate,
            empty_rate=empty_rate,
        )
    except ValueError as exc:
        fail(str(exc), code=2)
    setup_logging()
    clock = SystemClock()
    world = DemoWorld(
        products=products,
        seed=seed,
        failure_rate=0.0,  # the simulator's faults stand in for the world's own
        clock_today=lambda: clock.now().date(),
        clock_now=clock.now,
    )
    simulator = Simulator(world, faults, seed=seed, clock=clock)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    # Started in the background by `make run`, SIGINT arrives ignored: Ctrl-C is then
    # the service's to handle, and the simulator keeps answering until it has drained.
    if signal.getsignal(signal.SIGINT) is not signal.SIG_IGN:
        signal.signal(signal.SIGINT, lambda *_: stop.set())
    try:
        with serving(simulator, host, port):
            stop.wait()
    except OSError as exc:
        fail(f"cannot serve on {host}:{port}: {exc}", code=1)
