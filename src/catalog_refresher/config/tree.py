"""The configuration file as a tree, and the lookups every section's reader uses.

JSON objects are read into ``Tree`` dicts keyed by the lower-cased key, each
entry keeping the key as written (for messages) and its value, so that keys
match case-insensitively as in ASP.NET.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable
from typing import Any

from catalog_refresher.config.values import json_kind
from catalog_refresher.errors import ConfigError

__all__ = ["Tree", "as_object", "get", "reject_unknown"]

# A parsed JSON object: lower-cased key -> (key as written, value).
Tree = dict[str, tuple[str, Any]]


def get(tree: Tree, name: str) -> Any:
    """The value under ``name`` in any case, or ``None``."""
    entry = tree.get(name.lower())
    return None if entry is None else entry[1]


def as_object(value: Any, key: str) -> Tree:
    """``value`` as an object; ``None`` (not set) is an empty one."""
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise ConfigError(key, f"expected an object, got {json_kind(value)}")
    return value


def reject_unknown(tree: Tree, key: str, known: Iterable[str], ignore: Iterable[str] = ()) -> None:
    """Refuse the first key of ``tree`` that is not ``known``, suggesting the closest."""
    by_lower = {name.lower(): name for name in known}
    for lowered, (written, _) in tree.items():
        if lowered in by_lower or lowered in ignore:
            continue
        close = difflib.get_close_matches(lowered, by_lower, n=1)
        hint = (
            f"did you mean {by_lower[close[0]]}?"
            if close
            else "known: " + ", ".join(by_lower.values())
        )
        raise ConfigError(f"{key}:{written}", f"unknown option; {hint}")
