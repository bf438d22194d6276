"""sources.decoding: pages read once, for the pager and for the pipeline alike."""

from __future__ import annotations

import pytest

from catalog_refresher.domain.records import EshopStock
from catalog_refresher.errors import InvalidPayloadError
from catalog_refresher.sources.decoding import (
    Unfit,
    count_at,
    decode_records,
    record_count,
    records_array,
)
from catalog_refresher.sources.mapping import reader_for

PAGE = b'{"data": {"items": [{"product_code": "A", "stock": 1}], "total": "7"}}'


def test_the_pager_and_the_pipeline_find_the_same_records_array() -> None:
    """The records at ``RecordsPath`` are the array the pager counted, and the count is read."""
    assert records_array(PAGE, "data.items", 1) == b'[{"product_code": "A", "stock": 1}]'
    assert record_count(PAGE, "data.items", 1) == 1
    assert count_at(PAGE, "data.total", 1, "TotalPath") == 7


def test_a_missing_step_is_named_in_each_readers_own_words() -> None:
    """The pager names the option it followed, the pipeline the object it was in."""
    with pytest.raises(InvalidPayloadError) as pager:
        record_count(PAGE, "data.rows", 3)
    with pytest.raises(InvalidPayloadError) as pipeline:
        records_array(PAGE, "data.rows", 3)
    assert str(pager.value) == "page 3: no 'rows' on the way to RecordsPath 'data.rows'"
    assert str(pipeline.value) == "page 3: no 'rows' in the object at RecordsPath 'data.rows'"


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
