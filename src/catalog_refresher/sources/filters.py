"""An endpoint's ``Filter``: which of a page's records are this source's.

One endpoint may carry several kinds of record (Flexi's stock-movement lines:
receipts, issues, sales), each kind another source's. A record that fails a
condition is not this source's: it is dropped before the field rules and the
per-record rules, so it is neither fetched nor invalid in the run's counts.

Values compare as trimmed text (``values.text_of``: ``1`` and ``"1"`` are equal);
a path that finds nothing (absent, null, an object) equals nothing, so
``NotEquals`` and ``NotIn`` keep such a record and the others drop it.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from itertools import compress
from typing import Any

from catalog_refresher.config.settings import FilterCondition, FilterOperator
from catalog_refresher.sources.codegen import compile_function, indent
from catalog_refresher.sources.values import MISSING, text_of

__all__ = ["Condition", "condition", "keep"]

#: Each operator's test of ``t``, the value's text (``None`` for no value).
_TESTS = {
    FilterOperator.EQUALS: "t == EXPECTED",
    FilterOperator.NOT_EQUALS: "t != EXPECTED",
    FilterOperator.IN: "t in AMONG",
    FilterOperator.NOT_IN: "t not in AMONG",
    FilterOperator.MATCHES: "t is not None and SEARCH(t) is not None",
}


@dataclass(frozen=True, slots=True)
class Condition:
    """One ``FilterCondition`` as the reader applies it."""

    test: Callable[[list[Any]], list[bool]]
    """Whether each of a list of records passes: one loop, the path and test written out."""

    def keeps(self, item: Any) -> bool:
        """Whether one record passes (the one-by-one path)."""
        return self.test([item])[0]


def condition(
    given: FilterCondition, read: list[str], names: Mapping[str, Any] | None = None
) -> Condition:
    """``given`` as a test of records, ``read`` the statements setting ``v`` from ``item``
    to the value at its path (``sources/wire.py``), using ``names``."""
    namespace: dict[str, Any] = {
        **(names or {}),
        "EXPECTED": given.values[0],
        "AMONG": frozenset(given.values),
        "SEARCH": re.compile(given.values[0]).search
        if given.operator is FilterOperator.MATCHES
        else None,
        "MISSING": MISSING,
        "text_of": text_of,
    }
    body = [
        "passed = []",
        "append = passed.append",
        "for item in items:",
        *indent(read),
        # The text inline for the common case, a string: a call per record would cost
        # as much as the test itself.
        "    t = v.strip() if v.__class__ is str else text_of(v)",
        f"    append({_TESTS[given.operator]})",
        "return passed",
    ]
    return Condition(test=compile_function("test", "items", body, namespace))


def keep(items: list[Any], conditions: Sequence[Condition]) -> tuple[list[Any], list[int]]:
    """The items every condition keeps, and their positions in ``items``.

    Each condition sees only what the ones before it kept.
    """
    kept: list[Any] = items
    positions: list[int] = list(range(len(items)))
    for each in conditions:
        passed = each.test(kept)
        kept = list(compress(kept, passed))
        positions = list(compress(positions, passed))
    return kept, positions
