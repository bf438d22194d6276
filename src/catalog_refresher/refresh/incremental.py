"""Incremental runs: which kind a run is, what its answer says beyond its records,
and where the source's reading stands after it.

A source with ``Incremental`` alternates two kinds of run (``RunMode``):

- *full*: the first run, a forced one, one after an operator's reset and one
  after ``FullEvery``/``FullEveryRuns`` or ``CatalogRepository:UnconditionalEvery``
  (the safety net against a wrong 304, ``plan``): no cursor and no validator is
  sent, the answer is the snapshot, deletions are found by the diff and the publish guard applies;
- *incremental*: the stored cursor is sent; the answer's records are upserts,
  its tombstones delete their keys, nothing else is deleted.

Either way the new cursor is the largest ``CursorField`` value seen, compared as
the field's type (numbers numerically, ISO times as times, else text), and it is
written by ``Store.apply`` with the data (``SyncState``), never before: a run that
dies between fetch and commit leaves it where it was.

The answer is probed (``probe``) for cursors and tombstones with a struct of just
those fields: msgspec skips every other byte in C, so a full snapshot of a
million records costs a fraction of its decoding.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import msgspec

from catalog_refresher.config.settings import IncrementalSettings, JsonPath, comparable_text
from catalog_refresher.domain.rules import KEY_SEPARATOR
from catalog_refresher.domain.runs import RunMode
from catalog_refresher.domain.specs import SourceSpec
from catalog_refresher.sources.base import FetchState, Payload
from catalog_refresher.sources.decoding import read_page, records_array
from catalog_refresher.store.base import SyncState

__all__ = ["Plan", "Probed", "cursor_order", "next_sync", "plan", "probe"]


@dataclass(frozen=True, slots=True, kw_only=True)
class Plan:
    """What kind a run is, and what its fetch is told."""

    mode: RunMode
    state: FetchState
    before: SyncState
    unconditional: bool = False
    """The fetch is sent without validators: the safety net against a wrong 304."""


def plan(
    incremental: IncrementalSettings | None,
    sync: SyncState,
    *,
    forced: bool,
    now: datetime,
    unconditional_every: timedelta | None = None,
) -> Plan:
    """The run's mode and its ``FetchState``.

    A forced run is full and unconditional (the operator wants it read). A full run
    of an incremental source is unconditional too: a reconcile must read it all, and
    the stored validators belong to the last incremental request. Any other run sends
    the last good fetch's validators, unless the last unconditional run is
    ``unconditional_every`` ago (``CatalogRepository:UnconditionalEvery``): a server
    that answers 304 wrongly (``If-Modified-Since`` compared by whole seconds, a file
    swapped for an older copy) cannot hide a change for longer. An incremental source
    meets that net with a full reconcile; any other source with a fetch that sends no
    validators but keeps the body hash (an identical body still costs no decoding).
    ``SyncState.full_at``/``runs_since_full`` say when the last unconditional run was.
    """
    validators = FetchState(
        etag=sync.etag, last_modified=sync.last_modified, body_hash=sync.body_hash
    )
    net_due = _net_due(sync, now, unconditional_every)
    if incremental is None:
        if forced:
            return Plan(mode=RunMode.FULL, state=FetchState(), before=sync, unconditional=True)
        if net_due:
            state = FetchState(body_hash=sync.body_hash)
            return Plan(mode=RunMode.FULL, state=state, before=sync, unconditional=True)
        return Plan(mode=RunMode.FULL, state=validators, before=sync)
    if forced or net_due or _full_due(incremental, sync, now):
        return Plan(mode=RunMode.FULL, state=FetchState(), before=sync, unconditional=True)
    state = FetchState(
        cursor=sync.cursor,
        cursor_parameter=incremental.cursor_parameter,
        etag=sync.etag,
        last_modified=sync.last_modified,
        body_hash=sync.body_hash,
    )
    return Plan(mode=RunMode.INCREMENTAL, state=state, before=sync)


def _net_due(sync: SyncState, now: datetime, every: timedelta | None) -> bool:
    if every is None:
        return False
    return sync.full_at is None or now - sync.full_at >= every


def _full_due(incremental: IncrementalSettings, sync: SyncState, now: datetime) -> bool:
    if sync.cursor is None or sync.full_at is None:
        return True
    every, runs = incremental.full_every, incremental.full_every_runs
    if every is not None and now - sync.full_at >= every:
        return True
    return runs is not None and sync.runs_since_full >= runs


@dataclass(slots=True, kw_only=True)
class Probed:
    """What an answer holds beyond its records."""

    cursor: str | None = None
    """The largest ``CursorField`` value, as the payload wrote it."""
    tombstones: dict[str, int] = field(default_factory=dict)
    """Row keys the answer deletes -> how many tombstones named them."""
    skip: list[frozenset[int]] = field(default_factory=list)
    """Per page, the positions of its tombstones (validation leaves them out)."""
    invalid: list[str] = field(default_factory=list)
    """Why a tombstone could not be read (no key)."""


def probe(
    spec: SourceSpec, incremental: IncrementalSettings, payload: Payload, *, mode: RunMode
) -> Probed:
    """Cursors and, on an incremental run, tombstones of every page of ``payload``."""
    paths = {"cursor": incremental.cursor_field}
    tombstone = incremental.tombstone if mode is RunMode.INCREMENTAL else None
    key_paths: list[JsonPath] = []
    if tombstone is not None:
        paths["tombstone"] = tombstone.path
        key_paths = _key_paths(spec, payload)
        paths |= {f"key{n}": path for n, path in enumerate(key_paths)}
    firsts = {name: str(path.steps[0]) for name, path in paths.items()}
    probe_type = msgspec.defstruct(
        "Probe",
        [(name, Any, None) for name in firsts],
        rename=firsts,
        forbid_unknown_fields=False,
    )
    decode = msgspec.json.Decoder(list[probe_type]).decode  # type: ignore[valid-type]
    result = Probed()
    # Texts of one length and one ending (an ISO time's zone) order as their type does:
    # each such group's largest is found by max() in C, and only those few are parsed.
    groups: dict[tuple[int, str], list[str]] = {}
    others: list[Any] = []
    for number, page in enumerate(payload.pages, start=1):
        items = decode(records_array(read_page(page), payload.records_path, number))
        cursor_path = paths["cursor"]
        nested = len(cursor_path.steps) > 1
        for item in items:
            value = getattr(item, "cursor")  # noqa: B009 - a field of a struct made above
            if nested:
                value = _rest(value, cursor_path)
            if type(value) is str:
                value_key = (len(value), value[-6:])
                group = groups.get(value_key)
                if group is None:
                    groups[value_key] = [value]
                else:
                    group.append(value)
            elif value is not None:
                others.append(value)
        if tombstone is None:
            result.skip.append(frozenset())
            continue
        skipped: set[int] = set()
        for position, item in enumerate(items):
            flag = comparable_text(_rest(getattr(item, "tombstone"), paths["tombstone"]))  # noqa: B009
            if flag != tombstone.equals:
                continue
            skipped.add(position)
            parts = [
                comparable_text(_rest(getattr(item, f"key{n}"), path))
                for n, path in enumerate(key_paths)
            ]
            if not all(parts):
                result.invalid.append(f"page {number} tombstone {position}: no key")
                continue
            key = KEY_SEPARATOR.join(str(part) for part in parts)
            result.tombstones[key] = result.tombstones.get(key, 0) + 1
        result.skip.append(frozenset(skipped))
    candidates = [max(group) for group in groups.values()] + others
    if candidates:
        result.cursor = _text(max(candidates, key=cursor_order))
    return result


def _key_paths(spec: SourceSpec, payload: Payload) -> list[JsonPath]:
    """Where the payload holds each key field: its ``Fields`` path, or its own name."""
    mapped = {rule.field: rule.path for rule in payload.fields}
    return [mapped.get(name, JsonPath(text=name, steps=(name,))) for name in spec.key_fields]


def _rest(value: Any, path: JsonPath) -> Any:
    """The value at ``path``'s steps after the first (which the probe struct read)."""
    for step in path.steps[1:]:
        if isinstance(step, int) and isinstance(value, list) and -len(value) <= step < len(value):
            value = value[step]
        elif isinstance(step, str) and isinstance(value, dict):
            value = value.get(step)
        else:
            return None
    return value


