"""Rows to domain objects, shared by the stores.

Both stores keep the audit log in the same columns (``RUN_COLUMNS``); they
differ only in how a time comes back (ISO text from SQLite, a ``datetime``
from PostgreSQL: ``native_time``), which each passes in as ``time``.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Sequence
from datetime import datetime

from catalog_refresher.domain.runs import Run, RunCounts, RunMode, RunStatus, Trigger
from catalog_refresher.store.base import RunQuery, SourceHistory, StoredPart

RUN_COLUMNS = (
    "id, source, trigger, status, forced, queued_at, started_at, finished_at, attempts,"
    " fetched, inserted, updated, deleted, invalid, used_backup, error, error_type,"
    " invalid_reasons, mode, cursor_before, cursor_after, not_modified"
)
UNFINISHED = (RunStatus.QUEUED.value, RunStatus.RUNNING.value)

TimeOf = Callable[[object], datetime | None]


def run_from_row(row: Sequence[object], time: TimeOf) -> Run:
    """A ``Run`` from the ``RUN_COLUMNS`` of one row."""
    (
        id_,
        source,
        trigger,
        status,
        forced,
        queued_at,
        started_at,
        finished_at,
        attempts,
        fetched,
        inserted,
        updated,
        deleted,
        invalid,
        used_backup,
        error,
        error_type,
        reasons,
        mode,
        cursor_before,
        cursor_after,
        not_modified,
    ) = row
    if isinstance(reasons, str):
        reasons = json.loads(reasons)
    return Run(
        id=int(str(id_)),
        source=str(source),
        trigger=Trigger(str(trigger)),
        status=RunStatus(str(status)),
        forced=bool(forced),
        queued_at=time(queued_at) or datetime.min,
        started_at=time(started_at),
        finished_at=time(finished_at),
        attempts=int(str(attempts)),
        counts=RunCounts(
            fetched=int(str(fetched)),
            inserted=int(str(inserted)),
            updated=int(str(updated)),
            deleted=int(str(deleted)),
            invalid=int(str(invalid)),
        ),
        used_backup=bool(used_backup),
        error=str(error) if error is not None else None,
        error_type=str(error_type) if error_type is not None else None,
        invalid_reasons=tuple(str(r) for r in reasons) if isinstance(reasons, list) else (),
        mode=RunMode(str(mode)),
        cursor_before=None if cursor_before is None else str(cursor_before),
        cursor_after=None if cursor_after is None else str(cursor_after),
        not_modified=bool(not_modified),
    )


#: The recent runs ``history_from`` reads, newest first.
RECENT_RUNS = (
    "SELECT status, started_at, finished_at, used_backup, error FROM runs WHERE source = {p}"
    " ORDER BY id DESC LIMIT 200"
)
SYNC_STATE = (
    "SELECT sync_cursor, sync_etag, sync_last_modified, sync_body_hash, sync_full_at,"
    " sync_runs_since_full FROM source_state WHERE source = {p}"
)
SOURCE_STATE = (
    "SELECT data_version, row_count, last_success_run_id, last_success_at"
    " FROM source_state WHERE source = {p}"
)


def history_from(
    recent: Sequence[Sequence[object]], state: Sequence[object] | None, time: TimeOf
) -> SourceHistory:
    """A source's ``SourceHistory`` from its ``RECENT_RUNS`` and ``SOURCE_STATE`` rows."""
    last_started = next((time(r[1]) for r in recent if r[1]), None)
    finished = [
        (RunStatus(str(r[0])), r[2], bool(r[3]), r[4])
        for r in recent
        if RunStatus(str(r[0])).finished
    ]
    failures, last_failure_at = 0, None
    for status, finished_at, _, _ in finished:
        if status is RunStatus.SUCCEEDED:
            break
        if status.counts_against_circuit:
            failures += 1
            last_failure_at = last_failure_at or time(finished_at)
    version, count, success_id, success_at = state or (0, 0, None, None)
    return SourceHistory(
        last_started_at=last_started,
        last_attempt_at=last_started,
        last_status=finished[0][0] if finished else None,
        last_success_at=time(success_at),
        last_success_run_id=int(str(success_id)) if success_id is not None else None,
        consecutive_failures=failures,
        last_failure_at=last_failure_at,
        last_used_backup=finished[0][2] if finished else False,
        last_error=_error_of(finished[0]) if finished else None,
        record_count=int(str(count)),
        data_version=int(str(version)),
    )


def run_filter(
    query: RunQuery, placeholder: str, time: Callable[[datetime], object]
) -> tuple[str, list[object]]:
    """The ``WHERE`` clause (or ``""``) and its parameters for ``query``'s filters."""
    where: list[str] = []
    params: list[object] = []
    if query.source is not None:
        where.append(f"source = {placeholder}")
        params.append(query.source)
    if query.status is not None:
        where.append(f"status = {placeholder}")
        params.append(query.status.value)
    if query.since is not None:
        where.append(f"queued_at >= {placeholder}")
        params.append(time(query.since))
    return (f"WHERE {' AND '.join(where)}" if where else ""), params


def contains_pattern(search: str) -> str:
    """A ``LIKE ... ESCAPE '\\'`` pattern matching ``search`` anywhere, taken literally."""
    return "%" + search.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"


Mark = tuple[int | None, datetime | None]
"""A part's lineage: the run that last changed it, and when."""


def parts_from(
    grouped: dict[str, list[bytes]], marks: dict[str, Mark]
) -> dict[str, StoredPart] | None:
    """A product's parts from its rows by source and its lineage marks; ``None`` if no rows."""
    if not grouped:
        return None
    return {
        source: StoredPart(
            rows=grouped.get(source, []),
            run_id=marks.get(source, (None, None))[0],
            changed_at=marks.get(source, (None, None))[1],
        )
        for source in grouped.keys() | marks.keys()
    }


def native_time(value: object) -> datetime | None:
    """A time as a driver that speaks ``datetime`` (psycopg) returns it."""
    if value is None:
        return None
    assert isinstance(value, datetime)
    return value


def _error_of(run: tuple[RunStatus, object, bool, object]) -> str | None:
    status, _, _, error = run
    return None if status is RunStatus.SUCCEEDED or error is None else str(error)


#: The source whose rows name the products (the product list's ``name``).
NAME_SOURCE = "erp_stock"


def touched_by(deleted: Iterable[str], written: Iterable[str]) -> dict[str, bool]:
    """The product codes a change touches (of the rows it deleted and wrote), each with
    whether a row of it was deleted: only such a product can have left the catalog."""
    touched = dict.fromkeys(written, False)
    touched.update(dict.fromkeys(deleted, True))
    return touched
