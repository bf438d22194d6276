"""The API over a real refresh service: SQLite in tmp_path, static sources, a fake clock.

``make_api`` (in ``conftest.py``) builds one; tests talk to it through
``httpx.ASGITransport``, so every request goes through routing, validation,
auth and the problem handlers exactly as it would over a socket.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
from fastapi import FastAPI

from catalog_refresher.api import create_app
from catalog_refresher.config.settings import ApiSettings, Secret
from catalog_refresher.control import LocalControl
from catalog_refresher.errors import SourceConnectionError
from catalog_refresher.refresh.runner import inline
from catalog_refresher.sources.base import Source
from catalog_refresher.testing import FakeClock, StaticSource
from tests.service_harness import Harness, all_static, build

TOKEN = "s3cret-admin-token"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
PROBLEM_JSON = "application/problem+json"

#: Codes that stress the path: a slash, Czech diacritics, and a plain one.
SLASH_CODE = "A/B"
UNICODE_CODE = "Žluťoučký-1"
WIDGETS = [f"P-{n:03d}" for n in range(1, 13)]

ERP: list[dict[str, Any]] = [
    {"product_code": "TEST-001", "product_name": "Test Product 1", "stock": 100, "location": "A1"},
    {"product_code": SLASH_CODE, "product_name": "Slashed", "stock": 5, "location": "B2"},
    {"product_code": UNICODE_CODE, "product_name": "Žluťoučký kůň", "stock": 7, "location": "C3"},
    *(
        {"product_code": code, "product_name": f"Widget {code}", "stock": 1, "location": "W"}
        for code in WIDGETS
    ),
]
ESHOP: list[dict[str, Any]] = [{"product_code": "TEST-001", "stock": 80}]
ALL_CODES = sorted(row["product_code"] for row in ERP)


def failing(source: str, clock: FakeClock, *, times: int = 10_000) -> StaticSource:
    """A source whose every fetch (up to ``times``) fails to connect."""
    errors = [SourceConnectionError("connection refused") for _ in range(times)]
    return StaticSource(source, ERP, failures=errors, clock=clock)


def catalog_sources(clock: FakeClock) -> dict[str, StaticSource]:
    """All ten sources configured; ERP and e-shop serve the test products."""
    return all_static(clock, erp_stock=ERP, eshop_stock=ESHOP)


@dataclass
class Api:
    """A client on the app, and the real service behind it."""

    app: FastAPI
    client: httpx.AsyncClient
    harness: Harness
    clock: FakeClock

    async def start(self) -> None:
        """Start the schedule loops: every enabled source runs once at once."""
        await self.harness.start()

    async def close(self) -> None:
        await self.client.aclose()
        await self.harness.stop()
        self.harness.store.close()


ApiFactory = Callable[..., Api]


def new_api(
    path: Path,
    clock: FakeClock,
    sources: Mapping[str, Source],
    *,
    token: str | None = None,
    protect_reads: bool = False,
    metrics: Callable[[], tuple[bytes, str]] | None = None,
    **options: Any,
) -> Api:
    """An app over a fresh service on ``path``; ``options`` go to CatalogRepository."""
    harness = build(path, clock, sources, **options)
    service = harness.service
    api_settings = ApiSettings(
        admin_token=Secret(token) if token is not None else None, protect_reads=protect_reads
    )
    app = create_app(
        control=LocalControl(service, harness.store, clock, inline),
        catalog=harness.catalog,
        store=harness.store,
        settings=dataclasses.replace(service.settings, api=api_settings),
        clock=clock,
        offload=inline,
        metrics=metrics,
    )
    client = httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://test")
    return Api(app=app, client=client, harness=harness, clock=clock)


def assert_problem(response: httpx.Response, status: int) -> dict[str, Any]:
    """``response`` is an RFC 9457 problem with ``status``; returns its body."""
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == PROBLEM_JSON
    body: dict[str, Any] = response.json()
    assert body["status"] == status
    assert {"type", "title", "status", "detail", "instance"} <= body.keys()
    return body
