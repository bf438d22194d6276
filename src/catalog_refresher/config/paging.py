"""An endpoint's ``Paging`` in the configuration: five kinds, each with its own options.

What the kinds do is ``sources/paging.py``'s to tell; here each is read from the
file's tree and checked, so that a source that could never be paged is refused at
start with its key named: an option of another kind, a missing ``PageSize`` or
path, a path into a page that is a bare array, paging parameters in the body of a
request that has none.
"""

from __future__ import annotations

import json
from typing import Any

from catalog_refresher.config.paths import parse_path
from catalog_refresher.config.settings import (
    HttpMethod,
    JsonPath,
    PagingKind,
    PagingSettings,
    ParametersIn,
    RequestSettings,
)
from catalog_refresher.config.tree import as_object, get, reject_unknown
from catalog_refresher.config.values import as_choice, as_int, as_text
from catalog_refresher.errors import ConfigError

__all__ = ["COUNT_OPTIONS", "POSITION_OPTIONS", "paging_settings"]

_COMMON = ("Kind", "MaxPages")
#: Each kind's own options.
_OPTIONS = {
    PagingKind.OFFSET: ("PageSize", "OffsetParameter", "SizeParameter", "TotalPath", "In"),
    PagingKind.PAGE: (
        "PageSize",
        "PageParameter",
        "SizeParameter",
        "PageCountPath",
        "FirstPage",
        "In",
    ),
    PagingKind.NEXT: ("NextPath",),
    PagingKind.LINK: (),
    PagingKind.CURSOR: ("CursorPath", "CursorParameter", "PageSize", "SizeParameter", "In"),
}
#: The option naming the parameter that says which page, and its default.
POSITION_OPTIONS = {
    PagingKind.OFFSET: ("OffsetParameter", "offset"),
    PagingKind.PAGE: ("PageParameter", "page"),
    PagingKind.CURSOR: ("CursorParameter", "cursor"),
}
_SIZE_DEFAULTS = {
    PagingKind.OFFSET: "limit",
    PagingKind.PAGE: "pageSize",
    PagingKind.CURSOR: "limit",
}
#: The option naming the path to a count, per kind that has one.
COUNT_OPTIONS = {PagingKind.OFFSET: "TotalPath", PagingKind.PAGE: "PageCountPath"}
_KINDS = "offset, page, next, link or cursor"


def paging_settings(
    value: Any,
    key: str,
    records_path: JsonPath | None,
    request: RequestSettings,
    *,
    has_window: bool,
) -> PagingSettings:
    """``Paging`` of an endpoint whose request options are ``request``."""
    tree = as_object(value, key)
    raw_kind = get(tree, "Kind")
    if raw_kind is None:
        raise ConfigError(f"{key}:Kind", f"required: {_KINDS}")
    kind = as_choice(raw_kind, f"{key}:Kind", PagingKind, PagingKind.OFFSET)
    own = {option.lower() for option in _OPTIONS[kind]}
    for lowered, (written, _) in tree.items():
        others = [str(k) for k, keys in _OPTIONS.items() if lowered in {o.lower() for o in keys}]
        if others and lowered not in own:
            problem = f"only for Kind {' or '.join(others)}, not {kind}"
            raise ConfigError(f"{key}:{written}", problem)
    reject_unknown(tree, key, (*_COMMON, *_OPTIONS[kind]))
    values: dict[str, Any] = {"kind": kind}
    if (most := get(tree, "MaxPages")) is not None:
        values["max_pages"] = as_int(most, f"{key}:MaxPages", 1)
    if kind in (PagingKind.NEXT, PagingKind.CURSOR):
        option = "NextPath" if kind is PagingKind.NEXT else "CursorPath"
        values["next_path" if kind is PagingKind.NEXT else "cursor_path"] = _path_in_page(
            tree, key, option, records_path, required=True
        )
    if kind in (PagingKind.NEXT, PagingKind.LINK):
        return PagingSettings(**values)  # the links say everything else
    if (where := get(tree, "In")) is not None:
        values["parameters_in"] = as_choice(where, f"{key}:In", ParametersIn, ParametersIn.QUERY)
    size = get(tree, "PageSize")
    if size is None and kind is not PagingKind.CURSOR:
        raise ConfigError(f"{key}:PageSize", "required: how many records to ask for per page")
    position_option, position_default = POSITION_OPTIONS[kind]
    position = get(tree, position_option)
    values["position_parameter"] = (
        position_default if position is None else _name(position, f"{key}:{position_option}")
    )
    size_parameter = get(tree, "SizeParameter")
    if size is not None:
        values["page_size"] = as_int(size, f"{key}:PageSize", 1)
        values["size_parameter"] = (
            _SIZE_DEFAULTS[kind]
            if size_parameter is None
            else _name(size_parameter, f"{key}:SizeParameter")
        )
        if values["position_parameter"] == values["size_parameter"]:
            raise ConfigError(f"{key}:SizeParameter", f"must differ from {position_option}")
    elif size_parameter is not None:
        raise ConfigError(f"{key}:SizeParameter", "needs PageSize: the size it would carry")
    if kind in COUNT_OPTIONS:
        count_option = COUNT_OPTIONS[kind]
        values["count_path"] = _path_in_page(tree, key, count_option, records_path, required=False)
    if (first := get(tree, "FirstPage")) is not None:
        values["first_page"] = as_int(first, f"{key}:FirstPage", 0)
    paging = PagingSettings(**values)
    _check_parameters(paging, key, position_option, request, has_window)
    return paging


