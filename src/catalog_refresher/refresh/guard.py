"""The publish guard (contract 5b): refuse data that would wipe what users see.

A snapshot that comes back empty while the source had rows, or that would
remove more than ``MaxDeleteShare`` of them, is far more often an outage at the
source than a real emptied catalog. The run is ``rejected`` and the previous
data stays served; an operator who knows better forces the refresh. A batch whose
every record was invalid is refused too, its message showing the first reasons.
"""

from __future__ import annotations

from catalog_refresher.domain.specs import SourceSpec
from catalog_refresher.errors import PublishRejected
from catalog_refresher.refresh.diff import Diff
from catalog_refresher.refresh.validate import Batch

#: How many of the invalid records' reasons a rejection shows, and at most how long each.
REASONS_SHOWN = 3
REASON_LENGTH = 200


def all_invalid(batch: Batch) -> str:
    """Why a batch without a valid record is refused: its first reasons, so that an operator
    sees the mistake (a wrong path, a missing field) without looking further."""
    reasons = [_clip(reason) for reason in batch.reasons[:REASONS_SHOWN]]
    if batch.invalid > len(reasons) and reasons:
        reasons.append(f"and {batch.invalid - len(reasons)} more")
    listed = f": {'; '.join(reasons)}" if reasons else ""
    return f"every record ({batch.invalid}) was invalid{listed}"


def _clip(reason: str) -> str:
    return reason if len(reason) <= REASON_LENGTH else reason[: REASON_LENGTH - 1] + "…"


def check_publish(
    *, spec: SourceSpec, batch: Batch, diff: Diff, max_delete_share: float, force: bool
) -> None:
    """Raise ``PublishRejected`` with the reason, unless ``force``."""
    if force:
        return
    if batch.fetched and not batch.valid:
        raise PublishRejected(all_invalid(batch))
    if diff.scope and not batch.valid:
        what = "history window" if spec.is_history else "snapshot"
        raise PublishRejected(f"empty {what} while {diff.scope} rows are stored")
    share = len(diff.deletes) / diff.scope if diff.scope else 0.0
    # Compare shares, not counts: 0.29 * 100 is 28.999..., which would refuse 29 of 100.
    if not spec.is_history and share > max_delete_share:
        raise PublishRejected(
            f"would remove {len(diff.deletes)} of {diff.scope} rows ({share:.0%}),"
            f" more than MaxDeleteShare {max_delete_share:.0%}"
        )


def check_incremental(
    *, batch: Batch, diff: Diff, tombstones: int, max_delete_share: float, force: bool
) -> None:
    """The guard of an incremental answer: nothing is deleted but what its tombstones
    name, so only a flood of them (more than ``MaxDeleteShare`` of the stored rows) and
    an answer of invalid records alone are refused."""
    if force:
        return
    if batch.fetched and not batch.valid and not tombstones:
        raise PublishRejected(all_invalid(batch))
    share = len(diff.deletes) / diff.scope if diff.scope else 0.0
    if share > max_delete_share:
        raise PublishRejected(
            f"tombstones would remove {len(diff.deletes)} of {diff.scope} rows ({share:.0%}),"
            f" more than MaxDeleteShare {max_delete_share:.0%}"
        )
