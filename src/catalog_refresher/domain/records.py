"""The ten record types of the source payloads (contract section 4).

Structs are frozen so that ``hash(record)`` fingerprints a whole row in C; that
is what makes change detection over a million rows cheap (see ``refresh/diff.py``).
Numbers are ``float`` so that ``100`` and ``100.0`` are the same value. Dates
arrive as text and are parsed by ``domain/rules.py``, because real systems
send forms (``2017-05-26+02:00``) that a strict date type refuses.
"""

from __future__ import annotations

from typing import Annotated, Any

import msgspec

#: A quantity or price: finite, and within a range no catalog reaches. The bound
#: is checked in C while decoding, which also refuses NaN and infinity.
Number = Annotated[float, msgspec.Meta(ge=-1e15, le=1e15)]


class Record(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True):
    """Base of every record type; each has a ``product_code``."""

    product_code: str


class ErpStock(Record, frozen=True, kw_only=True, omit_defaults=True):
    stock: Number
    product_name: str | None = None
    location: str | None = None


class EshopStock(Record, frozen=True, kw_only=True, omit_defaults=True):
    stock: Number


class Sale(Record, frozen=True, kw_only=True, omit_defaults=True):
    period: str | None = None
    date: str | None = None
    b2b_sold: Number = 0.0
    b2c_sold: Number = 0.0


class Purchase(Record, frozen=True, kw_only=True, omit_defaults=True):
    date: str
    quantity: Number
    purchase_price: Number | None = None
    currency: str | None = None
    supplier_code: str | None = None
    supplier_name: str | None = None
    document_number: str | None = None


class Consumption(Record, frozen=True, kw_only=True, omit_defaults=True):
    date: str
    quantity: Number


class TransportBox(Record, frozen=True, kw_only=True, omit_defaults=True):
    box_code: str
    quantity: Number
    state: str | None = None


class Attributes(Record, frozen=True, kw_only=True, omit_defaults=True):
    """Known attributes typed; anything else the source sends is kept in ``extra``."""

    optimal_stock_days: Number | None = None
    stock_min: Number | None = None
    batch_size: Number | None = None
    season_months: tuple[int, ...] | None = None
    # A JSON-encoded object of the free-form attributes, so the struct stays hashable.
    extra: str | None = None


class Lot(Record, frozen=True, kw_only=True, omit_defaults=True):
    lot: str
    amount: Number
    expiration: str | None = None


class StockTaking(Record, frozen=True, kw_only=True, omit_defaults=True):
    date: str
    amount_old: Number | None = None
    amount_new: Number | None = None
    user: str | None = None


class Supplier(Record, frozen=True, kw_only=True, omit_defaults=True):
    supplier_code: str
    name: str
    is_primary: bool = False


def attribute_fields() -> frozenset[str]:
    """The fields of ``Attributes`` that are typed (everything else is free-form)."""
    return frozenset(Attributes.__struct_fields__) - {"extra"}


def free_form(raw: dict[str, Any]) -> dict[str, Any]:
    """The free-form part of a raw attributes object."""
    known = attribute_fields()
    return {k: v for k, v in raw.items() if k not in known}


def field_types(record_type: type[Record]) -> dict[str, msgspec.inspect.Type]:
    """Each field of ``record_type`` and its type, as msgspec describes it."""
    struct = msgspec.inspect.type_info(record_type)
    assert isinstance(struct, msgspec.inspect.StructType)
    return {field.name: field.type for field in struct.fields}


def holds(type_info: msgspec.inspect.Type, *kinds: type[msgspec.inspect.Type]) -> bool:
    """Whether a field of this type may hold a value of one of ``kinds`` (``str | None``...)."""
    if isinstance(type_info, msgspec.inspect.UnionType):
        return any(isinstance(member, kinds) for member in type_info.types)
    return isinstance(type_info, kinds)
