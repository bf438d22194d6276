"""The request of each page, built from the endpoint's templates and the pager's ask.

One fetch fills the templates once (``RequestBuilder.start``): the window's
dates and the incremental cursor (``{cursor}``) go into ``Url`` (percent-encoded
where they land), ``Query`` values and ``Body`` strings. Each page then adds what
the pager asks for: parameters in the query or, at dotted keys, in the JSON body;
or a link to follow as it is.

The URL's own query string is sent exactly as written (ABRA Flexi reads
``detail=custom:id,kod`` and ``includes=/a/b`` literally): every added parameter
is appended to it, and one that the URL already has replaces that pair where it
stands, leaving every other byte alone. httpx's own parameter merging would
re-encode the whole query (``detail=custom%3Aid%2Ckod``).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date
from typing import Any
from urllib.parse import quote, unquote_plus

import httpx

from catalog_refresher.config.settings import (
    CURSOR_PLACEHOLDER,
    EndpointSettings,
    HttpMethod,
    ParametersIn,
    Placeholder,
    Secret,
    Template,
)
from catalog_refresher.config.templates import parse_template
from catalog_refresher.domain.window import Window

__all__ = ["Outgoing", "PageAsk", "RequestBuilder", "fill", "safe_url", "with_parameters"]

#: Left as they are in an added query parameter and in a placeholder's value: the
#: characters a query may hold that no server reads as a separator (``&``, ``=``,
#: ``+``, ``#``, ``;`` and ``/`` in a path are encoded).
_QUERY_SAFE = ":@!$'()*,/?"
_VALUE_SAFE = ":@!$'()*,"


def safe_url(url: httpx.URL | str) -> str:
    """``url`` without userinfo, query and fragment: fit for logs and messages.

    The query goes too because systems such as Shoptet or ABRA Flexi accept API
    tokens as query parameters.
    """
    return str(httpx.URL(url).copy_with(userinfo=b"", query=None, fragment=None))


@dataclass(frozen=True, slots=True)
class PageAsk:
    """What a pager asks for the current page."""

    params: tuple[tuple[str, str | int], ...] = ()
    """Paging parameters, by name (in the body: dotted keys), in order."""
    link: str | None = None
    """An absolute URL to request as it is (a next link), instead of the configured one."""

    @property
    def shown(self) -> str:
        """For messages: ``start=3, limit=3``, or ``next link``."""
        if self.link is not None:
            return "next link"
        return ", ".join(f"{name}={value}" for name, value in self.params) or "first page"


@dataclass(frozen=True, slots=True)
class Outgoing:
    """One request, ready for the wire."""

    method: str
    url: httpx.URL
    content: bytes | None


def fill(
    template: Template,
    window: Window | None,
    today: date,
    encode: Callable[[str], str] = str,
    cursor: str | None = None,
) -> str:
    """``template`` with each placeholder's date (or the cursor) written in, each passed
    through ``encode``; ``{cursor}`` is empty without one (a full run)."""
    out = []
    for part in template.parts:
        if isinstance(part, Placeholder):
            if part.name == CURSOR_PLACEHOLDER:
                out.append(encode(cursor or ""))
                continue
            if part.name == "today":
                day = today
            else:
                assert window is not None, "a window placeholder belongs to a history source"
                day = window.date_from if part.name == "date_from" else window.date_to
            text = day.isoformat() if part.format is None else day.strftime(part.format)
            out.append(encode(text))
        else:
            out.append(part)
    return "".join(out)


def with_parameters(url: str, pairs: list[tuple[str, str]]) -> str:
    """``url`` with ``pairs`` appended to its query as written; a parameter the URL has
    already is set in place (the first of its pairs stays, with the value given, later
    ones go); the fragment is dropped."""
    path, _, query = url.partition("#")[0].partition("?")
    given: dict[str, str] = {}
    for name, value in pairs:
        given.setdefault(name, value)
    parts: list[str] = []
    replaced: set[str] = set()
    for part in query.split("&") if query else ():
        name = unquote_plus(part.partition("=")[0])
        if name not in given:
            parts.append(part)
        elif name not in replaced:
            parts.append(_pair(name, given[name]))
            replaced.add(name)
    parts += [_pair(name, value) for name, value in given.items() if name not in replaced]
    return f"{path}?{'&'.join(parts)}" if parts else path


def _pair(name: str, value: str) -> str:
    return f"{quote(name, safe=_QUERY_SAFE)}={quote(value, safe=_QUERY_SAFE)}"


def _encode_value(text: str) -> str:
    return quote(text, safe=_VALUE_SAFE)


@dataclass(frozen=True, slots=True)
class _Started:
    """One fetch's templates, filled in."""

    url: str
    body: Any
    """The body as data, or ``None`` for a request without one."""


