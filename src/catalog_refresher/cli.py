"""The command line (contract sections 2 and 8): run, demo, simulate, refresh, check-config;
status, pause, resume, versions, diff, pin, unpin.

Exit codes: 0 success; 1 a refresh that did not succeed; 2 a bad configuration
or argument, with a message naming what is wrong.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import threading
from collections.abc import Callable, Coroutine
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from types import MappingProxyType
from typing import Annotated, Any, NoReturn, TypeVar

import typer
from rich.console import Console

from catalog_refresher import config
from catalog_refresher.api.versions import diff_out, versions_out
from catalog_refresher.app import Application
from catalog_refresher.clock import SystemClock
from catalog_refresher.config.settings import (
    EndpointSettings,
    EndpointType,
    RefreshSettings,
    Secret,
    Settings,
    SourceSettings,
    reveal,
)
from catalog_refresher.console.client import ServiceClient, service_url
from catalog_refresher.console.progress import terminal_progress
from catalog_refresher.console.tables import STATUS_COLUMNS, plain, status_rows, status_table
from catalog_refresher.domain.runs import Run, RunStatus
from catalog_refresher.domain.specs import SPECS, SPECS_BY_CONFIG_KEY
from catalog_refresher.errors import CatalogRefresherError, ConfigError, describe
from catalog_refresher.observe.logs import setup_logging
from catalog_refresher.refresh.dry_run import Preview
from catalog_refresher.server import serve
from catalog_refresher.simulator import Faults, Simulator, serving
from catalog_refresher.sources.demo import DemoWorld
from catalog_refresher.store.base import Store
from catalog_refresher.store.open import open_store

T = TypeVar("T")

app = typer.Typer(
    help="Keeps a product catalog current from ten external systems.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)

ConfigOption = Annotated[
    Path | None, typer.Option("--config", "-c", help="appsettings-style JSON file.")
]
EnvironmentOption = Annotated[
    str | None,
    typer.Option(
        "--environment",
        "-e",
        help="Also read <stem>.<ENVIRONMENT>.json (default: $CATALOG_REFRESHER_ENVIRONMENT).",
    ),
]


def _settings(path: Path | None, environment: str | None) -> Settings:
    try:
        return config.load(path, environment=environment, environ=os.environ)
    except ConfigError as exc:
        _fail(f"configuration error: {describe(exc)}", code=2)


def _fail(message: str, *, code: int) -> NoReturn:
    typer.echo(message, err=True)
    raise typer.Exit(code)


def _setup_logging(settings: Settings) -> None:
    setup_logging(
        level=settings.logging.level,
        format=settings.logging.format,
        secrets=_secret_values(settings),
    )


def _secret_values(settings: Settings) -> list[str]:
    values: list[str] = []
    for source in settings.sources.values():
        for endpoint in (source.primary, source.backup):
            if endpoint is not None:
                values += [h.value for h in endpoint.headers.values() if isinstance(h, Secret)]
                if endpoint.url is not None and endpoint.url_reference is not None:
                    values.append(endpoint.url)
    for maybe in (settings.api.admin_token, settings.store.url):
        if isinstance(maybe, Secret):
            values.append(maybe.value)
    return values


@app.command()
def run(config_path: ConfigOption = None, environment: EnvironmentOption = None) -> None:
    """Run the service in the foreground until SIGINT or SIGTERM; SIGHUP reloads the file."""
    settings = _settings(config_path, environment)
    _setup_logging(settings)

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
    settings = _settings(config_path, environment)
    demo_endpoint = EndpointSettings(type=EndpointType.DEMO)
    settings = replace(
        settings,
        sources=MappingProxyType({s: SourceSettings(id=s, primary=demo_endpoint) for s in SPECS}),
    )
    _setup_logging(settings)
    clock = SystemClock()
    world = DemoWorld(
        products=products, failure_rate=failure_rate, clock_today=lambda: clock.now().date()
    )
    if once:
        failed = asyncio.run(_refresh_all(settings, world))
        if failed:
            _fail(f"not refreshed: {', '.join(failed)}", code=1)
        return
    _run_service(_serve(settings, world=world, duration=duration))


async def _refresh_all(settings: Settings, world: DemoWorld) -> list[str]:
    """Refresh every source once, in parallel; the ones that did not succeed."""
    application = Application.build(_in_process(settings), world=world)
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
        _fail(f"cannot run: {describe(exc)}", code=1)


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
        _fail(str(exc), code=2)
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
        _fail(f"cannot serve on {host}:{port}: {exc}", code=1)


@app.command()
def refresh(
    source: Annotated[str, typer.Argument(help="Source id (erp_stock) or config key (ErpStock).")],
    config_path: ConfigOption = None,
    environment: EnvironmentOption = None,
    force: Annotated[bool, typer.Option(help="Override the publish guard.")] = False,
    full: Annotated[
        bool, typer.Option(help="Forget the incremental cursor first: a full, unconditional run.")
    ] = False,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Fetch, diff, guard and validate; publish nothing.")
    ] = False,
) -> None:
    """Run one refresh now; exit 0 on success, non-zero with a one-line reason."""
    source_id = _source_id(source)
    settings = _settings(config_path, environment)
    _setup_logging(settings)
    if source_id not in settings.sources:
        _fail(f"{source_id}: not configured in Sources", code=2)
    if dry_run:
        _dry_run(settings, source_id, force)
        return
    try:
        with terminal_progress(source_id):
            run = asyncio.run(_refresh_once(settings, source_id, force, full=full))
    except CatalogRefresherError as exc:
        _fail(f"{source_id}: {describe(exc)}", code=1)
    c = run.counts
    summary = (
        f"{source_id}: {run.status.value} (run {run.id}): fetched {c.fetched}, inserted"
        f" {c.inserted}, updated {c.updated}, deleted {c.deleted}, invalid {c.invalid}"
    )
    if run.status is not RunStatus.SUCCEEDED:
        _fail(f"{summary}; {run.error}", code=1)
    typer.echo(summary)


async def _refresh_once(
    settings: Settings, source_id: str, force: bool, *, full: bool = False
) -> Run:
    application = Application.build(_in_process(settings))
    try:
        await application.service.prepare(recover=False)
        if full:
            await asyncio.to_thread(application.store.reset_sync, source_id)
        return await application.service.refresh(source_id, force=force)
    finally:
        await application.aclose()


def _dry_run(settings: Settings, source_id: str, force: bool) -> None:
    """Print what a run would publish; exit 1 if the guard or a validator would reject it."""

    async def preview() -> Preview:
        application = Application.build(_in_process(settings))
        try:
            await application.service.prepare(recover=False)
            return await application.service.dry_run(source_id, force=force)
        finally:
            await application.aclose()

    try:
        found = asyncio.run(preview())
    except CatalogRefresherError as exc:
        _fail(f"{source_id}: dry run failed: {describe(exc)}", code=1)
    typer.echo(
        f"{source_id}: dry run, nothing published: fetched {found.fetched}, would insert"
        f" {found.inserted}, update {found.updated}, delete {found.deleted}; invalid"
        f" {found.invalid}"
    )
    for kind, keys in (
        ("inserted", found.first_inserted),
        ("updated", found.first_updated),
        ("deleted", found.first_deleted),
    ):
        if keys:
            typer.echo(f"  first {kind}: {', '.join(keys)}")
    for verdict in (found.guard, *found.validators):
        typer.echo(f"  {verdict.name}: {'pass' if verdict.passed else 'REJECT'} ({verdict.detail})")
    if not found.would_publish:
        _fail(f"{source_id}: the run would be rejected", code=1)


@app.command()
def pause(
    source: Annotated[str, typer.Argument(help="Source id (erp_stock) or config key (ErpStock).")],
    config_path: ConfigOption = None,
    environment: EnvironmentOption = None,
    reason: Annotated[str | None, typer.Option(help="Why; shown in /api/sources.")] = None,
) -> None:
    """Take a source off its schedule, on every replica (kept in the store)."""
    source_id = _source_id(source)
    settings = _settings(config_path, environment)
    at = SystemClock().now()
    held = _with_store(settings, lambda store: store.pause_source(source_id, at=at, reason=reason))
    why = f" ({held.reason})" if held.reason else ""
    typer.echo(f"{source_id}: paused since {held.paused_at.isoformat()}{why}")


@app.command()
def resume(
    source: Annotated[str, typer.Argument(help="Source id (erp_stock) or config key (ErpStock).")],
    config_path: ConfigOption = None,
    environment: EnvironmentOption = None,
) -> None:
    """Put a paused source back on its schedule; it runs at once if it is due."""
    source_id = _source_id(source)
    settings = _settings(config_path, environment)
    resumed = _with_store(settings, lambda store: store.resume_source(source_id))
    typer.echo(f"{source_id}: resumed" if resumed else f"{source_id}: was not paused")


def _with_store(settings: Settings, work: Callable[[Store], T]) -> T:
    """``work`` on the configured store (the one every replica reads); a store it cannot
    use is exit 1."""
    try:
        store = open_store(reveal(settings.store.url), lease=settings.store.lease)
        try:
            return work(store)
        finally:
            store.close()
    except CatalogRefresherError as exc:
        _fail(f"cannot use the store: {describe(exc)}", code=1)


def _in_process(settings: Settings) -> Settings:
    """One-shot commands serve no API, so a worker process would only cost its start."""
    return replace(settings, refresh=RefreshSettings(worker_processes=0))


def _source_id(name: str) -> str:
    if name in SPECS:
        return name
    spec = SPECS_BY_CONFIG_KEY.get(name.lower())
    if spec is None:
        _fail(f"unknown source {name!r}; known: {', '.join(SPECS)}", code=2)
    return spec.id


UrlOption = Annotated[
    str | None,
    typer.Option(help="The running service's address (default: Api:Host and Api:Port)."),
]


def _client(settings: Settings, url: str | None) -> ServiceClient:
    token = settings.api.admin_token
    return ServiceClient(url or service_url(settings.api), token.value if token else None)


@app.command()
def status(
    config_path: ConfigOption = None,
    environment: EnvironmentOption = None,
    url: UrlOption = None,
    as_json: Annotated[bool, typer.Option("--json", help="The API's answers as JSON.")] = False,
) -> None:
    """Print the sources as a table: health, last success, next run, circuit, paused, pinned."""
    settings = _settings(config_path, environment)
    try:
        with _client(settings, url) as client:
            health = client.get("/health", ok=(503,))
            sources = client.get("/api/sources")
    except CatalogRefresherError as exc:
        _fail(f"status: {describe(exc)}", code=1)
    if as_json:
        typer.echo(json.dumps({"health": health, "sources": sources}, indent=2))
        return
    rows = status_rows(sources, health, datetime.now(UTC))
    console = Console()
    if console.is_terminal:
        console.print(status_table(rows, health["status"]))
    else:  # a pipe gets columns a script can cut, no colours, no box drawing
        typer.echo(plain(rows, STATUS_COLUMNS))


def _open_store(settings: Settings) -> Store:
    try:
        return open_store(reveal(settings.store.url), lease=settings.store.lease)
    except CatalogRefresherError as exc:
        _fail(f"cannot open the store: {describe(exc)}", code=1)


def _on_store(
    config_path: Path | None, environment: str | None, action: Callable[[Store], object]
) -> None:
    """Run ``action`` on the configured store and print its answer as JSON.

    A pin or unpin made here reaches every PostgreSQL replica through the change feed;
    a running SQLite service's cache learns it only from ``POST /api/sources/.../pin``.
    """
    store = _open_store(_settings(config_path, environment))
    try:
        answer = action(store)
    except CatalogRefresherError as exc:
        _fail(describe(exc), code=1)
    finally:
        store.close()
    typer.echo(json.dumps(answer, indent=2, default=str))


RunOption = Annotated[int, typer.Option("--run", min=1, help="A kept version's run id.")]


@app.command()
def versions(
    source: Annotated[str, typer.Argument(help="Source id or config key.")],
    config_path: ConfigOption = None,
    environment: EnvironmentOption = None,
) -> None:
    """The kept versions of a source, newest first, and which one is served."""
    source_id = _source_id(source)
    _on_store(config_path, environment, lambda store: versions_out(store.versions(source_id)))


@app.command()
def diff(
    source: Annotated[str, typer.Argument(help="Source id or config key.")],
    from_run: Annotated[int, typer.Option("--from", min=1, help="One kept version's run id.")],
    to_run: Annotated[
        int | None, typer.Option("--to", min=1, help="The other (default: the served one).")
    ] = None,
    limit: Annotated[int, typer.Option(min=1, help="Keys per page.")] = 50,
    offset: Annotated[int, typer.Option(min=0, help="Keys to skip.")] = 0,
    config_path: ConfigOption = None,
    environment: EnvironmentOption = None,
) -> None:
    """Keys added, removed and changed between two kept versions, with old and new values."""
    source_id = _source_id(source)
    _on_store(
        config_path,
        environment,
        lambda store: diff_out(
            store.diff_versions(source_id, from_run, to_run, limit=limit, offset=offset),
            limit,
            offset,
        ),
    )


@app.command()
def pin(
    source: Annotated[str, typer.Argument(help="Source id or config key.")],
    run_id: RunOption,
    config_path: ConfigOption = None,
    environment: EnvironmentOption = None,
) -> None:
    """Serve a kept version of the source until unpinned; runs meanwhile publish nothing."""
    source_id = _source_id(source)

    def pinned(store: Store) -> object:
        store.pin(source_id, run_id, at=SystemClock().now())
        return versions_out(store.versions(source_id))

    _on_store(config_path, environment, pinned)


@app.command()
def unpin(
    source: Annotated[str, typer.Argument(help="Source id or config key.")],
    config_path: ConfigOption = None,
    environment: EnvironmentOption = None,
) -> None:
    """Serve the newest version of the source again."""
    source_id = _source_id(source)

    def unpinned(store: Store) -> object:
        store.unpin(source_id, at=SystemClock().now())
        return versions_out(store.versions(source_id))

    _on_store(config_path, environment, unpinned)


@app.command("check-config")
def check_config(config_path: ConfigOption = None, environment: EnvironmentOption = None) -> None:
    """Validate the configuration and print it, secrets masked."""
    settings = _settings(config_path, environment)
    typer.echo(json.dumps(config.describe(settings), indent=2))


def main() -> None:
    app(prog_name="catalog-refresher")


if __name__ == "__main__":  # pragma: no cover
    main()
