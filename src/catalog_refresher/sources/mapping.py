"""Records whose payload is shaped differently (a source's ``Fields`` and ``Filter``).

An endpoint's ``FieldRule``s say where the payload has each record field of
contract section 4, and what to do to its value: ABRA Flexi sends
``product_code`` in ``cenik[0].kod``, ``stock`` as ``stavMJ``, the product name
behind the code in ``cenik@showAs``. Fields without a rule keep their contract
name. Its ``FilterCondition``s say which records are this source's at all.

Mapping runs where decoding runs (``sources/decoding.py``, in a worker process)
and as much as it can inside msgspec, because a per-record dict rewrite in Python
costs several times what decoding a million records does. ``reader_for`` builds,
once per endpoint, a wire struct (``sources/wire.py``) holding exactly what the
rules and filters read, under the payload's names; msgspec decodes straight into
it, skipping every other field in C. Then, per page:

1. the filters drop the records that are not this source's (``sources/filters.py``);
2. a field read at a deeper path, or from a key another field reads too, is
   *computed*: one loop per field, written out for its path and value rules
   (``sources/codegen.py``, ``sources/values.py``), sets it under its own name;
3. a field read whole from a key of its own is *direct*: it sits under its own name
   already, and only a field with value rules is touched, in place;
4. one C call turns the list into the record type (``msgspec.convert`` with
   ``from_attributes``, ``strict=False``: ``"122.000"`` and ``"true"`` are taken).

If that call refuses a record, the page is read again one record at a time, and
each refusal is told under the payload's names (``finish_one``). The cost is
measured in ``bench/mapping_bench.py``. A source without rules or filters decodes
its record type directly, as before: it pays nothing.

Attributes keep their unknown fields, so they are decoded as dicts and mapped per
record in Python; a mapped field's top-level key is taken out of the free-form rest.
"""

from __future__ import annotations

import collections
import functools
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from types import GenericAlias
from typing import Any

import msgspec

from catalog_refresher.config.settings import FieldRule, FilterCondition, JsonPath
from catalog_refresher.domain import records
from catalog_refresher.domain.rules import trimmed_fields
from catalog_refresher.sources.codegen import compile_function, indent
from catalog_refresher.sources.filters import Condition, condition, keep
from catalog_refresher.sources.values import MISSING, FieldValue, compile_value
from catalog_refresher.sources.wire import ReadPath, walk, wire_struct

__all__ = ["RecordReader", "reader_for"]


@dataclass(frozen=True, slots=True, kw_only=True)
class _Field:
    """One record field the reader sets: where it is read, its rules, and the loop doing both."""

    value: FieldValue
    read: ReadPath | None
    """Where a computed field is read from; ``None`` for a direct one (its own attribute)."""
    fill: Callable[[list[Any]], None]
    """Set the field in every item of a list: one loop, the path and rules written out."""


def _field(value: FieldValue, read: ReadPath | None) -> _Field:
    """``value``'s rules on the value at ``read`` (or in place), as one loop over the items."""
    name = value.name
    assert name.isidentifier()
    body = read.lines() if read is not None else [f"v = item.{name}"]
    body += value.lines
    if value.missing is not MISSING:
        body += ["if v is MISSING:", "    v = FALLBACK"]  # absent: the record's default
    body.append(f"item.{name} = v")
    namespace = {**value.constants, "MISSING": MISSING, "FALLBACK": value.missing}
    fill = compile_function(
        f"fill_{name}", "items", ["for item in items:", *indent(body)], namespace
    )
    return _Field(value=value, read=read, fill=fill)


