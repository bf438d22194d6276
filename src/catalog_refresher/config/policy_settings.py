"""A source's publish ``Validators`` and ``Freshness`` window, read by
``config/policies.py``; ``config.settings`` re-exports them."""

from __future__ import annotations

import enum
from dataclasses import dataclass
from datetime import timedelta


class DuplicateKeys(enum.StrEnum):
    """What a snapshot holding one key twice does: the last record wins, or the run is
    rejected."""

    LAST_WINS = "lastwins"
    REJECT = "reject"


@dataclass(frozen=True, slots=True, kw_only=True)
class ValidatorSettings:
    """Checks beside the publish guard (``refresh/validators.py``); ``None``: not checked."""

    min_records: int | None = None
    """Fewer valid records than this rejects the run."""
    max_count_change: float | None = None
    """The record count may change by at most this share of the previous good count."""
    max_changed_share: float | None = None
    """At most this share of the stored rows may be inserted, updated or deleted."""
    duplicate_keys: DuplicateKeys = DuplicateKeys.LAST_WINS

    @property
    def any(self) -> bool:
        return self != ValidatorSettings()


@dataclass(frozen=True, slots=True, kw_only=True)
class FreshnessSettings:
    """How old a source's data may get since its last success (``Freshness``)."""

    warn_after: timedelta | None = None
    fail_after: timedelta | None = None
