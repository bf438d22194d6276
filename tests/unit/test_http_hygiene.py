"""HTTP hygiene against real local servers: Retry-After, rate limits, compression,
timeouts and proxies; waits on the fake clock."""

from __future__ import annotations

import asyncio
import base64
import email.utils
import gzip
import json
import threading
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import timedelta
from pathlib import Path
from typing import Any, TypeVar

import brotli
import httpx
import pytest
import zstandard

from catalog_refresher.config import load
from catalog_refresher.config.settings import Settings
from catalog_refresher.domain.runs import RunStatus
from catalog_refresher.domain.specs import SPECS
from catalog_refresher.errors import SourceConnectionError, SourceStatusError, SourceTimeoutError
from catalog_refresher.refresh.resilience import with_retries
from catalog_refresher.refresh.validate import validate
from catalog_refresher.sources.http import HttpSource, build_client
from catalog_refresher.sources.http_client import HttpClients, RateLimiter
from catalog_refresher.testing import FakeClock, StaticSource
from tests.endpoints import fetch, load_endpoint
from tests.http_recorder import Answer, Seen, ok_json, recording
from tests.service_harness import build

T = TypeVar("T")
ROWS = [{"product_code": f"P-{i}", "stock": i} for i in range(3)]


class WaitingClock(FakeClock):
    """A fake clock that notes each wait asked of it."""

    def __init__(self) -> None:
        super().__init__()
        self.waits: list[float] = []

    async def sleep(self, seconds: float) -> None:
        self.waits.append(seconds)
        await super().sleep(seconds)


async def drive(clock: FakeClock, work: Awaitable[T], *, below: float = 30.0) -> T:
    """Await ``work``, moving ``clock`` on to each wait shorter than ``below`` seconds (the
    retry and rate waits; a request's own RequestTimeout alarm is longer) as it begins."""
    task = asyncio.ensure_future(work)
    give_up = time.monotonic() + 10  # a bound on the real time the local server may take
    while not task.done():
        wait = clock.next_deadline()
        if wait is not None and wait < below:
            await clock.advance(wait)
        else:
            assert time.monotonic() < give_up, "the work neither finished nor waited"
            await asyncio.sleep(0)
    return task.result()


def load_sources(tmp_path: Path, sources: dict[str, Any]) -> Settings:
    path = tmp_path / "appsettings.json"
    path.write_text(json.dumps({"Sources": sources}))
    return load(path, environment=None, environ={})


def erp(url: str, **options: Any) -> dict[str, Any]:
    return {"Url": url, **options}


# --- Retry-After ----------------------------------------------------------------------------


@pytest.mark.parametrize("status", [429, 503])
async def test_retry_after_seconds_is_waited_before_the_next_attempt(
    tmp_path: Path, status: int
) -> None:
    """A 429 or 503 with Retry-After: 7 makes the retry wait 7 s (more than the backoff)."""
    answers = [Answer(status=status, headers=[("Retry-After", "7")]), ok_json(ROWS)]
    clock = WaitingClock()
    with recording(lambda seen: answers.pop(0)) as server:
        endpoint = load_endpoint(tmp_path, "erp_stock", erp(server.url))
        async with build_client() as client:
            source = HttpSource("erp_stock", endpoint, client, clock=clock)
            payload, attempts = await drive(
                clock,
                with_retries(
                    lambda: source.fetch(None),
                    attempts=3,
                    base_delay=timedelta(seconds=1),
                    jitter=timedelta(0),
                    clock=clock,
                    on_retry=lambda attempt, exc: None,
                ),
            )

    assert attempts == 2
    assert 7.0 in clock.waits
    assert clock.monotonic() == pytest.approx(7.0)
    assert validate(SPECS["erp_stock"], payload, None).fetched == 3


async def test_retry_after_as_an_http_date_is_waited_until_then(tmp_path: Path) -> None:
    """Retry-After given as an HTTP date waits until that moment of the clock."""
    clock = WaitingClock()
    when = email.utils.format_datetime(clock.now() + timedelta(seconds=42), usegmt=True)
    answers = [Answer(status=503, headers=[("Retry-After", when)]), ok_json(ROWS)]
    with recording(lambda seen: answers.pop(0)) as server:
        endpoint = load_endpoint(tmp_path, "erp_stock", erp(server.url))
        async with build_client() as client:
            source = HttpSource("erp_stock", endpoint, client, clock=clock)
            _, attempts = await drive(
                clock,
                with_retries(
                    lambda: source.fetch(None),
                    attempts=2,
                    base_delay=timedelta(seconds=2),
                    jitter=timedelta(0),
                    clock=clock,
                    on_retry=lambda attempt, exc: None,
                ),
                below=60,
            )

    assert attempts == 2
    assert clock.monotonic() == pytest.approx(42.0)