def _name(value: Any, key: str) -> str:
    """A parameter name: text that is not blank."""
    name = as_text(value, key).strip()
    if not name:
        raise ConfigError(key, "must not be empty")
    return name


def _path_in_page(
    tree: Any, key: str, option: str, records_path: JsonPath | None, *, required: bool
) -> JsonPath | None:
    raw = get(tree, option)
    if raw is None:
        if required:
            raise ConfigError(f"{key}:{option}", "required: where each page holds it")
        return None
    if records_path is None:
        problem = "needs RecordsPath: a page that is a bare array holds nothing else"
        raise ConfigError(f"{key}:{option}", problem)
    return parse_path(raw, f"{key}:{option}")


def _check_parameters(
    paging: PagingSettings,
    key: str,
    position_option: str,
    request: RequestSettings,
    has_window: bool,
) -> None:
    """The position and size parameters fit where they go: the query, or the body."""
    named = [(position_option, paging.position_parameter)]
    if paging.size_parameter is not None:
        named.append(("SizeParameter", paging.size_parameter))
    if paging.parameters_in is ParametersIn.BODY:
        if request.method is not HttpMethod.POST:
            raise ConfigError(f"{key}:In", "body needs Method POST: a GET sends no body")
        body = json.loads(request.body) if request.body is not None else {}
        for option, name in named:
            assert name is not None
            _check_body_key(body, parse_path(name, f"{key}:{option}"), f"{key}:{option}")
        return
    query = {name for name, _ in request.query}
    for option, name in named:
        if has_window and request.window_parameters and name in {"date_from", "date_to"}:
            raise ConfigError(f"{key}:{option}", "date_from and date_to carry the window")
        if name in query:
            raise ConfigError(f"{key}:{option}", f"Query has {name} already; paging sets it")


def _check_body_key(body: Any, path: JsonPath, key: str) -> None:
    """``path`` leads through objects of the body (missing ones are added) to a new key."""
    if any(isinstance(step, int) for step in path.steps):
        raise ConfigError(key, f"{path.text!r}: a key in the body takes no array index")
    if not isinstance(body, dict):
        raise ConfigError(key, "paging in the body needs a Body that is an object")
    node = body
    for step in path.steps[:-1]:
        node = node.get(step, {})
        if not isinstance(node, dict):
            problem = f"{path.text!r}: the Body holds a value, not an object, at {step}"
            raise ConfigError(key, problem)
    if path.steps[-1] in node:
        raise ConfigError(key, f"the Body has {path.text} already; paging sets it")
