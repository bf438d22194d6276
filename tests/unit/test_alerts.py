"""Webhook alerts delivered over real sockets to a local receiver, on a fake clock.

The receiver is a ``ThreadingHTTPServer`` on 127.0.0.1 and the notifier uses a
real ``httpx.AsyncClient``. Tests wait for delivery by awaiting
``notifier.flush()`` (bounded by ``asyncio.wait_for`` so a bug fails instead of
hanging) and move retry backoff with the fake clock; none sleeps.
"""

from __future__ import annotations

import asyncio
import json
import logging
import threading
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, cast

import httpx
import pytest

from catalog_refresher.config.settings import AlertSettings, Secret
from catalog_refresher.domain.runs import Run, RunStatus, Trigger
from catalog_refresher.errors import (
    AlertDeliveryError,
    AlertStatusError,
    SourceStatusError,
    StoreError,
)
from catalog_refresher.observe.alerts import WebhookNotifier
from catalog_refresher.refresh.events import RunFinished
from catalog_refresher.refresh.resilience import is_transient
from catalog_refresher.testing import FakeClock, StaticSource
from tests.service_harness import build

ERP = [
    {"product_code": "TEST-001", "product_name": "Test Product 1", "stock": 100, "location": "A1"}
]
TOKEN = "Bearer s3cret-alert-token"
#: Real sockets are involved: a generous bound that only a broken test reaches.
DELIVERY_BOUND = 10.0


@dataclass
class Received:
    path: str
    headers: dict[str, str]
    body: dict[str, Any]


@dataclass
class Receiver:
    """A local webhook: records every POST and answers the scripted statuses, then 200."""

    url: str = ""
    statuses: list[int] = field(default_factory=list)
    requests: list[Received] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def events(self) -> list[str]:
        with self.lock:
            return [r.body["event"] for r in self.requests]


class _ReceiverServer(ThreadingHTTPServer):
    receiver: Receiver


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_POST(self) -> None:
        receiver = cast(_ReceiverServer, self.server).receiver
        body = json.loads(self.rfile.read(int(self.headers.get("Content-Length", "0"))))
        with receiver.lock:
            receiver.requests.append(Received(self.path, dict(self.headers.items()), body))
            status = receiver.statuses.pop(0) if receiver.statuses else 200
        self.send_response(status)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, format: str, *args: Any) -> None:
        """Silence the default access log on stderr."""


class SignallingClock(FakeClock):
    """A FakeClock that reports each wait, so a test can advance exactly when one begins."""

    def __init__(self) -> None:
        super().__init__()
        self.waits: asyncio.Queue[float] = asyncio.Queue()

    async def sleep(self, seconds: float) -> None:
        self.waits.put_nowait(seconds)
        await super().sleep(seconds)


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    server = _ReceiverServer(("127.0.0.1", 0), _Handler)
    host, port = server.server_address[:2]
    server.receiver = Receiver(url=f"http://{host!s}:{port}/hooks/catalog")
    # A short poll interval only makes shutdown() prompt; requests are served at once.
    thread = threading.Thread(
        target=server.serve_forever, args=(0.02,), name="webhook-receiver", daemon=True
    )
    thread.start()
    yield server.receiver
    server.shutdown()
    server.server_close()
    thread.join()


@pytest.fixture
async def client() -> AsyncIterator[httpx.AsyncClient]:
    # trust_env=False: a proxy set in the environment must not capture 127.0.0.1.
    async with httpx.AsyncClient(trust_env=False) as client:
        yield client


@pytest.fixture
def clock() -> SignallingClock:
    return SignallingClock()


def alert_settings(receiver: Receiver) -> AlertSettings:
    return AlertSettings(
        webhook_url=receiver.url,
        headers={"Authorization": Secret(TOKEN, "env:ALERT_TOKEN"), "X-Team": "catalog"},
        timeout=timedelta(seconds=5),
    )


def finished(status: RunStatus, *, source: str = "erp_stock", run_id: int = 1) -> RunFinished:
    """The RunFinished event of a run of ``source`` that ended with ``status``."""
    at = datetime(2026, 11, 29, 10, 0, tzinfo=UTC)
    failed = status is not RunStatus.SUCCEEDED
    run = Run(
        id=run_id,
        source=source,
        trigger=Trigger.SCHEDULE,
        status=status,
        forced=False,
        queued_at=at,
        started_at=at,
        finished_at=at,
        error="HTTP 503 from http://erp" if failed else None,
        error_type="http_status" if failed else None,
    )
    return RunFinished(run=run, valid=0, duration=1.0)


