"""The per-record rules: when a record is valid, and its row key (contract sections 1 and 4).

A record arrives decoded (``sources/decoding.py``) and leaves normalised: codes
without stray white space, dates (``date``, ``expiration``) as ``YYYY-MM-DD``
from a date or datetime with any offset, an empty optional date null, a sale booked to its
period, history rows inside the run's window, attributes typed with the
free-form rest kept as sorted JSON. A record that breaks a rule raises
``InvalidRecord`` saying which; ``refresh/validate.py`` counts it and goes on.

The row key identifies a row within its source: the key fields of a snapshot
source, or product, day and occurrence for a history source, joined by
``KEY_SEPARATOR``.
"""

from __future__ import annotations

import calendar
import re
from collections.abc import Callable
from datetime import date
from typing import Any

import msgspec

from catalog_refresher.domain import records
from catalog_refresher.domain.specs import SPECS, SourceSpec
from catalog_refresher.domain.window import Window
from catalog_refresher.errors import InvalidRecord

#: Separates the parts of a composite row key; cannot occur in a stripped code.
KEY_SEPARATOR = "\x1f"

# An ISO date, or the date of a datetime, as the system wrote it: an offset after the
# date (older Flexi: 2017-05-26+02:00), a time with or without fractions, and an
# offset with or without a colon (Shoptet: +0200) or Z. The day is kept as written,
# never moved to UTC: it is the day the system booked.
_DATE = re.compile(
    r"^([0-9]{4}-[0-9]{2}-[0-9]{2})"
    r"(?:[T ][0-9]{2}:[0-9]{2}(?::[0-9]{2}(?:[.,][0-9]+)?)?)?"
    r"(?:Z|[+-][0-9]{2}(?::?[0-9]{2})?)?$"
)
_PERIOD = re.compile(r"^([0-9]{4})-([0-9]{2})$")
# Control characters (the key separator among them) never belong in a code.
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")

#: A record in, its row key and normalised record out; raises ``InvalidRecord``.
Normaliser = Callable[[Any], tuple[str, records.Record]]


def normaliser(spec: SourceSpec, window: Window | None) -> Normaliser:
    """The rules of ``spec``'s source, for one run; a history source needs its ``window``.

    Take a fresh one per run: a history source's normaliser numbers the rows of
    one product and day in the order it meets them.
    """
    return _history_normaliser(spec, window) if spec.is_history else _snapshot_normaliser(spec)


def row_day(record: records.Record) -> date | None:
    """The day a history row belongs to; a period counts as its last day (contract 1)."""
    period = getattr(record, "period", None)
    if period:
        year, month = int(period[:4]), int(period[5:7])
        return date(year, month, calendar.monthrange(year, month)[1])
    value = getattr(record, "date", None)
    return date.fromisoformat(value) if value else None


def split_key(key: str) -> list[str]:
    return key.split(KEY_SEPARATOR)


def show_key(key: str) -> str:
    """A row key as messages show it: its parts joined by ``/``."""
    return "/".join(split_key(key))


# --- per-record rules -----------------------------------------------------------


def _code(value: str, name: str) -> str:
    """The code without surrounding white space; empty or with control characters refused."""
    # The common case, a clean code, costs three C calls and no allocation.
    if value and value.isprintable() and not (value[0].isspace() or value[-1].isspace()):
        return value
    code = value.strip()
    if not code:
        raise InvalidRecord(f"{name} is empty")
    if _CONTROL.search(code):
        raise InvalidRecord(f"{name} {code!r} contains a control character")
    return code


def _day(value: str, name: str) -> str:
    match = _DATE.match(value.strip())
    if match is None:
        raise InvalidRecord(f"{name} {value!r} is not a date YYYY-MM-DD")
    try:
        return date.fromisoformat(match.group(1)).isoformat()
    except ValueError as exc:
        raise InvalidRecord(f"{name} {value!r} is not a date: {exc}") from None


def _optional_day(value: str | None, name: str) -> str | None:
    """An optional date: ``""`` (Flexi's "none") is null, anything else a date."""
    return None if value is None or not value.strip() else _day(value, name)


def trimmed_fields(record_type: type[records.Record]) -> frozenset[str]:
    """The text fields these rules trim themselves: the codes of the row key and the dates.

    Their optional ones are also null when empty, so a field rule need not do either.
    """
    spec = next(spec for spec in SPECS.values() if spec.record_type is record_type)
    dates = {"date", "expiration"} & set(record_type.__struct_fields__)
    return frozenset({"product_code", *spec.key_fields, *dates})


