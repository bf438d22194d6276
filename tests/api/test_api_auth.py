"""The admin token: POSTs need it when configured, reads too with ProtectReads."""

from __future__ import annotations

import logging

import pytest

from tests.api.support import AUTH, TOKEN, Api, ApiFactory, assert_problem

WRITES = [
    "/api/sources/erp_stock/refresh",
    "/api/cache/invalidate",
    "/api/cache/invalidate/X",
    "/api/sources/erp_stock/pause",
    "/api/sources/erp_stock/resume",
    "/api/sources/erp_stock/refresh?dry_run=true",
]
READS = [
    "/api/products",
    "/api/products/TEST-001",
    "/api/sources",
    "/api/sources/erp_stock",
    "/api/runs",
    "/api/runs/1",
    "/api/cache",
]
OPEN = ["/health", "/health/live", "/health/ready", "/metrics", "/openapi.json", "/docs"]


@pytest.fixture
async def guarded(make_api: ApiFactory) -> Api:
    """An app with an admin token, its sources refreshed once."""
    api = make_api(token=TOKEN, metrics=lambda: (b"up 1\n", "text/plain; version=0.0.4"))
    await api.start()
    return api


@pytest.mark.parametrize("path", WRITES)
async def test_post_without_token_is_401_with_challenge(guarded: Api, path: str) -> None:
    """A POST without the header is a 401 problem carrying ``WWW-Authenticate: Bearer``."""
    response = await guarded.client.post(path)
    body = assert_problem(response, 401)
    assert response.headers["www-authenticate"] == "Bearer"
    assert body["type"].endswith(":unauthorized")


@pytest.mark.parametrize("header", ["Basic dXNlcjpwYXNz", "Bearer", "Bearer ", TOKEN, ""])
async def test_malformed_authorization_is_401(guarded: Api, header: str) -> None:
    """A header that is not ``Bearer <token>`` counts as missing: 401."""
    response = await guarded.client.post(WRITES[0], headers={"Authorization": header})
    assert_problem(response, 401)


@pytest.mark.parametrize(
    "token", [b"wrong", TOKEN.upper().encode(), TOKEN.encode() + b"x", "žluť".encode()]
)
async def test_wrong_token_is_403_and_not_echoed(
    guarded: Api, token: bytes, caplog: pytest.LogCaptureFixture
) -> None:
    """A wrong token (non-ASCII included) is a 403 problem; neither token is echoed or logged."""
    with caplog.at_level(logging.DEBUG):
        response = await guarded.client.post(
            WRITES[1], headers={b"Authorization": b"Bearer " + token}
        )
    body = assert_problem(response, 403)
    assert body["type"].endswith(":forbidden")
    assert TOKEN not in response.text
    assert token.decode("latin-1") not in response.text
    assert TOKEN not in caplog.text


@pytest.mark.parametrize("path", WRITES)
async def test_right_token_is_accepted(guarded: Api, path: str) -> None:
    """With the right token each POST succeeds (2xx)."""
    response = await guarded.client.post(path, headers=AUTH)
    assert 200 <= response.status_code < 300, response.text


async def test_token_is_checked_before_parameters(guarded: Api) -> None:
    """Without a token, a POST with bad parameters is a 401, not a 422 that reveals them."""
    response = await guarded.client.post(WRITES[0] + "?wait=maybe")
    assert_problem(response, 401)


@pytest.mark.parametrize("path", READS + OPEN)
async def test_reads_stay_open_without_protect_reads(guarded: Api, path: str) -> None:
    """Without ProtectReads, every GET answers without a token."""
    assert (await guarded.client.get(path)).status_code == 200


@pytest.mark.parametrize("path", READS)
async def test_protect_reads_guards_the_api_reads(make_api: ApiFactory, path: str) -> None:
    """With ProtectReads, every /api GET is 401 without the token, 403 with a wrong one,
    200 with the right one."""
    api = make_api(token=TOKEN, protect_reads=True)
    await api.start()
    assert_problem(await api.client.get(path), 401)
    assert_problem(await api.client.get(path, headers={"Authorization": "Bearer no"}), 403)
    assert (await api.client.get(path, headers=AUTH)).status_code == 200


@pytest.mark.parametrize("path", OPEN)
async def test_protect_reads_leaves_probes_open(make_api: ApiFactory, path: str) -> None:
    """With ProtectReads, health, metrics and the API docs still answer without a token."""
    api = make_api(
        token=TOKEN, protect_reads=True, metrics=lambda: (b"up 1\n", "text/plain; version=0.0.4")
    )
    await api.start()
    assert (await api.client.get(path)).status_code == 200


async def test_without_a_token_configured_posts_are_open(started: Api) -> None:
    """With no admin token configured, a POST needs no header."""
    assert (await started.client.post("/api/cache/invalidate")).status_code == 200
