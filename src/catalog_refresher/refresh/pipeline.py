"""The CPU-heavy half of a run: validate, diff, guard, apply.

One synchronous call per run, so that it can run on a worker thread or in a
worker process (``refresh/workers.py``) and never hold the event loop that
serves the API. A ``Pipeline`` keeps an index of each source it has processed:
the fingerprint index (``refresh/diff.py``: why, and how it is kept honest), or,
after a full run of a snapshot read as JSON, the raw index (``refresh/raw_index.py``),
with which the next full run decodes only the records whose bytes are new.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Collection
from dataclasses import dataclass, field
from datetime import datetime
from typing import ClassVar

from catalog_refresher import progress
from catalog_refresher.config.settings import IncrementalSettings, ValidatorSettings
from catalog_refresher.domain.runs import RunCounts, RunMode, RunOutcome, RunStatus
from catalog_refresher.domain.specs import SPECS, SourceSpec
from catalog_refresher.domain.window import Window
from catalog_refresher.errors import IndexOutOfDate, PublishRejected, RunFenced, SourcePinned
from catalog_refresher.refresh import diff as diffing
from catalog_refresher.refresh import first_load
from catalog_refresher.refresh.dry_run import Preview, preview
from catalog_refresher.refresh.guard import check_incremental, check_publish
from catalog_refresher.refresh.incremental import Plan, Probed, next_sync, probe
from catalog_refresher.refresh.raw_index import (
    Known,
    RawIndex,
    Reading,
    candidates,
    reading_of,
    unseen_in,
    validate_known,
)
from catalog_refresher.refresh.raw_index import changes as raw_changes
from catalog_refresher.refresh.validate import Batch, validate
from catalog_refresher.refresh.validators import check_validators
from catalog_refresher.sources.base import Payload
from catalog_refresher.store.base import MANY_PRODUCTS, Applied, Store, StreamedWrites, SyncState
from catalog_refresher.store.version_types import VersionPolicy


@dataclass(frozen=True, slots=True, kw_only=True)
class Job:
    """What the pipeline needs to know of a run (small and picklable)."""

    run_id: int
    source: str
    forced: bool
    window: Window | None
    max_delete_share: float
    attempts: int
    used_backup: bool
    plan: Plan | None = None
    """The run's mode and what its fetch was told; ``None``: a full run that keeps no
    ``SyncState`` (callers from before incremental runs)."""
    incremental: IncrementalSettings | None = None
    versions: VersionPolicy = field(default_factory=VersionPolicy)
    validators: ValidatorSettings | None = None
    dry_run: bool = False
    """Diff, guard and validate, publish nothing: ``Processed.preview`` says what it would."""


@dataclass(frozen=True, slots=True, kw_only=True)
class Processed:
    """How the run ended: ``applied`` is set when its data was committed."""

    outcome: RunOutcome
    valid: int
    applied: Applied | None = None
    preview: Preview | None = None
    """A dry run's answer (nothing was written)."""


@dataclass(frozen=True, slots=True, kw_only=True)
class _Delta:
    """A run's diff, ready to publish, and how to bring its index up to date after."""

    batch: Batch
    found: diffing.Diff
    version: int
    """The data version the diff was made against (the apply is refused past it)."""
    remember: Callable[[Applied], None]
    whole: Batch | None
    """The payload validated whole, if it was (a second pass need not do it again)."""
    writes: StreamedWrites | None = None
    """The rows to write, when not the batch's (a first load's: ``_first_load``)."""