def _text(value: Any) -> str:
    return value if isinstance(value, str) else msgspec.json.encode(value).decode()


def cursor_order(value: Any) -> tuple[int, Any]:
    """How cursors compare: numbers numerically, then ISO times as times, then text.

    Stored cursors are text: ``"1700"`` and ``1700`` compare alike, as do
    ``2024-05-01T10:00:00Z`` and ``2024-05-01T12:00:00+02:00``.
    """
    if isinstance(value, bool):
        return (2, str(value).lower())
    if isinstance(value, int | float):
        return (0, value)
    text = str(value).strip()
    for number in (int, float):
        try:
            return (0, number(text))
        except ValueError:
            pass
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        return (2, text)
    return (1, moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC))


def later(a: str | None, b: str | None) -> str | None:
    """The larger of two cursors; ``None`` is smaller than any."""
    if a is None or b is None:
        return a if b is None else b
    return a if cursor_order(a) >= cursor_order(b) else b


def next_sync(
    plan_: Plan,
    payload: Payload,
    seen: str | None,
    *,
    incremental: bool,
    now: Callable[[], datetime],
) -> SyncState:
    """Where reading stands after a successful run: written by ``Store.apply``."""
    before = plan_.before
    full = plan_.mode is RunMode.FULL
    # A non-incremental source's runs are all full: its counters tell the last unconditional.
    fresh = plan_.unconditional if not incremental else full
    if not incremental:
        cursor = None
    elif full and not payload.not_modified:
        cursor = seen if seen is not None else before.cursor
    else:
        cursor = later(before.cursor, seen)
    return SyncState(
        cursor=cursor,
        etag=payload.etag,
        last_modified=payload.last_modified,
        body_hash=payload.body_hash,
        full_at=now() if fresh else before.full_at,
        runs_since_full=0 if fresh else before.runs_since_full + 1,
    )
