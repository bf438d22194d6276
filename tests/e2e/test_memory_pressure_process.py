"""`catalog-refresher run` as a real process with a memory ceiling it cannot meet.

``MemoryLimitMb: 1`` is below any Python process's RSS, so the service is above its
limit from its first measurement, whatever the machine: the critical source runs,
the other waits queued, health and metrics say so, reads go on, and stopping
cancels the waiting run cleanly.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import httpx
import pytest

from tests.e2e.processes import ServiceProcess, free_port, poll
from tests.source_server import serve_sources

pytestmark = pytest.mark.e2e


def test_a_real_service_above_its_memory_limit_defers_the_low_priority_source(
    tmp_path: Path,
) -> None:
    """Above a 1 MB ceiling the ERP (priority 10) refreshes in its worker process while
    suppliers (priority 0) waits queued; /health's memory entry is Degraded with the
    reason, /metrics has the tree's real RSS, products are served, and SIGTERM records
    the waiting run cancelled and exits 0."""
    port = free_port()
    with serve_sources(products=50) as sources:
        config = tmp_path / "appsettings.json"
        config.write_text(
            json.dumps(
                {
                    "CatalogRepository": {"MemoryLimitMb": 1},
                    "Sources": {
                        "ErpStock": {"Url": f"{sources.url}/erp_stock", "Priority": 10},
                        "Suppliers": {"Url": f"{sources.url}/suppliers", "Priority": 0},
                    },
                    "Store": {"Url": f"sqlite:///{tmp_path / 'catalog.db'}"},
                    "Api": {"Port": port},
                }
            )
        )
        with ServiceProcess(config, f"http://127.0.0.1:{port}") as process:
            process.wait_for("Completed ERP stock refresh")
            process.wait_for("suppliers waits: memory")
            assert process.count("above the 1 MB limit: cache shrunk to 25% of its size") == 1
            with httpx.Client(base_url=process.url, timeout=10) as client:
                health = client.get("/health")
                assert health.status_code == 200
                memory = health.json()["entries"]["memory"]
                assert memory["status"] == "Degraded"
                assert re.fullmatch(
                    r"memory \d+ MB above the 1 MB limit; cache shrunk, 1 run deferred",
                    memory["description"],
                ), memory

                runs = client.get("/api/runs", params={"source": "suppliers"}).json()["items"]
                assert [run["status"] for run in runs] == ["queued"]

                listing = client.get("/api/products", params={"limit": 3}).json()
                code = listing["items"][0]["product_code"]
                assert client.get(f"/api/products/{code}").status_code == 200

                def metrics() -> str:
                    return client.get("/metrics").text

                poll(metrics, lambda text: "catalog_memory_rss_bytes" in text)
                text = metrics()
                rss = float(re.search(r"^catalog_memory_rss_bytes (\S+)$", text, re.M)[1])  # type: ignore[index]
                assert rss > 20 * 1024 * 1024  # a real interpreter's, at least
                assert "catalog_memory_limit_bytes 1.048576e+06" in text
                assert "catalog_memory_deferred_runs 1.0" in text
                assert 'catalog_refresh_deferred_total{data_type="suppliers"} 1.0' in text
            assert process.stop() == 0, process.output()
            assert process.count("Cancelled suppliers refresh") == 1
