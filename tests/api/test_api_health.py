"""``/health``, ``/health/live``, ``/health/ready`` and ``/metrics`` over a real service."""

from __future__ import annotations

import logging

import pytest
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, generate_latest

from catalog_refresher.domain.specs import SOURCE_IDS
from catalog_refresher.testing import FakeClock, StaticSource
from tests.api.support import ERP, Api, ApiFactory, assert_problem, failing


async def test_health_is_healthy_once_every_source_refreshed(started: Api) -> None:
    """After all ten sources refreshed, /health is 200 Healthy with an entry per source."""
    response = await started.client.get("/health")
    assert response.status_code == 200
    assert response.headers["cache-control"] == "no-store"
    report = response.json()
    assert report["status"] == "Healthy"
    assert set(report["entries"]) == {"catalog-refresh", *SOURCE_IDS}
    assert all(entry["status"] == "Healthy" for entry in report["entries"].values())
    assert all(entry["description"] for entry in report["entries"].values())


async def test_health_degrades_after_30_minutes_without_a_success(
    make_api: ApiFactory, clock: FakeClock
) -> None:
    """With every source failing, catalog-refresh turns Degraded after 30 minutes, saying
    how long ago the last refresh was, while liveness stays 200."""
    api = make_api({s: failing(s, clock) for s in ("erp_stock", "eshop_stock")})
    await api.start()
    await clock.advance(29 * 60)
    early = (await api.client.get("/health")).json()
    assert early["entries"]["catalog-refresh"]["status"] == "Healthy"
    await clock.advance(2 * 60)
    response = await api.client.get("/health")
    assert response.status_code == 200
    report = response.json()
    assert report["status"] == "Degraded"
    refresh = report["entries"]["catalog-refresh"]
    assert refresh == {"status": "Degraded", "description": "Last refresh was 31.0 minutes ago"}
    assert (await api.client.get("/health/live")).status_code == 200


async def test_one_failing_source_degrades_its_entry_and_the_whole(
    make_api: ApiFactory, clock: FakeClock
) -> None:
    """A failing source's entry and the overall status are Degraded; liveness stays 200."""
    api = make_api(
        {
            "erp_stock": StaticSource("erp_stock", ERP, clock=clock),
            "eshop_stock": failing("eshop_stock", clock),
        }
    )
    await api.start()
    await clock.advance(60)  # through the retries' backoff
    report = (await api.client.get("/health")).json()
    assert report["status"] == "Degraded"
    assert report["entries"]["eshop_stock"]["status"] == "Degraded"
    assert "failed" in report["entries"]["eshop_stock"]["description"]
    assert report["entries"]["erp_stock"]["status"] == "Healthy"
    assert report["entries"]["catalog-refresh"]["status"] == "Healthy"
    live = await api.client.get("/health/live")
    assert (live.status_code, live.json()) == (200, {"status": "Healthy"})


async def test_ready_is_503_before_the_first_runs_and_200_after(api: Api) -> None:
    """Readiness is 503 while no enabled source has data or a finished run, then 200."""
    before = await api.client.get("/health/ready")
    assert (before.status_code, before.json()) == (503, {"status": "Unhealthy"})
    await api.start()
    after = await api.client.get("/health/ready")
    assert (after.status_code, after.json()) == (200, {"status": "Healthy"})


async def test_unreadable_store_is_unhealthy_503_and_reads_say_unavailable(
    started: Api, caplog: pytest.LogCaptureFixture
) -> None:
    """With the store unreadable, /health is 503 Unhealthy, readiness 503, liveness 200, and
    a read is a 503 problem that does not leak the store's error."""
    started.harness.store.close()
    health = await started.client.get("/health")
    assert (health.status_code, health.json()["status"]) == (503, "Unhealthy")
    assert (await started.client.get("/health/ready")).status_code == 503
    assert (await started.client.get("/health/live")).status_code == 200
    with caplog.at_level(logging.WARNING, "catalog_refresher.api"):
        body = assert_problem(await started.client.get("/api/runs"), 503)
    assert body["type"].endswith(":store-unavailable")
    assert "closed" not in body["detail"]
    assert "closed" in caplog.text


async def test_metrics_serves_the_exposition_it_is_given(make_api: ApiFactory) -> None:
    """/metrics answers the metrics callable's bytes with its content type."""
    registry = CollectorRegistry()
    Counter("catalog_refresh_success", "Runs", ["data_type"], registry=registry).labels(
        "erp_stock"
    ).inc()
    api = make_api(metrics=lambda: (generate_latest(registry), CONTENT_TYPE_LATEST))
    response = await api.client.get("/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"] == CONTENT_TYPE_LATEST
    assert 'catalog_refresh_success_total{data_type="erp_stock"} 1.0' in response.text


async def test_metrics_without_a_callable_is_404(api: Api) -> None:
    """Without metrics, /metrics is a 404 problem."""
    body = assert_problem(await api.client.get("/metrics"), 404)
    assert body["type"].endswith(":metrics-disabled")
