"""An endpoint's payload options in the configuration: ``Paging`` and ``Csv``.

What they mean is told where they are used (``sources/paging.py``,
``sources/csv_payload.py``); here they are read from the file's tree and checked,
each problem a ``ConfigError`` naming its key, so that a source that could never be
read is refused at start. ``describe.py`` writes them back in the file's shape.
``Fields`` and ``Filter`` have modules of their own (``fields.py``, ``filters.py``).
"""

from __future__ import annotations

from typing import Any

from catalog_refresher.config.paths import parse_path
from catalog_refresher.config.settings import (
    CsvFormat,
    JsonPath,
    PagingKind,
    PagingSettings,
)
from catalog_refresher.config.tree import as_object, get, reject_unknown
from catalog_refresher.config.values import as_bool, as_choice, as_int, as_text, json_kind
from catalog_refresher.domain.specs import SourceSpec
from catalog_refresher.errors import ConfigError

__all__ = [
    "PAGING_OPTIONS",
    "csv_format",
    "paging_settings",
]

_PAGING_COMMON = ("Kind", "PageSize", "SizeParameter", "MaxPages")
#: Per kind: the option naming the position parameter, the count path, then the rest.
PAGING_OPTIONS = {
    PagingKind.OFFSET: ("OffsetParameter", "TotalPath"),
    PagingKind.PAGE: ("PageParameter", "PageCountPath", "FirstPage"),
}
# Per kind: the default position and size parameters.
_PAGING_PARAMETERS = {PagingKind.OFFSET: ("offset", "limit"), PagingKind.PAGE: ("page", "pageSize")}


def _name(value: Any, key: str) -> str:
    """A query parameter or field name: text that is not blank."""
    name = as_text(value, key).strip()
    if not name:
        raise ConfigError(key, "must not be empty")
    return name


def paging_settings(
    value: Any, key: str, records_path: JsonPath | None, spec: SourceSpec
) -> PagingSettings:
    """``Paging``: the kind's own options only; PageSize required; count paths need an envelope."""
    tree = as_object(value, key)
    raw_kind = get(tree, "Kind")
    if raw_kind is None:
        raise ConfigError(f"{key}:Kind", "required: offset (start/limit) or page (page number)")
    kind = as_choice(raw_kind, f"{key}:Kind", PagingKind, PagingKind.OFFSET)
    own = PAGING_OPTIONS[kind]
    for lowered, (written, _) in tree.items():
        for other, keys in PAGING_OPTIONS.items():
            if other is not kind and lowered in {k.lower() for k in keys}:
                raise ConfigError(f"{key}:{written}", f"only for Kind {other}, not {kind}")
    reject_unknown(tree, key, (*_PAGING_COMMON, *own))
    size = get(tree, "PageSize")
    if size is None:
        raise ConfigError(f"{key}:PageSize", "required: how many records to ask for per page")
    position_option, count_option = own[:2]
    defaults = _PAGING_PARAMETERS[kind]
    position = get(tree, position_option)
    size_parameter = get(tree, "SizeParameter")
    values: dict[str, Any] = {
        "kind": kind,
        "page_size": as_int(size, f"{key}:PageSize", 1),
        "position_parameter": defaults[0]
        if position is None
        else _name(position, f"{key}:{position_option}"),
        "size_parameter": defaults[1]
        if size_parameter is None
        else _name(size_parameter, f"{key}:SizeParameter"),
    }
    if values["position_parameter"] == values["size_parameter"]:
        raise ConfigError(f"{key}:SizeParameter", f"must differ from {position_option}")
    if spec.is_history:
        for option, name in (
            (position_option, "position_parameter"),
            ("SizeParameter", "size_parameter"),
        ):
            if values[name] in {"date_from", "date_to"}:
                raise ConfigError(f"{key}:{option}", "date_from and date_to carry the window")
    if (count := get(tree, count_option)) is not None:
        values["count_path"] = parse_path(count, f"{key}:{count_option}")
        if records_path is None:
            problem = "needs RecordsPath: a page that is a bare array holds no count"
            raise ConfigError(f"{key}:{count_option}", problem)
    if (first := get(tree, "FirstPage")) is not None:
        values["first_page"] = as_int(first, f"{key}:FirstPage", 0)
    if (most := get(tree, "MaxPages")) is not None:
        values["max_pages"] = as_int(most, f"{key}:MaxPages", 1)
    return PagingSettings(**values)


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
