"""From raw JSON pages to valid, normalised records (contract sections 1 and 4).

A payload that is not JSON, or not an array where one is expected, fails the
whole run (``InvalidPayloadError``). Inside a good payload, each record stands
alone: an invalid one is counted with its reason and left out.

The common case, a payload with no invalid record, is decoded in one msgspec
call straight into frozen structs; only when that call meets a bad record does
validation fall back to decoding record by record to find and count them.

Pages may also be CSV (``sources/csv_payload.py`` turns them into raw records
first), and a payload may name its fields differently (``sources/mapping.py``:
decoded under the payload's names, then turned into the record type); both are
told by the payload itself, so a backup endpoint may differ from its primary.
"""

from __future__ import annotations

import calendar
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from types import GenericAlias
from typing import Any

import msgspec

from catalog_refresher.domain import records
from catalog_refresher.domain.specs import SourceSpec
from catalog_refresher.domain.window import Window
from catalog_refresher.errors import InvalidPayloadError
from catalog_refresher.sources.base import Payload
from catalog_refresher.sources.csv_payload import read_rows
from catalog_refresher.sources.mapping import RecordReader, reader_for

#: How many invalid-record reasons a run keeps for its audit entry.
MAX_REASONS = 10

#: Separates the parts of a composite row key; cannot occur in a stripped code.
KEY_SEPARATOR = "\x1f"

# ISO date, optionally followed by the offset older ERP versions append.
_DATE = re.compile(r"^([0-9]{4}-[0-9]{2}-[0-9]{2})(?:[+-][0-9]{2}:?[0-9]{2}|Z)?$")
_PERIOD = re.compile(r"^([0-9]{4})-([0-9]{2})$")
# Control characters (the key separator among them) never belong in a code.
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


class InvalidRecord(ValueError):
    """One record broke a rule; the message says which."""


@dataclass(slots=True, kw_only=True)
class Batch:
    """The valid records of one fetch, by row key, and what was refused."""

    rows: dict[str, records.Record] = field(default_factory=dict)
    fetched: int = 0
    invalid: int = 0
    reasons: list[str] = field(default_factory=list)

    def refuse(self, where: str, reason: str) -> None:
        self.invalid += 1
        if len(self.reasons) < MAX_REASONS:
            self.reasons.append(f"{where}: {reason}")


def validate(spec: SourceSpec, payload: Payload, window: Window | None) -> Batch:
    """Decode and validate every page of ``payload`` for ``spec``'s source."""
    batch = Batch()
    normalise = _history_normaliser(spec, window) if spec.is_history else _snapshot_normaliser(spec)
    reader = reader_for(spec.record_type, payload.fields)
    rows = batch.rows
    # This loop runs once per record (a million for a large snapshot): it is kept
    # to one dict store and one call on the common path.
    for page_number, page in enumerate(payload.pages, start=1):
        items: bytes | list[dict[str, str]]
        if payload.csv is not None:
            items = read_rows(page, payload.csv, reader.numeric_names, page_number)
        else:
            body = page.read_bytes() if isinstance(page, Path) else page
            items = _records_array(body, payload.records_path, page_number)
        where = f"page {page_number} record" if len(payload.pages) > 1 else "record"
        decoded, may_hold_errors = _decode_records(reader, items, batch)
        for index, record in decoded:
            if may_hold_errors and isinstance(record, msgspec.ValidationError):
                batch.refuse(f"{where} {index}", str(record))
                continue
            try:
                key, clean = normalise(record)
            except InvalidRecord as exc:
                batch.refuse(f"{where} {index}", str(exc))
                continue
            size = len(rows)
            rows[key] = clean
            if len(rows) == size:
                # Contract: the last occurrence wins, the earlier one counts as invalid.
                batch.refuse(
                    f"{where} {index}", f"duplicate key {_show_key(key)}, replaces earlier"
                )
    return batch


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


def _show_key(key: str) -> str:
    return "/".join(split_key(key))


# --- decoding ---------------------------------------------------------------


def _records_array(page: bytes, records_path: str | None, page_number: int) -> bytes:
    """The bytes of the records array inside one page."""
    node: bytes | msgspec.Raw = page
    try:
        for step in records_path.split(".") if records_path else ():
            obj = msgspec.json.decode(node, type=dict[str, msgspec.Raw])
            if step not in obj:
                raise InvalidPayloadError(
                    f"page {page_number}: no {step!r} in the object at RecordsPath {records_path!r}"
                )
            node = obj[step]
    except msgspec.DecodeError as exc:
        raise InvalidPayloadError(f"page {page_number}: not the expected JSON: {exc}") from exc
    return bytes(node)


def _decode_records(
    reader: RecordReader, items: bytes | list[dict[str, str]], batch: Batch
) -> tuple[Iterable[tuple[int, Any]], bool]:
    """Decode the records (a JSON array, or CSV rows); one that does not fit comes as its error.

    The flag says whether any error may be among them (only on the slow path).
    """
    many = GenericAlias(list, reader.wire_type)
    try:
        if isinstance(items, bytes):
            decoded = msgspec.json.decode(items, type=many, strict=False)
        else:
            decoded = msgspec.convert(items, many, strict=False)
        if reader.mapped:
            decoded = reader.finish(decoded)
        batch.fetched += len(decoded)
        return enumerate(decoded), False
    except msgspec.ValidationError:
        pass  # at least one record does not fit: find which, one by one
    except msgspec.DecodeError as exc:
        raise InvalidPayloadError(f"the payload is not valid JSON: {exc}") from exc
    one: Any = reader.wire_type
    raws: list[Any]
    if isinstance(items, bytes):
        try:
            raws = msgspec.json.decode(items, type=list[msgspec.Raw])
        except msgspec.ValidationError as exc:
            raise InvalidPayloadError("expected a JSON array of records") from exc
        except msgspec.DecodeError as exc:
            raise InvalidPayloadError(f"the payload is not valid JSON: {exc}") from exc
    else:
        raws = items
    batch.fetched += len(raws)
    decoded_or_errors: list[tuple[int, Any]] = []
    for index, raw in enumerate(raws):
        try:
            if isinstance(raw, msgspec.Raw):
                record = msgspec.json.decode(raw, type=one, strict=False)
            else:
                record = msgspec.convert(raw, one, strict=False)
            if reader.mapped:
                record = reader.finish_one(record)
            decoded_or_errors.append((index, record))
        except msgspec.ValidationError as exc:
            decoded_or_errors.append((index, exc))
    return decoded_or_errors, True


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


def _snapshot_normaliser(spec: SourceSpec) -> Any:
    key_fields = spec.key_fields
    code_fields = tuple(f for f in key_fields if f != "date")
    is_attributes = spec.record_type is records.Attributes
    has_date = "date" in spec.record_type.__struct_fields__

    def normalise(record: Any) -> tuple[str, records.Record]:
        if is_attributes:
            record = _attributes(record)
        changes: dict[str, str] = {}
        for name in code_fields:
            value = getattr(record, name)
            clean = _code(value, name)
            if clean is not value:
                changes[name] = clean
        if has_date:
            changes["date"] = _day(record.date, "date")
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


def _history_normaliser(spec: SourceSpec, window: Window | None) -> Any:
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
    if record.date is None:
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