async def flushed(notifier: WebhookNotifier) -> None:
    await asyncio.wait_for(notifier.flush(), DELIVERY_BOUND)


async def test_three_failures_then_success_send_failing_and_recovered(
    tmp_path: Path,
    clock: SignallingClock,
    receiver: Receiver,
    client: httpx.AsyncClient,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Three failed runs then a good one send exactly source_failing, then source_recovered."""
    caplog.set_level(logging.DEBUG)
    erp = StaticSource("erp_stock", ERP, failures=[SourceStatusError(400, "http://erp")] * 3)
    h = build(
        tmp_path / "c.db",
        clock,
        {"erp_stock": erp},
        intervals={"erp_stock": timedelta(seconds=20)},
    )
    notifier = WebhookNotifier(alert_settings(receiver), client, clock, circuit=h.service.circuit)
    h.service.bus.subscribe(notifier)
    notifier.start()
    await h.start()
    await clock.advance(3 * 20)
    await flushed(notifier)
    assert receiver.events == ["source_failing", "source_recovered"]
    runs = h.runs("erp_stock")
    failing, recovered = (r.body for r in receiver.requests)
    assert failing == {
        "event": "source_failing",
        "source": "erp_stock",
        "run_id": runs[0].id,
        "status": "failed",
        "error": runs[0].error,
        "at": "2026-11-29T10:00:00Z",
        "service": "catalog-refresher",
    }
    assert (recovered["run_id"], recovered["status"], recovered["error"]) == (
        runs[3].id,
        "succeeded",
        None,
    )
    assert recovered["at"] == "2026-11-29T10:01:00Z"
    first = receiver.requests[0]
    assert first.path == "/hooks/catalog"
    assert (first.headers["Authorization"], first.headers["X-Team"]) == (TOKEN, "catalog")
    assert "s3cret" not in caplog.text
    await notifier.aclose()
    await h.stop()


async def test_circuit_open_is_sent_once(
    tmp_path: Path, clock: SignallingClock, receiver: Receiver, client: httpx.AsyncClient
) -> None:
    """Five failures open the circuit (one alert); a failed probe re-opening it sends none."""
    erp = StaticSource("erp_stock", ERP, failures=[SourceStatusError(400, "http://erp")] * 6)
    h = build(
        tmp_path / "c.db",
        clock,
        {"erp_stock": erp},
        intervals={"erp_stock": timedelta(seconds=20)},
    )
    notifier = WebhookNotifier(alert_settings(receiver), client, clock, circuit=h.service.circuit)
    h.service.bus.subscribe(notifier)
    notifier.start()
    await h.start()
    await clock.advance(4 * 20)  # the fifth failure opens the circuit
    await flushed(notifier)
    assert receiver.events == ["source_failing", "circuit_open"]
    assert receiver.requests[1].body["run_id"] == h.runs("erp_stock")[4].id
    await clock.advance(60)  # the probe fails and re-opens it; skipped runs in between
    await flushed(notifier)
    assert receiver.events == ["source_failing", "circuit_open"]
    await clock.advance(60)  # the next probe succeeds
    await flushed(notifier)
    assert receiver.events == ["source_failing", "circuit_open", "source_recovered"]
    await notifier.aclose()
    await h.stop()


async def test_server_errors_are_retried_until_delivered(
    clock: SignallingClock,
    receiver: Receiver,
    client: httpx.AsyncClient,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A webhook answering 500 twice then 200 gets the alert on the third POST (waits 1 s, 2 s)."""
    caplog.set_level(logging.DEBUG)
    receiver.statuses = [500, 500]
    notifier = WebhookNotifier(
        alert_settings(receiver), client, clock, attempts=3, base_delay=1.0, jitter=0.0
    )
    notifier.start()
    notifier.on_event(finished(RunStatus.FAILED))
    flushing = asyncio.create_task(notifier.flush())
    for backoff in (1.0, 2.0):
        assert await asyncio.wait_for(clock.waits.get(), DELIVERY_BOUND) == backoff
        await clock.advance(backoff)
    await asyncio.wait_for(flushing, DELIVERY_BOUND)
    assert (notifier.posts, notifier.sent, notifier.failed) == (3, 1, 0)
    assert receiver.events == ["source_failing"] * 3
    assert all(r.headers["Authorization"] == TOKEN for r in receiver.requests)
    assert "attempt 1/3 failed (HTTP 500); retrying" in caplog.text
    assert "s3cret" not in caplog.text  # httpx's own lines included
    await notifier.aclose()


async def test_retry_waits_carry_jitter_of_up_to_a_quarter_of_the_base_delay(
    clock: SignallingClock, receiver: Receiver, client: httpx.AsyncClient
) -> None:
    """By default a retry waits its backoff plus up to a quarter of the base delay, like sources."""
    receiver.statuses = [503, 503]
    notifier = WebhookNotifier(alert_settings(receiver), client, clock, attempts=3, base_delay=2.0)
    notifier.start()
    notifier.on_event(finished(RunStatus.FAILED))
    flushing = asyncio.create_task(notifier.flush())
    for backoff in (2.0, 4.0):
        wait = await asyncio.wait_for(clock.waits.get(), DELIVERY_BOUND)
        assert backoff <= wait <= backoff + 0.5
        await clock.advance(wait)
    await asyncio.wait_for(flushing, DELIVERY_BOUND)
    assert (notifier.posts, notifier.sent) == (3, 1)
    await notifier.aclose()


async def test_alert_is_given_up_after_the_last_attempt(
    clock: SignallingClock,
    receiver: Receiver,
    client: httpx.AsyncClient,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Three 503 answers give the alert up, logging neither the URL nor a header value."""
    caplog.set_level(logging.DEBUG)
    receiver.statuses = [503, 503, 503]
    notifier = WebhookNotifier(alert_settings(receiver), client, clock, attempts=3)
    notifier.start()
    notifier.on_event(finished(RunStatus.TIMED_OUT))
    flushing = asyncio.create_task(notifier.flush())
    for _ in range(2):
        await clock.advance(await asyncio.wait_for(clock.waits.get(), DELIVERY_BOUND))
    await asyncio.wait_for(flushing, DELIVERY_BOUND)
    assert (notifier.posts, notifier.sent, notifier.failed) == (3, 0, 1)
    ours = [r.getMessage() for r in caplog.records if r.name.startswith("catalog_refresher")]
    assert "Alert source_failing for erp_stock not delivered: HTTP 503" in ours
    assert not [line for line in ours if "127.0.0.1" in line or "s3cret" in line]
    await notifier.aclose()


async def test_client_error_is_not_retried(
    clock: SignallingClock, receiver: Receiver, client: httpx.AsyncClient
) -> None:
    """A 400 from the webhook will not pass by retrying: one POST, given up."""
    receiver.statuses = [400]
    notifier = WebhookNotifier(alert_settings(receiver), client, clock)
    notifier.start()
    notifier.on_event(finished(RunStatus.FAILED))
    await flushed(notifier)
    assert (notifier.posts, notifier.sent, notifier.failed) == (1, 0, 1)
    assert clock.waits.empty()
    await notifier.aclose()


async def alert_through_one_retry(notifier: WebhookNotifier, clock: SignallingClock) -> None:
    """Start ``notifier``, queue one failing alert and flush it through one retry wait."""
    notifier.start()
    notifier.on_event(finished(RunStatus.FAILED))
    flushing = asyncio.create_task(notifier.flush())
    await clock.advance(await asyncio.wait_for(clock.waits.get(), DELIVERY_BOUND))
    await asyncio.wait_for(flushing, DELIVERY_BOUND)


async def test_connection_error_is_retried(clock: SignallingClock) -> None:
    """A refused connection is retried after the base delay (transport failure simulated)."""
    calls: list[httpx.Request] = []

    def webhook(request: httpx.Request) -> httpx.Response:
        calls.append(request)
        if len(calls) == 1:
            raise httpx.ConnectError("connection refused", request=request)
        return httpx.Response(204)

    settings = AlertSettings(webhook_url="http://alerts.invalid/hook")
    async with httpx.AsyncClient(transport=httpx.MockTransport(webhook)) as client:
        notifier = WebhookNotifier(settings, client, clock, base_delay=0.5)
        await alert_through_one_retry(notifier, clock)
        assert (notifier.posts, notifier.sent, len(calls)) == (2, 1, 2)
        assert json.loads(calls[1].content)["event"] == "source_failing"
        await notifier.aclose()


async def test_timeouts_are_retried_and_logged_by_class_only(
    clock: SignallingClock, caplog: pytest.LogCaptureFixture
) -> None:
    """A webhook that keeps timing out is retried, then given up; logs name ReadTimeout, no URL."""
    caplog.set_level(logging.DEBUG)

    def webhook(request: httpx.Request) -> httpx.Response:
        raise httpx.ReadTimeout(f"timed out reading {request.url}", request=request)

    settings = AlertSettings(webhook_url="http://alerts.invalid/hook")
    async with httpx.AsyncClient(transport=httpx.MockTransport(webhook)) as client:
        notifier = WebhookNotifier(settings, client, clock, attempts=2)
        await alert_through_one_retry(notifier, clock)
        assert (notifier.posts, notifier.sent, notifier.failed) == (2, 0, 1)
        await notifier.aclose()
    retried = "Alert source_failing for erp_stock: attempt 1/2 failed (ReadTimeout); retrying"
    assert retried in caplog.messages
    assert "Alert source_failing for erp_stock not delivered: ReadTimeout" in caplog.messages
    assert "alerts.invalid" not in caplog.text


@pytest.mark.parametrize(
    ("error", "transient"),
    [
        (AlertStatusError(503), True),
        (AlertStatusError(429), True),
        (AlertStatusError(404), False),
        (AlertDeliveryError("ConnectError", transient=True), True),
        (SourceStatusError(500, "http://erp"), True),
        (StoreError(), False),
        (httpx.ConnectError("refused"), False),
    ],
)
def test_the_retry_policy_reads_transient_from_the_error_tree(
    error: Exception, transient: bool
) -> None:
    """Any project error marked transient is retried; the status rule is the sources' one;
    a foreign error is never (the alerts boundary translates httpx's first)."""
    assert is_transient(error) is transient


async def test_full_queue_drops_and_counts(
    clock: SignallingClock, receiver: Receiver, client: httpx.AsyncClient
) -> None:
    """Past the queue's bound alerts are dropped and counted, never blocking the caller."""
    notifier = WebhookNotifier(alert_settings(receiver), client, clock, queue_size=1)
    for run_id, source in enumerate(("erp_stock", "lots", "suppliers"), start=1):
        notifier.on_event(finished(RunStatus.FAILED, source=source, run_id=run_id))
    assert notifier.dropped == 2
    notifier.start()
    await flushed(notifier)
    assert [r.body["source"] for r in receiver.requests] == ["erp_stock"]
    await notifier.aclose()


async def test_neutral_runs_change_no_state(
    clock: SignallingClock, receiver: Receiver, client: httpx.AsyncClient
) -> None:
    """Rejected, skipped and cancelled runs neither raise nor clear a failing alert."""
    notifier = WebhookNotifier(alert_settings(receiver), client, clock)
    notifier.start()
    for status in (RunStatus.REJECTED, RunStatus.SKIPPED, RunStatus.CANCELLED):
        notifier.on_event(finished(status))
    notifier.on_event(finished(RunStatus.FAILED, run_id=2))
    for status in (RunStatus.REJECTED, RunStatus.FAILED, RunStatus.TIMED_OUT):
        notifier.on_event(finished(status, run_id=3))
    notifier.on_event(finished(RunStatus.SUCCEEDED, run_id=4))
    notifier.on_event(finished(RunStatus.SUCCEEDED, run_id=5))
    await flushed(notifier)
    assert receiver.events == ["source_failing", "source_recovered"]
    await notifier.aclose()


async def test_failing_at_start_recovers_without_a_new_failing_alert(
    clock: SignallingClock, receiver: Receiver, client: httpx.AsyncClient
) -> None:
    """A source loaded as failing sends no second source_failing, and recovers on success."""
    notifier = WebhookNotifier(alert_settings(receiver), client, clock)
    notifier.load_failing(["erp_stock"])
    notifier.start()
    notifier.on_event(finished(RunStatus.FAILED))
    notifier.on_event(finished(RunStatus.SUCCEEDED, run_id=2))
    await flushed(notifier)
    assert receiver.events == ["source_recovered"]
    await notifier.aclose()


async def test_without_webhook_nothing_is_queued(
    clock: SignallingClock, client: httpx.AsyncClient
) -> None:
    """With no WebhookUrl the notifier is a no-op: nothing queued, no task started."""
    notifier = WebhookNotifier(AlertSettings(), client, clock)
    notifier.start()
    notifier.on_event(finished(RunStatus.FAILED))
    assert not notifier.enabled
    await notifier.flush()
    await notifier.aclose()
    assert (notifier.posts, notifier.dropped) == (0, 0)
