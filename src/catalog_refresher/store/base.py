"""The boundary to the database.

A store keeps three things: the rows of every source (``records``), the audit
log of runs, and what the read side needs to stay current (lineage per product
and source, the list of products, a feed of changed product codes).

Synchronous by design, but for one read. Every other call is one short
transaction made from a worker thread (the service and the API hand it to
``offload``) or inside a refresh worker process (the pipeline): blocking code
in places that have no event loop to hold up, where a coroutine would only make
the caller start a loop to run it. The one read the event loop makes itself, a
product by code (the API's hot path), is a coroutine: ``product_parts``, with
``aclose`` for what it opened on the loop.

Atomicity does not rest on the caller: ``apply`` writes a run's data *and*
marks the run succeeded in one transaction, and only while the run is still
``running`` in the database. A run that timed out or was cancelled meanwhile
is fenced off (``RunFenced``) and nothing of it is written, whoever finishes
first.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Collection, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Protocol

from catalog_refresher.domain.runs import Run, RunOutcome, RunStatus, Trigger
from catalog_refresher.store.version_types import (
    PartVersion,
    SourceVersions,
    VersionDiff,
    VersionPolicy,
)


@dataclass(frozen=True, slots=True)
class RowWrite:
    """One row to insert or replace."""

    key: str
    product_code: str
    day: date | None
    data: bytes
    """The normalised record as JSON."""
    name: str | None = None
    """The product's name, on the rows of ``StreamedWrites`` of the source that names
    products (their records are gone by the time the store writes the names)."""


class EncodedOnRead(Sequence[RowWrite], ABC):
    """Rows to write whose JSON is encoded as the store reads each one.

    A first load writes a million rows; as a list of encoded rows they would all be
    held at once, a second copy of the run's records (about 230 MB at a million). The
    store reads the rows once, in the write, and their keys, products and days, which
    need no encoding, through ``heads``.
    """

    @abstractmethod
    def heads(self) -> Iterator[tuple[str, str, date | None]]:
        """Each row's key, product code and day, in order, without encoding it."""

    @abstractmethod
    def names(self) -> Iterator[tuple[str, str | None]]:
        """Each row's product code and ``product_name`` field (``None`` when absent)."""


class StreamedWrites(EncodedOnRead):
    """Rows to write made as they are read: too many to hold (a first load's million).

    Each pass over them decodes the run's payload again, so the store takes them in
    one: in chunks of ``STREAM_CHUNK`` rows, each written (with its captured version
    delta and its products' names) before the next is made, and the products they
    touched are found afterwards from the rows written (``SqlStore.apply``).
    """


#: Rows of ``StreamedWrites`` the store takes at a time.
STREAM_CHUNK = 20_000
#: Above this many changed products ``Applied`` says "everything changed" instead.
MANY_PRODUCTS = 50_000


def heads_of(writes: Sequence[RowWrite]) -> Iterator[tuple[str, str, date | None]]:
    """Key, product code and day of each of ``writes`` (never encoding a lazy one)."""
    if isinstance(writes, EncodedOnRead):
        return writes.heads()
    return ((w.key, w.product_code, w.day) for w in writes)


def names_of(writes: Sequence[RowWrite]) -> Iterator[tuple[str, str | None]] | None:
    """The ``product_name`` of each written product, when known without decoding the
    rows' JSON (a lazy sequence); ``None`` otherwise (the store reads it from the rows)."""
    return writes.names() if isinstance(writes, EncodedOnRead) else None


@dataclass(frozen=True, slots=True)
class RowDelete:
    key: str
    product_code: str


@dataclass(frozen=True, slots=True, kw_only=True)
class SyncState:
    """Where a source's reading stands: its incremental cursor and the last good fetch's
    validators. Kept per source in the store, so that every replica reads the same."""

    cursor: str | None = None
    """The largest ``CursorField`` value applied; ``None``: the next run is full."""
    etag: str | None = None
    last_modified: str | None = None
    body_hash: str | None = None
    """A hash of the last good body (every page), to skip an identical one."""
    full_at: datetime | None = None
    """When the last full run succeeded; ``None``: never (or reset)."""
    runs_since_full: int = 0
    """Incremental runs since the last full one."""


