"""A source's publish ``Validators`` and its ``Freshness`` window (issue 12).

```jsonc
"Validators": {
  "MinRecords": 100,          // fewer records once published: rejected
  "MaxCountChange": 0.2,      // the record count moves by more than 20 %: rejected
  "MaxChangedShare": 0.5,     // more than half the stored rows change: rejected
  "DuplicateKeys": "Reject"   // or "LastWins" (the default: the last record wins)
},
"Freshness": { "WarnAfter": "01:00:00", "FailAfter": "06:00:00" }
```

What a run does with them is ``refresh/validators.py``'s and ``status.py``'s; here
each option is read and checked, so that ``check-config`` names a mistake's key.
"""

from __future__ import annotations

from typing import Any

from catalog_refresher.config.policy_settings import (
    DuplicateKeys,
    FreshnessSettings,
    ValidatorSettings,
)
from catalog_refresher.config.tree import as_object, get, reject_unknown
from catalog_refresher.config.values import (
    as_choice,
    as_duration,
    as_int,
    as_number,
    as_share,
    format_timespan,
)
from catalog_refresher.errors import ConfigError

__all__ = ["describe_policies", "freshness_settings", "validator_settings"]

_VALIDATOR_KEYS = ("MinRecords", "MaxCountChange", "MaxChangedShare", "DuplicateKeys")
_FRESHNESS_KEYS = ("WarnAfter", "FailAfter")


def validator_settings(value: Any, key: str) -> ValidatorSettings:
    """The ``Validators`` object at ``key``; none configured when it is absent."""
    if value is None:
        return ValidatorSettings()
    tree = as_object(value, key)
    reject_unknown(tree, key, _VALIDATOR_KEYS)
    least, change = get(tree, "MinRecords"), get(tree, "MaxCountChange")
    changed = get(tree, "MaxChangedShare")
    count_change = None
    if change is not None:
        count_change = as_number(change, f"{key}:MaxCountChange")
        if not count_change >= 0:  # also refuses NaN
            raise ConfigError(f"{key}:MaxCountChange", f"must be 0 or more, got {count_change}")
    return ValidatorSettings(
        min_records=None if least is None else as_int(least, f"{key}:MinRecords", 0),
        max_count_change=count_change,
        max_changed_share=None if changed is None else as_share(changed, f"{key}:MaxChangedShare"),
        duplicate_keys=as_choice(
            get(tree, "DuplicateKeys"),
            f"{key}:DuplicateKeys",
            DuplicateKeys,
            DuplicateKeys.LAST_WINS,
        ),
    )


def freshness_settings(value: Any, key: str) -> FreshnessSettings | None:
    """The ``Freshness`` object at ``key``, or ``None`` when it is absent."""
    if value is None:
        return None
    tree = as_object(value, key)
    reject_unknown(tree, key, _FRESHNESS_KEYS)
    warn, fail = get(tree, "WarnAfter"), get(tree, "FailAfter")
    if warn is None and fail is None:
        raise ConfigError(key, "needs WarnAfter, FailAfter or both")
    settings = FreshnessSettings(
        warn_after=None if warn is None else as_duration(warn, f"{key}:WarnAfter", positive=True),
        fail_after=None if fail is None else as_duration(fail, f"{key}:FailAfter", positive=True),
    )
    if settings.warn_after and settings.fail_after and settings.warn_after >= settings.fail_after:
        raise ConfigError(f"{key}:FailAfter", "must be longer than WarnAfter")
    return settings


def describe_policies(
    validators: ValidatorSettings, freshness: FreshnessSettings | None
) -> dict[str, Any]:
    """How ``check-config`` prints them, in the file's shape."""
    warn = None if freshness is None else freshness.warn_after
    fail = None if freshness is None else freshness.fail_after
    return {
        "Validators": {
            "MinRecords": validators.min_records,
            "MaxCountChange": validators.max_count_change,
            "MaxChangedShare": validators.max_changed_share,
            "DuplicateKeys": "Reject"
            if validators.duplicate_keys is DuplicateKeys.REJECT
            else "LastWins",
        },
        "Freshness": None
        if freshness is None
        else {
            "WarnAfter": None if warn is None else format_timespan(warn),
            "FailAfter": None if fail is None else format_timespan(fail),
        },
    }