async def test_a_short_retry_after_still_waits_the_backoff() -> None:
    """Retry-After shorter than the backoff does not shorten it."""
    clock = WaitingClock()
    failures = [SourceStatusError(429, "http://erp", retry_after=1)]

    async def operation() -> str:
        if failures:
            raise failures.pop()
        return "ok"

    result, _ = await drive(
        clock,
        with_retries(
            operation,
            attempts=2,
            base_delay=timedelta(seconds=10),
            jitter=timedelta(0),
            clock=clock,
            on_retry=lambda attempt, exc: None,
        ),
    )
    assert (result, clock.waits) == ("ok", [10.0])


async def test_a_wait_past_the_refresh_timeout_is_not_begun() -> None:
    """Retry-After beyond what RefreshTimeout leaves fails at once with the status error."""
    clock = WaitingClock()
    retried: list[int] = []

    async def operation() -> str:
        raise SourceStatusError(429, "http://erp", retry_after=3600)

    with pytest.raises(SourceStatusError, match=r"HTTP 429 from http://erp \(retry after 3600 s\)"):
        await with_retries(
            operation,
            attempts=3,
            base_delay=timedelta(seconds=1),
            clock=clock,
            on_retry=lambda attempt, exc: retried.append(attempt),
            deadline=clock.monotonic() + 100,
        )
    assert (clock.waits, retried) == ([], [])


async def test_retry_after_is_ignored_on_other_statuses(tmp_path: Path) -> None:
    """A 500's Retry-After is not carried: only 429 and 503 ask for a wait."""
    answer = Answer(status=500, headers=[("Retry-After", "9")])
    with recording(lambda seen: answer) as server, pytest.raises(SourceStatusError) as caught:
        await fetch("erp_stock", load_endpoint(tmp_path, "erp_stock", erp(server.url)))
    assert caught.value.retry_after is None


# --- rate limit -------------------------------------------------------------------------------


async def test_the_rate_limiter_spaces_waits_evenly_on_the_clock() -> None:
    """At 4 requests a second, the fourth request may go at 0.75 s; a late one waits not."""
    clock = FakeClock()
    limiter = RateLimiter(4, clock)
    times = []
    for _ in range(4):
        await drive(clock, limiter.wait())
        times.append(clock.monotonic())
    await clock.advance(5)
    await drive(clock, limiter.wait())
    times.append(clock.monotonic())
    assert times == [0, 0.25, 0.5, 0.75, 5.75]


async def test_max_requests_per_second_spaces_the_pages_of_a_fetch(tmp_path: Path) -> None:
    """MaxRequestsPerSecond 2 sends three pages at 0, 0.5 and 1 s of the clock."""
    clock = FakeClock()
    sent: list[float] = []

    def handle(seen: Seen) -> Answer:
        sent.append(clock.monotonic())
        start = int(seen.query["offset"])
        return ok_json(ROWS[start : start + 1])

    with recording(handle) as server:
        options = erp(server.url, MaxRequestsPerSecond=2, Paging={"Kind": "offset", "PageSize": 1})
        endpoint = load_endpoint(tmp_path, "erp_stock", options)
        await drive(clock, fetch("erp_stock", endpoint, clock=clock))

    assert sent == [0.0, 0.5, 1.0, 1.5]  # the fourth page is the empty one


# --- compression ------------------------------------------------------------------------------

ENCODERS: dict[str, Callable[[bytes], bytes]] = {
    "br": brotli.compress,
    "zstd": lambda data: zstandard.ZstdCompressor().compress(data),
    "gzip": gzip.compress,
}


@pytest.mark.parametrize("encoding", sorted(ENCODERS))
@pytest.mark.parametrize("spooled", [False, True], ids=["memory", "spool"])
async def test_compressed_answers_are_decoded(tmp_path: Path, encoding: str, spooled: bool) -> None:
    """br, zstd and gzip are asked for and decoded, in memory and when spooled."""
    body = ok_json(ROWS * 100).body

    def handle(seen: Seen) -> Answer:
        assert encoding in seen.headers["Accept-Encoding"]
        return Answer(body=ENCODERS[encoding](body), headers=[("Content-Encoding", encoding)])

    spool = tmp_path / "spool"
    spool.mkdir()
    with recording(handle) as server:
        endpoint = load_endpoint(tmp_path, "erp_stock", erp(server.url))
        payload = await fetch("erp_stock", endpoint, spool=spool if spooled else None)

    page = payload.pages[0]
    assert (page.read_bytes() if isinstance(page, Path) else page) == body
    assert {"br", "zstd", "gzip"} <= set(server.seen[0].headers["Accept-Encoding"].split(", "))


# --- timeouts ---------------------------------------------------------------------------------


async def test_connect_and_read_timeouts_bound_their_phases(tmp_path: Path) -> None:
    """ConnectTimeout and ReadTimeout set their phases; RequestTimeout the others."""
    seen: list[dict[str, float]] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request.extensions["timeout"])
        return httpx.Response(200, content=b"[]")

    options = erp(
        "http://erp.example/x",
        RequestTimeout="00:02:00",
        ConnectTimeout="00:00:05",
        ReadTimeout="00:00:30",
    )
    endpoint = load_endpoint(tmp_path, "erp_stock", options)
    await fetch("erp_stock", endpoint, transport=httpx.MockTransport(handler))
    assert seen == [{"connect": 5.0, "read": 30.0, "write": 120.0, "pool": 120.0}]


