"""An endpoint's payload options in the configuration: ``Fields``, ``Csv``.

What they mean is told where they are used (``sources/mapping.py``,
``sources/csv_payload.py``); here they are read from the
file's tree and checked, each problem a ``ConfigError`` naming its key, and
written back in the file's shape for ``check-config``.
"""

from __future__ import annotations

from typing import Any

from catalog_refresher.config_tree import as_object, get, reject_unknown
from catalog_refresher.config_values import as_bool, as_text, json_kind
from catalog_refresher.domain.specs import SourceSpec
from catalog_refresher.errors import ConfigError
from catalog_refresher.settings import (
    CsvFormat,
    EndpointSettings,
    FieldRule,
)
from catalog_refresher.sources.mapping import check_rules

__all__ = ["csv_format", "describe_payload", "dotted_path", "field_rules"]


def dotted_path(value: Any, key: str) -> str:
    """A dotted path into a JSON page (``data.paginator.pageCount``) without empty steps."""
    path = as_text(value, key)
    if not all(path.split(".")):
        raise ConfigError(key, f"{path!r} has an empty segment")
    return path


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


def describe_payload(endpoint: EndpointSettings) -> dict[str, Any]:
    """``Fields`` and ``Csv`` of ``endpoint`` as they would be written in the file."""
    csv = endpoint.csv
    return {
        "Fields": {
            rule.field: rule.source
            if rule.remove_prefix is None
            else {"From": rule.source, "RemovePrefix": rule.remove_prefix}
            for rule in endpoint.fields
        }
        or None,
        "Csv": None
        if csv is None
        else {
            "Delimiter": csv.delimiter,
            "Encoding": csv.encoding,
            "DecimalComma": csv.decimal_comma,
            "HasHeader": csv.has_header,
            "Columns": list(csv.columns) or None,
        },
    }
