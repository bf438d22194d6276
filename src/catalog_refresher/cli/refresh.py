"""One-shot commands: ``refresh`` (and its ``--dry-run``) and ``check-config``."""

from __future__ import annotations

import asyncio
import json
from typing import Annotated

import typer

from catalog_refresher import config
from catalog_refresher.app import Application
from catalog_refresher.cli.common import (
    ConfigOption,
    EnvironmentOption,
    SourceArgument,
    app,
    fail,
    in_process,
    load_settings,
    setup_command_logging,
    source_id_of,
)
from catalog_refresher.config.settings import Settings
from catalog_refresher.console.progress import terminal_progress
from catalog_refresher.domain.runs import Run, RunStatus
from catalog_refresher.errors import CatalogRefresherError, describe
from catalog_refresher.refresh.dry_run import Preview


@app.command()
def refresh(
    source: SourceArgument,
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
    source_id = source_id_of(source)
    settings = load_settings(config_path, environment)
    setup_command_logging(settings)
    if source_id not in settings.sources:
        fail(f"{source_id}: not configured in Sources", code=2)
    if dry_run:
        _dry_run(settings, source_id, force)
        return
    try:
        with terminal_progress(source_id):
            run = asyncio.run(_refresh_once(settings, source_id, force, full=full))
    except CatalogRefresherError as exc:
        fail(f"{source_id}: {describe(exc)}", code=1)
    c = run.counts
    summary = (
        f"{source_id}: {run.status.value} (run {run.id}): fetched {c.fetched}, inserted"
        f" {c.inserted}, updated {c.updated}, deleted {c.deleted}, invalid {c.invalid}"
    )
    if run.status is not RunStatus.SUCCEEDED:
        fail(f"{summary}; {run.error}", code=1)
    typer.echo(summary)


async def _refresh_once(
    settings: Settings, source_id: str, force: bool, *, full: bool = False
) -> Run:
    application = Application.build(in_process(settings))
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
        application = Application.build(in_process(settings))
        try:
            await application.service.prepare(recover=False)
            return await application.service.dry_run(source_id, force=force)
        finally:
            await application.aclose()

    try:
        found = asyncio.run(preview())
    except CatalogRefresherError as exc:
        fail(f"{source_id}: dry run failed: {describe(exc)}", code=1)
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
        fail(f"{source_id}: the run would be rejected", code=1)


@app.command("check-config")
def check_config(config_path: ConfigOption = None, environment: EnvironmentOption = None) -> None:
    """Validate the configuration and print it, secrets masked."""
    settings = load_settings(config_path, environment)
    typer.echo(json.dumps(config.describe(settings), indent=2))