async def test_a_server_that_stops_answering_hits_the_read_timeout(tmp_path: Path) -> None:
    """ReadTimeout 0.2 s fails a request whose answer never comes, as a transient timeout."""
    release = threading.Event()

    def handle(seen: Seen) -> Answer:
        release.wait(5)  # until the test is over
        return Answer()

    try:
        with recording(handle) as server:
            options = erp(server.url, ReadTimeout="00:00:00.200")
            with pytest.raises(SourceTimeoutError) as caught:
                await fetch("erp_stock", load_endpoint(tmp_path, "erp_stock", options))
            release.set()
    finally:
        release.set()
    assert caught.value.transient


class _Endless(httpx.AsyncByteStream):
    """A body whose first chunk comes, and then nothing more, ever."""

    async def __aiter__(self) -> AsyncIterator[bytes]:
        yield b"["
        await asyncio.Event().wait()


async def test_request_timeout_bounds_the_whole_answer_on_the_clock(tmp_path: Path) -> None:
    """A body that trickles on forever fails once RequestTimeout passes on the clock."""
    clock = FakeClock()

    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, stream=_Endless())

    endpoint = load_endpoint(tmp_path, "erp_stock", erp("http://erp.example/x"))
    task = asyncio.ensure_future(
        fetch("erp_stock", endpoint, clock=clock, transport=httpx.MockTransport(handler))
    )
    await clock.advance(59)
    assert not task.done()
    await clock.advance(1)
    with pytest.raises(SourceTimeoutError, match=r"within 60 s \(RequestTimeout\)"):
        await task


# --- proxy ------------------------------------------------------------------------------------


async def test_requests_go_through_the_proxy_with_its_credentials(tmp_path: Path) -> None:
    """With Proxy set, the request goes to the proxy in absolute form with Proxy-Authorization."""
    with recording(lambda seen: ok_json(ROWS)) as proxy:
        address = proxy.url.replace("http://", "http://px-user:px-pass@")
        options = erp("http://erp.invalid/stock?company=1", Proxy="env:ERP_PROXY")
        endpoint = load_endpoint(tmp_path, "erp_stock", options, ERP_PROXY=address)
        payload = await fetch("erp_stock", endpoint)

    (seen,) = proxy.seen
    assert seen.target == "http://erp.invalid/stock?company=1"
    credentials = base64.b64encode(b"px-user:px-pass").decode()
    assert seen.headers["Proxy-Authorization"] == f"Basic {credentials}"
    assert validate(SPECS["erp_stock"], payload, None).fetched == 3


async def test_a_proxy_that_cannot_be_reached_never_shows_its_password(tmp_path: Path) -> None:
    """A dead proxy is a connection error whose message holds no proxy credential."""
    with recording(lambda seen: Answer()) as closed:
        dead = closed.url
    options = erp("http://erp.invalid/stock", Proxy="env:ERP_PROXY")
    address = dead.replace("http://", "http://px-user:px-pass-9876@")
    endpoint = load_endpoint(tmp_path, "erp_stock", options, ERP_PROXY=address)
    with pytest.raises(SourceConnectionError) as caught:
        await fetch("erp_stock", endpoint)
    assert "px-pass-9876" not in str(caught.value)


async def test_endpoints_get_a_client_of_their_own_only_for_other_connection_settings(
    tmp_path: Path,
) -> None:
    """Default endpoints share the default client; equal proxy settings share one client."""
    sources = {
        "ErpStock": {"Url": "http://a.example", "Proxy": "http://p.example:1"},
        "EshopStock": {"Url": "http://b.example", "Proxy": "http://p.example:1"},
        "Lots": {"Url": "http://c.example", "Proxy": "http://q.example:1"},
        "Attributes": {"Url": "http://d.example"},
    }
    settings = load_sources(tmp_path, sources)
    async with build_client() as default:
        clients = HttpClients(default)
        got = {
            source_id: clients.for_endpoint(config.primary, source_id)
            for source_id, config in settings.sources.items()
        }
        assert got["attributes"] is default
        assert got["erp_stock"] is got["eshop_stock"]
        assert got["lots"] is not got["erp_stock"]
        assert default not in (got["erp_stock"], got["lots"])
        await clients.aclose()
        assert got["erp_stock"].is_closed
        assert not default.is_closed


async def test_a_run_told_to_wait_past_its_refresh_timeout_fails_at_once(tmp_path: Path) -> None:
    """The runner hands RefreshTimeout to the retry: a 429 asking an hour fails the run now."""
    clock = FakeClock()
    erp = StaticSource(
        "erp_stock", [], failures=[SourceStatusError(429, "http://erp", retry_after=3600)] * 3
    )
    harness = build(tmp_path / "c.db", clock, {"erp_stock": erp})
    await harness.start()
    (run,) = harness.runs("erp_stock")
    assert (run.status, run.attempts, erp.calls) == (RunStatus.FAILED, 1, 1)
    assert run.error == "HTTP 429 from http://erp (retry after 3600 s)"
    await harness.stop()
