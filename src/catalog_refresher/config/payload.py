"""An endpoint's ``Csv`` payload option in the configuration.

What it means is told where it is used (``sources/csv_payload.py``); here it is
read from the file's tree and checked, each problem a ``ConfigError`` naming its
key, so that a source that could never be read is refused at start.
``describe.py`` writes it back in the file's shape. ``Paging``, ``Fields`` and
``Filter`` have modules of their own (``paging.py``, ``fields.py``, ``filters.py``).
"""

from __future__ import annotations

from typing import Any

from catalog_refresher.config.settings import CsvFormat
from catalog_refresher.config.tree import as_object, get, reject_unknown
from catalog_refresher.config.values import as_bool, as_text, json_kind
from catalog_refresher.errors import ConfigError

__all__ = ["csv_format"]


def _name(value: Any, key: str) -> str:
    """A query parameter or field name: text that is not blank."""
    name = as_text(value, key).strip()
    if not name:
        raise ConfigError(key, "must not be empty")
    return name


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
