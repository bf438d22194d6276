"""The value rules of one field (``Fields``), written out once per endpoint.

In order: the value at the rule's path; ``Default`` when it is absent or null; then,
on text only, ``Trim``, ``RemovePrefix``, ``After``, ``Before``, ``Pattern`` and
``EmptyAsNull``; last ``Map`` (with ``MapDefault``). Numbers and booleans sent as
text are not a rule: the record's type takes them (``msgspec.convert`` with
``strict=False``), and dates are ``domain/rules.py``'s.

``compile_value`` writes a field's rules as statements on a local ``v``
(``sources/codegen.py``), which the reader puts inline into the field's loop
(``sources/mapping.py``): only the rules that are set, each a line or two, no
call per record. ``convert`` is the same statements as a function, for raw
dicts (attributes). ``why_null`` says, for messages only, which rule left a
field empty.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import msgspec

from catalog_refresher.config.settings import FieldRule
from catalog_refresher.config.settings import comparable_text as text_of
from catalog_refresher.sources.codegen import compile_function, indent

__all__ = ["MISSING", "FieldValue", "compile_value", "text_of"]

#: What a path finds where the payload has nothing (an absent key, a missing element).
MISSING: Any = msgspec.UNSET


@dataclass(frozen=True, slots=True, kw_only=True)
class FieldValue:
    """How one record field's value is made from what its path found."""

    name: str
    """The record field."""
    lines: tuple[str, ...] = ()
    """The rules as statements on ``v`` (``MISSING`` in, ``MISSING`` out); empty: none."""
    constants: Mapping[str, Any] = field(default_factory=dict)
    """The names ``lines`` use: the configured values, never written into the source."""
    missing: Any = MISSING
    """What an absent value becomes: the record field's default, or ``MISSING`` (required)."""
    rule: FieldRule | None = None

    @property
    def changes(self) -> bool:
        """Whether any rule applies (else the value is taken as the path found it)."""
        return bool(self.lines)

    def convert(self) -> Callable[[Any], Any]:
        """The rules as a function of one value."""
        return compile_function(
            f"convert_{self.name}" if self.name.isidentifier() else "convert",
            "v",
            [*self.lines, "return v"],
            {**self.constants},
        )

    def why_null(self, value: Any) -> str:
        """Why the rules made ``value`` (as the path found it) null, for a message."""
        rule = self.rule
        if value is None or value is MISSING:
            return "null in the payload" if value is None else "absent"
        if rule is None or value.__class__ is not str:
            return f"{value!r} after the rules"
        text = value.strip() if rule.trim else value
        if rule.pattern is not None and re.search(rule.pattern, text) is None:
            return f"{text!r} does not match Pattern {rule.pattern!r}"
        return f"{value!r} is empty after the rules (EmptyAsNull)"


def compile_value(
    rule: FieldRule, *, text: bool, optional: bool, validated: bool, missing: Any
) -> FieldValue:
    """The rules of ``rule`` for a field that is ``text`` (or not) and ``optional`` (or not).

    ``validated``: the per-record rules trim this field themselves, and make it null
    when empty (a code of the row key, a date), so the defaults need nothing here.
    """
    empty_as_null = text and (optional if rule.empty_as_null is None else rule.empty_as_null)
    trim = text and rule.trim
    if validated and not rule.transforms and rule.empty_as_null is None:
        trim = empty_as_null = False
    lines, constants = _rule_lines(rule, trim=trim, empty_as_null=empty_as_null)
    return FieldValue(
        name=rule.field, lines=tuple(lines), constants=constants, missing=missing, rule=rule
    )


def _rule_lines(
    rule: FieldRule, *, trim: bool, empty_as_null: bool
) -> tuple[list[str], dict[str, Any]]:
    """``rule``'s statements on ``v``, and the constants they name."""
    constants: dict[str, Any] = {"MISSING": MISSING, "text_of": text_of}
    lines: list[str] = []
    if rule.default is not None:
        constants["DEFAULT"] = rule.default
        lines += ["if v is None or v is MISSING:", "    v = DEFAULT"]
    strip = ".strip()" if trim else ""
    text: list[str] = [f"v = v{strip}"] if trim else []
    if rule.remove_prefix is not None:
        constants["PREFIX"] = rule.remove_prefix
        text += ["if v.startswith(PREFIX):", f"    v = v[{len(rule.remove_prefix)}:]{strip}"]
    if rule.after is not None:
        constants["AFTER"] = rule.after
        skip = len(rule.after)
        text += ["at = v.find(AFTER)", "if at >= 0:", f"    v = v[at + {skip}:]{strip}"]
    if rule.before is not None:
        constants["BEFORE"] = rule.before
        text += ["at = v.find(BEFORE)", "if at >= 0:", f"    v = v[:at]{strip}"]
    if rule.pattern is not None:
        pattern = re.compile(rule.pattern)
        constants["SEARCH"] = pattern.search
        group = 1 if pattern.groups else 0
        # No match: nothing (null); an optional group that took no part: empty text.
        text += [
            "found = SEARCH(v)",
            f"v = None if found is None else (found[{group}] or ''){strip}",
        ]
    if empty_as_null:
        text += ["if not v:", "    v = None"]
    if text:
        lines += ["if v.__class__ is str:", *indent(text)]
    if rule.value_map:
        constants["MAP"] = dict(rule.value_map)
        # A text not in the map stays as it is, unless MapDefault says what it becomes.
        otherwise = "v" if rule.map_default is None else "MAP_DEFAULT"
        constants["MAP_DEFAULT"] = rule.map_default
        lines += [
            "if v is not None and v is not MISSING:",
            "    key = v if v.__class__ is str else text_of(v)",
            f"    v = MAP.get(key, {otherwise}) if key is not None else v",
        ]
    return lines, constants
