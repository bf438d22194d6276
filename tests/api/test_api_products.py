"""``GET /api/products`` and ``GET /api/products/{code}`` over a real, refreshed catalog."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any, TypeVar
from urllib.parse import quote

import pytest

from catalog_refresher.api.context import ApiContext
from tests.api.support import ALL_CODES, SLASH_CODE, UNICODE_CODE, Api, assert_problem


async def test_product_is_its_aggregate(started: Api) -> None:
    """A known code answers the contract's aggregate, numbers as numbers and times as UTC."""
    response = await started.client.get("/api/products/TEST-001")
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/json"
    product = response.json()
    assert product["product_code"] == "TEST-001"
    assert (product["product_name"], product["location"]) == ("Test Product 1", "A1")
    assert product["stock"] == {"erp": 100, "eshop": 80, "transport": 0}
    for part in ("sales_history", "purchase_history", "lots", "suppliers", "transport_boxes"):
        assert product[part] == []
    lineage = product["lineage"]["erp_stock"]
    assert lineage["changed_at"] == "2026-11-29T10:00:00Z"
    assert lineage["refreshed_at"] == "2026-11-29T10:00:00Z"
    assert isinstance(lineage["run_id"], int)


T = TypeVar("T")


def count_offloads(api: Api) -> list[str]:
    """Make the app record the name of every call it hands to a thread."""
    calls: list[str] = []
    context: ApiContext = api.app.state.context

    async def offload(fn: Callable[..., T], /, *args: Any, **kwargs: Any) -> T:
        calls.append(getattr(fn, "__name__", repr(fn)))
        return fn(*args, **kwargs)

    api.app.state.context = dataclasses.replace(context, offload=offload)
    return calls


async def test_a_product_is_read_on_the_loop_hit_or_miss(started: Api) -> None:
    """A cache miss reads the store without a hop to a thread; the hit that follows
    answers the same JSON from the cache."""
    catalog = started.harness.catalog
    catalog.invalidate_all()
    hits_before = catalog.stats().hits
    calls = count_offloads(started)
    miss = await started.client.get("/api/products/TEST-001")
    hit = await started.client.get("/api/products/TEST-001")
    assert miss.status_code == hit.status_code == 200
    assert miss.content == hit.content
    assert miss.json()["stock"]["erp"] == 100
    assert calls == []
    assert catalog.stats().hits == hits_before + 1


@pytest.mark.parametrize("code", [SLASH_CODE, UNICODE_CODE])
async def test_code_with_slash_or_diacritics_is_found(started: Api, code: str) -> None:
    """A code holding '/' or non-ASCII letters is found when URL-encoded in the path."""
    response = await started.client.get(f"/api/products/{quote(code, safe='')}")
    assert response.status_code == 200
    assert response.json()["product_code"] == code


async def test_unknown_product_is_404_naming_the_code(started: Api) -> None:
    """An unknown code is a 404 problem whose detail names the code."""
    body = assert_problem(await started.client.get("/api/products/NOPE-9"), 404)
    assert "NOPE-9" in body["detail"]
    assert body["type"].endswith(":unknown-product")
    assert body["instance"] == "/api/products/NOPE-9"


async def test_code_match_is_case_sensitive(started: Api) -> None:
    """The code matches exactly: 'test-001' is not 'TEST-001'."""
    assert_problem(await started.client.get("/api/products/test-001"), 404)


async def test_unknown_product_detail_is_bounded(started: Api) -> None:
    """A huge unknown code is a 404 whose detail does not echo all of it back."""
    body = assert_problem(await started.client.get("/api/products/" + "X" * 5000), 404)
    assert len(body["detail"]) <= 300


async def test_list_is_ordered_by_code_with_totals(started: Api) -> None:
    """The list holds full aggregates ordered by code, with total, limit and offset."""
    response = await started.client.get("/api/products")
    page = response.json()
    assert response.status_code == 200
    assert (page["total"], page["limit"], page["offset"]) == (len(ALL_CODES), 50, 0)
    assert [item["product_code"] for item in page["items"]] == ALL_CODES
    assert page["items"][0]["lineage"]["erp_stock"]["run_id"] >= 1


async def test_list_pages_with_limit_and_offset(started: Api) -> None:
    """Consecutive pages partition the catalog, and total stays the whole count."""
    first = (await started.client.get("/api/products", params={"limit": 4})).json()
    second = (await started.client.get("/api/products?limit=4&offset=4")).json()
    assert [i["product_code"] for i in first["items"]] == ALL_CODES[:4]
    assert [i["product_code"] for i in second["items"]] == ALL_CODES[4:8]
    assert (second["total"], second["limit"], second["offset"]) == (len(ALL_CODES), 4, 4)


async def test_offset_past_the_end_is_an_empty_page(started: Api) -> None:
    """An offset past the last product answers an empty page, not an error."""
    page = (await started.client.get("/api/products", params={"offset": 1000})).json()
    assert page["items"] == []
    assert page["total"] == len(ALL_CODES)


@pytest.mark.parametrize(
    ("search", "codes"),
    [
        ("P-01", ["P-010", "P-011", "P-012"]),
        ("widget p-00", [f"P-00{n}" for n in range(1, 10)]),
        ("luťoučký k", [UNICODE_CODE]),
        ("%", []),
        ("_", []),
    ],
)
async def test_search_matches_code_or_name(started: Api, search: str, codes: list[str]) -> None:
    """``search`` finds a substring of the code or the name; '%' and '_' are literal."""
    page = (await started.client.get("/api/products", params={"search": search})).json()
    assert [item["product_code"] for item in page["items"]] == codes
    assert page["total"] == len(codes)


async def test_list_before_any_refresh_is_empty(api: Api) -> None:
    """Before any run the catalog lists nothing, with total 0."""
    page = (await api.client.get("/api/products")).json()
    assert (page["items"], page["total"]) == ([], 0)
