"""``GET /api/products`` and ``GET /api/products/{code}``: the product aggregates.

A code matches exactly (case-sensitive) and may hold any character, ``/``
included, URL-encoded in the path (``A%2FB``); hence the ``path`` converter.
"""

from __future__ import annotations

from fastapi import APIRouter
from starlette.responses import Response

from catalog_refresher.api.auth import Reader
from catalog_refresher.api.context import ApiContext, Ctx
from catalog_refresher.api.openapi import responses
from catalog_refresher.api.params import DEFAULT_PAGE, Limit, Offset, ProductCode, Search
from catalog_refresher.api.schemas import MsgspecResponse, ProductPage
from catalog_refresher.errors import ApiProblem

router = APIRouter(prefix="/api/products", tags=["products"], dependencies=[Reader])


@router.get(
    "",
    summary="List products ordered by code",
    response_class=MsgspecResponse,
    responses=responses("ProductPage", 401, 403, 422),
)
async def list_products(
    context: Ctx, limit: Limit = DEFAULT_PAGE, offset: Offset = 0, search: Search = None
) -> Response:
    """``{"items": [aggregate, ...], "total", "limit", "offset"}``; ``search`` matches
    anywhere in the code or the name, whatever the case ("žluť" finds "Žluťoučký")."""
    page = await _page(context, search, limit, offset)
    return MsgspecResponse(page)


async def _page(context: ApiContext, search: str | None, limit: int, offset: int) -> ProductPage:
    codes, total = await context.offload(
        context.store.list_products, search=search, limit=limit, offset=offset
    )
    # Each product as ``get_product`` reads it: on the loop, from the cache or the store.
    items = [await context.catalog.get(code) for code in codes]
    # A product can vanish between the two reads (its last row deleted by a run);
    # it is left out rather than served as null.
    return ProductPage(
        items=[item for item in items if item is not None], total=total, limit=limit, offset=offset
    )


@router.get(
    "/{code:path}",
    summary="One product's aggregate",
    response_class=MsgspecResponse,
    responses=responses("ProductAggregate", 401, 403, 404),
)
async def get_product(context: Ctx, code: ProductCode) -> Response:
    """The aggregate of the product ``code``; 404 if no source knows it."""
    # Hit or miss, on the loop, no thread: a hop to one cost more than a read of the
    # embedded store, and under load made the loop queue for the GIL behind the
    # reading threads (idle p99 5.2 -> 1.4 ms, docs/benchmarks.md).
    body = await context.catalog.get_json(code)
    if body is None:
        raise ApiProblem(
            404, "unknown-product", f"No product with code {code!r}.", title="Unknown product"
        )
    return Response(body, media_type="application/json")
