"""Webhook alerts when a source changes state: failing, circuit open, recovered.

``WebhookNotifier`` listens to the refresh events (``bus.subscribe(notifier.on_event)``)
and keeps, per source, a state derived from ``RunFinished``::

    ok ──failed/timed_out──▶ failing ──breaker opens──▶ circuit_open
     ▲                          │                            │
     └────────succeeded─────────┴────────────────────────────┘

It POSTs one small JSON document per *transition*, never one per failed run::

    {"event": "source_failing" | "circuit_open" | "source_recovered",
     "source": "erp_stock", "run_id": 12, "status": "failed",
     "error": "HTTP 503 from ...", "at": "2026-11-29T10:00:00Z",
     "service": "catalog-refresher"}

``rejected``, ``skipped`` and ``cancelled`` runs change nothing. A restart
starts every source at ``ok`` unless ``load_failing`` says otherwise.

Delivery never blocks a refresh: ``on_event`` only puts the alert on a bounded
queue (a full queue drops it and counts ``dropped``), and one background task
(``start()`` / ``aclose()``) POSTs them in order. Connection errors, timeouts,
429 and 5xx are retried with exponential backoff (``base_delay``, twice that,
...) on the injected clock, up to ``attempts`` POSTs; any other answer, or the
last failure, gives the alert up and counts ``failed``. Header values (secrets
revealed only on the wire) and the webhook URL never reach a log line.
"""

from __future__ import annotations

import asyncio
import enum
import logging
from collections.abc import Callable, Iterable
from datetime import UTC, datetime
from typing import Any

import httpx
from tenacity import (
    AsyncRetrying,
    RetryCallState,
    retry_if_exception,
    stop_after_attempt,
    wait_exponential,
)

from catalog_refresher.clock import Clock, timeout
from catalog_refresher.domain.runs import Run, RunStatus
from catalog_refresher.refresh.events import Event, RunFinished
from catalog_refresher.refresh.resilience import CircuitState
from catalog_refresher.settings import AlertSettings, reveal

log = logging.getLogger("catalog_refresher.alerts")

SERVICE = "catalog-refresher"
#: Alerts waiting for delivery; past this they are dropped (a webhook down for
#: long must not grow memory without bound).
DEFAULT_QUEUE_SIZE = 100


class AlertKind(enum.StrEnum):
    FAILING = "source_failing"
    CIRCUIT_OPEN = "circuit_open"
    RECOVERED = "source_recovered"


class _State(enum.Enum):
    OK = "ok"
    FAILING = "failing"
    CIRCUIT_OPEN = "circuit_open"


class WebhookDeliveryError(Exception):
    """The webhook answered with an error status."""

    def __init__(self, status_code: int) -> None:
        self.status_code = status_code
        # 429 and 5xx may pass; any other error status will not.
        self.transient = status_code == 429 or status_code >= 500
        super().__init__(f"HTTP {status_code}")


def _is_transient(exc: BaseException) -> bool:
    """Connection errors, timeouts, 429 and 5xx are worth another POST."""
    if isinstance(exc, WebhookDeliveryError):
        return exc.transient
    return isinstance(exc, httpx.TransportError)


def _reason(exc: BaseException) -> str:
    """A log-safe reason: the status, or the error's class (httpx messages may hold the URL)."""
    return str(exc) if isinstance(exc, WebhookDeliveryError) else type(exc).__name__


