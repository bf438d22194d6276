"""The CPU-heavy half of a run: validate, diff, guard, apply.

One synchronous call per run, so that it can run on a worker thread or in a
worker process (``refresh/workers.py``) and never hold the event loop that
serves the API. A ``Pipeline`` keeps the fingerprint index of each source it
has processed; see ``refresh/diff.py`` for why and how it is kept honest.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Collection
from dataclasses import dataclass, field
from datetime import datetime

from catalog_refresher import progress
from catalog_refresher.config.settings import IncrementalSettings, ValidatorSettings
from catalog_refresher.domain.runs import RunCounts, RunMode, RunOutcome, RunStatus
from catalog_refresher.domain.specs import SPECS, SourceSpec
from catalog_refresher.domain.window import Window
from catalog_refresher.errors import IndexOutOfDate, PublishRejected, RunFenced, SourcePinned
from catalog_refresher.refresh import diff as diffing
from catalog_refresher.refresh.dry_run import Preview, preview
from catalog_refresher.refresh.guard import check_incremental, check_publish
from catalog_refresher.refresh.incremental import Plan, next_sync, probe
from catalog_refresher.refresh.validate import Batch, validate
from catalog_refresher.refresh.validators import check_validators
from catalog_refresher.sources.base import Payload
from catalog_refresher.store.base import Applied, Store, SyncState
from catalog_refresher.store.version_types import VersionPolicy

#: Above this many changed products a run reports "everything changed" instead.
MANY_PRODUCTS = 50_000


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


class Pipeline:
    def __init__(self, store: Store, now: Callable[[], datetime]) -> None:
        self.store = store
        self.now = now
        self._indexes: dict[str, diffing.FingerprintIndex] = {}

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
        batch = (
            Batch()
            if payload.not_modified
            else validate(spec, payload, job.window, probed.skip if probed else ())
        )
        if probed is not None:
            for reason in probed.invalid:
                batch.refuse("tombstone", reason)
        sync = None
        if job.plan is not None:
            seen = None if probed is None else probed.cursor
            incremental = job.incremental is not None
            sync = next_sync(job.plan, payload, seen, incremental=incremental, now=self.now)
        if payload.not_modified:
            if job.dry_run:  # nothing read, nothing would change: and nothing is written
                nothing = diffing.Diff()
                answer = preview(
                    source=spec.id,
                    mode=mode,
                    not_modified=True,
                    batch=batch,
                    diff=nothing,
                    guard=lambda: None,
                    validators=job.validators,
                    forced=job.forced,
                )
                outcome = self._outcome(job, batch, RunStatus.SUCCEEDED, nothing, None)
                return Processed(outcome=outcome, valid=0, preview=answer)
            return self._not_modified(job, spec, batch, sync)
        upserting = mode is RunMode.INCREMENTAL
        progress.phase("diffing")
        try:
            for _ in range(2):  # a second pass only if the data moved under the first diff
                if upserting:
                    assert probed is not None
                    index = self._index(spec, keys=(*batch.rows, *probed.tombstones))
                    found = diffing.upserts(index, batch, probed.tombstones.keys())
                else:
                    index = self._index(spec)
                    found = diffing.diff(spec, index, batch, job.window)

                def guard(found: diffing.Diff = found) -> None:
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
                    answer = preview(
                        source=spec.id,
                        mode=mode,
                        not_modified=payload.not_modified,
                        batch=batch,
                        diff=found,
                        guard=guard,
                        validators=job.validators,
                        forced=job.forced,
                    )
                    outcome = self._outcome(job, batch, RunStatus.SUCCEEDED, found, None)
                    return Processed(outcome=outcome, valid=len(batch.rows), preview=answer)
                try:
                    guard()
                    check_validators(job.validators, batch=batch, diff=found, force=job.forced)
                except PublishRejected as exc:
                    rejected = self._outcome(job, batch, RunStatus.REJECTED, None, str(exc))
                    return Processed(outcome=rejected, valid=len(batch.rows))
                changes = diffing.changeset(spec, found, batch, index.version, sync)
                changes = dataclasses.replace(changes, versions=job.versions)
                succeeded = self._outcome(job, batch, RunStatus.SUCCEEDED, found, None, sync)
                progress.phase("applying")
                try:
                    applied = self.store.apply(job.run_id, changes, succeeded, stamp=self.now)
                except IndexOutOfDate:
                    self._indexes.pop(spec.id, None)
                    continue
                except SourcePinned:  # fetched and validated; an operator holds the data
                    skipped = self._outcome(job, batch, RunStatus.SKIPPED, None, "pinned")
                    return Processed(outcome=skipped, valid=len(batch.rows))
                index.update(found, batch, applied.version)
                if applied.products is not None and len(applied.products) > MANY_PRODUCTS:
                    # Shipping a million codes back to the service process (and dropping
                    # them from its cache one by one) stalls it; "all of them" is cheaper.
                    applied = dataclasses.replace(applied, products=None)
                return Processed(outcome=succeeded, valid=len(batch.rows), applied=applied)
            raise RunFenced(f"{spec.id} kept changing under the diff; try again")
        except BaseException:
            # Whatever happened, the in-memory index may no longer match the store.
            self._indexes.pop(spec.id, None)
            raise

    def _not_modified(
        self, job: Job, spec: SourceSpec, batch: Batch, sync: SyncState | None
    ) -> Processed:
        """A 304 or an identical body: nothing to diff, so no fingerprint index is built
        (after a start that would read every stored row); only the run and the validators
        are recorded, against the source's data version as it is now."""
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
