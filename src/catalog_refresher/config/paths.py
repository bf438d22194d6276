"""Reading paths into a JSON document (``JsonPath``) as the configuration writes them:
``data.items``, ``winstrom.@rowCount``, ``cenik[0].kod``.

A path is a chain of steps: an object key (between dots) or an array index (in
brackets, ``[0]`` the first element, ``[-1]`` the last). A key may hold any
character but ``.``, ``[`` and ``]`` (Flexi's ``cenik@showAs`` is one key). Paths
are parsed once, when the configuration is read, so that a path that can never
match is refused by ``check-config`` with its key named; what walks them is in
``sources/``.
"""

from __future__ import annotations

import re
from typing import Any

from catalog_refresher.config.settings import JsonPath
from catalog_refresher.config.values import as_text
from catalog_refresher.errors import ConfigError

__all__ = ["parse_path"]

#: One step: a key up to the next ``.`` or ``[``, or a bracketed index.
_STEP = re.compile(r"\[(?P<index>[^\]]*)\]|(?P<key>[^.\[\]]+)")


def parse_path(value: Any, key: str) -> JsonPath:
    """``value`` as a path; a ``ConfigError`` naming ``key`` says what is wrong with it."""
    text = as_text(value, key)
    steps: list[str | int] = []
    position = 0
    while position < len(text):
        if steps and text[position] == ".":
            position += 1  # a dot separates steps; a bracket needs none before it
        match = _STEP.match(text, position)
        if match is None and text.startswith("[", position):
            raise ConfigError(key, f"{text!r}: the [ at character {position + 1} is not closed")
        if match is None:
            if position >= len(text):
                raise ConfigError(key, f"{text!r} ends with an empty step")
            problem = f"{text!r} has an empty step at character {position + 1} ({text[position]!r})"
            raise ConfigError(key, problem)
        if match["index"] is not None:
            index = match["index"].strip()
            if not re.fullmatch(r"-?[0-9]+", index):
                problem = f"{text!r}: [{match['index']}] is not an array index like [0]"
                raise ConfigError(key, problem)
            steps.append(int(index))
        else:
            steps.append(match["key"])
        position = match.end()
    if not steps or text.endswith("."):
        raise ConfigError(key, f"{text!r} has an empty step")
    return JsonPath(text=text, steps=tuple(steps))
