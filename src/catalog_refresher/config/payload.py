"""An endpoint's payload options in the configuration: ``Fields``, ``Csv``
(``Paging`` is ``paging.py``'s).

What they mean is told where they are used (``sources/mapping.py``,
``sources/csv_payload.py``); here they are read from the file's tree and
checked, each problem a ``ConfigError`` naming its key, so that a source that
could never be read is refused at start. ``describe.py`` writes them
back in the file's shape.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import msgspec

from catalog_refresher.config.settings import CsvFormat, FieldRule
from catalog_refresher.config.tree import as_object, get, reject_unknown
from catalog_refresher.config.values import as_bool, as_text, json_kind
from catalog_refresher.domain import records
from catalog_refresher.domain.specs import SourceSpec
from catalog_refresher.errors import ConfigError

__all__ = [
    "check_rules",
    "csv_format",
    "field_rules",
]


def _name(value: Any, key: str) -> str:
    """A query parameter or field name: text that is not blank."""
    name = as_text(value, key).strip()
    if not name:
        raise ConfigError(key, "must not be empty")
    return name


def field_rules(value: Any, key: str, spec: SourceSpec) -> tuple[FieldRule, ...]:
    """``{"product_code": "cenik", "location": {"From": "regal", "RemovePrefix": "code:"}}``."""
    typed = set(spec.record_type.__struct_fields__)
    rules = []
    for lowered, (written, rule) in as_object(value, key).items():
        # Record fields match case-insensitively like every key; a free-form attribute
        # (a name the record type does not have) keeps its spelling.
        field = lowered if lowered in typed else written
        rule_key = f"{key}:{field}"
        if isinstance(rule, dict):
            reject_unknown(rule, rule_key, ("From", "RemovePrefix"))
            source = get(rule, "From")
            if source is None:
                raise ConfigError(f"{rule_key}:From", "required: the payload's name of the field")
            prefix = get(rule, "RemovePrefix")
            rules.append(
                FieldRule(
                    field=field,
                    source=as_text(source, f"{rule_key}:From"),
                    remove_prefix=None
                    if prefix is None
                    else as_text(prefix, f"{rule_key}:RemovePrefix"),
                )
            )
        else:
            rules.append(FieldRule(field=field, source=as_text(rule, rule_key)))
    check_rules(spec.record_type, rules, key)
    return tuple(rules)


def check_rules(record_type: type[records.Record], rules: Iterable[FieldRule], key: str) -> None:
    """Refuse rules that cannot work; ``key`` is the ``Fields`` object's configuration key."""
    rules = tuple(rules)
    allowed = _mappable_fields(record_type)
    info = records.field_types(record_type)
    mapped = {rule.field for rule in rules}
    readers: dict[str, str] = {}
    for rule in rules:
        rule_key = f"{key}:{rule.field}"
        if allowed is not None and rule.field not in allowed:
            known = ", ".join(sorted(allowed))
            raise ConfigError(rule_key, f"not a field of this source; its fields: {known}")
        if rule.field == "extra":
            raise ConfigError(rule_key, "reserved for the free-form attributes")
        if not rule.source:
            raise ConfigError(rule_key, "the payload's field name must not be empty")
        if rule.source in readers:
            problem = f"{readers[rule.source]} is read from {rule.source!r} already"
            raise ConfigError(rule_key, problem)
        readers[rule.source] = rule.field
        # An unmapped field keeps its own name, so no other field may be read from it.
        if allowed is not None and rule.source in allowed and rule.source not in mapped:
            problem = f"{rule.source!r} is where {rule.source} is read from; map it too"
            raise ConfigError(rule_key, problem)
        if rule.remove_prefix is not None:
            if not rule.remove_prefix:
                raise ConfigError(f"{rule_key}:RemovePrefix", "must not be empty")
            if rule.field in info and not records.holds(info[rule.field], msgspec.inspect.StrType):
                raise ConfigError(f"{rule_key}:RemovePrefix", "only for text fields")


def _mappable_fields(record_type: type[records.Record]) -> frozenset[str] | None:
    """The fields a rule may target; ``None`` when any name is allowed (free-form attributes)."""
    if record_type is records.Attributes:
        return None
    return frozenset(record_type.__struct_fields__)


def csv_format(value: Any, key: str) -> CsvFormat:
    """``Csv``: delimiter, a text encoding Python knows, header or Columns."""
    tree = as_object(value, key)
    reject_unknown(tree, key, ("Delimiter", "Encoding", "DecimalComma", "HasHeader", "Columns"))
    values: dict[str, Any] = {}
    if (delimiter := get(tree, "Delimiter")) is not None:
        delimiter = as_text(delimiter, f"{key}:Delimiter")
        if len(delimiter) != 1 or delimiter in '"\r\n':
            raise ConfigError(
                f"{key}:Delimiter", "must be one character, not a quote or line break"
            )
        values["delimiter"] = delimiter
    if (encoding := get(tree, "Encoding")) is not None:
        encoding = as_text(encoding, f"{key}:Encoding").strip()
        try:
            # Decoding a byte also refuses codecs that are not text encodings (hex, zlib).
            b"x".decode(encoding, "ignore")
        except LookupError:
            raise ConfigError(f"{key}:Encoding", f"unknown text encoding {encoding!r}") from None
        values["encoding"] = encoding
    if (decimal_comma := get(tree, "DecimalComma")) is not None:
        values["decimal_comma"] = as_bool(decimal_comma, f"{key}:DecimalComma")
    if (has_header := get(tree, "HasHeader")) is not None:
        values["has_header"] = as_bool(has_header, f"{key}:HasHeader")
    if (columns := get(tree, "Columns")) is not None:
        if not isinstance(columns, list) or not columns:
            raise ConfigError(
                f"{key}:Columns", f"expected an array of names, got {json_kind(columns)}"
            )
        values["columns"] = tuple(
            _name(column, f"{key}:Columns:{index}") for index, column in enumerate(columns)
        )
    if not values.get("has_header", True) and "columns" not in values:
        raise ConfigError(f"{key}:Columns", "required when HasHeader is false")
    return CsvFormat(**values)
