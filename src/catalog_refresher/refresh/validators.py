"""Publish validators (issue 12), beside the guard: per source, in the spirit of
Netflix Hollow's. Each looks at what the run would publish against what is stored
(the previous good version) and passes or fails with a reason:

- ``MinRecords``: the source would hold at least this many records;
- ``MaxCountChange``: its record count would move by at most this share;
- ``MaxChangedShare``: at most this share of the stored rows would be inserted,
  updated or deleted;
- ``DuplicateKeys: reject``: a payload holding one key twice is refused (by
  default the last record wins, the earlier counted invalid).

The first failing one rejects the run (``rejected``, with its reason); a forced run
skips them, as it skips the guard. The dry run shows every verdict.
"""

from __future__ import annotations

from dataclasses import dataclass

from catalog_refresher.config.policy_settings import DuplicateKeys
from catalog_refresher.config.settings import ValidatorSettings
from catalog_refresher.errors import PublishRejected
from catalog_refresher.refresh.diff import Diff
from catalog_refresher.refresh.validate import Batch


@dataclass(frozen=True, slots=True)
class Verdict:
    """One check's answer: ``passed``, and why not (or what it measured)."""

    name: str
    passed: bool
    detail: str


def count_after(diff: Diff) -> int:
    """How many rows the source (a history source: its window) holds once published."""
    return diff.scope + len(diff.inserts) - len(diff.deletes)


def verdicts(settings: ValidatorSettings, *, batch: Batch, diff: Diff) -> list[Verdict]:
    """The verdict of each configured validator, in the order of the configuration."""
    found: list[Verdict] = []
    after, before = count_after(diff), diff.scope
    if settings.min_records is not None:
        least = settings.min_records
        found.append(
            Verdict("MinRecords", after >= least, f"{after} records, at least {least} wanted")
        )
    if settings.max_count_change is not None and before:
        share = abs(after - before) / before
        most = settings.max_count_change
        found.append(
            Verdict(
                "MaxCountChange",
                share <= most,
                f"record count {before} -> {after} ({share:.1%}), at most {most:.1%} allowed",
            )
        )
    if settings.max_changed_share is not None and before:
        changed = len(diff.inserts) + len(diff.updates) + len(diff.deletes)
        share = changed / before
        most = settings.max_changed_share
        found.append(
            Verdict(
                "MaxChangedShare",
                share <= most,
                f"{changed} of {before} rows changed ({share:.1%}), at most {most:.1%} allowed",
            )
        )
    if settings.duplicate_keys is DuplicateKeys.REJECT:
        found.append(
            Verdict(
                "DuplicateKeys",
                not batch.duplicates,
                f"{batch.duplicates} duplicate keys",
            )
        )
    return found


def check_validators(
    settings: ValidatorSettings | None, *, batch: Batch, diff: Diff, force: bool
) -> None:
    """Raise ``PublishRejected`` with the first failing validator's reason, unless ``force``."""
    if force or settings is None or not settings.any:
        return
    for verdict in verdicts(settings, batch=batch, diff=diff):
        if not verdict.passed:
            raise PublishRejected(f"validator {verdict.name} failed: {verdict.detail}")
