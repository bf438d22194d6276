"""What a mapped page is decoded into, and how a path is read back out of it.

A reader (``sources/mapping.py``) needs values at paths: ``stavMJ`` for a renamed
field, ``cenik[0].kod`` for a nested one, ``doklSklad[0].typPohybuK`` for a filter.
``wire_struct`` makes, once per endpoint, a msgspec struct holding exactly what those
paths reach. Every top-level key a path starts with is one of its fields; where a
path goes deeper, the field's type takes any JSON value: a small struct of the keys
wanted below (an object), a tuple of what is wanted in the elements (an array), or a
scalar. msgspec decodes a page straight into it and skips in C every key no path
asks for. Nothing on the way can fail to decode, so a record of another shape (one
a filter will drop) never sends its page down the slow path; the values' types
are checked once, when the record type is converted (``sources/mapping.py``).

``walk`` follows the rest of a path through a decoded value. ABRA Flexi sends a
relation flat (``"code:KRM001"``), as an array of objects (``includes=``) or as one
object; so an index on a value that is not an array reads ``[0]`` (or ``[-1]``) as
the value itself, and ``cenik[0].kod`` reads an object and an array of one alike.
A key of a text finds nothing: ``cenik[0].kod`` of a flat ``"code:KRM001"`` is
absent. A path reaching nothing gives ``MISSING``; ``why_missing`` says where it
stopped, for messages.
"""

from __future__ import annotations

import functools
import itertools
import operator
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import msgspec

from catalog_refresher.config.settings import JsonPath
from catalog_refresher.sources.codegen import compile_function
from catalog_refresher.sources.values import MISSING

__all__ = ["ReadPath", "read_lines", "reader", "walk", "why_missing", "wire_struct"]

#: The JSON values a deeper node may also be, besides an object and an array.
_SCALARS = (str, int, float, bool, type(None))


@dataclass(frozen=True, slots=True)
class ReadPath:
    """One path as it is read from a decoded wire struct."""

    path: JsonPath
    attribute: str
    """The wire struct's field that holds the path's first key."""
    steps: tuple[str | int, ...]
    """The rest of the path; keys as the attribute names of the nested structs."""
    read: Callable[[Any], Any]
    """The value at the path in a wire struct, or ``MISSING`` (``reader``)."""

    def lines(self) -> list[str]:
        """The reading as statements setting ``v`` from ``item`` (``read_lines``)."""
        return read_lines(self.attribute, self.steps)

    def why_missing(self, item: Any) -> str:
        """Where the path stops finding anything in ``item``, for a message."""
        return why_missing(getattr(item, self.attribute), self.steps, self.path)


def read_lines(attribute: str, steps: tuple[str | int, ...]) -> list[str]:
    """Statements that set ``v`` to the value at ``attribute`` then ``steps`` of ``item``.

    They run once per record and path, so they are written out for the path
    (``sources/codegen.py``): a loop over the steps, testing each one's kind, costs
    twice as much.
    """
    assert attribute.isidentifier()
    lines = [f"v = item.{attribute}"]
    for step in steps:
        if isinstance(step, int):
            # A single value (not an array) is its own [0] and [-1].
            lines.append("if v.__class__ is tuple:")
            if step in (0, -1):
                lines.append(f"    v = v[{step}] if v else MISSING")
            else:
                needs = step + 1 if step >= 0 else -step  # the length that has this element
                lines += [f"    v = v[{step}] if len(v) >= {needs} else MISSING", "else:"]
                lines.append("    v = MISSING")
        else:
            assert step.isidentifier()
            # Absent, null, a text or an array has no key: MISSING.
            lines.append(f"v = getattr(v, {step!r}, MISSING)")
    return lines


def reader(attribute: str, steps: tuple[str | int, ...]) -> Callable[[Any], Any]:
    """A function of a wire struct: the value at ``attribute`` then ``steps``, or ``MISSING``."""
    if not steps:
        return operator.attrgetter(attribute)
    lines = [*read_lines(attribute, steps), "return v"]
    return compile_function("read", "item", lines, {"MISSING": MISSING})


def walk(value: Any, steps: tuple[str | int, ...]) -> Any:
    """Follow ``steps`` from ``value`` (a decoded dict's field: attributes, CSV rows)."""
    for step in steps:
        if isinstance(step, int):
            if isinstance(value, list | tuple):
                if not -len(value) <= step < len(value):
                    return MISSING
                value = value[step]
            elif step != 0 and step != -1:
                return MISSING  # only [0] and [-1] of a single value are that value
        elif isinstance(value, msgspec.Struct):
            value = getattr(value, step)
        elif value.__class__ is dict:
            value = value.get(step, MISSING)
        else:
            return MISSING
    return value