@dataclass(frozen=True, slots=True, kw_only=True)
class Changeset:
    """What one run changes in one source, computed by ``refresh/diff.py``."""

    source: str
    writes: Sequence[RowWrite] = ()
    deletes: Sequence[RowDelete] = ()
    expected_version: int
    """The source's ``data_version`` the diff was computed against."""
    sync: SyncState | None = None
    """The source's new ``SyncState``, written with the data; ``None`` leaves it."""
    versions: VersionPolicy = field(default_factory=VersionPolicy)
    """Which versions of the source stay kept once this one is published."""


@dataclass(frozen=True, slots=True, kw_only=True)
class Applied:
    products: frozenset[str] | None
    """Product codes whose aggregate changed; ``None`` for too many to list (treat as all)."""
    version: int
    """The source's ``data_version`` after the change."""


@dataclass(frozen=True, slots=True, kw_only=True)
class SourceHistory:
    """What the scheduler and health need to know of a source's past runs."""

    last_started_at: datetime | None = None
    last_status: RunStatus | None = None
    last_attempt_at: datetime | None = None
    last_success_at: datetime | None = None
    last_success_run_id: int | None = None
    consecutive_failures: int = 0
    """Trailing ``failed``/``timed_out`` runs since the last success."""
    last_failure_at: datetime | None = None
    last_used_backup: bool = False
    """Whether the latest finished run was served by the backup endpoint."""
    last_error: str | None = None
    """Why the latest finished run did not succeed, if it did not."""
    record_count: int = 0
    data_version: int = 0
    pinned_run_id: int | None = None
    """The kept version an operator pinned the source to, if any."""


@dataclass(frozen=True, slots=True, kw_only=True)
class KeyedRows:
    """Some of a source's stored rows, read by key, with the source's state."""

    version: int
    """The source's ``data_version``, read before the rows (an apply diffed against
    rows newer than it is refused: ``IndexOutOfDate``)."""
    row_count: int
    """How many rows the source holds in all."""
    rows: dict[str, bytes]
    """The asked keys that are stored, with their JSON."""


@dataclass(frozen=True, slots=True, kw_only=True)
class StoredPart:
    """A product's rows from one source, with the part's lineage."""

    rows: list[bytes] = field(default_factory=list)
    run_id: int | None = None
    changed_at: datetime | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class Pause:
    """A source an operator (or the auto-pause) took off its schedule (contract 8)."""

    source: str
    paused_at: datetime
    reason: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class ConfigReload:
    """One configuration reload in the audit: ``applied`` or ``refused``, and its detail."""

    id: int
    at: datetime
    outcome: str
    detail: str


@dataclass(frozen=True, slots=True, kw_only=True)
class RunQuery:
    source: str | None = None
    status: RunStatus | None = None
    since: datetime | None = None
    limit: int = 50
    offset: int = 0


