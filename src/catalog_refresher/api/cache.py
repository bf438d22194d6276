"""``/api/cache``: the aggregate cache's statistics, and dropping entries by hand.

Invalidation is rarely needed (each run drops what it changed); it is there
for an operator who changed the store outside the service.
"""

from __future__ import annotations

from fastapi import APIRouter
from starlette.responses import Response

from catalog_refresher.api.auth import Admin, Reader
from catalog_refresher.api.context import Ctx
from catalog_refresher.api.openapi import responses
from catalog_refresher.api.params import KnownQueryOnly, ProductCode
from catalog_refresher.api.schemas import Invalidated, MsgspecResponse, cache_out

router = APIRouter(prefix="/api/cache", tags=["cache"])


@router.get(
    "",
    summary="Cache statistics",
    dependencies=[Reader],
    response_class=MsgspecResponse,
    responses=responses("CacheOut", 401, 403),
)
async def cache_stats(context: Ctx) -> Response:
    """``{"size", "max_size", "hits", "misses", "hit_ratio"}``; the ratio is 0 before any read."""
    stats = await context.offload(context.catalog.stats)
    return MsgspecResponse(cache_out(stats))


@router.post(
    "/invalidate",
    summary="Drop every cached aggregate",
    dependencies=[Admin, KnownQueryOnly],
    response_class=MsgspecResponse,
    responses=responses("Invalidated", 401, 403),
)
async def invalidate_all(context: Ctx) -> Response:
    """``{"invalidated": n}``: how many cached aggregates were dropped."""
    dropped = await context.offload(context.catalog.invalidate_all)
    return MsgspecResponse(Invalidated(invalidated=dropped))


@router.post(
    "/invalidate/{code:path}",
    summary="Drop one product's cached aggregate",
    dependencies=[Admin, KnownQueryOnly],
    response_class=MsgspecResponse,
    responses=responses("Invalidated", 401, 403),
)
async def invalidate_one(context: Ctx, code: ProductCode) -> Response:
    """``{"invalidated": 0|1}``: 0 when the product was not cached (or does not exist)."""
    dropped = await context.offload(context.catalog.invalidate, {code})
    return MsgspecResponse(Invalidated(invalidated=dropped))