def why_missing(value: Any, steps: tuple[str | int, ...], path: JsonPath) -> str:
    """Why ``path`` finds nothing from ``value``: the step where it stops, and what is there."""
    written = path.steps
    where = str(written[0])
    for step, shown in zip(steps, written[1:], strict=True):
        if value is MISSING:
            return f"no {where}"
        if value is None:
            return f"{where} is null"
        if isinstance(step, int):
            if isinstance(value, list | tuple):
                if not -len(value) <= step < len(value):
                    return f"{where} has {len(value)} elements"
                value = value[step]
                where = f"{where}[{shown}]"
            elif step not in (0, -1):
                return f"{where} is not an array"
            continue  # a single value is its own [0]: the message names the value
        if isinstance(value, msgspec.Struct):
            value = getattr(value, step)
        elif isinstance(value, dict):
            value = value.get(step, MISSING)
        else:
            array = isinstance(value, list | tuple)
            kind = "an array (index it: [0])" if array else repr(value)
            return f"{where} is {kind}, not an object"
        if value is MISSING:
            return f"{where} has no {shown}"
        where = f"{where}.{shown}"
    return f"no {where}" if value is MISSING else f"{where} is null"


@dataclass(slots=True)
class _Trie:
    """The steps every path asks for below one key."""

    keys: dict[str, _Trie] = field(default_factory=dict)
    index: _Trie | None = None
    """What is asked of any element (all indexes read elements of one array)."""

    def add(self, steps: Iterable[str | int]) -> None:
        node = self
        for step in steps:
            if isinstance(step, int):
                node.index = node.index or _Trie()
                node = node.index
            else:
                node = node.keys.setdefault(step, _Trie())

    def merge(self, other: _Trie) -> None:
        for key, sub in other.keys.items():
            self.keys.setdefault(key, _Trie()).merge(sub)
        if other.index is not None:
            self.index = self.index or _Trie()
            self.index.merge(other.index)


class _Builder:
    """Structs and attribute names for one wire type; keys get ``_k<n>`` attributes."""

    def __init__(self, name: str) -> None:
        self._name = name
        self._attributes: dict[str, str] = {}
        self._count = itertools.count()

    def attribute(self, key: str) -> str:
        # Payload keys are rarely identifiers (``cenik@showAs``): fields get names of
        # their own, renamed to the key. One name per key, in every struct of the type.
        return self._attributes.setdefault(key, f"_k{len(self._attributes)}")

    def node_type(self, trie: _Trie) -> Any:
        if not trie.keys and trie.index is None:
            return Any  # a leaf: any value, checked when the record is converted
        # An index on an object reads the object itself, so its keys are asked too.
        fields = _Trie()
        node: _Trie | None = trie
        while node is not None:
            fields.merge(_Trie(keys=node.keys))
            node = node.index
        whole = self.struct(fields.keys) if fields.keys else dict[str, Any]
        # An array as a tuple: msgspec leaves a tuple of untracked values untracked by the
        # garbage collector, where a million lists would make each collection walk them all
        # (four times the decoding time).
        element = self.node_type(trie.index) if trie.index else Any
        array = tuple[element, ...]  # type: ignore[valid-type]
        return functools.reduce(operator.or_, (whole, array, *_SCALARS))

    def struct(self, keys: Mapping[str, _Trie]) -> Any:
        return msgspec.defstruct(
            f"{self._name}Part{next(self._count)}",
            [(self.attribute(key), self.node_type(sub), MISSING) for key, sub in keys.items()],
            rename={self.attribute(key): key for key in keys},
            gc=False,  # never in a cycle
        )


def wire_struct(
    name: str,
    *,
    direct: Mapping[str, tuple[str, Any]],
    computed: Iterable[str],
    paths: Iterable[JsonPath],
) -> tuple[Any, dict[JsonPath, ReadPath]]:
    """The wire struct for one endpoint, and how to read each of ``paths`` from it.

    ``direct``: top-level key -> (attribute, default) for a key read whole by one record
    field, under that field's own name (so ``msgspec.convert`` takes it as it is).
    ``computed``: attributes the reader sets after decoding; no payload has their key.
    ``paths``: every path read; a path through a ``direct`` key must be that key alone.
    """
    builder = _Builder(name)
    tries: dict[str, _Trie] = {}
    paths = tuple(dict.fromkeys(paths))
    for path in paths:
        top = path.steps[0]
        assert isinstance(top, str), "a record's path starts with a key"
        if top not in direct:
            tries.setdefault(top, _Trie()).add(path.steps[1:])
    fields: list[tuple[str, Any, Any]] = []
    rename: dict[str, str] = {}
    for key, (attribute, default) in direct.items():
        fields.append((attribute, Any, default))
        rename[attribute] = key
    for key, trie in tries.items():
        attribute = builder.attribute(key)
        fields.append((attribute, builder.node_type(trie), MISSING))
        rename[attribute] = key
    for attribute in computed:
        fields.append((attribute, Any, MISSING))
        rename[attribute] = f"(computed) {attribute}"  # a key no payload sends: set later
    wire = msgspec.defstruct(
        f"{name}AsSent",
        fields,
        rename=rename,
        kw_only=True,
        # Mutable, so that the reader writes values in place; never in a cycle, so no GC.
        gc=False,
    )
    read: dict[JsonPath, ReadPath] = {}
    for path in paths:
        top = str(path.steps[0])
        attribute = direct[top][0] if top in direct else builder.attribute(top)
        steps = tuple(s if isinstance(s, int) else builder.attribute(s) for s in path.steps[1:])
        read[path] = ReadPath(
            path=path, attribute=attribute, steps=steps, read=reader(attribute, steps)
        )
    return wire, read
