"""What a run changes: the delta between the stored rows and a fresh batch.

Comparing a million rows in SQL (stage everything, upsert where changed,
anti-join delete) writes and reads every row on every run. Instead the service
keeps, per source, the fingerprint of every stored row in memory: ``hash()`` of
a frozen record struct, computed in C. A run hashes its fresh records, looks
each up, and only the rows that differ are written.

Python's ``hash()`` of text differs between processes, so fingerprints are
never stored: each process builds its index from the store on first use, and
rebuilds it whenever the source's ``data_version`` moved under it (another
replica wrote, or retention purged).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Set
from dataclasses import dataclass, field
from datetime import date
from typing import overload

import msgspec

from catalog_refresher.domain import records
from catalog_refresher.domain.rules import KEY_SEPARATOR, row_day
from catalog_refresher.domain.specs import SourceSpec
from catalog_refresher.domain.window import Window
from catalog_refresher.refresh.validate import Batch, copy_key
from catalog_refresher.store.base import (
    Changeset,
    EncodedOnRead,
    KeyedRows,
    RowDelete,
    RowWrite,
    SyncState,
)

_encoder = msgspec.json.Encoder()
#: A normalised record as the JSON its row holds.
encode_record = _encoder.encode


@dataclass(slots=True, kw_only=True)
class FingerprintIndex:
    """``key -> hash(record)`` of one source's stored rows, as of ``version``."""

    version: int
    fingerprints: dict[str, int] = field(default_factory=dict)
    row_count: int | None = None
    """The source's stored rows in all, when the index holds only some of them (those
    an incremental run carries, read by key); ``None``: it holds every one."""

    @classmethod
    def build(
        cls, spec: SourceSpec, version: int, rows: Iterable[tuple[str, bytes]]
    ) -> FingerprintIndex:
        decode = msgspec.json.Decoder(spec.record_type).decode
        return cls(version=version, fingerprints={key: hash(decode(data)) for key, data in rows})

    @classmethod
    def of_keys(cls, spec: SourceSpec, keyed: KeyedRows) -> FingerprintIndex:
        """An index of only the rows ``keyed`` read (an incremental run's keys)."""
        index = cls.build(spec, keyed.version, keyed.rows.items())
        index.row_count = keyed.row_count
        return index

    def update(self, diff: Diff, batch: Batch, version: int) -> None:
        """Bring the index up to date after ``diff`` was applied."""
        rows = batch.rows
        # A new key is copied, not kept: the run's own string sits among its decoded
        # records, and the interpreter's allocator frees a block of memory only when nothing
        # in it is live, so a million kept keys would keep most of a first load's freed
        # records (hundreds of MB) resident. The copies, made now, are laid out densely. An
        # updated key keeps the index's own string (a dict keeps its first key object).
        for key in diff.inserts:
            self.fingerprints[copy_key(key)] = hash(rows[key])
        for key in diff.updates:
            self.fingerprints[key] = hash(rows[key])
        for key in diff.deletes:
            self.fingerprints.pop(key, None)
        self.version = version


@dataclass(slots=True, kw_only=True)
class Diff:
    inserts: list[str] = field(default_factory=list)
    updates: list[str] = field(default_factory=list)
    deletes: list[str] = field(default_factory=list)
    scope: int = 0
    """How many stored rows the batch replaces (a history source: its window)."""

    @property
    def empty(self) -> bool:
        return not (self.inserts or self.updates or self.deletes)


def diff(spec: SourceSpec, index: FingerprintIndex, batch: Batch, window: Window | None) -> Diff:
    """Compare ``batch`` with the stored rows described by ``index``."""
    stored = index.fingerprints
    stored_keys: Set[str]
    if spec.is_history:
        assert window is not None
        stored_keys = {k for k in stored if _history_key_day(k) >= window.date_from}
    else:
        stored_keys = stored.keys()
    result = changed_rows(stored, batch.rows, Diff(scope=len(stored_keys)))
    result.deletes = list(stored_keys - batch.rows.keys())
    return result


