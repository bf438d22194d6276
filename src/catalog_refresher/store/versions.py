"""Versions of a source's data: kept compactly, listed, diffed, pinned, unpinned.

Every run that changes a source's data publishes a *version* (a row in
``versions``). The data itself is kept once, in ``records``: the newest
version. To go back, each run keeps its *reverse delta* (``version_changes``):
for every key it inserted, updated or deleted, the value the key had just
before (``NULL`` for a key the run inserted). The value of a key in version
``V`` is then the ``before`` of the first change to that key after ``V``, or,
when no later run changed it, its value in the newest version. A run's delta
costs what the run changed, never a copy of the source.

A run's delta is written by ``apply`` in the same transaction as its rows
(``capture_before`` before the writes, ``record_version`` after), and only when
the source already has a version to go back to (the first load's delta would
lead back to nothing). Versions beyond ``VersionPolicy.kept``, or older than
``VersionPolicy.retention`` (the newest is always kept), are pruned with the
deltas that only led to them: the delta of the oldest kept version goes too.

A pin (``store/pins.py``) serves an older version by rewriting the source's rows to it, through
the same writes, lineage, product list and change feed as a run (so every
endpoint, every cache and every replica sees it). The newest values of the
rewritten keys are kept aside (``pin_aside``), with the lineage the pin
replaced (``pin_lineage``); unpinning writes them back. Both cost what differs
between the two versions. While a source is pinned, ``apply`` refuses to
publish (``SourcePinned``): the run is recorded ``skipped``, reason ``pinned``.

A retention purge of a history source deletes the purged days from every kept
version (their deltas and what a pin set aside), as it deletes them from the
served rows.
"""

from __future__ import annotations

import json
from abc import abstractmethod
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any, ClassVar

from catalog_refresher import progress
from catalog_refresher.domain.runs import RunOutcome, RunStatus
from catalog_refresher.errors import SourcePinned, VersionNotKept
from catalog_refresher.store.base import Changeset, RowDelete, RowWrite, heads_of
from catalog_refresher.store.version_types import (
    Change,
    KeyChange,
    PartVersion,
    SourceVersions,
    Version,
    VersionDiff,
    VersionPolicy,
)

#: Keys per ``IN (...)`` list when reading rows by key (well under SQLite's 32766 limit).
_CHUNK = 500

_HAS_VERSION = "SELECT 1 FROM versions WHERE source = {p} LIMIT 1"
_CAPTURE = (
    "INSERT INTO version_changes (source, run_id, key, product_code, day, before)"
    " SELECT {p}, {p}, k.key, k.product_code, coalesce(r.day, k.day), r.data"
    " FROM vkeys k LEFT JOIN records r ON r.source = {p} AND r.key = k.key"
)
_ROW_COUNT = "SELECT row_count FROM source_state WHERE source = {p}"
_ADD_VERSION = (
    "INSERT INTO versions (source, run_id, published_at, record_count, inserted, updated,"
    " deleted) VALUES ({p}, {p}, {p}, {p}, {p}, {p}, {p})"
)
KEPT = (
    "SELECT run_id, published_at, record_count, inserted, updated, deleted FROM versions"
    " WHERE source = {p} ORDER BY run_id DESC"
)
_PRUNE_VERSIONS = "DELETE FROM versions WHERE source = {p} AND run_id < {p}"
_PRUNE_CHANGES = "DELETE FROM version_changes WHERE source = {p} AND run_id <= {p}"
PIN = "SELECT run_id, pinned_at FROM pins WHERE source = {p}"
AFTER = (
    "SELECT run_id, key, product_code, day, before FROM version_changes"
    " WHERE source = {p} AND run_id > {p} ORDER BY run_id DESC"
)
ASIDE = "SELECT key, product_code, day, data FROM pin_aside WHERE source = {p}"
_RUN_OF = "SELECT status FROM runs WHERE id = {p} AND source = {p}"
_PURGE_CHANGES = "DELETE FROM version_changes WHERE source = {p} AND day < {p}"
_PURGE_ASIDE = "DELETE FROM pin_aside WHERE source = {p} AND day < {p}"
_PRODUCT_CHANGES = (
    "SELECT source, run_id, key, before FROM version_changes WHERE product_code = {p}"
)
_PRODUCT_ROWS = "SELECT source, key, data FROM records WHERE product_code = {p}"
_PRODUCT_ASIDE = "SELECT source, key, data FROM pin_aside WHERE product_code = {p}"
_VERSIONED_SOURCES = "SELECT DISTINCT source FROM versions"


