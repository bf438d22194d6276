"""Versions, diff, pin, unpin and product history over HTTP (contract section 8)."""

from __future__ import annotations

from typing import Any

from catalog_refresher.testing import FakeClock, StaticSource
from tests.api.support import AUTH, ERP, Api, ApiFactory, assert_problem


def _erp_with(stock: int) -> list[dict[str, Any]]:
    rows = [dict(row) for row in ERP]
    rows[0]["stock"] = stock  # TEST-001
    return rows


async def _refresh(api: Api, headers: dict[str, str] | None = None) -> dict[str, Any]:
    response = await api.client.post(
        "/api/sources/erp_stock/refresh?wait=true&force=true", headers=headers or {}
    )
    assert response.status_code == 200, response.text
    run: dict[str, Any] = response.json()
    return run


async def _three_versions(make_api: ApiFactory, clock: FakeClock) -> tuple[Api, list[int]]:
    erp = StaticSource("erp_stock", _erp_with(100), clock=clock)
    api = make_api({"erp_stock": erp}, token="s3cret-admin-token")
    runs = []
    for stock in (100, 200, 300):
        erp.records = _erp_with(stock)
        runs.append((await _refresh(api, AUTH))["id"])
    return api, runs


async def _stock(api: Api, code: str = "TEST-001") -> Any:
    body = (await api.client.get(f"/api/products/{code}")).json()
    return body["stock"]["erp"]


async def test_versions_and_diff_list_what_each_run_published(
    make_api: ApiFactory, clock: FakeClock
) -> None:
    """versions: newest first with counts and the served one; diff: the changed key with
    its old and new values, ``to`` defaulting to the served version; bad runs are problems."""
    api, runs = await _three_versions(make_api, clock)
    listed = (await api.client.get("/api/sources/erp_stock/versions")).json()
    assert [v["run_id"] for v in listed["items"]] == runs[::-1]
    assert listed["served_run_id"] == runs[-1]
    assert listed["pinned"] is False
    newest = listed["items"][0]
    assert (newest["inserted"], newest["updated"], newest["deleted"]) == (0, 1, 0)
    assert newest["record_count"] == len(ERP)
    assert newest["served"] is True
    assert newest["published_at"].endswith("Z")
    diff = (await api.client.get(f"/api/sources/erp_stock/diff?from={runs[0]}")).json()
    assert (diff["from"], diff["to"], diff["total"]) == (runs[0], runs[2], 1)
    [item] = diff["items"]
    assert (item["key"], item["change"]) == ("TEST-001", "changed")
    assert (item["old"]["stock"], item["new"]["stock"]) == (100, 300)
    assert_problem(await api.client.get("/api/sources/erp_stock/diff?from=99999"), 404)
    assert_problem(await api.client.get(f"/api/sources/erp_stock/diff?from={runs[0]}&x=1"), 422)
    assert_problem(await api.client.get("/api/sources/nope/versions"), 404)


async def test_pin_serves_the_old_version_on_every_endpoint_until_unpin(
    make_api: ApiFactory, clock: FakeClock
) -> None:
    """A pin serves the old values (product, list, search, lineage, history), health says
    pinned, a run meanwhile is ``skipped`` with ``pinned``; unpin serves the newest."""
    api, runs = await _three_versions(make_api, clock)
    assert await _stock(api) == 300  # cached now: the pin must drop it
    assert_problem(await api.client.post(f"/api/sources/erp_stock/pin?run={runs[0]}"), 401)
    assert_problem(
        await api.client.post(f"/api/sources/erp_stock/pin?run={runs[0]}&dry=1", headers=AUTH),
        422,
    )
    assert_problem(await api.client.post("/api/sources/erp_stock/pin?run=99999", headers=AUTH), 404)
    response = await api.client.post(f"/api/sources/erp_stock/pin?run={runs[0]}", headers=AUTH)
    assert response.status_code == 200, response.text
    assert response.json()["served_run_id"] == runs[0]
    assert await _stock(api) == 100
    product = (await api.client.get("/api/products/TEST-001")).json()
    assert product["lineage"]["erp_stock"]["run_id"] == runs[0]
    page = (await api.client.get("/api/products?search=test-001")).json()
    assert page["items"][0]["stock"]["erp"] == 100
    source = (await api.client.get("/api/sources/erp_stock")).json()
    assert (source["pinned"], source["pinned_run_id"]) == (True, runs[0])
    health = (await api.client.get("/health")).json()
    assert health["entries"]["erp_stock"]["status"] == "Degraded"
    assert f"pinned to run {runs[0]}" in health["entries"]["erp_stock"]["description"]

    skipped = await _refresh(api, AUTH)
    assert (skipped["status"], skipped["error"]) == ("skipped", "pinned")
    assert await _stock(api) == 100

    history = (await api.client.get("/api/products/TEST-001/history")).json()
    assert [e["rows"][0]["stock"] for e in history["sources"]["erp_stock"]] == [100, 200, 300]
    assert [e["run_id"] for e in history["sources"]["erp_stock"]] == runs
    assert_problem(await api.client.get("/api/products/NOPE/history"), 404)

    response = await api.client.post("/api/sources/erp_stock/unpin", headers=AUTH)
    assert response.status_code == 200, response.text
    assert response.json()["pinned"] is False
    assert await _stock(api) == 300
    product = (await api.client.get("/api/products/TEST-001")).json()
    assert product["lineage"]["erp_stock"]["run_id"] == runs[2]
    assert (await _refresh(api, AUTH))["status"] == "succeeded"


async def test_a_pruned_version_is_a_409(make_api: ApiFactory, clock: FakeClock) -> None:
    """With VersionsKept 2 the oldest of three runs is pruned: pinning it is a 409 naming it."""
    erp = StaticSource("erp_stock", _erp_with(1), clock=clock)
    api = make_api({"erp_stock": erp}, versions_kept=2)
    runs = []
    for stock in (1, 2, 3):
        erp.records = _erp_with(stock)
        runs.append((await _refresh(api))["id"])
    body = assert_problem(await api.client.post(f"/api/sources/erp_stock/pin?run={runs[0]}"), 409)
    assert f"version {runs[0]} of erp_stock was pruned" in body["detail"]
