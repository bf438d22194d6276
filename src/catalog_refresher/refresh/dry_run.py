"""The dry run (contract 8): fetch, validate, diff, guard and validators; publish nothing.

The answer is what a real run would do now: the counts it would insert, update,
delete and refuse, the first keys of each kind, whether the guard would reject it
and each validator's verdict. Nothing is written: no rows, no lineage, no cursor or
validators (ETag) advanced, and no run in the audit log. Recording it as a run
would move the source's schedule (slots count from the last run's start) and its
circuit; a dry run is a question, not a run. It is logged instead.
"""

from __future__ import annotations

import heapq
from collections.abc import Callable
from dataclasses import dataclass, field

from catalog_refresher.config.settings import ValidatorSettings
from catalog_refresher.domain.rules import show_key
from catalog_refresher.domain.runs import RunMode
from catalog_refresher.errors import PublishRejected
from catalog_refresher.refresh.diff import Diff
from catalog_refresher.refresh.validate import Batch
from catalog_refresher.refresh.validators import Verdict, verdicts

#: How many keys of each kind (inserted, updated, deleted) a dry run lists.
KEYS_SHOWN = 10


@dataclass(frozen=True, slots=True, kw_only=True)
class Preview:
    """What a run of ``source`` would publish now."""

    source: str
    mode: RunMode = RunMode.FULL
    not_modified: bool = False
    fetched: int = 0
    valid: int = 0
    invalid: int = 0
    inserted: int = 0
    updated: int = 0
    deleted: int = 0
    first_inserted: tuple[str, ...] = ()
    first_updated: tuple[str, ...] = ()
    first_deleted: tuple[str, ...] = ()
    invalid_reasons: tuple[str, ...] = ()
    guard: Verdict = field(default_factory=lambda: Verdict("guard", True, "would publish"))
    validators: tuple[Verdict, ...] = ()

    @property
    def would_publish(self) -> bool:
        return self.guard.passed and all(v.passed for v in self.validators)


def preview(
    *,
    source: str,
    mode: RunMode,
    not_modified: bool,
    batch: Batch,
    diff: Diff,
    guard: Callable[[], None],
    validators: ValidatorSettings | None,
    forced: bool,
) -> Preview:
    """The ``Preview`` of a diffed batch; ``guard`` raises ``PublishRejected`` if it refuses."""
    try:
        guard()
        verdict = Verdict("guard", True, "forced: not checked" if forced else "would publish")
    except PublishRejected as exc:
        verdict = Verdict("guard", False, str(exc))
    checked = () if validators is None or forced else verdicts(validators, batch=batch, diff=diff)
    return Preview(
        source=source,
        mode=mode,
        not_modified=not_modified,
        fetched=batch.fetched,
        valid=batch.valid,
        invalid=batch.invalid,
        inserted=len(diff.inserts),
        updated=len(diff.updates),
        deleted=len(diff.deletes),
        first_inserted=_first(diff.inserts),
        first_updated=_first(diff.updates),
        first_deleted=_first(diff.deletes),
        invalid_reasons=tuple(batch.reasons),
        guard=verdict,
        validators=tuple(checked),
    )


def _first(keys: list[str]) -> tuple[str, ...]:
    return tuple(show_key(key) for key in heapq.nsmallest(KEYS_SHOWN, keys))
