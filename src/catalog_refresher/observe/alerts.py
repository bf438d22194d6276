"""Webhook alerts when a source changes state: failing, circuit open, recovered.

``WebhookNotifier`` observes the refresh events (``bus.subscribe(notifier)``)
and keeps, per source, a state derived from ``RunFinished``::

    ok ──failed/timed_out──▶ failing ──breaker opens──▶ circuit_open
     ▲                          │                            │
     └────────succeeded─────────┴────────────────────────────┘

It POSTs one small JSON document per *transition*, never one per failed run::

    {"event": "source_failing" | "circuit_open" | "source_recovered" | "source_auto_paused",
     "source": "erp_stock", "run_id": 12, "status": "failed",
     "error": "HTTP 503 from ...", "at": "2026-11-29T10:00:00Z",
     "service": "catalog-refresher"}

``rejected``, ``skipped`` and ``cancelled`` runs change nothing. A restart
starts every source at ``ok`` unless ``load_failing`` says otherwise.

Delivery never blocks a refresh: ``on_event`` only puts the alert on a bounded
queue (a full queue drops it and counts ``dropped``), and one background task
(``start()`` / ``aclose()``) POSTs them in order. httpx errors become an
``AlertDeliveryError`` here (transient for connection errors and timeouts) and
an error status an ``AlertStatusError`` (transient for 429 and 5xx); transient
ones are retried by ``refresh/resilience.with_retries`` on the injected clock
(``base_delay``, twice that, ..., each plus up to ``jitter``), up to
``attempts`` POSTs; any other failure, or the last one, gives the alert up and
counts ``failed``. Header values (secrets revealed only on the wire) and the
webhook URL never reach a log line.
"""

from __future__ import annotations

import asyncio
import enum
import logging
from collections.abc import Callable, Iterable
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx

from catalog_refresher.clock import Clock, timeout
from catalog_refresher.config.settings import AlertSettings, reveal
from catalog_refresher.domain.runs import Run, RunStatus
from catalog_refresher.errors import AlertDeliveryError, AlertStatusError
from catalog_refresher.refresh.events import Event, RunFinished, SourcePaused
from catalog_refresher.refresh.resilience import CircuitState, with_retries

log = logging.getLogger("catalog_refresher.alerts")

SERVICE = "catalog-refresher"
#: Alerts waiting for delivery; past this they are dropped (a webhook down for
#: long must not grow memory without bound).
DEFAULT_QUEUE_SIZE = 100


class AlertKind(enum.StrEnum):
    FAILING = "source_failing"
    CIRCUIT_OPEN = "circuit_open"
    RECOVERED = "source_recovered"
    AUTO_PAUSED = "source_auto_paused"


class _State(enum.Enum):
    OK = "ok"
    FAILING = "failing"
    CIRCUIT_OPEN = "circuit_open"


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
        jitter: float | None = None,
        queue_size: int = DEFAULT_QUEUE_SIZE,
    ) -> None:
        """``base_delay`` and ``jitter`` are seconds; ``jitter`` is by default a quarter
        of ``base_delay``, as for sources (``with_retries``)."""
        if attempts < 1:
            raise ValueError("attempts must be >= 1")
        self.settings = settings
        self.client = client
        self.clock = clock
        self.attempts = attempts
        self.base_delay = base_delay
        self.jitter = jitter
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
        """The ``EventBus`` observer; never blocks and never raises."""
        if self.enabled and isinstance(event, SourcePaused) and event.auto:
            self._auto_paused(event)
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

    def _auto_paused(self, event: SourcePaused) -> None:
        """``AutoPauseAfterFailures`` took the source off its schedule: an operator must
        resume it (``resume SOURCE``) once the cause is fixed."""
        self._queue_alert(
            {
                "event": AlertKind.AUTO_PAUSED.value,
                "source": event.source,
                "run_id": None,
                "status": "paused",
                "error": event.reason,
                "at": _iso(event.at),
                "service": SERVICE,
            },
            AlertKind.AUTO_PAUSED,
            event.source,
        )

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
        self._queue_alert(alert, kind, run.source)

    def _queue_alert(self, alert: dict[str, Any], kind: AlertKind, source: str) -> None:
        try:
            self._queue.put_nowait(alert)
        except asyncio.QueueFull:
            self.dropped += 1
            _log(logging.WARNING, alert, f"Alert {kind} for {source} dropped: queue full")

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
        def retrying(attempt: int, exc: BaseException) -> None:
            _log(
                logging.WARNING,
                alert,
                f"Alert {alert['event']} for {alert['source']}: attempt "
                f"{attempt}/{self.attempts} failed ({exc}); retrying",
            )

        try:
            await with_retries(
                lambda: self._post(alert),
                attempts=self.attempts,
                base_delay=timedelta(seconds=self.base_delay),
                jitter=None if self.jitter is None else timedelta(seconds=self.jitter),
                clock=self.clock,
                on_retry=retrying,
            )
        except AlertDeliveryError as exc:
            self.failed += 1
            _log(
                logging.ERROR,
                alert,
                f"Alert {alert['event']} for {alert['source']} not delivered: {exc}",
            )
            return
        self.sent += 1
        _log(logging.INFO, alert, f"Alert {alert['event']} for {alert['source']} sent")

    async def _post(self, alert: dict[str, Any]) -> None:
        """One POST; every failure an ``AlertDeliveryError`` whose message is log-safe."""
        assert self._url is not None
        self.posts += 1
        try:
            response = await self.client.post(
                self._url,
                json=alert,
                headers=self._headers,
                timeout=self.settings.timeout.total_seconds(),
            )
        except httpx.HTTPError as exc:
            # The error's class only: httpx messages may hold the URL. Connection
            # errors and timeouts may pass; anything else (a decoding error) will not.
            transient = isinstance(exc, httpx.TransportError)
            raise AlertDeliveryError(type(exc).__name__, transient=transient) from exc
        if response.status_code >= 400:
            raise AlertStatusError(response.status_code)


def _log(level: int, alert: dict[str, Any], message: str, *, exc: bool = False) -> None:
    """A log line with the structured fields of ``observe.logs`` (never a header or URL)."""
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