@dataclass(frozen=True, slots=True)
class Before:
    product_code: str
    day: object
    data: str | None


class Versioned:
    """The versions half of ``SqlStore`` (mixed in; the dialect hooks are its own)."""

    placeholder: ClassVar[str]
    _refresh_products: ClassVar[tuple[str, ...]]

    # --- what the store provides ----------------------------------------------------

    @abstractmethod
    def _q(self, template: str) -> str: ...

    @abstractmethod
    def _write(self) -> AbstractContextManager[Any]: ...

    @abstractmethod
    def _read(self) -> AbstractContextManager[Any]: ...

    @abstractmethod
    def _time_param(self, value: datetime) -> object: ...

    @abstractmethod
    def _day_param(self, value: date | None) -> object: ...

    @abstractmethod
    def _time_value(self, value: object) -> datetime | None: ...

    @abstractmethod
    def _lock_state(self, conn: Any, source: str) -> int: ...

    @abstractmethod
    def _delete_rows(self, conn: Any, source: str, deletes: Sequence[RowDelete]) -> None: ...

    @abstractmethod
    def _write_rows(
        self, conn: Any, source: str, writes: Sequence[RowWrite], run_id: int, at: object
    ) -> None: ...

    @abstractmethod
    def _stage_touched(self, conn: Any, touched: Mapping[str, bool], *, named: bool) -> None: ...

    @abstractmethod
    def _stage_keys(self, conn: Any, keys: Iterable[tuple[str, str, date | None]]) -> None:
        """Fill the temporary table ``vkeys (key, product_code, day)``."""

    # --- inside apply ----------------------------------------------------------------

    def refuse_if_pinned(self, conn: Any, source: str) -> None:
        """Raise ``SourcePinned`` when the source is pinned: a run publishes nothing."""
        row = conn.execute(self._q(PIN), (source,)).fetchone()
        if row is not None:
            raise SourcePinned(f"{source} is pinned to run {row[0]}; nothing published")

    def capture_before(self, conn: Any, source: str, run_id: int, changeset: Changeset) -> None:
        """Keep what the keys ``changeset`` changes hold now (before its writes)."""
        if not (changeset.writes or changeset.deletes):
            return
        if not self.has_versions(conn, source):
            return  # nothing to go back to: the first version needs no delta
        keys: dict[str, tuple[str, str, date | None]] = {}
        for d in changeset.deletes:
            keys[d.key] = (d.key, d.product_code, None)
        for head in heads_of(changeset.writes):
            keys[head[0]] = head
        self.capture_keys(conn, source, run_id, keys.values())

    def has_versions(self, conn: Any, source: str) -> bool:
        """Whether the source has a version to go back to (else nothing is captured)."""
        return conn.execute(self._q(_HAS_VERSION), (source,)).fetchone() is not None

    def capture_keys(
        self,
        conn: Any,
        source: str,
        run_id: int,
        keys: Iterable[tuple[str, str, date | None]],
    ) -> None:
        """Keep what ``keys`` (key, product code, day; each once) hold now, for ``run_id``."""
        self._stage_keys(conn, keys)
        conn.execute(self._q(_CAPTURE), (source, run_id, source))

    def record_version(
        self, conn: Any, source: str, run_id: int, outcome: RunOutcome, policy: VersionPolicy
    ) -> None:
        """Add the run's version and prune what ``policy`` no longer keeps."""
        count = int(conn.execute(self._q(_ROW_COUNT), (source,)).fetchone()[0])
        c = outcome.counts
        published = self._time_param(outcome.finished_at)
        values = (source, run_id, published, count, c.inserted, c.updated, c.deleted)
        conn.execute(self._q(_ADD_VERSION), values)
        kept = conn.execute(self._q(KEPT), (source,)).fetchall()
        oldest = kept[: max(policy.kept, 1)]
        if policy.retention is not None:
            since = outcome.finished_at - policy.retention
            young = [v for v in oldest[1:] if (self._time_value(v[1]) or since) >= since]
            oldest = [oldest[0], *young]
        cut = int(oldest[-1][0])
        conn.execute(self._q(_PRUNE_VERSIONS), (source, cut))
        conn.execute(self._q(_PRUNE_CHANGES), (source, cut))

    def purge_versions(self, conn: Any, source: str, day: date) -> None:
        """The purged days go from every kept version too."""
        conn.execute(self._q(_PURGE_CHANGES), (source, self._day_param(day)))
        conn.execute(self._q(_PURGE_ASIDE), (source, self._day_param(day)))

    def pinned_run(self, conn: Any, source: str) -> int | None:
        row = conn.execute(self._q(PIN), (source,)).fetchone()
        return None if row is None else int(row[0])

    # --- reads -----------------------------------------------------------------------

    def versions(self, source: str) -> SourceVersions:
        """The kept versions of ``source``, newest first, and which one is served."""
        with self._read() as conn:
            kept = conn.execute(self._q(KEPT), (source,)).fetchall()
            pin = conn.execute(self._q(PIN), (source,)).fetchone()
        served = int(pin[0]) if pin else (int(kept[0][0]) if kept else None)
        items = [
            Version(
                run_id=int(r[0]),
                published_at=self._time_value(r[1]) or datetime.min,
                record_count=int(r[2]),
                inserted=int(r[3]),
                updated=int(r[4]),
                deleted=int(r[5]),
                served=int(r[0]) == served,
            )
            for r in kept
        ]
        pinned_at = self._time_value(pin[1]) if pin else None
        return SourceVersions(
            source=source,
            served_run_id=served,
            pinned=pin is not None,
            pinned_at=pinned_at,
            items=items,
        )

    def diff_versions(
        self, source: str, from_run: int, to_run: int | None, *, limit: int, offset: int
    ) -> VersionDiff:
        """What differs between two kept versions (``to_run`` ``None``: the served one)."""
        progress.phase("reading versions")
        with self._read() as conn:
            kept = [int(r[0]) for r in conn.execute(self._q(KEPT), (source,)).fetchall()]
            pinned = self.pinned_run(conn, source)
            served = pinned if pinned is not None else (kept[0] if kept else None)
            to = served if to_run is None else to_run
            for run in (from_run, to):
                if run is None or run not in kept:
                    raise self._not_kept(conn, source, run or 0)
            assert to is not None
            low, high = sorted((from_run, to))
            changes = conn.execute(self._q(AFTER), (source, low)).fetchall()
            progress.advance(progress.KEYS, len(changes))
            at_low = first_after(changes, low)
            at_high = first_after(changes, high)
            keys = {str(r[1]) for r in changes if int(r[0]) <= high}
            newest = self._newest(conn, source, [k for k in keys if k not in at_high])
        values: dict[int, dict[str, Before]] = {low: at_low, high: at_high}

        def value(run: int, key: str) -> str | None:
            found = values[run].get(key)
            return found.data if found is not None else newest.get(key)

        progress.phase("comparing")
        added = removed = changed = 0
        items: list[KeyChange] = []
        for key in sorted(keys):
            old, new = value(from_run, key), value(to, key)
            if old == new:
                continue  # changed and changed back
            kind = Change.CHANGED
            if old is None or new is None:
                kind = Change.ADDED if old is None else Change.REMOVED
            position = added + removed + changed
            added += kind is Change.ADDED
            removed += kind is Change.REMOVED
            changed += kind is Change.CHANGED
            if offset <= position < offset + limit:
                code = at_low.get(key) or at_high.get(key)
                items.append(
                    KeyChange(
                        key=key,
                        product_code=code.product_code if code else key,
                        change=kind,
                        old=None if old is None else old.encode(),
                        new=None if new is None else new.encode(),
                    )
                )
        return VersionDiff(
            source=source,
            from_run=from_run,
            to_run=to,
            added=added,
            removed=removed,
            changed=changed,
            items=items,
        )

    def version_rows(self, source: str, run_id: int) -> dict[str, bytes]:
        """Every ``key -> data`` of a kept version, reconstructed (tests, audits)."""
        with self._read() as conn:
            kept = [int(r[0]) for r in conn.execute(self._q(KEPT), (source,)).fetchall()]
            if run_id not in kept:
                raise self._not_kept(conn, source, run_id)
            rows = {
                str(k): str(d)
                for k, d in conn.execute(
                    self._q("SELECT key, data FROM records WHERE source = {p}"), (source,)
                ).fetchall()
            }
            for key, _, _, data in conn.execute(self._q(ASIDE), (source,)).fetchall():
                _put(rows, str(key), data)
            for key, before in first_after(
                conn.execute(self._q(AFTER), (source, run_id)).fetchall(), run_id
            ).items():
                _put(rows, key, before.data)
        return {key: data.encode() for key, data in rows.items()}

    def product_history(self, code: str) -> dict[str, list[PartVersion]]:
        """Per source, the product's rows in each kept version where they changed."""
        with self._read() as conn:
            sources = [str(r[0]) for r in conn.execute(_VERSIONED_SOURCES).fetchall()]
            changes = conn.execute(self._q(_PRODUCT_CHANGES), (code,)).fetchall()
            current = conn.execute(self._q(_PRODUCT_ROWS), (code,)).fetchall()
            aside = conn.execute(self._q(_PRODUCT_ASIDE), (code,)).fetchall()
            kept = {s: conn.execute(self._q(KEPT), (s,)).fetchall() for s in sorted(sources)}
        newest: dict[str, dict[str, str]] = {}
        for source, key, data in current:
            newest.setdefault(str(source), {})[str(key)] = str(data)
        for source, key, data in aside:
            _put(newest.setdefault(str(source), {}), str(key), data)
        history: dict[str, list[PartVersion]] = {}
        for source, versions in kept.items():
            mine = [c for c in changes if str(c[0]) == source]
            if not mine and not newest.get(source):
                continue
            entries: list[PartVersion] = []
            previous: list[str] | None = None
            for run_id, published_at, *_ in reversed(versions):
                rows = dict(newest.get(source, {}))
                after = [(r, k, None, None, b) for _, r, k, b in mine]
                after.sort(key=lambda c: -int(c[0]))
                for key, before in first_after(after, int(run_id)).items():
                    _put(rows, key, before.data)
                values = [rows[k] for k in sorted(rows)]
                if values != previous:
                    entries.append(
                        PartVersion(
                            run_id=int(run_id),
                            published_at=self._time_value(published_at) or datetime.min,
                            rows=[v.encode() for v in values],
                        )
                    )
                    previous = values
            history[source] = entries
        return history

    def _newest(self, conn: Any, source: str, keys: list[str]) -> dict[str, str]:
        """The newest version's value of ``keys`` (what a pin set aside, else the rows)."""
        found: dict[str, str] = {}
        for chunk in _chunks(keys):
            marks = ", ".join([self.placeholder] * len(chunk))
            query = f"SELECT key, data FROM records WHERE source = {{p}} AND key IN ({marks})"
            rows = conn.execute(self._q(query), (source, *chunk)).fetchall()
            found.update((str(k), str(d)) for k, d in rows)
        wanted = set(keys)
        for key, _, _, data in conn.execute(self._q(ASIDE), (source,)).fetchall():
            if str(key) in wanted:
                _put(found, str(key), data)
        return found

    def _not_kept(self, conn: Any, source: str, run_id: int) -> VersionNotKept:
        row = conn.execute(self._q(_RUN_OF), (run_id, source)).fetchone()
        if row is not None and str(row[0]) == RunStatus.SUCCEEDED.value:
            return VersionNotKept(source, run_id, pruned=True)
        return VersionNotKept(source, run_id, pruned=False)


def first_after(changes: Sequence[Sequence[Any]], run_id: int) -> dict[str, Before]:
    """Per key, the ``before`` of its first change after ``run_id``: its value then.
    ``changes`` are ``(run_id, key, product_code, day, before)``, newest run first."""
    found: dict[str, Before] = {}
    for run, key, code, day, before in changes:
        if int(run) > run_id:
            found[str(key)] = Before(str(code), day, None if before is None else str(before))
    return found


def _put(rows: dict[str, str], key: str, data: object) -> None:
    if data is None:
        rows.pop(key, None)
    else:
        rows[key] = str(data)


def day_of(value: object) -> date | None:
    if value is None or isinstance(value, date):
        return value
    return date.fromisoformat(str(value))


def _chunks(keys: list[str]) -> Iterator[list[str]]:
    for start in range(0, len(keys), _CHUNK):
        yield keys[start : start + _CHUNK]


def decoded(data: bytes | None) -> object:
    """A stored row as JSON, for an answer."""
    return None if data is None else json.loads(data)
