"""``POST /api/sources/{id}/refresh?dry_run=true``: what a run would publish now.

A fetch that fails answers 502 with the reason (the run would have failed), and
one that takes longer than ``RefreshTimeout`` 504; nothing is written either way.
"""

from __future__ import annotations

from starlette.responses import Response

from catalog_refresher.api.context import ApiContext
from catalog_refresher.api.control_schemas import dry_run_out
from catalog_refresher.api.schemas import MsgspecResponse
from catalog_refresher.errors import (
    ApiProblem,
    CatalogRefresherError,
    SourceNotEnabled,
    StoreError,
    UnknownSourceError,
    describe,
)


async def answer_dry_run(context: ApiContext, source: str, *, force: bool) -> Response:
    try:
        preview = await context.control.dry_run(source, force=force)
    except (UnknownSourceError, SourceNotEnabled, StoreError):
        raise
    except TimeoutError:
        limit = context.settings.repository.refresh_timeout
        raise ApiProblem(504, "dry-run-timeout", f"timed out after {limit}") from None
    except CatalogRefresherError as exc:
        raise ApiProblem(502, "dry-run-failed", describe(exc), title="Dry run failed") from None
    return MsgspecResponse(dry_run_out(preview))
