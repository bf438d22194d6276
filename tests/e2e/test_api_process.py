"""`catalog-refresher run` as a real process, its sources on a real local HTTP
server, its API read over a real socket."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from catalog_refresher.domain.specs import SPECS
from tests.e2e.processes import ServiceProcess, free_port
from tests.source_server import SourceServer, serve_sources

pytestmark = pytest.mark.e2e

ADMIN_TOKEN = "admin-token-for-the-e2e-test"


@pytest.fixture
def sources() -> Iterator[SourceServer]:
    with serve_sources(products=150) as server:
        yield server


@pytest.fixture
def service(tmp_path: Path, sources: SourceServer) -> Iterator[tuple[str, list[str]]]:
    """The service running in its own process; yields its base URL and its log lines."""
    port = free_port()
    config = tmp_path / "appsettings.json"
    config.write_text(
        json.dumps(
            {
                "Sources": {
                    spec.config_key: {"Url": f"{sources.url}/{spec.id}"} for spec in SPECS.values()
                },
                "Store": {"Url": f"sqlite:///{tmp_path / 'catalog.db'}"},
                "Api": {"Port": port, "AdminToken": "env:ADMIN_TOKEN"},
            }
        )
    )
    with ServiceProcess(
        config, f"http://127.0.0.1:{port}", env={"ADMIN_TOKEN": ADMIN_TOKEN}
    ) as process:
        process.wait_for(" Completed ", len(SPECS))
        yield process.url, process.log
        assert process.stop() == 0, process.output()


def test_reads_over_a_real_socket(service: tuple[str, list[str]]) -> None:
    """Products, sources, runs, health and metrics answer over HTTP after all ten refreshed."""
    base, _ = service
    with httpx.Client(base_url=base, timeout=10) as client:
        listing = client.get("/api/products", params={"limit": 5})
        assert listing.status_code == 200
        assert listing.json()["total"] > 100
        code = listing.json()["items"][0]["product_code"]

        product = client.get(f"/api/products/{code}")
        assert product.status_code == 200
        assert product.json()["product_code"] == code
        assert "erp_stock" in product.json()["lineage"]

        sources = client.get("/api/sources").json()
        assert [s["id"] for s in sources] == list(SPECS)
        assert all(s["last_status"] == "succeeded" for s in sources)

        runs = client.get("/api/runs").json()
        assert runs["total"] >= len(SPECS)

        health = client.get("/health")
        assert health.status_code == 200
        assert health.json()["status"] == "Healthy"

        metrics = client.get("/metrics").text
        assert 'catalog_refresh_success_total{data_type="erp_stock"} 1.0' in metrics


def test_operator_refresh_needs_the_token(service: tuple[str, list[str]]) -> None:
    """POST refresh is 401 without the token, 403 with a wrong one, 200 with the right one."""
    base, _ = service
    with httpx.Client(base_url=base, timeout=30) as client:
        path = "/api/sources/erp_stock/refresh"
        assert client.post(path).status_code == 401
        wrong = {"Authorization": "Bearer nope"}
        assert client.post(path, headers=wrong).status_code == 403
        right = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
        done = client.post(path, params={"wait": "true"}, headers=right)
        assert done.status_code == 200
        assert done.json()["status"] == "succeeded"
        assert done.json()["trigger"] == "manual"