def _snapshot_normaliser(spec: SourceSpec) -> Normaliser:
    key_fields = spec.key_fields
    code_fields = tuple(f for f in key_fields if f != "date")
    is_attributes = spec.record_type is records.Attributes
    has_date = "date" in spec.record_type.__struct_fields__
    has_expiration = "expiration" in spec.record_type.__struct_fields__

    def normalise(record: Any) -> tuple[str, records.Record]:
        if is_attributes:
            record = _attributes(record)
        changes: dict[str, str | None] = {}
        for name in code_fields:
            value = getattr(record, name)
            clean = _code(value, name)
            if clean is not value:
                changes[name] = clean
        if has_date:
            changes["date"] = _day(record.date, "date")
        if has_expiration and record.expiration is not None:
            changes["expiration"] = _optional_day(record.expiration, "expiration")
        if changes:
            record = msgspec.structs.replace(record, **changes)
        return KEY_SEPARATOR.join(getattr(record, f) for f in key_fields), record

    if key_fields == ("product_code",) and not is_attributes and not has_date:

        def by_product(record: Any) -> tuple[str, records.Record]:
            """The shape of the largest sources (ERP, e-shop): one code, nothing else to fix."""
            code = record.product_code
            if code and code.isprintable() and not (code[0].isspace() or code[-1].isspace()):
                return code, record  # _code's fast path, inlined: this runs per record
            clean = _code(code, "product_code")
            if clean is not code:
                record = msgspec.structs.replace(record, product_code=clean)
            return clean, record

        return by_product
    return normalise


def _history_normaliser(spec: SourceSpec, window: Window | None) -> Normaliser:
    if window is None:
        raise ValueError(f"{spec.id} is a history source and needs a window")
    occurrences: dict[str, int] = {}
    is_sales = spec.record_type is records.Sale

    def normalise(record: Any) -> tuple[str, records.Record]:
        changes: dict[str, Any] = {}
        code = _code(record.product_code, "product_code")
        if code != record.product_code:
            changes["product_code"] = code
        if is_sales:
            changes.update(_sales_when(record, window))
        else:
            day = _day(record.date, "date")
            if not window.date_from.isoformat() <= day <= window.date_to.isoformat():
                raise InvalidRecord(f"date {day} is outside the window {_show(window)}")
            changes["date"] = day
        record = msgspec.structs.replace(record, **changes)
        when = record.period if is_sales else record.date
        # Rows of one product and day have no natural key: number them in payload order.
        stem = f"{code}{KEY_SEPARATOR}{when}"
        n = occurrences.get(stem, 0)
        occurrences[stem] = n + 1
        return f"{stem}{KEY_SEPARATOR}{n}", record

    return normalise


def _sales_when(record: records.Sale, window: Window) -> dict[str, Any]:
    """A sale is booked to a period; one given by date is booked to that date's month."""
    if record.period is not None:
        match = _PERIOD.match(record.period.strip())
        if match is None or not 1 <= int(match.group(2)) <= 12:
            raise InvalidRecord(f"period {record.period!r} is not YYYY-MM")
        period = match.group(0)
        first = date(int(match.group(1)), int(match.group(2)), 1)
        last = date(first.year, first.month, calendar.monthrange(first.year, first.month)[1])
        if last < window.date_from or first > window.date_to:
            raise InvalidRecord(f"period {period} is outside the window {_show(window)}")
        return {"period": period, "date": None}
    if record.date is None or not record.date.strip():
        raise InvalidRecord("needs a period or a date")
    day = _day(record.date, "date")
    if not window.date_from.isoformat() <= day <= window.date_to.isoformat():
        raise InvalidRecord(f"date {day} is outside the window {_show(window)}")
    return {"period": day[:7], "date": day}


def _attributes(raw: dict[str, Any]) -> records.Attributes:
    """Typed attributes plus the free-form rest, kept as sorted JSON."""
    known = records.attribute_fields()
    typed = {k: v for k, v in raw.items() if k in known}
    try:
        attrs = msgspec.convert(typed, records.Attributes, strict=False)
    except msgspec.ValidationError as exc:
        raise InvalidRecord(str(exc)) from None
    if attrs.season_months and not all(1 <= m <= 12 for m in attrs.season_months):
        raise InvalidRecord("season_months must be month numbers 1-12")
    extra = records.free_form(raw)
    if extra:
        normalised = _numbers_as_floats(extra)
        attrs = msgspec.structs.replace(attrs, extra=_SORTED.encode(normalised).decode())
    return attrs


def _numbers_as_floats(value: Any) -> Any:
    """``100`` and ``100.0`` are the same value (contract 1), in free-form attributes too."""
    if isinstance(value, bool):
        return value
    if isinstance(value, int):
        return float(value)
    if isinstance(value, dict):
        return {k: _numbers_as_floats(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_numbers_as_floats(v) for v in value]
    return value


_SORTED = msgspec.json.Encoder(order="sorted")


def _show(window: Window) -> str:
    return f"[{window.date_from.isoformat()}, {window.date_to.isoformat()}]"
