"""The JSON the API answers (contract section 6), as msgspec structs.

One definition serves twice: msgspec encodes the responses (fast, and times as
ISO 8601 UTC with ``Z``), and ``openapi.py`` publishes the same structs as the
OpenAPI schemas. Converters take the service's own objects to these shapes.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import msgspec
from starlette.background import BackgroundTask
from starlette.responses import Response

from catalog_refresher.catalog import CacheStats
from catalog_refresher.domain.aggregate import ProductAggregate
from catalog_refresher.domain.runs import Run, RunMode, RunStatus, Trigger
from catalog_refresher.refresh.resilience import CircuitState
from catalog_refresher.status import Freshness, Health, HealthReport, SourceStatus


class RunOut(msgspec.Struct, kw_only=True):
    """One refresh run as the audit log records it."""

    id: int
    source: str
    trigger: Trigger
    status: RunStatus
    queued_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    attempts: int
    fetched: int
    inserted: int
    updated: int
    deleted: int
    invalid: int
    used_backup: bool
    error: str | None
    error_type: str | None
    """The metrics label of the failure: connection, timeout, http_status, ..."""
    forced: bool
    invalid_reasons: list[str]
    mode: RunMode
    """``full`` (the whole snapshot) or ``incremental`` (the changes since ``cursor_before``)."""
    cursor_before: str | None
    cursor_after: str | None
    not_modified: bool
    """The source answered 304, or the very body of the last good run: nothing was read."""


class RunPage(msgspec.Struct, kw_only=True):
    items: list[RunOut]
    total: int
    limit: int
    offset: int


class ProductPage(msgspec.Struct, kw_only=True):
    items: list[ProductAggregate]
    total: int
    limit: int
    offset: int


class SourceOut(msgspec.Struct, kw_only=True):
    """One source: its schedule, its latest runs and its circuit."""

    id: str
    interval_seconds: float
    enabled: bool
    priority: int
    last_success_at: datetime | None
    last_attempt_at: datetime | None
    last_status: RunStatus | None
    last_error: str | None
    """Why the latest finished run did not succeed (null when it did)."""
    next_run_at: datetime | None
    circuit_state: CircuitState
    consecutive_failures: int
    record_count: int
    stale: bool
    used_backup: bool
    pinned: bool = False
    """An operator pinned the source to an older version (``POST .../pin``)."""
    pinned_run_id: int | None = None
    paused: bool = False
    """No scheduled runs until resumed (``POST .../resume``); the data stays served."""
    paused_at: datetime | None = None
    pause_reason: str | None = None
    freshness: Freshness | None = None
    """Against the source's ``Freshness`` window: fresh, warn, fail (null: no window)."""
    age_seconds: float | None = None
    """Since the last success (before one: since the service started)."""


class CacheOut(msgspec.Struct, kw_only=True):
    size: int
    max_size: int
    hits: int
    misses: int
    hit_ratio: float


class Invalidated(msgspec.Struct, kw_only=True):
    invalidated: int
    """How many cached aggregates were dropped."""


class HealthEntryOut(msgspec.Struct, kw_only=True):
    status: Health
    description: str


class HealthOut(msgspec.Struct, kw_only=True, omit_defaults=True):
    """ASP.NET Core's health report shape: the worst entry is the overall status.

    The probes answer only ``status``: an empty ``entries`` is left out.
    """

    status: Health
    entries: dict[str, HealthEntryOut] = msgspec.field(default_factory=dict)


class FieldError(msgspec.Struct, kw_only=True):
    in_: str = msgspec.field(name="in")
    name: str
    detail: str


class Problem(msgspec.Struct, kw_only=True, omit_defaults=True):
    """RFC 9457 problem details; ``errors`` only on validation problems."""

    type: str
    title: str
    status: int
    detail: str
    instance: str
    errors: list[FieldError] | None = None


#: Every struct the OpenAPI document names.
DOCUMENTED: tuple[type[msgspec.Struct], ...] = (
    RunOut,
    RunPage,
    ProductAggregate,
    ProductPage,
    SourceOut,
    CacheOut,
    Invalidated,
    HealthOut,
    Problem,
)


def utc(value: datetime | None) -> datetime | None:
    """One offset on the wire: every time is UTC, so it encodes with ``Z``."""
    return value.astimezone(UTC) if value is not None else None


def run_out(run: Run) -> RunOut:
    queued_at = utc(run.queued_at)
    assert queued_at is not None
    return RunOut(
        id=run.id,
        source=run.source,
        trigger=run.trigger,
        status=run.status,
        queued_at=queued_at,
        started_at=utc(run.started_at),
        finished_at=utc(run.finished_at),
        attempts=run.attempts,
        fetched=run.counts.fetched,
        inserted=run.counts.inserted,
        updated=run.counts.updated,
        deleted=run.counts.deleted,
        invalid=run.counts.invalid,
        used_backup=run.used_backup,
        error=run.error,
        error_type=run.error_type,
        forced=run.forced,
        invalid_reasons=list(run.invalid_reasons),
        mode=run.mode,
        cursor_before=run.cursor_before,
        cursor_after=run.cursor_after,
        not_modified=run.not_modified,
    )


def seconds(interval: timedelta) -> float:
    total = interval.total_seconds()
    # Whole seconds encode as 300, not 300.0: intervals are configured in whole seconds.
    return int(total) if total.is_integer() else total


def source_out(status: SourceStatus) -> SourceOut:
    return SourceOut(
        id=status.id,
        interval_seconds=seconds(status.interval),
        enabled=status.enabled,
        priority=status.priority,
        last_success_at=utc(status.last_success_at),
        last_attempt_at=utc(status.last_attempt_at),
        last_status=status.last_status,
        last_error=status.last_error,
        next_run_at=utc(status.next_run_at),
        circuit_state=status.circuit_state,
        consecutive_failures=status.consecutive_failures,
        record_count=status.record_count,
        stale=status.stale,
        used_backup=status.used_backup,
        pinned=status.pinned_run_id is not None,
        pinned_run_id=status.pinned_run_id,
        paused=status.paused,
        paused_at=utc(status.paused_at),
        pause_reason=status.pause_reason,
        freshness=status.freshness,
        age_seconds=None if status.age is None else seconds(status.age),
    )


def cache_out(stats: CacheStats) -> CacheOut:
    return CacheOut(
        size=stats.size,
        max_size=stats.max_size,
        hits=stats.hits,
        misses=stats.misses,
        hit_ratio=stats.hit_ratio,
    )


def health_out(report: HealthReport) -> HealthOut:
    return HealthOut(
        status=report.status,
        entries={
            name: HealthEntryOut(status=entry.status, description=entry.description)
            for name, entry in report.entries.items()
        },
    )


class MsgspecResponse(Response):
    """JSON encoded by msgspec: structs, dataclasses, enums and UTC times as ``Z``."""

    media_type = "application/json"

    def __init__(
        self,
        content: Any,
        status_code: int = 200,
        headers: dict[str, str] | None = None,
        background: BackgroundTask | None = None,
    ) -> None:
        super().__init__(content, status_code, headers, self.media_type, background)

    def render(self, content: Any) -> bytes:
        return msgspec.json.encode(content)
