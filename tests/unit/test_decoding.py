"""sources.decoding: pages read once, for the pager and for the pipeline alike."""

from __future__ import annotations

import sys

import pytest

from catalog_refresher.domain.records import EshopStock
from catalog_refresher.domain.specs import SPECS
from catalog_refresher.errors import InvalidPayloadError
from catalog_refresher.refresh.validate import validate
from catalog_refresher.sources.base import Payload
from catalog_refresher.sources.decoding import (
    Unfit,
    count_at,
    decode_records,
    record_count,
    records_array,
    value_at,
)
from catalog_refresher.sources.mapping import reader_for
from tests.helpers import json_path

PAGE = b'{"data": {"items": [{"product_code": "A", "stock": 1}], "total": "7"}}'


def test_the_pager_and_the_pipeline_find_the_same_records_array() -> None:
    """The records at ``RecordsPath`` are the array the pager counted, and the count is read."""
    items = json_path("data.items")
    assert records_array(PAGE, items, 1) == b'[{"product_code": "A", "stock": 1}]'
    assert record_count(PAGE, items, 1) == 1
    assert count_at(PAGE, json_path("data.total"), 1, "TotalPath") == 7


def test_a_missing_step_is_named_in_each_readers_own_words() -> None:
    """The pager names the option it followed, the pipeline the object it was in; both list
    the keys the object does have."""
    rows = json_path("data.rows")
    with pytest.raises(InvalidPayloadError) as pager:
        record_count(PAGE, rows, 3)
    with pytest.raises(InvalidPayloadError) as pipeline:
        records_array(PAGE, rows, 3)
    assert str(pager.value) == (
        "page 3: no 'rows' on the way to RecordsPath 'data.rows' (it has items, total)"
    )
    assert str(pipeline.value) == (
        "page 3: no 'rows' in the object at RecordsPath 'data.rows' (it has items, total)"
    )


def test_a_path_walks_into_arrays_by_index() -> None:
    """``winstrom.items[1].rows`` takes the second element; ``[-1]`` the last."""
    page = b'{"winstrom": {"items": [{"rows": [1]}, {"rows": [2, 3]}]}}'
    assert records_array(page, json_path("winstrom.items[1].rows"), 1) == b"[2, 3]"
    assert records_array(page, json_path("winstrom.items[-1].rows"), 1) == b"[2, 3]"
    assert value_at(page, json_path("winstrom.items[0].rows[0]")) == b"1"
    assert value_at(page, json_path("winstrom.items[5]")) is None
    assert value_at(page, json_path("winstrom.items.rows")) is None  # an array has no keys


def test_an_index_past_the_end_says_how_long_the_array_is() -> None:
    """A missing element names the index and the array's length."""
    page = b'{"pages": [{"rows": []}]}'
    with pytest.raises(InvalidPayloadError) as caught:
        records_array(page, json_path("pages[2].rows"), 1)
    assert str(caught.value) == (
        "page 1: no element [2] in the array at RecordsPath 'pages[2].rows' (it has 1 elements)"
    )


def test_a_long_list_of_keys_is_cut_short() -> None:
    """An object with many keys lists the first twelve and how many more there are."""
    page = ("{" + ", ".join(f'"k{n:02}": 0' for n in range(20)) + "}").encode()
    with pytest.raises(InvalidPayloadError) as caught:
        records_array(page, json_path("items"), 1)
    assert str(caught.value).endswith("(it has k00, k01, k02, k03, k04, k05, k06, k07, k08, k09,"
                                      " k10, k11 and 8 more)")  # fmt: skip


def test_a_record_that_does_not_fit_comes_as_unfit_in_its_place() -> None:
    """Only a page with a bad record is decoded one by one; the others still come whole."""
    reader = reader_for(EshopStock, ())
    good = decode_records(reader, b'[{"product_code": "A", "stock": 1}]')
    assert (good.records, good.may_hold_unfit) == ([EshopStock(product_code="A", stock=1)], False)
    mixed = decode_records(reader, b'[{"product_code": "A"}, {"product_code": "B", "stock": 2}]')
    assert mixed.may_hold_unfit
    assert mixed.records == [
        Unfit("Object missing required field `stock`"),
        EshopStock(product_code="B", stock=2),
    ]


DEEP = b"[" * 100_000 + b"]" * 100_000


def test_a_payload_nested_too_deep_is_an_invalid_payload_naming_the_cause() -> None:
    """100,000 nested arrays fail as an invalid payload that says so, not as a bug."""
    with pytest.raises(InvalidPayloadError) as pipeline:
        validate(SPECS["erp_stock"], Payload(pages=[DEEP]), None)
    with pytest.raises(InvalidPayloadError) as pager:
        count_at(b'{"total": ' + DEEP + b"}", json_path("total"), 2, "TotalPath")
    limit = sys.getrecursionlimit()
    assert str(pipeline.value) == f"page 1: the payload nests deeper than {limit} levels"
    assert str(pager.value) == f"page 2: the payload nests deeper than {limit} levels"
    assert pipeline.value.error_type == "invalid_payload"
