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
from collections.abc import Callable, Sequence
from itertools import compress
from typing import Any

from catalog_refresher.config.settings import FilterCondition, FilterOperator
from catalog_refresher.sources.values import text_of

__all__ = ["Predicate", "keep", "predicate"]

#: Whether one decoded record (a wire struct, or a raw dict) is kept.
Predicate = Callable[[Any], bool]


def predicate(condition: FilterCondition, read: Callable[[Any], Any]) -> Predicate:
    """``condition`` as a test of a record, ``read`` giving the value at its path."""
    operator, values = condition.operator, condition.values

    # Each test takes the text inline for the common case, a string: a call to
    # ``text_of`` per record would cost as much as the test itself.
    if operator is FilterOperator.EQUALS or operator is FilterOperator.NOT_EQUALS:
        expected, wanted = values[0], operator is FilterOperator.EQUALS

        def equals(item: Any) -> bool:
            value = read(item)
            text = value.strip() if value.__class__ is str else text_of(value)
            return (text == expected) is wanted

        return equals
    if operator is FilterOperator.IN or operator is FilterOperator.NOT_IN:
        among, wanted = frozenset(values), operator is FilterOperator.IN

        def is_in(item: Any) -> bool:
            value = read(item)
            text = value.strip() if value.__class__ is str else text_of(value)
            return (text in among) is wanted

        return is_in
    pattern = re.compile(values[0])

    def matches(item: Any) -> bool:
        value = read(item)
        text = value.strip() if value.__class__ is str else text_of(value)
        return text is not None and pattern.search(text) is not None

    return matches


def keep(items: list[Any], predicates: Sequence[Predicate]) -> tuple[list[Any], list[int]]:
    """The items every predicate keeps, and their positions in ``items``.

    Each predicate sees only what the ones before it kept; the loops are C's
    (``map``, ``compress``), only the predicates are Python.
    """
    kept: list[Any] = items
    positions: list[int] = list(range(len(items)))
    for test in predicates:
        mask = list(map(test, kept))
        kept = list(compress(kept, mask))
        positions = list(compress(positions, mask))
    return kept, positions