class RequestBuilder:
    """Builds each page's request of one endpoint; ``url`` is its ``Url``, revealed."""

    def __init__(self, endpoint: EndpointSettings, url: str, *, is_history: bool) -> None:
        request = endpoint.request
        self._method = request.method.value
        self._paging_in_body = (
            endpoint.paging is not None and endpoint.paging.parameters_in is ParametersIn.BODY
        )
        self._window_parameters = is_history and request.window_parameters
        # The configuration was checked at load: these parse.
        self._url = parse_template(url, "Url", has_window=True)
        self._query = [
            (name, Template((value.value,)) if isinstance(value, Secret) else _template(value))
            for name, value in request.query
        ]
        self._body: Any = None
        if request.body is not None:
            self._body = _templates_in(json.loads(request.body))
        elif request.method is HttpMethod.POST and self._paging_in_body:
            self._body = {}
        self._userinfo = httpx.URL(url).userinfo

    @property
    def sends_body(self) -> bool:
        return self._body is not None

    def start(self, window: Window | None, today: date, *, cursor: str | None = None) -> _Started:
        """The templates filled with ``window`` (``None`` for a snapshot source), ``today``
        and the incremental ``cursor`` (``None``: a full run, ``{cursor}`` is empty)."""
        pairs = [
            (name, fill(template, window, today, cursor=cursor)) for name, template in self._query
        ]
        if self._window_parameters and window is not None:
            pairs += [
                ("date_from", window.date_from.isoformat()),
                ("date_to", window.date_to.isoformat()),
            ]
        url = with_parameters(fill(self._url, window, today, _encode_value, cursor), pairs)
        body = None if self._body is None else _filled(self._body, window, today, cursor)
        return _Started(url=url, body=body)

    def request(self, started: _Started, ask: PageAsk) -> Outgoing:
        """The request for the page ``ask`` describes."""
        body = started.body
        if ask.link is not None:
            url = httpx.URL(ask.link)
            if not url.userinfo and self._userinfo:
                url = url.copy_with(userinfo=self._userinfo)  # the same host: the same login
            return Outgoing(self._method, url, _encoded(body))
        params = [(name, str(value)) for name, value in ask.params]
        if self._paging_in_body and ask.params:
            body = _with_keys(body, ask.params)
            params = []
        url = httpx.URL(with_parameters(started.url, params) if params else started.url)
        return Outgoing(self._method, url, _encoded(body))


def _template(text: str) -> Template:
    return parse_template(text, "Query", has_window=True)


def _templates_in(value: Any) -> Any:
    """The body with each string parsed into a ``Template`` (once, at start)."""
    if isinstance(value, str):
        return parse_template(value, "Body", has_window=True)
    if isinstance(value, dict):
        return {name: _templates_in(item) for name, item in value.items()}
    if isinstance(value, list):
        return [_templates_in(item) for item in value]
    return value


def _filled(value: Any, window: Window | None, today: date, cursor: str | None) -> Any:
    if isinstance(value, Template):
        return fill(value, window, today, cursor=cursor)
    if isinstance(value, dict):
        return {name: _filled(item, window, today, cursor) for name, item in value.items()}
    if isinstance(value, list):
        return [_filled(item, window, today, cursor) for item in value]
    return value


def _with_keys(body: Any, params: tuple[tuple[str, str | int], ...]) -> Any:
    """A copy of ``body`` with each parameter set at its dotted key (objects made as needed)."""
    body = json.loads(json.dumps(body))  # a deep copy: the started body serves every page
    for name, value in params:
        *parents, last = name.split(".")  # keys only: checked at load
        node = body
        for step in parents:
            node = node.setdefault(step, {})
        node[last] = value
    return body


def _encoded(body: Any) -> bytes | None:
    if body is None:
        return None
    return json.dumps(body, ensure_ascii=False, separators=(",", ":")).encode()
