"""Hypothesis over the configuration loader: any JSON tree in, Settings or a ConfigError out.

The trees are built from the real section and key names (so that most values reach the
code that reads them) mixed with unknown names, misspelt case and values of every JSON
type. Whatever the tree, ``config.load`` returns ``Settings`` or raises ``ConfigError``
naming a key of the tree on one line; never another exception, never a traceback.
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from catalog_refresher.config import describe, load
from catalog_refresher.errors import ConfigError

DEFAULTS: dict[str, Any] = describe(load(None, environment=None, environ={}))
SOURCE_KEYS = [
    "ErpStock",
    "EshopStock",
    "SalesData",
    "PurchaseHistory",
    "ConsumedMaterials",
    "TransportData",
    "Attributes",
    "Lots",
    "StockTaking",
    "Suppliers",
]
ENDPOINT_KEYS = [
    "Type",
    "Url",
    "Path",
    "Headers",
    "Query",
    "Priority",
    "RecordsPath",
    "RequestTimeout",
    "Paging",
    "Fields",
    "Filter",
    "Csv",
    "Format",
    "Backup",
    "Method",
    "Body",
    "ErrorWhen",
    "ErrorMessagePath",
    "MaxRequestsPerSecond",
    "WindowParameters",
]
NESTED_KEYS = [
    "Kind",
    "PageSize",
    "SizeParameter",
    "OffsetParameter",
    "PageParameter",
    "TotalPath",
    "PageCountPath",
    "NextPath",
    "From",
    "Default",
    "RemovePrefix",
    "Equals",
    "NotIn",
    "Matches",
    "Delimiter",
    "Encoding",
    "DecimalComma",
    "Authorization",
    "In",
    "Before",
    "After",
]
GOOD_VALUES = [
    "http",
    "file",
    "demo",
    "sql",
    "http://127.0.0.1:9/x",
    "00:00:05",
    "1.00:00:00",
    "env:SOME_VARIABLE",
    "file:/nonexistent/secret",
    "offset",
    "page",
    "next",
    "link",
    "cursor",
    "data.items",
    "sqlite:///x.db",
    "postgresql://u@h/db",
    "json",
    "text",
    "Debug",
]

scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=False),  # JSON has no NaN; the loader gets what json5 can write
    st.text(max_size=30),
    st.sampled_from(GOOD_VALUES),
)
values = st.recursive(
    scalars,
    lambda inner: st.one_of(
        st.lists(inner, max_size=3),
        st.dictionaries(st.sampled_from(NESTED_KEYS) | st.text(max_size=8), inner, max_size=3),
    ),
    max_leaves=8,
)


def _names(names: list[str]) -> st.SearchStrategy[str]:
    """One of ``names`` as written or in another case (keys match case-insensitively), or
    an unknown name."""
    cased = [form for name in names for form in (name, name, name.lower(), name.upper())]
    return st.sampled_from(cased) | st.text(max_size=8)


endpoint = st.dictionaries(_names(ENDPOINT_KEYS), values, max_size=6)
sources = st.dictionaries(_names(SOURCE_KEYS), endpoint | values, max_size=3)


def _section(name: str) -> st.SearchStrategy[Any]:
    if name == "Sources":
        return sources
    return st.dictionaries(_names(list(DEFAULTS[name])), values, max_size=5) | values


SECTIONS = {name: _section(name) for name in DEFAULTS}
trees = st.dictionaries(_names(list(DEFAULTS)), st.one_of(*SECTIONS.values(), values), max_size=4)


def _load(tree: Any) -> None:
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "appsettings.json"
        path.write_text(json.dumps(tree))
        load(path, environment=None, environ={})


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(trees)
def test_any_tree_loads_or_is_refused_naming_a_key_of_it(tree: dict[str, Any]) -> None:
    """Generated trees of real and unknown keys with values of every type: the loader
    returns Settings or raises ConfigError on one line whose key is the file (for the file
    as a whole) or a path of keys starting at a section of the tree; never any other
    exception."""
    try:
        _load(tree)
    except ConfigError as exc:
        refused: ConfigError | None = exc
    else:
        refused = None
    if refused is None:
        return
    message = str(refused)
    assert "\n" not in message, message
    if refused.key.endswith("appsettings.json"):
        return  # the file as a whole: a key twice in one object, or not an object
    parts = [p for p in refused.key.split(":") if p]
    assert parts, message
    # The key starts with the section of the tree it is in.
    assert parts[0].casefold() in {str(k).casefold() for k in tree}, (message, tree)


@settings(max_examples=100, deadline=None)
@given(st.text(max_size=200) | st.binary(max_size=200).map(lambda b: b.decode("latin-1")))
def test_any_text_as_a_file_loads_or_is_refused_on_one_line(text: str) -> None:
    """Any text as the file (not JSON, cut short, comments, a bare value): Settings or a
    one-line ConfigError, never another exception."""
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "appsettings.json"
        path.write_text(text, encoding="utf-8", errors="surrogatepass")
        try:
            load(path, environment=None, environ={})
        except ConfigError as exc:
            message, key = str(exc), exc.key
        else:
            return
    assert key, message
    assert "\n" not in message, message


def test_a_key_with_a_newline_is_refused_on_one_line_with_the_newline_shown() -> None:
    """Found by the fuzzing above: an unknown key holding a newline was echoed raw, so the
    error (and the log line, and check-config's output) broke over two lines. It is one
    line now, the newline shown as ``\\n``, and the key kept as written for callers."""
    with pytest.raises(ConfigError) as refused:
        _load({"CatalogRepository": {"Retry\nAttempts": 3}})
    assert str(refused.value).startswith("CatalogRepository:Retry\\nAttempts: unknown option")
    assert "\n" not in str(refused.value)
    assert refused.value.key == "CatalogRepository:Retry\nAttempts"
