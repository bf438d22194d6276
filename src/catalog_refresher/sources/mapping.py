"""Records whose payload names their fields differently (a source's ``Fields``).

An endpoint's ``FieldRule``s say which payload field holds which record field
of contract section 4: ABRA Flexi sends ``product_code`` as ``cenik``, ``stock``
as ``stavMJ``. Fields without a rule keep their contract name.

Mapping runs where decoding runs (``sources/decoding.py``, in a worker
process) and inside msgspec, because a per-record dict rewrite in Python costs
several times what decoding a million records does. ``reader_for`` builds, once
per endpoint, a struct with the record type's fields and types under the
payload's names; msgspec decodes straight into it, skipping every field that is
not wanted (``cenik@ref``, ``cenik@showAs``...) in C. One C call then turns the
list into the record type (``msgspec.convert(from_attributes=True)``). Only a
field with a value conversion (``RemovePrefix``) is touched in Python, one
attribute per record. The cost is measured in ``bench/mapping_bench.py``.

A source without rules decodes its record type directly, as before: it pays
nothing. Numbers sent as strings (``"122.000"``), codes with stray white space
and dates with an offset suffix need no rule: validation accepts them anyway.
"""

from __future__ import annotations

import functools
import operator
from collections.abc import Iterable
from dataclasses import dataclass
from types import GenericAlias
from typing import Any

import msgspec

from catalog_refresher.config.settings import FieldRule
from catalog_refresher.domain import records

__all__ = ["RecordReader", "reader_for"]


@dataclass(frozen=True, slots=True, kw_only=True)
class _Conversion:
    """``RemovePrefix`` of one field: ``" code:A1 "`` -> ``"A1"``."""

    name: str
    """The record field: an attribute of the decoded struct, or a key of a raw dict."""
    prefix: str
    optional: bool
    """An empty value of an optional field (Flexi's ``""``: no relation) becomes null."""

    def apply(self, items: list[Any]) -> None:
        """Convert the field in place in every struct of ``items``."""
        # ``convert``, inlined into one tight loop per field rather than a call per
        # field per record: this runs a million times for a large snapshot.
        name, prefix, optional, cut = self.name, self.prefix, self.optional, len(self.prefix)
        get = operator.attrgetter(name)
        for item in items:
            value = get(item)
            if value is None:
                continue
            text = value.strip()
            if text.startswith(prefix):
                text = text[cut:].strip()
            if optional and not text:
                text = None
            if text is not value:
                setattr(item, name, text)

    def convert(self, value: str) -> str | None:
        """The converted ``value``."""
        text = value.strip()
        if text.startswith(self.prefix):
            text = text[len(self.prefix) :].strip()
        return None if self.optional and not text else text


@dataclass(frozen=True, slots=True, kw_only=True)
class RecordReader:
    """How one endpoint's records are decoded: into ``wire_type``, then ``finish``."""

    wire_type: Any
    """What each record of the payload is decoded into (a struct, or ``dict`` for attributes)."""
    mapped: bool
    """False when the payload uses the contract's names: ``finish`` is then never needed."""
    numeric_names: frozenset[str]
    """The payload's names of the numeric fields (where a CSV decimal comma may appear)."""
    record_type: Any = None
    renames: tuple[tuple[str, str], ...] = ()
    """(payload name, record field) for raw dicts (attributes, whose extra fields are kept)."""
    conversions: tuple[_Conversion, ...] = ()

    def finish(self, items: list[Any]) -> list[Any]:
        """Decoded items as the record type validation expects; only called when ``mapped``."""
        if self.renames:
            return [self._rename(raw) for raw in items]
        for conversion in self.conversions:
            conversion.apply(items)
        converted: list[Any] = msgspec.convert(
            items, GenericAlias(list, self.record_type), from_attributes=True
        )
        return converted

    def finish_one(self, item: Any) -> Any:
        """``finish`` for a single item (the path that looks for invalid records)."""
        return self.finish([item])[0]

    def _rename(self, raw: dict[str, Any]) -> dict[str, Any]:
        # Take every mapped value out first, so that rules may swap two names.
        moved = {field: raw.pop(name) for name, field in self.renames if name in raw}
        for conversion in self.conversions:
            value = moved.get(conversion.name)
            if isinstance(value, str):
                moved[conversion.name] = conversion.convert(value)
        raw.update(moved)
        return raw


@functools.lru_cache(maxsize=64)
def reader_for(record_type: type[records.Record], rules: tuple[FieldRule, ...]) -> RecordReader:
    """The reader for ``record_type`` under ``rules``; cached, so built once per endpoint.

    The rules are assumed checked (``config/payload.py``, at configuration time).
    """
    info = records.field_types(record_type)
    source_of = {rule.field: rule.source for rule in rules}
    numeric = frozenset(
        source_of.get(name, name)
        for name, type_info in info.items()
        if records.holds(type_info, msgspec.inspect.FloatType, msgspec.inspect.IntType)
    )
    if record_type is records.Attributes:
        # Attributes keep unknown fields, so they are decoded as dicts (see validation).
        return RecordReader(
            wire_type=dict[str, Any],
            mapped=bool(rules),
            numeric_names=numeric,
            renames=tuple((rule.source, rule.field) for rule in rules),
            conversions=_conversions(rules, info),
        )
    if not rules:
        return RecordReader(wire_type=record_type, mapped=False, numeric_names=numeric)
    fields: list[tuple[str, Any, Any]] = []
    for field in msgspec.structs.fields(record_type):
        if field.default_factory is not msgspec.NODEFAULT:
            default: Any = msgspec.field(default_factory=field.default_factory)
        else:
            default = field.default
        fields.append((field.name, field.type, default))
    wire_type = msgspec.defstruct(
        f"{record_type.__name__}AsSent",
        [(name, type_) if default is msgspec.NODEFAULT else (name, type_, default)
         for name, type_, default in fields],
        rename=source_of,
        kw_only=True,
        # Mutable, so that conversions write in place; never in a cycle, so no GC tracking.
        gc=False,
    )  # fmt: skip
    return RecordReader(
        wire_type=wire_type,
        mapped=True,
        numeric_names=numeric,
        record_type=record_type,
        conversions=_conversions(rules, info),
    )


def _conversions(
    rules: Iterable[FieldRule], info: dict[str, msgspec.inspect.Type]
) -> tuple[_Conversion, ...]:
    return tuple(
        _Conversion(
            name=rule.field,
            prefix=rule.remove_prefix,
            optional=rule.field not in info
            or records.holds(info[rule.field], msgspec.inspect.NoneType),
        )
        for rule in rules
        if rule.remove_prefix
    )
