"""Versions (contract 8): ``versions``, ``diff``, ``pin``, ``unpin`` on the configured store.

A pin or unpin made here reaches every PostgreSQL replica through the change feed; a
running SQLite service's cache learns it only from ``POST /api/sources/.../pin``.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Annotated

import typer

from catalog_refresher.api.versions import diff_out, versions_out
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
from catalog_refresher.console.progress import terminal_progress
from catalog_refresher.errors import CatalogRefresherError, describe
from catalog_refresher.store.base import Store


def _on_store(
    config_path: Path | None, environment: str | None, action: Callable[[Store], object]
) -> None:
    """Run ``action`` on the configured store and print its answer as JSON."""

    def work(store: Store) -> object:
        try:
            return action(store)
        except CatalogRefresherError as exc:  # the action's own refusal, not the store's
            fail(describe(exc), code=1)

    answer = with_store(load_settings(config_path, environment), work)
    typer.echo(json.dumps(answer, indent=2, default=str))


RunOption = Annotated[int, typer.Option("--run", min=1, help="A kept version's run id.")]


@app.command()
def versions(
    source: SourceArgument,
    config_path: ConfigOption = None,
    environment: EnvironmentOption = None,
) -> None:
    """The kept versions of a source, newest first, and which one is served."""
    source_id = source_id_of(source)
    _on_store(config_path, environment, lambda store: versions_out(store.versions(source_id)))


@app.command()
def diff(
    source: SourceArgument,
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
    source_id = source_id_of(source)
    with terminal_progress(f"{source_id} diff"):  # a line on a terminal, nothing when piped
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
    source: SourceArgument,
    run_id: RunOption,
    config_path: ConfigOption = None,
    environment: EnvironmentOption = None,
) -> None:
    """Serve a kept version of the source until unpinned; runs meanwhile publish nothing."""
    source_id = source_id_of(source)

    def pinned(store: Store) -> object:
        store.pin(source_id, run_id, at=SystemClock().now())
        return versions_out(store.versions(source_id))

    _on_store(config_path, environment, pinned)


@app.command()
def unpin(
    source: SourceArgument,
    config_path: ConfigOption = None,
    environment: EnvironmentOption = None,
) -> None:
    """Serve the newest version of the source again."""
    source_id = source_id_of(source)

    def unpinned(store: Store) -> object:
        store.unpin(source_id, at=SystemClock().now())
        return versions_out(store.versions(source_id))

    _on_store(config_path, environment, unpinned)
