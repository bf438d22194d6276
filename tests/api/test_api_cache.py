"""``/api/cache``: statistics and invalidation of the real catalog's aggregate cache."""

from __future__ import annotations

from tests.api.support import Api


async def test_cache_stats_count_hits_and_misses(started: Api) -> None:
    """Stats start empty; a product read twice is one miss, then one hit."""
    empty = (await started.client.get("/api/cache")).json()
    assert empty == {"size": 0, "max_size": 10_000, "hits": 0, "misses": 0, "hit_ratio": 0.0}
    for _ in range(2):
        await started.client.get("/api/products/TEST-001")
    stats = (await started.client.get("/api/cache")).json()
    assert stats == {"size": 1, "max_size": 10_000, "hits": 1, "misses": 1, "hit_ratio": 0.5}


async def test_invalidate_all_drops_every_cached_aggregate(started: Api) -> None:
    """``POST /api/cache/invalidate`` answers how many aggregates it dropped and empties it."""
    await started.client.get("/api/products?limit=3")
    response = await started.client.post("/api/cache/invalidate")
    assert (response.status_code, response.json()) == (200, {"invalidated": 3})
    assert (await started.client.get("/api/cache")).json()["size"] == 0


async def test_invalidate_one_drops_that_product_only(started: Api) -> None:
    """Invalidating one code (even one with '/') answers 1, then 0 once it is gone."""
    await started.client.get("/api/products/A%2FB")
    await started.client.get("/api/products/TEST-001")
    first = await started.client.post("/api/cache/invalidate/A%2FB")
    assert (first.status_code, first.json()) == (200, {"invalidated": 1})
    again = await started.client.post("/api/cache/invalidate/A%2FB")
    assert again.json() == {"invalidated": 0}
    assert (await started.client.get("/api/cache")).json()["size"] == 1


async def test_invalidate_unknown_code_is_zero(started: Api) -> None:
    """Invalidating a code that was never cached is not an error: it answers 0."""
    response = await started.client.post("/api/cache/invalidate/NOPE")
    assert (response.status_code, response.json()) == (200, {"invalidated": 0})