def _iso(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")


class WebhookNotifier:
    """Sends source state transitions to ``settings.webhook_url``; a no-op without one.

    ``circuit(source)`` tells the breaker's state (``RefreshService.circuit``).
    The client is the caller's: the notifier never closes it.
    """

    def __init__(
        self,
        settings: AlertSettings,
        client: httpx.AsyncClient,
        clock: Clock,
        *,
        circuit: Callable[[str], CircuitState] | None = None,
        attempts: int = 3,
        base_delay: float = 1.0,
        queue_size: int = DEFAULT_QUEUE_SIZE,
    ) -> None:
        if attempts < 1:
            raise ValueError("attempts must be >= 1")
        self.settings = settings
        self.client = client
        self.clock = clock
        self.attempts = attempts
        self.base_delay = base_delay
        self._circuit = circuit
        self._url = reveal(settings.webhook_url) if settings.webhook_url is not None else None
        self._headers = {name: reveal(value) for name, value in settings.headers.items()}
        self._queue: asyncio.Queue[dict[str, Any]] = asyncio.Queue(maxsize=queue_size)
        self._states: dict[str, _State] = {}
        self._worker: asyncio.Task[None] | None = None
        self.posts = 0
        """POST requests made, retries included."""
        self.sent = 0
        """Alerts the webhook accepted."""
        self.failed = 0
        """Alerts given up after their last attempt or a permanent error status."""
        self.dropped = 0
        """Alerts not queued because the queue was full."""

    @property
    def enabled(self) -> bool:
        return self._url is not None

    def load_failing(self, sources: Iterable[str]) -> None:
        """Mark sources that were failing at start (from the audit log).

        Their next failure sends nothing (the alert went out before the
        restart); their next success sends ``source_recovered``.
        """
        for source in sources:
            self._states[source] = _State.FAILING

    # --- events -------------------------------------------------------------------

    def on_event(self, event: Event) -> None:
        """The ``EventBus`` listener; never blocks and never raises."""
        if not self.enabled or not isinstance(event, RunFinished):
            return
        run = event.run
        state = self._states.get(run.source, _State.OK)
        if run.status is RunStatus.SUCCEEDED and state is not _State.OK:
            self._transition(run, _State.OK, AlertKind.RECOVERED)
        elif run.status.counts_against_circuit and state is _State.OK:
            self._transition(run, _State.FAILING, AlertKind.FAILING)
        if self._circuit is not None:
            # The service updates the breaker before it emits RunFinished.
            self._check_circuit(run)

    def _check_circuit(self, run: Run) -> None:
        assert self._circuit is not None
        try:
            is_open = self._circuit(run.source) is CircuitState.OPEN
        except Exception:
            log.exception("circuit state of %s unreadable", run.source)
            return
        if is_open and self._states.get(run.source, _State.OK) is not _State.CIRCUIT_OPEN:
            self._transition(run, _State.CIRCUIT_OPEN, AlertKind.CIRCUIT_OPEN)

    def _transition(self, run: Run, state: _State, kind: AlertKind) -> None:
        self._states[run.source] = state
        alert = {
            "event": kind.value,
            "source": run.source,
            "run_id": run.id,
            "status": run.status.value,
            "error": run.error,
            "at": _iso(run.finished_at or self.clock.now()),
            "service": SERVICE,
        }
        try:
            self._queue.put_nowait(alert)
        except asyncio.QueueFull:
            self.dropped += 1
            _log(logging.WARNING, alert, f"Alert {kind} for {run.source} dropped: queue full")

    # --- delivery -----------------------------------------------------------------

    def start(self) -> None:
        """Start delivering in the background (needs a running event loop)."""
        if self.enabled and self._worker is None:
            self._worker = asyncio.create_task(self._drain(), name="alerts-webhook")

    async def flush(self) -> None:
        """Wait until every queued alert is delivered or given up."""
        if self._worker is None and not self._queue.empty():
            raise RuntimeError("alerts are queued but the notifier was not started")
        await self._queue.join()

    async def aclose(self, *, grace: float = 5.0) -> None:
        """Give queued alerts ``grace`` seconds (on the clock), then stop the worker."""
        worker, self._worker = self._worker, None
        if worker is None:
            return
        try:
            async with timeout(self.clock, grace):
                await self._queue.join()
        except TimeoutError:
            log.warning("%d alerts not delivered before shutdown", self._queue.qsize())
        worker.cancel()
        await asyncio.gather(worker, return_exceptions=True)

    async def _drain(self) -> None:
        while True:
            alert = await self._queue.get()
            try:
                await self._deliver(alert)
            except Exception:
                # The worker must outlive any one alert (a bug must not stop alerting).
                self.failed += 1
                _log(logging.ERROR, alert, f"Alert {alert['event']} failed unexpectedly", exc=True)
            finally:
                self._queue.task_done()

    async def _deliver(self, alert: dict[str, Any]) -> None:
        def before_sleep(state: RetryCallState) -> None:
            assert state.outcome is not None
            exc = state.outcome.exception()
            assert exc is not None
            _log(
                logging.WARNING,
                alert,
                f"Alert {alert['event']} for {alert['source']}: attempt "
                f"{state.attempt_number}/{self.attempts} failed ({_reason(exc)}); retrying",
            )

        retrying = AsyncRetrying(
            stop=stop_after_attempt(self.attempts),
            wait=wait_exponential(multiplier=self.base_delay, exp_base=2),
            retry=retry_if_exception(_is_transient),
            sleep=self.clock.sleep,
            before_sleep=before_sleep,
            reraise=True,
        )
        try:
            async for attempt in retrying:
                with attempt:
                    await self._post(alert)
        except (WebhookDeliveryError, httpx.HTTPError) as exc:
            self.failed += 1
            _log(
                logging.ERROR,
                alert,
                f"Alert {alert['event']} for {alert['source']} not delivered: {_reason(exc)}",
            )
            return
        self.sent += 1
        _log(logging.INFO, alert, f"Alert {alert['event']} for {alert['source']} sent")

    async def _post(self, alert: dict[str, Any]) -> None:
        assert self._url is not None
        self.posts += 1
        response = await self.client.post(
            self._url,
            json=alert,
            headers=self._headers,
            timeout=self.settings.timeout.total_seconds(),
        )
        if response.status_code >= 400:
            raise WebhookDeliveryError(response.status_code)


def _log(level: int, alert: dict[str, Any], message: str, *, exc: bool = False) -> None:
    """A log line with the structured fields of ``observability`` (never a header or URL)."""
    log.log(
        level,
        message,
        exc_info=exc,
        extra={
            "source": alert["source"],
            "run_id": alert["run_id"],
            "fields": {"action": "alert", "event": alert["event"]},
        },
    )
