"""Errors are RFC 9457 problems, bad input is never a 500, and the OpenAPI document is served."""

from __future__ import annotations

import logging

import pytest

from tests.api.support import Api, ApiFactory, assert_problem

MALFORMED = [
    # products
    ("GET", "/api/products?limit=-1"),
    ("GET", "/api/products?limit=0"),
    ("GET", "/api/products?limit=1001"),
    ("GET", "/api/products?limit=abc"),
    ("GET", "/api/products?limit="),
    ("GET", "/api/products?limit=1.5"),
    ("GET", "/api/products?limit=99999999999999999999"),
    ("GET", "/api/products?offset=-5"),
    ("GET", "/api/products?offset=99999999999999999999"),
    ("GET", "/api/products?search=" + "x" * 201),
    ("GET", "/api/products/%00"),
    ("GET", "/api/products/%FF%FE"),
    ("GET", "/api/products/" + "A" * 10_000),
    ("DELETE", "/api/products/TEST-001"),
    # runs
    ("GET", "/api/runs?since=notadate"),
    ("GET", "/api/runs?since=9999-12-31T23:59:59-23:59"),
    ("GET", "/api/runs?since=2026-13-45T99:00:00Z"),
    ("GET", "/api/runs?status=bogus"),
    ("GET", "/api/runs?status=SUCCEEDED"),
    ("GET", "/api/runs?source=nope"),
    ("GET", "/api/runs?source=../etc"),
    ("GET", "/api/runs?format=xml"),
    ("GET", "/api/runs?limit=-1"),
    ("GET", "/api/runs?limit=99999999999999999999&format=csv"),
    ("GET", "/api/runs?offset=-1"),
    ("GET", "/api/runs/abc"),
    ("GET", "/api/runs/0"),
    ("GET", "/api/runs/-1"),
    ("GET", "/api/runs/1.5"),
    ("GET", "/api/runs/999999999999999999999999"),
    ("GET", "/api/runs/424242"),
    # sources
    ("GET", "/api/sources/..%2F.."),
    ("GET", "/api/sources/nope"),
    ("GET", "/api/sources/%00"),
    ("GET", "/api/sources/ERP_STOCK"),
    ("POST", "/api/sources/erp_stock/refresh?wait=maybe"),
    ("POST", "/api/sources/erp_stock/refresh?force=2"),
    ("POST", "/api/sources/erp_stock/refresh?wait="),
    ("POST", "/api/sources/..%2F../refresh"),
    ("POST", "/api/sources/nope/refresh"),
    ("GET", "/api/sources/erp_stock/refresh"),
    ("PUT", "/api/sources/erp_stock"),
    # cache, health, metrics
    ("GET", "/api/cache/invalidate"),
    ("DELETE", "/api/cache"),
    ("POST", "/health"),
    ("GET", "/metrics"),
    # unknown routes
    ("GET", "/api"),
    ("GET", "/api/nope"),
    ("GET", "/nope"),
    ("GET", "/api/products%2F..%2F..%2Fetc"),
    ("POST", "/api/refresh"),
]


@pytest.mark.parametrize(("method", "url"), MALFORMED)
async def test_malformed_requests_are_4xx_problems(started: Api, method: str, url: str) -> None:
    """Each malformed path or parameter is a 4xx problem+json, never a 500."""
    response = await started.client.request(method, url)
    assert 400 <= response.status_code < 500, response.text
    assert_problem(response, response.status_code)


async def test_validation_problem_lists_every_bad_parameter(started: Api) -> None:
    """A 422 names each bad parameter, where it was, and why, without echoing the input."""
    response = await started.client.get("/api/runs?limit=abc&status=bogus&since=x")
    body = assert_problem(response, 422)
    assert body["type"] == "urn:catalog-refresher:problem:validation"
    assert {(e["in"], e["name"]) for e in body["errors"]} == {
        ("query", "limit"),
        ("query", "status"),
        ("query", "since"),
    }
    assert all(e["detail"] and "abc" not in e["detail"] for e in body["errors"])
    assert "limit" in body["detail"]


