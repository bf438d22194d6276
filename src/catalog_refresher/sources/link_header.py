"""The ``Link`` response header (RFC 8288), read properly.

``Link: <https://api.example/items?page=2>; rel="next"; title="a, b", <...>; rel="last"``:
several links, comma-separated, each a URI reference in angle brackets and its
parameters; a value is a token or a quoted string (in which commas, semicolons
and ``\\"`` escapes are text), ``rel`` may name several relation types separated
by spaces, compared case-insensitively. Several ``Link`` headers are one list.
Splitting on commas, as simple parsers do, breaks on a quoted comma; a link this
parser cannot read is skipped, never guessed at.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

__all__ = ["Link", "next_link", "parse_links"]

_SPACE = " \t"


@dataclass(frozen=True, slots=True)
class Link:
    target: str
    """The URI reference as written (possibly relative)."""
    params: tuple[tuple[str, str], ...]
    """Parameter names lower-cased, values unquoted, in order."""

    @property
    def relations(self) -> frozenset[str]:
        """The relation types of the first ``rel`` parameter (RFC 8288 ignores later ones)."""
        rel = next((value for name, value in self.params if name == "rel"), "")
        return frozenset(rel.lower().split())


def next_link(headers: Iterable[str]) -> str | None:
    """The target of the first link with relation ``next`` among ``headers``' values."""
    for value in headers:
        for link in parse_links(value):
            if "next" in link.relations:
                return link.target
    return None


def parse_links(value: str) -> list[Link]:
    """Every link of one ``Link`` header value, in order."""
    links: list[Link] = []
    position = 0
    while position < len(value):
        position = _skip(value, position, _SPACE + ",")
        if position >= len(value):
            break
        if value[position] != "<":
            position = _next_link_start(value, position)  # not a link: skip to the next one
            continue
        end = value.find(">", position + 1)
        if end < 0:
            break
        target = value[position + 1 : end].strip()
        params, position = _params(value, end + 1)
        links.append(Link(target, tuple(params)))
    return links


def _params(value: str, position: int) -> tuple[list[tuple[str, str]], int]:
    """The ``; name=value`` parameters from ``position`` to the comma that ends the link."""
    params: list[tuple[str, str]] = []
    while True:
        position = _skip(value, position, _SPACE)
        if position >= len(value) or value[position] == ",":
            return params, position + 1
        if value[position] != ";":
            return params, _next_link_start(value, position)  # junk: this link ends here
        position = _skip(value, position + 1, _SPACE)
        start = position
        while position < len(value) and value[position] not in "=;," + _SPACE:
            position += 1
        name = value[start:position].lower()
        position = _skip(value, position, _SPACE)
        text = ""
        if position < len(value) and value[position] == "=":
            position = _skip(value, position + 1, _SPACE)
            if position < len(value) and value[position] == '"':
                text, position = _quoted(value, position)
            else:
                start = position
                while position < len(value) and value[position] not in ";," + _SPACE:
                    position += 1
                text = value[start:position]
        if name:
            params.append((name, text))


def _quoted(value: str, position: int) -> tuple[str, int]:
    """The text of the quoted string opening at ``position``, and where it ends."""
    out: list[str] = []
    position += 1
    while position < len(value):
        char = value[position]
        if char == "\\" and position + 1 < len(value):
            out.append(value[position + 1])
            position += 2
            continue
        if char == '"':
            return "".join(out), position + 1
        out.append(char)
        position += 1
    return "".join(out), position  # unterminated: what there is


def _skip(value: str, position: int, chars: str) -> int:
    while position < len(value) and value[position] in chars:
        position += 1
    return position


def _next_link_start(value: str, position: int) -> int:
    """Past the next comma outside quotes, where another link may begin."""
    quoted = False
    while position < len(value):
        char = value[position]
        if char == "\\" and quoted:
            position += 2
            continue
        if char == '"':
            quoted = not quoted
        elif char == "," and not quoted:
            return position + 1
        position += 1
    return position
