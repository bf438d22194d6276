"""Every date field of the contract stores `YYYY-MM-DD` from the forms real systems send."""

from __future__ import annotations

import json
from datetime import date
from typing import Any

import pytest

from catalog_refresher.domain.records import Lot
from catalog_refresher.domain.specs import SPECS
from catalog_refresher.domain.window import Window
from catalog_refresher.refresh.validate import Batch, validate
from catalog_refresher.sources.base import Payload

WINDOW = Window(date_from=date(2025, 11, 29), date_to=date(2026, 11, 29))

#: As ABRA Flexi and Shoptet write one day, 2026-01-22.
FORMS = [
    "2026-01-22",
    "2026-01-22+01:00",
    "2026-01-22T11:22:10.832+01:00",
    "2026-01-22T09:14:03+0200",
    "2026-01-22T10:22:10Z",
    "2026-01-22T10:22:10.5Z",
    "2026-01-22 10:22",
    " 2026-01-22 ",
    "2026-01-22T23:30:00-05:00",  # the day as the system wrote it, not moved to UTC
]


def read(source: str, records: list[dict[str, Any]]) -> Batch:
    body = json.dumps(records).encode()
    window = WINDOW if SPECS[source].is_history else None
    return validate(SPECS[source], Payload(pages=[body]), window)


@pytest.mark.parametrize("sent", FORMS)
@pytest.mark.parametrize(
    ("source", "extra"),
    [
        ("consumed_materials", {"quantity": 1}),
        ("purchase_history", {"quantity": 1}),
        ("sales_data", {"b2b_sold": 1}),
        ("stock_taking", {"amount_new": 1}),
    ],
)
def test_every_date_field_reads_each_form_as_its_day(
    source: str, extra: dict[str, Any], sent: str
) -> None:
    """`date` of history and snapshot records: any of the forms is stored as 2026-01-22."""
    batch = read(source, [{"product_code": "A", "date": sent, **extra}])
    assert batch.invalid == 0, batch.reasons
    (record,) = batch.rows.values()
    assert record.date == "2026-01-22"  # type: ignore[attr-defined]


@pytest.mark.parametrize("sent", FORMS)
def test_a_lot_expiration_reads_each_form_as_its_day(sent: str) -> None:
    """`lots.expiration`, stored as sent before, is a day now."""
    batch = read("lots", [{"product_code": "A", "lot": "L", "amount": 1, "expiration": sent}])
    (lot,) = batch.rows.values()
    assert lot == Lot(product_code="A", lot="L", amount=1.0, expiration="2026-01-22")


def test_an_empty_expiration_is_null_and_a_missing_one_stays_null() -> None:
    """Flexi's `""` (no expiry) is null, like an expiration not sent at all."""
    batch = read(
        "lots",
        [
            {"product_code": "A", "lot": "L1", "amount": 1, "expiration": ""},
            {"product_code": "A", "lot": "L2", "amount": 1, "expiration": "  "},
            {"product_code": "A", "lot": "L3", "amount": 1},
        ],
    )
    assert [lot.expiration for lot in batch.rows.values()] == [None, None, None]  # type: ignore[attr-defined]


@pytest.mark.parametrize(
    ("sent", "problem"),
    [
        ("30.09.2025", "is not a date YYYY-MM-DD"),
        ("2025-02-30", "is not a date: day is out of range"),
        ("2025-09-30T25", "is not a date YYYY-MM-DD"),
    ],
)
def test_an_expiration_that_is_no_date_is_refused(sent: str, problem: str) -> None:
    """A lot whose expiration is not a date is invalid, as a bad `date` always was."""
    batch = read("lots", [{"product_code": "A", "lot": "L", "amount": 1, "expiration": sent}])
    (reason,) = batch.reasons
    assert reason.startswith(f"record 0: expiration {sent!r} ")
    assert problem in reason


def test_an_empty_sale_date_is_no_date() -> None:
    """A sale with `"date": ""` and a period is booked to the period; without one it is refused."""
    batch = read(
        "sales_data",
        [
            {"product_code": "A", "date": "", "period": "2026-10", "b2b_sold": 1},
            {"product_code": "B", "date": "", "b2b_sold": 1},
        ],
    )
    assert [r.period for r in batch.rows.values()] == ["2026-10"]  # type: ignore[attr-defined]
    assert batch.reasons == ["record 1: needs a period or a date"]


def test_a_required_empty_date_is_refused() -> None:
    """A purchase needs its date: `""` is refused, not stored."""
    batch = read("purchase_history", [{"product_code": "A", "date": "", "quantity": 1}])
    assert batch.reasons == ["record 0: date '' is not a date YYYY-MM-DD"]
