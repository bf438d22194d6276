"""Versions of a source (contract section 8): list, diff, pin, unpin; a product's history.

``GET /api/sources/{id}/versions`` and ``.../diff?from=RUN&to=RUN`` read what
``store/versions.py`` keeps; ``POST .../pin?run=RUN`` and ``.../unpin`` (admin)
rewrite the served rows in the store, so every endpoint and every replica (the
change feed) serves the chosen version; this process's cache drops the products
at once. ``GET /api/products/{code}/history`` is registered before the product
route, whose ``path`` converter would otherwise take ``.../history`` as a code.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query
from starlette.responses import Response

from catalog_refresher.api.auth import Admin, Reader
from catalog_refresher.api.context import ApiContext, Ctx
from catalog_refresher.api.openapi import responses
from catalog_refresher.api.params import (
    DEFAULT_PAGE,
    MAX_SQL_INT,
    KnownQueryOnly,
    Limit,
    Offset,
    ProductCode,
)
from catalog_refresher.api.schemas import MsgspecResponse, utc
from catalog_refresher.domain.specs import SPECS
from catalog_refresher.errors import ApiProblem, UnknownSourceError, VersionNotKept
from catalog_refresher.store.base import Applied
from catalog_refresher.store.version_types import SourceVersions, VersionDiff
from catalog_refresher.store.versions import decoded

router = APIRouter(tags=["versions"])

RunParam = Annotated[int, Query(ge=1, le=MAX_SQL_INT, description="A kept version's run id.")]
FromRun = Annotated[
    int, Query(alias="from", ge=1, le=MAX_SQL_INT, description="The older side's run id.")
]
ToRun = Annotated[
    int | None,
    Query(alias="to", ge=1, le=MAX_SQL_INT, description="The other side (default: served)."),
]


def _known(source: str) -> None:
    if source not in SPECS:
        raise UnknownSourceError(source)


def not_kept(exc: VersionNotKept) -> ApiProblem:
    """404 for a run that never was a version of the source, 409 for a pruned one."""
    if exc.pruned:
        return ApiProblem(409, "version-pruned", str(exc), title="Version pruned")
    return ApiProblem(404, "unknown-version", str(exc), title="Unknown version")


def versions_out(listed: SourceVersions) -> dict[str, Any]:
    return {
        "source": listed.source,
        "served_run_id": listed.served_run_id,
        "pinned": listed.pinned,
        "pinned_at": utc(listed.pinned_at),
        "items": [
            {
                "run_id": v.run_id,
                "published_at": utc(v.published_at),
                "record_count": v.record_count,
                "inserted": v.inserted,
                "updated": v.updated,
                "deleted": v.deleted,
                "served": v.served,
            }
            for v in listed.items
        ],
    }


def diff_out(diff: VersionDiff, limit: int, offset: int) -> dict[str, Any]:
    return {
        "source": diff.source,
        "from": diff.from_run,
        "to": diff.to_run,
        "added": diff.added,
        "removed": diff.removed,
        "changed": diff.changed,
        "total": diff.total,
        "limit": limit,
        "offset": offset,
        "items": [
            {
                "key": c.key,
                "product_code": c.product_code,
                "change": c.change.value,
                "old": decoded(c.old),
                "new": decoded(c.new),
            }
            for c in diff.items
        ],
    }


@router.get(
    "/api/sources/{source}/versions",
    summary="The kept versions of a source, newest first",
    dependencies=[Reader, KnownQueryOnly],
    response_class=MsgspecResponse,
    responses=responses(None, 401, 403, 404, 422),
)
async def list_versions(context: Ctx, source: str) -> Response:
    """Each published run's ``run_id``, ``published_at``, ``record_count``, ``inserted``,
    ``updated``, ``deleted``, and ``served`` (the one every endpoint serves)."""
    _known(source)
    listed = await context.offload(context.store.versions, source)
    return MsgspecResponse(versions_out(listed))


@router.get(
    "/api/sources/{source}/diff",
    summary="Keys added, removed and changed between two kept versions",
    dependencies=[Reader, KnownQueryOnly],
    response_class=MsgspecResponse,
    responses=responses(None, 401, 403, 404, 409, 422),
)
async def diff_versions(
    context: Ctx,
    source: str,
    from_run: FromRun,
    to_run: ToRun = None,
    limit: Limit = DEFAULT_PAGE,
    offset: Offset = 0,
) -> Response:
    """Ordered by key, paged; each with its ``old`` and ``new`` value (``null``: absent)."""
    _known(source)
    try:
        diff = await context.offload(
            context.store.diff_versions, source, from_run, to_run, limit=limit, offset=offset
        )
    except VersionNotKept as exc:
        raise not_kept(exc) from exc
    return MsgspecResponse(diff_out(diff, limit, offset))


@router.post(
    "/api/sources/{source}/pin",
    summary="Serve a kept version of the source until unpinned (a rollback)",
    dependencies=[Admin, KnownQueryOnly],
    response_class=MsgspecResponse,
    responses=responses(None, 401, 403, 404, 409, 422),
)
async def pin(context: Ctx, source: str, run: RunParam) -> Response:
    """200 with the versions, the pinned one served; runs meanwhile publish nothing."""
    _known(source)
    try:
        applied = await context.offload(context.store.pin, source, run, at=context.clock.now())
    except VersionNotKept as exc:
        raise not_kept(exc) from exc
    return await _served(context, source, applied)


@router.post(
    "/api/sources/{source}/unpin",
    summary="Serve the newest version again",
    dependencies=[Admin, KnownQueryOnly],
    response_class=MsgspecResponse,
    responses=responses(None, 401, 403, 404, 422),
)
async def unpin(context: Ctx, source: str) -> Response:
    """200 with the versions, the newest served; a source not pinned is left as it is."""
    _known(source)
    applied = await context.offload(context.store.unpin, source, at=context.clock.now())
    return await _served(context, source, applied)


async def _served(context: ApiContext, source: str, applied: Applied) -> Response:
    # Peers drop these through the change feed; this process drops them now.
    if applied.products:
        context.catalog.invalidate(applied.products)
    listed = await context.offload(context.store.versions, source)
    return MsgspecResponse(versions_out(listed))


@router.get(
    "/api/products/{code:path}/history",
    summary="A product's values in each kept version where they changed",
    dependencies=[Reader, KnownQueryOnly],
    response_class=MsgspecResponse,
    responses=responses(None, 401, 403, 404),
)
async def product_history(context: Ctx, code: ProductCode) -> Response:
    """Per source, oldest first: the run, its time and the product's rows in that version
    (the oldest kept version, then each one that changed them); 404 if no version has it."""
    history = await context.offload(context.store.product_history, code)
    if not any(history.values()):
        raise ApiProblem(
            404, "unknown-product", f"No version holds product {code!r}.", title="Unknown product"
        )
    return MsgspecResponse(
        {
            "product_code": code,
            "sources": {
                source: [
                    {
                        "run_id": entry.run_id,
                        "published_at": utc(entry.published_at),
                        "rows": [decoded(row) for row in entry.rows],
                    }
                    for entry in entries
                ]
                for source, entries in history.items()
                if entries
            },
        }
    )
