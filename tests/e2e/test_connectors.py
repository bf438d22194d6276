"""`catalog-refresher run` reading an ABRA Flexi-shaped ERP and a Shoptet-shaped e-shop,
both paged over a real local HTTP server, into the product aggregate read over its API."""

from __future__ import annotations

import json
import os
import queue
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.e2e.processes import free_port
from tests.paged_server import Reply, Server, flexi, flexi_cards, serve, shoptet, shoptet_supplies

pytestmark = pytest.mark.e2e

TOKEN = "shoptet-e2e-token-0a1b2c3d"
FLEXI_PATH = "/c/demo_firma/skladova-karta.json"
SHOPTET_PATH = "/api/stocks/1/supplies"


@pytest.fixture
def systems() -> Iterator[Server]:
    """Flexi pages by start/limit; Shoptet by page/itemsPerPage, capped at 2, behind a token."""
    erp, eshop = flexi(flexi_cards()), shoptet(shoptet_supplies(), cap=2)

    def handle(path: str, query: dict[str, str]) -> Reply:
        if path == FLEXI_PATH:
            return erp(path, query)
        if path == SHOPTET_PATH:
            return eshop(path, query)
        return Reply(status=404)

    with serve(handle) as server:
        yield server


def config(tmp_path: Path, url: str, port: int) -> Path:
    settings: dict[str, Any] = {
        "Sources": {
            "ErpStock": {
                "Url": f"{url}{FLEXI_PATH}?add-row-count=true",
                "RecordsPath": "winstrom.skladova-karta",
                "Paging": {
                    "Kind": "offset",
                    "OffsetParameter": "start",
                    "SizeParameter": "limit",
                    "PageSize": 2,
                    "TotalPath": "winstrom.@rowCount",
                },
                "Fields": {
                    "product_code": {"From": "cenik", "RemovePrefix": "code:"},
                    "stock": "stavMJ",
                    "location": {"From": "regal", "RemovePrefix": "code:"},
                },
            },
            "EshopStock": {
                "Url": f"{url}{SHOPTET_PATH}",
                "Headers": {"Shoptet-Private-API-Token": "env:SHOPTET_TOKEN"},
                "RecordsPath": "data.supplies",
                "Paging": {
                    "Kind": "page",
                    "PageParameter": "page",
                    "SizeParameter": "itemsPerPage",
                    "PageSize": 100,
                    "PageCountPath": "data.paginator.pageCount",
                },
                "Fields": {"product_code": "code", "stock": "amount"},
            },
        },
        "Store": {"Url": f"sqlite:///{tmp_path / 'catalog.db'}"},
        "Api": {"Port": port},
    }
    path = tmp_path / "appsettings.json"
    path.write_text(json.dumps(settings))
    return path


def test_flexi_and_shoptet_sources_refresh_into_the_aggregate(
    tmp_path: Path, systems: Server
) -> None:
    """Both paged sources refresh through the real service; the API shows ERP and e-shop stock."""
    port = free_port()
    lines: queue.Queue[str] = queue.Queue()
    seen: list[str] = []
    with subprocess.Popen(
        [
            sys.executable,
            "-m",
            "catalog_refresher",
            "run",
            "--config",
            str(config(tmp_path, systems.url, port)),
        ],
        env={**os.environ, "SHOPTET_TOKEN": TOKEN},
        stderr=subprocess.PIPE,
        text=True,
    ) as process:
        assert process.stderr is not None
        stderr = process.stderr
        threading.Thread(target=lambda: [lines.put(line) for line in stderr], daemon=True).start()
        completed: set[str] = set()
        deadline = time.monotonic() + 60
        while completed != {"erp_stock", "eshop_stock"} and time.monotonic() < deadline:
            try:
                line = lines.get(timeout=deadline - time.monotonic())
            except queue.Empty:
                break
            seen.append(line)
            if " Completed " in line:
                completed.add(line.split()[2])
        assert completed == {"erp_stock", "eshop_stock"}, "".join(seen)

        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=10) as client:
            products = {
                code: client.get(f"/api/products/{code}").json()
                for code in ("KRM001", "KRM002", "SER010-50", "MYD003")
            }
            listing = client.get("/api/products").json()
            runs = client.get("/api/runs").json()["items"]

        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=60) == 0, "".join(seen)

    assert listing["total"] == 5
    assert products["KRM001"]["stock"] == {"erp": 128.0, "eshop": 122.0, "transport": 0}
    assert products["KRM001"]["location"] == "A1-R02"
    assert products["KRM002"]["location"] is None  # Flexi's empty relation
    assert products["SER010-50"]["stock"]["erp"] == 71238.961591  # sent as a string
    assert products["MYD003"]["stock"] == {"erp": 7.0, "eshop": 7.5, "transport": 0}
    assert products["MYD003"]["location"] == "C3"
    assert {(r["source"], r["status"], r["fetched"], r["invalid"]) for r in runs} == {
        ("erp_stock", "succeeded", 5, 0),
        ("eshop_stock", "succeeded", 5, 0),
    }
    flexi_starts = [q["start"] for q in systems.requests if "start" in q]
    shoptet_pages = [q["page"] for q in systems.requests if "page" in q]
    assert (flexi_starts, shoptet_pages) == (["0", "2", "4"], ["1", "2", "3"])
    assert all(
        h.get("Shoptet-Private-API-Token") == TOKEN
        for h, q in zip(systems.headers, systems.requests, strict=True)
        if "page" in q
    )
    assert TOKEN not in "".join(seen)