@dataclass(frozen=True, slots=True, kw_only=True)
class RecordReader:
    """How one endpoint's records are decoded: into ``wire_type``, then ``finish``."""

    wire_type: Any
    """What each record of the payload is decoded into (a struct, or ``dict`` for attributes)."""
    mapped: bool
    """False when the payload is the record type as it is: ``finish`` is then never needed."""
    numeric_names: frozenset[str]
    """The payload's names of the numeric fields (where a CSV decimal comma may appear)."""
    record_type: Any = None
    filters: tuple[Condition, ...] = ()
    fields: tuple[_Field, ...] = ()
    """Computed fields first, then direct ones with rules (which overwrite what they read)."""
    paths: dict[str, JsonPath] = field(default_factory=dict)
    """Where each record field is read, for messages."""
    read: dict[str, ReadPath] = field(default_factory=dict)
    """How each computed field is read, for messages."""
    attribute_rules: tuple[tuple[str, Callable[[Any], Any] | None, JsonPath], ...] = ()
    """For attributes (raw dicts): every mapped field, its rules and its path."""

    def keep(self, items: list[Any]) -> tuple[list[Any], list[int] | None]:
        """The items the filters keep, and their positions in the page (``None``: all)."""
        if not self.filters:
            return items, None
        return keep(items, self.filters)

    def keeps(self, item: Any) -> bool:
        """Whether the filters keep one item (the one-by-one path)."""
        return all(each.keeps(item) for each in self.filters)

    def finish(self, items: list[Any]) -> list[Any]:
        """Kept items as the record type validation expects; only called when ``mapped``."""
        if self.record_type is records.Attributes:
            return [self._attributes(raw) for raw in items]
        for field_ in self.fields:
            field_.fill(items)
        converted: list[Any] = msgspec.convert(
            items, GenericAlias(list, self.record_type), from_attributes=True, strict=False
        )
        return converted

    def finish_one(self, item: Any) -> Any:
        """``finish`` for a single item; a refusal names the payload's path of the field."""
        if self.record_type is records.Attributes:
            return self._attributes(item)
        found = {field_.value.name: getattr(item, field_.value.name) for field_ in self.fields}
        for field_ in self.fields:
            field_.fill([item])
        try:
            return msgspec.convert(item, self.record_type, from_attributes=True, strict=False)
        except msgspec.ValidationError as exc:
            raise msgspec.ValidationError(self._reason(str(exc), item, found)) from None

    def _reason(self, message: str, item: Any, found: dict[str, Any]) -> str:
        """msgspec's ``message`` about a record field, told at the payload's path."""
        match = _AT_FIELD.match(message)
        if match is None or match["field"] not in self.paths:
            return message
        name = match["field"]
        path = self.paths[name]
        if "got `msgspec.UnsetType`" in match["what"]:
            reason = f"Object missing required field `{path}`"
            if name in self.read and not path.is_flat:
                reason += f" ({self.read[name].why_missing(item)})"
            return reason
        shown = f"{match['what']} - at `$.{path}{match['rest']}`"
        rule = next((each for each in self.fields if each.value.name == name), None)
        if "got `null`" not in match["what"] or rule is None or not rule.value.changes:
            return shown
        raw = rule.read.read(item) if rule.read is not None else found[name]
        return shown if raw is None else f"{shown} ({rule.value.why_null(raw)})"

    def _attributes(self, raw: dict[str, Any]) -> dict[str, Any]:
        # Take every mapped value out first, so that rules may swap two names.
        moved: dict[str, Any] = {}
        for name, convert, path in self.attribute_rules:
            found = walk(raw.get(str(path.steps[0]), MISSING), path.steps[1:])
            moved[name] = found if convert is None else convert(found)
        for _, _, path in self.attribute_rules:
            raw.pop(str(path.steps[0]), None)
        raw.update((name, found) for name, found in moved.items() if found is not MISSING)
        return raw


#: msgspec's message about a field of the record: what is wrong, at ``$.field...``.
_AT_FIELD = re.compile(r"^(?P<what>.*) - at `\$\.(?P<field>\w+)(?P<rest>[^`]*)`$")


