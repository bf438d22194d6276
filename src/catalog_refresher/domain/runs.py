"""A refresh run as the audit log records it (contract section 6, ``/api/runs``)."""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from datetime import datetime


class RunStatus(enum.StrEnum):
    QUEUED = "queued"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    REJECTED = "rejected"
    TIMED_OUT = "timed_out"
    CANCELLED = "cancelled"
    SKIPPED = "skipped"

    @property
    def finished(self) -> bool:
        return self not in (RunStatus.QUEUED, RunStatus.RUNNING)

    @property
    def counts_against_circuit(self) -> bool:
        """Failures that open a circuit; rejected and skipped runs do not (contract 5b)."""
        return self in (RunStatus.FAILED, RunStatus.TIMED_OUT)


class RunMode(enum.StrEnum):
    """Whether a run read the whole snapshot or only the changes since the cursor."""

    FULL = "full"
    INCREMENTAL = "incremental"


class Trigger(enum.StrEnum):
    SCHEDULE = "schedule"
    MANUAL = "manual"
    STARTUP = "startup"


@dataclass(frozen=True, slots=True, kw_only=True)
class RunCounts:
    """What a run saw and changed."""

    fetched: int = 0
    inserted: int = 0
    updated: int = 0
    deleted: int = 0
    invalid: int = 0


@dataclass(frozen=True, slots=True, kw_only=True)
class RunOutcome:
    """How a run ended, as written to the audit log in one step."""

    status: RunStatus
    finished_at: datetime
    attempts: int = 0
    counts: RunCounts = field(default_factory=RunCounts)
    used_backup: bool = False
    error: str | None = None
    error_type: str | None = None
    invalid_reasons: tuple[str, ...] = ()
    mode: RunMode = RunMode.FULL
    cursor_before: str | None = None
    """The incremental cursor the run started from (sent, on an incremental run)."""
    cursor_after: str | None = None
    """The cursor the run left (its largest ``CursorField`` value, or the one before)."""
    not_modified: bool = False
    """The source answered 304, or the very body of the last good run: nothing was read."""


@dataclass(frozen=True, slots=True, kw_only=True)
class Run:
    id: int
    source: str
    trigger: Trigger
    status: RunStatus
    forced: bool
    queued_at: datetime
    started_at: datetime | None = None
    finished_at: datetime | None = None
    attempts: int = 0
    counts: RunCounts = field(default_factory=RunCounts)
    used_backup: bool = False
    error: str | None = None
    error_type: str | None = None
    invalid_reasons: tuple[str, ...] = ()
    mode: RunMode = RunMode.FULL
    cursor_before: str | None = None
    """The incremental cursor the run started from (sent, on an incremental run)."""
    cursor_after: str | None = None
    """The cursor the run left (its largest ``CursorField`` value, or the one before)."""
    not_modified: bool = False
    """The source answered 304, or the very body of the last good run: nothing was read."""