async def test_unknown_route_is_about_blank_404(started: Api) -> None:
    """An unknown route is a plain 404 problem of type about:blank, instance the path."""
    body = assert_problem(await started.client.get("/api/nope"), 404)
    assert (body["type"], body["title"], body["instance"]) == (
        "about:blank",
        "Not Found",
        "/api/nope",
    )


async def test_wrong_method_is_405_with_allow(started: Api) -> None:
    """A wrong method is a 405 problem whose Allow header lists the right one."""
    response = await started.client.get("/api/cache/invalidate")
    body = assert_problem(response, 405)
    assert response.headers["allow"] == "POST"
    assert "POST" in body["detail"]


async def test_unexpected_error_is_500_without_internals(
    make_api: ApiFactory, caplog: pytest.LogCaptureFixture
) -> None:
    """An unexpected exception is a 500 problem that hides its message, which is logged."""

    def broken() -> tuple[bytes, str]:
        raise RuntimeError("internal detail: /var/secret/path")

    api = make_api(metrics=broken)
    with caplog.at_level(logging.ERROR, "catalog_refresher.api"):
        response = await api.client.get("/metrics")
    body = assert_problem(response, 500)
    assert body["type"].endswith(":internal")
    assert "secret" not in response.text
    assert "internal detail: /var/secret/path" in caplog.text


async def test_openapi_document_and_docs_are_served(api: Api) -> None:
    """/openapi.json names the service and every endpoint with its schemas; /docs is HTML."""
    document = (await api.client.get("/openapi.json")).json()
    assert document["info"]["title"] == "catalog-refresher"
    assert {
        "/api/products",
        "/api/products/{code}",
        "/api/sources",
        "/api/sources/{source}",
        "/api/sources/{source}/refresh",
        "/api/runs",
        "/api/runs/{run_id}",
        "/api/cache",
        "/api/cache/invalidate",
        "/api/cache/invalidate/{code}",
        "/health",
        "/health/live",
        "/health/ready",
        "/metrics",
    } <= set(document["paths"])
    schemas = document["components"]["schemas"]
    assert {"ProductAggregate", "RunOut", "SourceOut", "Problem", "HealthOut"} <= set(schemas)
    refresh = document["paths"]["/api/sources/{source}/refresh"]["post"]
    assert refresh["security"] == [{"AdminToken": []}]
    docs = await api.client.get("/docs")
    assert docs.status_code == 200
    assert "text/html" in docs.headers["content-type"]


async def test_openapi_bodies_are_their_schema_alone_and_reads_take_an_optional_token(
    api: Api,
) -> None:
    """Found by schemathesis: FastAPI wrote ``"type": "string"`` beside every ``$ref`` of a
    JSON body (in OpenAPI 3.1 both apply, so no answer matched its own schema), and every
    read required the token although reads need it only with Api:ProtectReads."""
    document = (await api.client.get("/openapi.json")).json()
    products = document["paths"]["/api/products"]["get"]
    assert products["responses"]["200"]["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/ProductPage"
    }
    for operations in document["paths"].values():
        for method, operation in operations.items():
            for answer in operation["responses"].values():
                for media in answer.get("content", {}).values():
                    schema = media.get("schema", {})
                    assert "$ref" not in schema or len(schema) == 1, (method, schema)
            if method == "get" and "security" in operation:
                assert operation["security"] == [{"AdminToken": []}, {}]


async def test_docs_load_swagger_ui_from_this_service_not_a_cdn(api: Api) -> None:
    """/docs refers to no other origin; its script and stylesheet are served here."""
    page = (await api.client.get("/docs")).text
    assert "/docs/assets/swagger-ui-bundle.js" in page
    assert "/docs/assets/swagger-ui.css" in page
    assert "https://" not in page
    assert "http://" not in page
    script = await api.client.get("/docs/assets/swagger-ui-bundle.js")
    assert script.status_code == 200
    assert "javascript" in script.headers["content-type"]
    assert len(script.content) > 100_000
    assert (await api.client.get("/docs/assets/swagger-ui.css")).status_code == 200
    assert_problem(await api.client.get("/docs/assets/nope.js"), 404)
