"""The JSON of the operator-control routes (``api/operator.py``, the dry run)."""

from __future__ import annotations

from datetime import datetime

import msgspec

from catalog_refresher.api.schemas import utc
from catalog_refresher.domain.runs import RunMode
from catalog_refresher.refresh.dry_run import Preview
from catalog_refresher.refresh.reload import Reloaded
from catalog_refresher.refresh.validators import Verdict
from catalog_refresher.store.base import Pause


class PauseOut(msgspec.Struct, kw_only=True):
    source: str
    paused: bool
    paused_at: datetime | None = None
    pause_reason: str | None = None
    resumed: bool | None = None
    """On resume: whether the source was paused."""


class VerdictOut(msgspec.Struct, kw_only=True):
    name: str
    passed: bool
    detail: str


class DryRunOut(msgspec.Struct, kw_only=True):
    """What a run would publish now; nothing was written."""

    source: str
    dry_run: bool = True
    would_publish: bool
    mode: RunMode
    not_modified: bool
    fetched: int
    valid: int
    invalid: int
    inserted: int
    updated: int
    deleted: int
    first_inserted: list[str]
    """The first keys (in key order) of each kind; at most 10."""
    first_updated: list[str]
    first_deleted: list[str]
    invalid_reasons: list[str]
    guard: VerdictOut
    validators: list[VerdictOut]


class ReloadOut(msgspec.Struct, kw_only=True):
    id: int
    """The reload's entry in the ``config_reloads`` audit table."""
    changes: list[str]


OPERATOR_DOCUMENTED: tuple[type[msgspec.Struct], ...] = (PauseOut, DryRunOut, ReloadOut)


def pause_out(pause: Pause) -> PauseOut:
    return PauseOut(
        source=pause.source,
        paused=True,
        paused_at=utc(pause.paused_at),
        pause_reason=pause.reason,
    )


def dry_run_out(preview: Preview) -> DryRunOut:
    return DryRunOut(
        source=preview.source,
        would_publish=preview.would_publish,
        mode=preview.mode,
        not_modified=preview.not_modified,
        fetched=preview.fetched,
        valid=preview.valid,
        invalid=preview.invalid,
        inserted=preview.inserted,
        updated=preview.updated,
        deleted=preview.deleted,
        first_inserted=list(preview.first_inserted),
        first_updated=list(preview.first_updated),
        first_deleted=list(preview.first_deleted),
        invalid_reasons=list(preview.invalid_reasons),
        guard=verdict(preview.guard),
        validators=[verdict(v) for v in preview.validators],
    )


def verdict(found: Verdict) -> VerdictOut:
    return VerdictOut(name=found.name, passed=found.passed, detail=found.detail)


def reload_out(reloaded: Reloaded) -> ReloadOut:
    return ReloadOut(id=reloaded.id, changes=list(reloaded.changes))
