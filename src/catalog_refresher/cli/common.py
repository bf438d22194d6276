"""What every command shares: the Typer app, the config options, exits, the store."""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Annotated, NoReturn, TypeVar

import typer

from catalog_refresher import config
from catalog_refresher.config.settings import (
    RefreshSettings,
    Secret,
    Settings,
    reveal,
)
from catalog_refresher.domain.specs import SPECS, SPECS_BY_CONFIG_KEY
from catalog_refresher.errors import CatalogRefresherError, ConfigError, describe
from catalog_refresher.observe.logs import setup_logging
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

SourceArgument = Annotated[
    str, typer.Argument(help="Source id (erp_stock) or config key (ErpStock).")
]
EnvironmentOption = Annotated[
    str | None,
    typer.Option(
        "--environment",
        "-e",
        help="Also read <stem>.<ENVIRONMENT>.json (default: $CATALOG_REFRESHER_ENVIRONMENT).",
    ),
]


def load_settings(path: Path | None, environment: str | None) -> Settings:
    try:
        return config.load(path, environment=environment, environ=os.environ)
    except ConfigError as exc:
        fail(f"configuration error: {describe(exc)}", code=2)


def fail(message: str, *, code: int) -> NoReturn:
    typer.echo(message, err=True)
    raise typer.Exit(code)


def setup_command_logging(settings: Settings) -> None:
    setup_logging(
        level=settings.logging.level,
        format=settings.logging.format,
        secrets=secret_values(settings),
    )


def secret_values(settings: Settings) -> list[str]:
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


def with_store(settings: Settings, work: Callable[[Store], T]) -> T:
    """``work`` on the configured store (the one every replica reads); a store it cannot
    use is exit 1."""
    try:
        store = open_store(reveal(settings.store.url), lease=settings.store.lease)
        try:
            return work(store)
        finally:
            store.close()
    except CatalogRefresherError as exc:
        fail(f"cannot use the store: {describe(exc)}", code=1)


def in_process(settings: Settings) -> Settings:
    """One-shot commands serve no API, so a worker process would only cost its start."""
    return replace(settings, refresh=RefreshSettings(worker_processes=0))


def source_id_of(name: str) -> str:
    if name in SPECS:
        return name
    spec = SPECS_BY_CONFIG_KEY.get(name.lower())
    if spec is None:
        fail(f"unknown source {name!r}; known: {', '.join(SPECS)}", code=2)
    return spec.id
