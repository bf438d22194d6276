"""Templates with the window's placeholders: ``Url``, ``Query`` values, ``Body`` strings.

``{date_from}`` and ``{date_to}`` are the first and last day of a history
source's window, written ``YYYY-MM-DD``; ``{today}`` is the run's date, for any
source (a snapshot "stock to date" needs it); ``{cursor}`` is an ``Incremental``
source's stored cursor as stored (empty on a full run; ``sources/requests.py``
percent-encodes it in ``Url``); ``{date_to:%d.%m.%Y}`` writes a
date with a ``strftime`` format; ``{{`` and ``}}`` are literal braces. A template is parsed
once, here, so that an unknown placeholder, a placeholder in a snapshot source
(which has no window) or a format that is not a date format is refused at start
with its key named. ``sources/requests.py`` fills them in.
"""

from __future__ import annotations

import contextlib
import json
import re
import string
from collections.abc import Iterator
from typing import Any

from catalog_refresher.config.settings import (
    CURSOR_PLACEHOLDER,
    PLACEHOLDERS,
    WINDOW_PLACEHOLDERS,
    EndpointSettings,
    Placeholder,
    Template,
)
from catalog_refresher.errors import ConfigError

__all__ = ["as_plain", "body_template", "parse_template", "uses_cursor"]

#: ``strftime`` directives that write part of a date, the same on every platform; ``-``
#: (no padding) is glibc's, which the service runs on. Time directives would write
#: midnight, and locale ones (``%x``) differ between machines: neither is wanted.
_DIRECTIVE = re.compile(r"%(-?)(.)", re.DOTALL)
_DATE_DIRECTIVES = frozenset("aAwdbBmyYjUWGuVF")
_KNOWN = ", ".join(f"{{{name}}}" for name in PLACEHOLDERS)


def parse_template(text: str, key: str, *, has_window: bool) -> Template:
    """``text`` as a ``Template``; ``has_window`` says whether the source has a window."""
    try:
        pieces = list(string.Formatter().parse(text))
    except ValueError as exc:  # a lone "{" or "}"
        problem = f"{exc} (write {{{{ and }}}} for literal braces; placeholders: {_KNOWN})"
        raise ConfigError(key, problem) from None
    parts: list[str | Placeholder] = []
    for literal, name, spec, conversion in pieces:
        if literal and parts and isinstance(parts[-1], str):
            parts[-1] += literal  # "{{" splits the text: keep it one part
        elif literal:
            parts.append(literal)
        if name is None:
            continue
        if name not in PLACEHOLDERS:
            raise ConfigError(key, f"unknown placeholder {{{name}}}; known: {_KNOWN}")
        if name in WINDOW_PLACEHOLDERS and not has_window:
            problem = f"{{{name}}} needs a window: only history sources have one (or {{today}})"
            raise ConfigError(key, problem)
        if name == CURSOR_PLACEHOLDER and spec:
            raise ConfigError(key, f"{{cursor:{spec}}}: the cursor takes no format")
        if conversion is not None:
            raise ConfigError(key, f"{{{name}!{conversion}}}: a placeholder takes no conversion")
        parts.append(Placeholder(name, _date_format(spec, name, key) if spec else None))
    return Template(tuple(parts))


def _date_format(spec: str, name: str, key: str) -> str:
    """A ``strftime`` format made of date directives and literal text."""
    if "{" in spec or "}" in spec:
        raise ConfigError(key, f"{{{name}:{spec}}}: a format cannot hold braces")
    directives = _DIRECTIVE.findall(spec)
    if not any(letter != "%" for _, letter in directives):
        problem = f"{{{name}:{spec}}} is not a strftime date format (such as %d.%m.%Y)"
        raise ConfigError(key, problem)
    for flag, letter in directives:
        if letter not in _DATE_DIRECTIVES and not (letter == "%" and not flag):
            problem = f"{{{name}:{spec}}}: %{flag}{letter} is not a date directive"
            raise ConfigError(key, f"{problem}; use %Y %m %d %y %b %B %a %A %j %F and the like")
    return spec


def body_template(value: Any, key: str, *, has_window: bool) -> str:
    """A ``Body``: a JSON object or array whose strings may be templates; as JSON text.

    Its keys keep their spelling: they are the external system's, not ours.
    """
    if not isinstance(value, dict | list):
        raise ConfigError(key, "expected a JSON object or array")
    plain = as_plain(value)
    _check_strings(plain, key, has_window)
    return json.dumps(plain, ensure_ascii=False, separators=(",", ":"))


def as_plain(value: Any) -> Any:
    """A value of the configuration tree as plain JSON data, object keys as written."""
    if isinstance(value, dict):
        return {written: as_plain(item) for written, item in value.values()}
    if isinstance(value, list):
        return [as_plain(item) for item in value]
    return str(value) if isinstance(value, str) else value  # EnvText is plain text here


def _check_strings(value: Any, key: str, has_window: bool) -> None:
    if isinstance(value, str):
        parse_template(value, key, has_window=has_window)
    elif isinstance(value, dict):
        for name, item in value.items():
            _check_strings(item, f"{key}:{name}", has_window)
    elif isinstance(value, list):
        for index, item in enumerate(value):
            _check_strings(item, f"{key}:{index}", has_window)


def uses_cursor(endpoint: EndpointSettings) -> bool:
    """Whether the endpoint's ``Url``, ``Query`` values or ``Body`` strings hold ``{cursor}``."""
    request = endpoint.request
    texts = [] if endpoint.url is None else [endpoint.url]
    texts += [value for _, value in request.query if isinstance(value, str)]
    if request.body is not None:
        texts += list(_strings(json.loads(request.body)))
    for text in texts:
        with contextlib.suppress(ValueError):  # checked at load; a bad one holds no cursor
            if any(name == CURSOR_PLACEHOLDER for _, name, _, _ in string.Formatter().parse(text)):
                return True
    return False


def _strings(value: Any) -> Iterator[str]:
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for item in value.values():
            yield from _strings(item)
    elif isinstance(value, list):
        for item in value:
            yield from _strings(item)