class Store(Protocol):
    def migrate(self) -> None:
        """Bring the schema up to date."""
        ...

    def close(self) -> None: ...

    # --- runs (the audit log) ---

    def create_run(self, *, source: str, trigger: Trigger, forced: bool, at: datetime) -> Run:
        """Record a new run as ``queued``."""
        ...

    def mark_running(self, run_id: int, *, at: datetime) -> bool:
        """``queued`` -> ``running``; false if the run was finished meanwhile."""
        ...

    def finish_run(self, run_id: int, outcome: RunOutcome) -> bool:
        """Write a run's end, only if it is still ``queued`` or ``running``."""
        ...

    def cancel_abandoned_runs(self, *, at: datetime) -> int:
        """Mark runs left ``queued``/``running`` by a process that is gone as ``cancelled``."""
        ...

    def get_run(self, run_id: int) -> Run | None: ...

    def list_runs(self, query: RunQuery) -> tuple[list[Run], int]:
        """Runs newest first, and how many match in all."""
        ...

    def source_history(self, source: str) -> SourceHistory: ...

    # --- operator control (store/control_state.py) ---

    def pause_source(self, source: str, *, at: datetime, reason: str | None) -> Pause:
        """Pause ``source`` (a second pause keeps the first time, takes the new reason)."""
        ...

    def resume_source(self, source: str) -> bool:
        """Resume ``source``; false if it was not paused."""
        ...

    def pauses(self) -> dict[str, Pause]:
        """The paused sources, by id."""
        ...

    def record_reload(self, *, at: datetime, outcome: str, detail: str) -> int:
        """Audit one configuration reload; returns its id."""
        ...

    def list_reloads(self, limit: int = 20) -> list[ConfigReload]:
        """The latest reloads, newest first."""
        ...

    # --- data ---

    def apply(
        self,
        run_id: int,
        changeset: Changeset,
        outcome: RunOutcome,
        *,
        stamp: Callable[[], datetime] | None = None,
    ) -> Applied:
        """Write ``changeset`` and finish the run with ``outcome``, in one transaction.

        With ``stamp``, the run's ``finished_at`` and the source's last success are
        its reading taken once the writes are done, just before the commit: an audit
        entry never claims a time before its data could be read. Rows and lineage
        carry ``outcome.finished_at``, when the run's data was ready to write.
        Raises ``RunFenced`` if the run is no longer ``running`` and
        ``IndexOutOfDate`` if the source's data changed since the diff.
        """
        ...

    def purge_before(self, source: str, day: date, *, at: datetime) -> int:
        """Delete the source's rows of days before ``day``; returns how many."""
        ...

    def data_version(self, source: str) -> int: ...

    def sync_state(self, source: str) -> SyncState:
        """The source's cursor and validators (empty for a source never read)."""
        ...

    def reset_sync(self, source: str) -> None:
        """Forget the source's cursor and validators: its next run is full and unconditional."""
        ...

    def iter_rows(self, source: str) -> Iterator[tuple[str, bytes]]:
        """Every stored ``(key, data)`` of a source, for rebuilding fingerprints."""
        ...

    def rows_by_key(self, source: str, keys: Collection[str]) -> KeyedRows:
        """The stored rows of ``keys`` (an incremental run's), in chunks of keys."""
        ...

    # --- read side ---

    async def product_parts(self, code: str) -> dict[str, StoredPart] | None:
        """The product's stored parts by source id, or ``None`` if no source knows it.

        Called on the event loop, without a thread: an embedded store reads in
        place (a few index lookups in a memory-mapped file, tens of microseconds:
        less than a hop to a thread costs); a networked one awaits the server
        without blocking the loop.
        """
        ...

    async def aclose(self) -> None:
        """Close what ``product_parts`` opened on the loop (before ``close``)."""
        ...

    def list_products(
        self, *, search: str | None, limit: int, offset: int
    ) -> tuple[list[str], int]:
        """Product codes ordered by code, and how many match in all."""
        ...

    def changes_since(self, cursor: int) -> tuple[int, set[str]]:
        """Product codes changed after ``cursor``, and the new cursor."""
        ...

    def trim_changes(self, before: datetime) -> int:
        """Forget change-feed entries older than ``before``; returns how many."""
        ...

    # --- versions (store/versions.py) ---

    def versions(self, source: str) -> SourceVersions:
        """The source's kept versions, newest first, and which one is served."""
        ...

    def diff_versions(
        self, source: str, from_run: int, to_run: int | None, *, limit: int, offset: int
    ) -> VersionDiff:
        """The keys that differ between two kept versions (``None``: the served one).

        Raises ``VersionNotKept`` for a run that is not a kept version of the source.
        """
        ...

    def version_rows(self, source: str, run_id: int) -> dict[str, bytes]:
        """Every ``key -> data`` of a kept version, reconstructed."""
        ...

    def product_history(self, code: str) -> dict[str, list[PartVersion]]:
        """Per source, the product's rows in each kept version where they changed."""
        ...

    def pin(self, source: str, run_id: int, *, at: datetime) -> Applied:
        """Serve the kept version ``run_id`` until ``unpin``; runs publish nothing meanwhile."""
        ...

    def unpin(self, source: str, *, at: datetime) -> Applied:
        """Serve the newest version again."""
        ...
