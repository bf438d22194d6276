"""Hypothesis over the record rules: any records in, valid rows and counted reasons out.

For every source, arrays of records are generated with the source's own field names
(and unknown ones) holding values of every JSON type: good codes, dates in the shapes
systems write, huge and negative numbers, control characters, empty strings. Each page
goes through ``refresh/validate.validate`` as a run would. Every record ends up either a
valid row or counted invalid with a one-line reason; no exception escapes but
``InvalidPayloadError`` (the page as a whole is not an array of objects), which names
the page.
"""

from __future__ import annotations

from datetime import date
from typing import Any

import msgspec
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from catalog_refresher.domain.specs import SPECS
from catalog_refresher.domain.window import Window
from catalog_refresher.errors import InvalidPayloadError
from catalog_refresher.refresh.validate import validate
from catalog_refresher.sources.base import Payload

WINDOW = Window(date_from=date(2026, 1, 1), date_to=date(2026, 12, 31))
FIELDS = sorted(
    {
        field.encode_name
        for spec in SPECS.values()
        for field in msgspec.structs.fields(spec.record_type)
    }
)

scalar = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**80), max_value=2**80),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=12),
    st.sampled_from(
        [
            "P-001",
            " P-001 ",
            "",
            "A\x1fB",
            "2026-05-01",
            "2026-05-01T10:00:00+02:00",
            "2026-13-40",
            "2026-05",
            "2025-12-31",
            "1e400",
            "CZK",
        ]
    ),
)
value = st.recursive(scalar, lambda inner: st.lists(inner, max_size=2), max_leaves=4)
record = st.dictionaries(st.sampled_from(FIELDS) | st.text(max_size=6), value, max_size=8)
page = st.lists(record | value, max_size=8)


@settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(st.sampled_from(sorted(SPECS)), page)
def test_every_record_is_a_row_or_a_counted_reason(source: str, records: list[Any]) -> None:
    """Each generated record of each source is a valid row or counted invalid with a
    one-line reason; the counts add up (duplicates count invalid); nothing raises."""
    spec = SPECS[source]
    body = msgspec.json.encode(records)
    batch = validate(spec, Payload(pages=[body]), WINDOW if spec.is_history else None)
    assert batch.fetched == len(records)
    assert len(batch.rows) + batch.invalid == batch.fetched
    assert all(reason and "\n" not in reason for reason in batch.reasons), batch.reasons


@settings(max_examples=60, deadline=None)
@given(st.sampled_from(sorted(SPECS)), st.binary(max_size=60) | value.map(msgspec.json.encode))
def test_a_page_that_is_not_an_array_of_records_is_an_invalid_payload(
    source: str, body: bytes
) -> None:
    """Any bytes as a page: validated records, or InvalidPayloadError naming the page on
    one line; never another exception (a RecursionError, a UnicodeDecodeError...)."""
    spec = SPECS[source]
    try:
        validate(spec, Payload(pages=[body]), WINDOW if spec.is_history else None)
    except InvalidPayloadError as exc:
        message = str(exc)
    else:
        return
    assert message
    assert "\n" not in message, message


def test_a_page_nested_deeper_than_the_limit_is_an_invalid_payload() -> None:
    """The deepest payload of the issue (100,000 levels) is an invalid payload, not a
    RecursionError: the fuzzing above keeps to shallow trees, so it is checked apart."""
    body = b"[" * 100_000 + b"]" * 100_000
    with pytest.raises(InvalidPayloadError):
        validate(SPECS["erp_stock"], Payload(pages=[body]), None)
