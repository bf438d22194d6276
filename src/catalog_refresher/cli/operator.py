"""Operator commands (contract 8): ``pause`` and ``resume`` on the store, ``status`` from the
running service's API."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Annotated

import typer
from rich.console import Console

from catalog_refresher.cli.common import (
    ConfigOption,
    EnvironmentOption,
    SourceArgument,
    app,
    fail,
    load_settings,
    source_id_of,
    with_store,
)
from catalog_refresher.clock import SystemClock
from catalog_refresher.config.settings import Settings
from catalog_refresher.console.client import ServiceClient, service_url
from catalog_refresher.console.tables import STATUS_COLUMNS, plain, status_rows, status_table
from catalog_refresher.errors import CatalogRefresherError, describe


@app.command()
def pause(
    source: SourceArgument,
    config_path: ConfigOption = None,
    environment: EnvironmentOption = None,
    reason: Annotated[str | None, typer.Option(help="Why; shown in /api/sources.")] = None,
) -> None:
    """Take a source off its schedule, on every replica (kept in the store)."""
    source_id = source_id_of(source)
    settings = load_settings(config_path, environment)
    at = SystemClock().now()
    held = with_store(settings, lambda store: store.pause_source(source_id, at=at, reason=reason))
    why = f" ({held.reason})" if held.reason else ""
    typer.echo(f"{source_id}: paused since {held.paused_at.isoformat()}{why}")


@app.command()
def resume(
    source: SourceArgument,
    config_path: ConfigOption = None,
    environment: EnvironmentOption = None,
) -> None:
    """Put a paused source back on its schedule; it runs at once if it is due."""
    source_id = source_id_of(source)
    settings = load_settings(config_path, environment)
    resumed = with_store(settings, lambda store: store.resume_source(source_id))
    typer.echo(f"{source_id}: resumed" if resumed else f"{source_id}: was not paused")


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
    settings = load_settings(config_path, environment)
    try:
        with _client(settings, url) as client:
            health = client.get("/health", ok=(503,))
            sources = client.get("/api/sources")
    except CatalogRefresherError as exc:
        fail(f"status: {describe(exc)}", code=1)
    if as_json:
        typer.echo(json.dumps({"health": health, "sources": sources}, indent=2))
        return
    rows = status_rows(sources, health, datetime.now(UTC))
    console = Console()
    if console.is_terminal:
        console.print(status_table(rows, health["status"]))
    else:  # a pipe gets columns a script can cut, no colours, no box drawing
        typer.echo(plain(rows, STATUS_COLUMNS))