def upserts(index: FingerprintIndex, batch: Batch, tombstones: Set[str]) -> Diff:
    """An incremental answer's delta: its records inserted or updated by key, its
    tombstones' keys deleted (where stored), nothing else deleted. A key both sent and
    tombstoned in one answer is deleted: the batch drops it first."""
    stored = index.fingerprints
    for key in tombstones:
        batch.rows.pop(key, None)
    scope = len(stored) if index.row_count is None else index.row_count
    result = changed_rows(stored, batch.rows, Diff(scope=scope))
    result.deletes = [key for key in tombstones if key in stored]
    return result


def changed_rows(stored: dict[str, int], rows: dict[str, records.Record], result: Diff) -> Diff:
    """``result`` with the new keys of ``rows`` as inserts and its changed rows as updates."""
    # Once per record (a million for a large snapshot): one lookup and one hash each.
    inserts, updates = result.inserts, result.updates
    get = stored.get
    for key, record in rows.items():
        old = get(key)
        if old is None:
            inserts.append(key)
        elif old != hash(record):
            updates.append(key)
    return result


def changeset(
    spec: SourceSpec, result: Diff, batch: Batch, version: int, sync: SyncState | None = None
) -> Changeset:
    """The rows to write and delete, encoded for the store."""
    writes = _Writes(batch.rows, (result.inserts, result.updates), history=spec.is_history)
    deletes = [RowDelete(key, product_of_key(spec, key)) for key in result.deletes]
    return Changeset(
        source=spec.id, writes=writes, deletes=deletes, expected_version=version, sync=sync
    )


class _Writes(EncodedOnRead):
    """The inserted and updated rows of a run, encoded as the store reads them."""

    def __init__(
        self, rows: dict[str, records.Record], keys: tuple[list[str], ...], *, history: bool
    ) -> None:
        self._rows, self._keys, self._history = rows, keys, history
        self._length = sum(map(len, keys))

    def __len__(self) -> int:
        return self._length

    def _each(self) -> Iterator[tuple[str, records.Record]]:
        """Each row's key and record, in order."""
        rows = self._rows
        return ((key, rows[key]) for keys in self._keys for key in keys)

    def _day(self, record: records.Record) -> date | None:
        return row_day(record) if self._history else None

    def _write(self, key: str, record: records.Record) -> RowWrite:
        return RowWrite(key, record.product_code, self._day(record), encode_record(record))

    def __iter__(self) -> Iterator[RowWrite]:
        return (self._write(key, record) for key, record in self._each())

    @overload
    def __getitem__(self, index: int) -> RowWrite: ...

    @overload
    def __getitem__(self, index: slice) -> list[RowWrite]: ...

    def __getitem__(self, index: int | slice) -> RowWrite | list[RowWrite]:
        every = list(self._each())  # rare: tests and previews
        if isinstance(index, slice):
            return [self._write(key, record) for key, record in every[index]]
        return self._write(*every[index])

    def names(self) -> Iterator[tuple[str, str | None]]:
        return (
            (record.product_code, getattr(record, "product_name", None))
            for _, record in self._each()
        )

    def heads(self) -> Iterator[tuple[str, str, date | None]]:
        return ((key, record.product_code, self._day(record)) for key, record in self._each())


def product_of_key(spec: SourceSpec, key: str) -> str:
    """The product code inside a row key (see ``domain/rules.py`` for the layout)."""
    if spec.is_history or len(spec.key_fields) == 1:
        return key.split(KEY_SEPARATOR, 1)[0]
    return key.split(KEY_SEPARATOR)[spec.key_fields.index("product_code")]


def _history_key_day(key: str) -> date:
    """The day a stored history row counts for: its date, or its period's last day."""
    when = key.split(KEY_SEPARATOR)[1]
    if len(when) == 7:  # YYYY-MM
        return row_day(records.Sale(product_code="", period=when)) or date.min
    return date.fromisoformat(when)