@functools.lru_cache(maxsize=64)
def reader_for(
    record_type: type[records.Record],
    rules: tuple[FieldRule, ...],
    filters: tuple[FilterCondition, ...] = (),
) -> RecordReader:
    """The reader for ``record_type`` under ``rules`` and ``filters``; cached, so built
    once per endpoint. Both are assumed checked (``config/fields.py``, ``config/filters.py``).
    """
    info = records.field_types(record_type)
    source_of = {rule.field: rule.source for rule in rules}
    numeric = frozenset(
        source_of.get(name, name)
        for name, type_info in info.items()
        if records.holds(type_info, msgspec.inspect.FloatType, msgspec.inspect.IntType)
    )
    defaults = {
        f.name: MISSING if f.default is msgspec.NODEFAULT else f.default
        for f in msgspec.structs.fields(record_type)
    }
    if record_type is records.Attributes:
        # Attributes keep unknown fields, so they are decoded as dicts (see validation).
        return RecordReader(
            wire_type=dict[str, Any],
            mapped=bool(rules or filters),
            numeric_names=numeric,
            record_type=record_type,
            filters=tuple(
                condition(
                    f,
                    ["v = walk(item.get(KEY, MISSING), STEPS)"],
                    {"walk": walk, "KEY": f.path.steps[0], "STEPS": f.path.steps[1:]},
                )
                for f in filters
            ),
            attribute_rules=tuple(
                (rule.field, value.convert() if value.changes else None, rule.path)
                for rule in rules
                for value in [_value(rule, info, defaults, frozenset())]
            ),
        )
    if not rules and not filters:
        return RecordReader(wire_type=record_type, mapped=False, numeric_names=numeric)
    return _mapped_reader(record_type, rules, filters, info, defaults, numeric)


def _mapped_reader(
    record_type: type[records.Record],
    rules: tuple[FieldRule, ...],
    filters: tuple[FilterCondition, ...],
    info: dict[str, msgspec.inspect.Type],
    defaults: dict[str, Any],
    numeric: frozenset[str],
) -> RecordReader:
    rule_of = {rule.field: rule for rule in rules}
    validated = trimmed_fields(record_type)
    values = {
        # Unmapped fields keep their contract names and never get the rules' defaults.
        name: _value(rule_of[name], info, defaults, validated)
        if name in rule_of
        else FieldValue(name=name, missing=defaults[name])
        for name in info
    }
    paths = {name: (rule_of[name].path if name in rule_of else _flat(name)) for name in info}
    # A key is a field's own when that field alone reads it, and reads it whole.
    fields_at = collections.Counter(str(path.steps[0]) for path in paths.values())
    deep = {
        str(path.steps[0])
        for path in (*paths.values(), *(f.path for f in filters))
        if not path.is_flat
    }
    direct: dict[str, tuple[str, Any]] = {}
    computed: list[str] = []
    for name, path in paths.items():
        key = str(path.steps[0])
        if path.is_flat and fields_at[key] == 1 and key not in deep:
            # Absent, the field takes its record default, unless its Default wants to know
            # that it was absent.
            wants = name in rule_of and rule_of[name].default is not None
            direct[key] = (name, MISSING if wants else values[name].missing)
        else:
            computed.append(name)
    wire, read = wire_struct(
        record_type.__name__,
        direct=direct,
        computed=computed,
        paths=[paths[name] for name in computed] + [f.path for f in filters],
    )
    fields = [_field(values[name], read[paths[name]]) for name in computed]
    fields += [_field(values[name], None) for name, _ in direct.values() if values[name].changes]
    return RecordReader(
        wire_type=wire,
        mapped=True,
        numeric_names=numeric,
        record_type=record_type,
        filters=tuple(condition(f, read[f.path].lines()) for f in filters),
        fields=tuple(fields),
        paths=paths,
        read={name: read[paths[name]] for name in computed},
    )


def _value(
    rule: FieldRule,
    info: dict[str, msgspec.inspect.Type],
    defaults: dict[str, Any],
    validated: frozenset[str],
) -> FieldValue:
    """The compiled rules of one field; a free-form attribute is optional text."""
    type_info = info.get(rule.field)
    return compile_value(
        rule,
        text=type_info is None or records.holds(type_info, msgspec.inspect.StrType),
        optional=type_info is None or records.holds(type_info, msgspec.inspect.NoneType),
        validated=rule.field in validated,
        missing=defaults.get(rule.field, MISSING),
    )


def _flat(name: str) -> JsonPath:
    return JsonPath(text=name, steps=(name,))
