"""The value rules of one field (``Fields``), compiled once per endpoint into one function.

In order: the value at the rule's path; ``Default`` when it is absent or null; then,
on text only, ``Trim``, ``RemovePrefix``, ``After``, ``Before``, ``Pattern`` and
``EmptyAsNull``; last ``Map`` (with ``MapDefault``). Numbers and booleans sent as
text are not a rule: the record's type takes them (``msgspec.convert`` with
``strict=False``), and dates are ``domain/rules.py``'s.

Each rule is a test of a local in one closure, called once per record: a chain
of small functions would cost a call per rule per record. ``why_null`` says, for
messages only, which rule left a field empty.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import msgspec

from catalog_refresher.config.settings import FieldRule
from catalog_refresher.config.settings import comparable_text as text_of

__all__ = ["MISSING", "FieldValue", "compile_value", "text_of"]

#: What a path finds where the payload has nothing (an absent key, a missing element).
MISSING: Any = msgspec.UNSET


@dataclass(frozen=True, slots=True, kw_only=True)
class FieldValue:
    """How one record field's value is made from what its path found."""

    name: str
    """The record field."""
    convert: Callable[[Any], Any] | None
    """The rules as one function (``MISSING`` in, ``MISSING`` out); ``None``: none apply."""
    only_defaults: bool = False
    """Only ``trim`` and ``empty_as_null`` apply (on text): the caller runs them inline,
    which is cheaper than a call per record."""
    trim: bool = False
    empty_as_null: bool = False
    missing: Any = MISSING
    """What an absent value becomes: the record field's default, or ``MISSING`` (required)."""
    rule: FieldRule | None = None

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
    if rule.transforms:
        convert = _converter(rule, empty_as_null=empty_as_null)
        return FieldValue(
            name=rule.field, convert=convert, trim=trim, empty_as_null=empty_as_null,
            missing=missing, rule=rule,
        )  # fmt: skip
    if validated and rule.empty_as_null is None:
        trim = empty_as_null = False
    if not (trim or empty_as_null):
        return FieldValue(name=rule.field, convert=None, missing=missing, rule=rule)
    return FieldValue(
        name=rule.field,
        convert=_converter(rule, empty_as_null=empty_as_null),
        only_defaults=True,
        trim=trim,
        empty_as_null=empty_as_null,
        missing=missing,
        rule=rule,
    )


def _converter(rule: FieldRule, *, empty_as_null: bool) -> Callable[[Any], Any]:
    """``rule``'s value rules as one function of the value its path found."""
    trim = rule.trim
    default = rule.default
    prefix, after, before = rule.remove_prefix, rule.after, rule.before
    cut = len(prefix or "")
    skip = len(after or "")
    pattern = None if rule.pattern is None else re.compile(rule.pattern)
    group = 1 if pattern is not None and pattern.groups else 0
    mapping = dict(rule.value_map) or None
    map_default = rule.map_default

    def convert(value: Any) -> Any:
        if value is None or value is MISSING:
            if default is None:
                return value
            value = default
        if value.__class__ is str:
            if trim:
                value = value.strip()
            if prefix is not None and value.startswith(prefix):
                value = value[cut:].strip() if trim else value[cut:]
            if after is not None and (at := value.find(after)) >= 0:
                value = value[at + skip :].strip() if trim else value[at + skip :]
            if before is not None and (at := value.find(before)) >= 0:
                value = value[:at].strip() if trim else value[:at]
            if pattern is not None:
                found = pattern.search(value)
                if found is None:
                    return None
                value = found.group(group) or ""
                if trim:
                    value = value.strip()
            if empty_as_null and not value:
                return None
        if mapping is not None and value is not None:
            key = value if value.__class__ is str else text_of(value)
            mapped = None if key is None else mapping.get(key)
            if mapped is not None:
                return mapped
            if map_default is not None:
                return map_default
        return value

    return convert