class Pipeline:
    streams_first_loads: ClassVar[bool] = True
    """Whether a first load is written as it is read again (``refresh/first_load.py``)
    rather than held whole; the tests' reference pipeline holds it."""

    def __init__(self, store: Store, now: Callable[[], datetime]) -> None:
        self.store = store
        self.now = now
        self._indexes: dict[str, diffing.FingerprintIndex | RawIndex] = {}

    def process(self, job: Job, payload: Payload) -> Processed:
        """Validate ``payload`` and publish it for ``job``'s run, or say why not.

        Returns a rejected outcome when the publish guard refuses; raises
        ``InvalidPayloadError``, ``StoreError`` or ``RunFenced`` when the run fails.
        """
        spec = SPECS[job.source]
        mode = RunMode.FULL if job.plan is None else job.plan.mode
        probed = None
        progress.phase("decoding")
        if job.incremental is not None and not payload.not_modified:
            probed = probe(spec, job.incremental, payload, mode=mode)
        sync = None
        if job.plan is not None:
            seen = None if probed is None else probed.cursor
            incremental = job.incremental is not None
            sync = next_sync(job.plan, payload, seen, incremental=incremental, now=self.now)
        if payload.not_modified:
            return self._not_modified(job, spec, mode, sync)
        # Only a full run of a snapshot read as JSON can skip the records it sent before.
        reading = reading_of(spec, payload) if probed is None and mode is RunMode.FULL else None
        whole = None
        if reading is None:
            whole = validate(spec, payload, job.window, probed.skip if probed else ())
            for reason in probed.invalid if probed else ():
                whole.refuse("tombstone", reason)
        try:
            for _ in range(2):  # a second pass only if the data moved under the first diff
                delta = self._delta(job, spec, payload, probed, reading, whole)
                whole = delta.whole
                processed = self._publish(job, spec, mode, delta, probed, sync)
                if processed is not None:
                    return processed
            raise RunFenced(f"{spec.id} kept changing under the diff; try again")
        except BaseException:
            # Whatever happened, the in-memory index may no longer match the store.
            self._indexes.pop(spec.id, None)
            raise

    def _delta(
        self,
        job: Job,
        spec: SourceSpec,
        payload: Payload,
        probed: Probed | None,
        reading: Reading | None,
        whole: Batch | None,
    ) -> _Delta:
        """What the run changes, against the source's index as it is now; ``whole`` is
        the payload validated whole, when it has been already."""
        if reading is not None:
            raw = self._indexes.get(spec.id)
            if (
                isinstance(raw, RawIndex)
                and raw.reading == reading
                and raw.version == self.store.data_version(spec.id)
            ):
                delta = self._known_delta(spec, payload, raw, whole)
                if delta is None and whole is None:  # a duplicate key: validate whole
                    whole = self._whole(job, spec, payload, whole, reading)
                    delta = self._known_delta(spec, payload, raw, whole)
                if delta is not None:
                    return delta
            self._indexes.pop(spec.id, None)  # out of date, or read otherwise: never used again
            if whole is None and not job.dry_run and self.streams_first_loads:
                stored = self.store.rows_by_key(spec.id, ())
                if not stored.row_count:
                    return self._first_load(job, spec, payload, reading, stored.version)
        whole = self._whole(job, spec, payload, whole, reading)
        progress.phase("diffing")
        if job.plan is not None and job.plan.mode is RunMode.INCREMENTAL:
            assert probed is not None
            index = self._index(spec, keys=(*whole.rows, *probed.tombstones))
            found = diffing.upserts(index, whole, probed.tombstones.keys())
        else:
            index = self._index(spec)
            found = diffing.diff(spec, index, whole, job.window)

        def remember(applied: Applied) -> None:
            if reading is not None:
                raw = RawIndex.of_batch(whole, applied.version, reading)
                if raw is not None:  # from now on, the source's runs skip what they sent before
                    self._indexes[spec.id] = raw
                    return
            index.update(found, whole, applied.version)

        return _Delta(
            batch=whole, found=found, version=index.version, remember=remember, whole=whole
        )

    def _first_load(
        self, job: Job, spec: SourceSpec, payload: Payload, reading: Reading, version: int
    ) -> _Delta:
        """A load into a source the store holds no row of: every valid record an insert,
        validated here and written as it is read again (``refresh/first_load.py``)."""
        progress.phase("decoding")
        batch = first_load.sift(spec, payload, job.window)
        assert batch.sent is not None
        found = diffing.Diff(inserts=list(batch.sent))

        def remember(applied: Applied) -> None:
            raw = RawIndex.of_batch(batch, applied.version, reading)
            if raw is not None:
                self._indexes[spec.id] = raw

        writes = first_load.FirstLoadWrites(spec, payload, job.window, batch)
        return _Delta(
            batch=batch, found=found, version=version, remember=remember, whole=None, writes=writes
        )

    def _whole(
        self,
        job: Job,
        spec: SourceSpec,
        payload: Payload,
        whole: Batch | None,
        reading: Reading | None,
    ) -> Batch:
        """The payload validated whole (once per run), with the bytes' hashes if a raw
        index may be kept."""
        if whole is None:
            progress.phase("decoding")
            whole = validate(spec, payload, job.window, hash_sent=reading is not None)
        return whole

    def _known_delta(
        self, spec: SourceSpec, payload: Payload, raw: RawIndex, whole: Batch | None
    ) -> _Delta | None:
        """What the run changes by the raw index: only records sent as new bytes are
        decoded (unless ``whole``) and read from the store; ``None`` if the run must be
        validated whole and diffed so (see ``refresh/raw_index.py``)."""
        if whole is None:
            known = validate_known(spec, payload, raw)
            keys = list(known.batch.rows)
        elif whole.sent is not None:
            known = Known(batch=whole, unseen=unseen_in(raw, whole))
            keys = candidates(raw, whole)
        else:
            return None
        progress.phase("diffing")
        found = raw_changes(spec, raw, known, self.store.rows_by_key(spec.id, keys), keys)
        if found is None:
            return None

        def remember(applied: Applied) -> None:
            raw.update(known.batch, known.unseen, applied.version)

        return _Delta(
            batch=known.batch, found=found, version=raw.version, remember=remember, whole=whole
        )

    def _publish(
        self,
        job: Job,
        spec: SourceSpec,
        mode: RunMode,
        delta: _Delta,
        probed: Probed | None,
        sync: SyncState | None,
    ) -> Processed | None:
        """Guard, validate and apply ``delta``; ``None`` if the store moved under its diff."""
        batch, found = delta.batch, delta.found
        upserting = mode is RunMode.INCREMENTAL

        def guard() -> None:
            if upserting:
                assert probed is not None
                check_incremental(
                    batch=batch,
                    diff=found,
                    tombstones=len(probed.tombstones),
                    max_delete_share=job.max_delete_share,
                    force=job.forced,
                )
            else:
                check_publish(
                    spec=spec,
                    batch=batch,
                    diff=found,
                    max_delete_share=job.max_delete_share,
                    force=job.forced,
                )

        if job.dry_run:
            return self._dry_run(job, spec, mode, batch, found, guard, not_modified=False)
        try:
            guard()
            check_validators(job.validators, batch=batch, diff=found, force=job.forced)
        except PublishRejected as exc:
            rejected = self._outcome(job, batch, RunStatus.REJECTED, None, str(exc))
            return Processed(outcome=rejected, valid=batch.valid)
        changes = diffing.changeset(spec, found, batch, delta.version, sync)
        writes = changes.writes if delta.writes is None else delta.writes
        changes = dataclasses.replace(changes, writes=writes, versions=job.versions)
        succeeded = self._outcome(job, batch, RunStatus.SUCCEEDED, found, None, sync)
        progress.phase("applying")
        try:
            applied = self.store.apply(job.run_id, changes, succeeded, stamp=self.now)
        except IndexOutOfDate:
            self._indexes.pop(spec.id, None)
            return None
        except SourcePinned:  # fetched and validated; an operator holds the data
            skipped = self._outcome(job, batch, RunStatus.SKIPPED, None, "pinned")
            return Processed(outcome=skipped, valid=batch.valid)
        delta.remember(applied)
        if applied.products is not None and len(applied.products) > MANY_PRODUCTS:
            # Shipping a million codes back to the service process (and dropping
            # them from its cache one by one) stalls it; "all of them" is cheaper.
            applied = dataclasses.replace(applied, products=None)
        return Processed(outcome=succeeded, valid=batch.valid, applied=applied)

    def _dry_run(
        self,
        job: Job,
        spec: SourceSpec,
        mode: RunMode,
        batch: Batch,
        found: diffing.Diff,
        guard: Callable[[], None],
        *,
        not_modified: bool,
    ) -> Processed:
        """What the run would publish, and the verdicts it would meet: nothing is written."""
        answer = preview(
            source=spec.id,
            mode=mode,
            not_modified=not_modified,
            batch=batch,
            diff=found,
            guard=guard,
            validators=job.validators,
            forced=job.forced,
        )
        outcome = self._outcome(job, batch, RunStatus.SUCCEEDED, found, None)
        return Processed(outcome=outcome, valid=batch.valid, preview=answer)

    def _not_modified(
        self, job: Job, spec: SourceSpec, mode: RunMode, sync: SyncState | None
    ) -> Processed:
        """A 304 or an identical body: nothing to diff, so no fingerprint index is built
        (after a start that would read every stored row); only the run and the validators
        are recorded, against the source's data version as it is now."""
        batch = Batch()
        if job.dry_run:  # nothing read, nothing would change: and nothing is written
            nothing = diffing.Diff()
            return self._dry_run(job, spec, mode, batch, nothing, lambda: None, not_modified=True)
        nothing = diffing.Diff()
        succeeded = self._outcome(job, batch, RunStatus.SUCCEEDED, nothing, None, sync, True)
        for _ in range(2):  # a second read only if a peer wrote between version and apply
            version = self.store.data_version(spec.id)
            changes = diffing.changeset(spec, nothing, batch, version, sync)
            try:
                applied = self.store.apply(job.run_id, changes, succeeded, stamp=self.now)
            except IndexOutOfDate:
                continue
            except SourcePinned:  # as a run with changes would be: recorded skipped
                skipped = self._outcome(job, batch, RunStatus.SKIPPED, None, "pinned")
                return Processed(outcome=skipped, valid=0)
            return Processed(outcome=succeeded, valid=0, applied=applied)
        raise RunFenced(f"{spec.id} kept changing under a not-modified run; try again")

    def _outcome(
        self,
        job: Job,
        batch: Batch,
        status: RunStatus,
        found: diffing.Diff | None,
        error: str | None,
        sync: SyncState | None = None,
        not_modified: bool = False,
    ) -> RunOutcome:
        counts = RunCounts(fetched=batch.fetched, invalid=batch.invalid)
        if found is not None:
            counts = dataclasses.replace(
                counts,
                inserted=len(found.inserts),
                updated=len(found.updates),
                deleted=len(found.deletes),
            )
        return RunOutcome(
            status=status,
            finished_at=self.now(),
            attempts=job.attempts,
            used_backup=job.used_backup,
            counts=counts,
            error=error,
            error_type="rejected" if status is RunStatus.REJECTED else None,
            invalid_reasons=tuple(batch.reasons),
            mode=RunMode.FULL if job.plan is None else job.plan.mode,
            cursor_before=None if job.plan is None else job.plan.before.cursor,
            cursor_after=(
                (None if job.plan is None else job.plan.before.cursor)
                if sync is None
                else sync.cursor
            ),
            not_modified=not_modified,
        )

    def _index(
        self, spec: SourceSpec, *, keys: Collection[str] | None = None
    ) -> diffing.FingerprintIndex:
        """The source's fingerprint index as of its current version; for an incremental
        run (``keys``) without one, an index of only the rows of its keys."""
        version = self.store.data_version(spec.id)
        index = self._indexes.get(spec.id)
        if isinstance(index, RawIndex):
            index = None  # not what this run can use (``_delta``); replaced below
        if index is not None and index.version != version:
            del self._indexes[spec.id]  # out of date: never used again
            index = None
        if keys is not None and index is None:
            # Reading the run's keys takes milliseconds; building the whole index (after
            # a start, or a peer's write) reads and hashes every stored row: seconds and
            # the index's memory for a million rows, which an incremental run never needs.
            return diffing.FingerprintIndex.of_keys(spec, self.store.rows_by_key(spec.id, keys))
        if index is None:
            index = diffing.FingerprintIndex.build(spec, version, self.store.iter_rows(spec.id))
            self._indexes[spec.id] = index
        return index
