"""An endpoint's ``Fields`` in the configuration: where each record field is, and its rules.

A rule is a path (``"cenik[0].kod"``) or an object with ``From`` (the path) and value
rules: ``Trim``, ``RemovePrefix``, ``After``, ``Before``, ``Pattern``,
``EmptyAsNull``, ``Default``, ``Map``, ``MapDefault``. What they do is told where
they are applied (``sources/values.py``); here each is read and checked against
the type of its field, so that a rule that could never work is refused at start
by ``check-config`` with its key named (``Sources:ErpStock:Fields:stock:Before``).
In a CSV payload a path is a column's name, as written.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Iterable
from typing import Any

import msgspec

from catalog_refresher.config.paths import parse_path
from catalog_refresher.config.settings import FieldRule, JsonPath
from catalog_refresher.config.tree import Tree, as_object, get, reject_unknown
from catalog_refresher.config.values import EnvText, as_bool, as_text, json_kind
from catalog_refresher.domain import records
from catalog_refresher.domain.specs import SourceSpec
from catalog_refresher.errors import ConfigError

__all__ = ["RULE_OPTIONS", "check_rules", "describe_fields", "field_rules", "record_path"]

#: The options of a rule written as an object, in the order they apply.
RULE_OPTIONS = (
    "From",
    "Default",
    "Trim",
    "RemovePrefix",
    "After",
    "Before",
    "Pattern",
    "EmptyAsNull",
    "Map",
    "MapDefault",
)
_TEXT_ONLY = ("Trim", "RemovePrefix", "After", "Before", "Pattern", "EmptyAsNull")


def record_path(value: Any, key: str, *, csv: bool) -> JsonPath:
    """A path inside one record (``cenik[0].kod``); in a CSV payload a column's name."""
    text = as_text(value, key)
    if not text:
        raise ConfigError(key, "the payload's field name must not be empty")
    if csv:
        return JsonPath(text=text, steps=(text,))
    path = parse_path(text, key)
    if isinstance(path.steps[0], int):
        raise ConfigError(
            key, f"{text!r} starts with an index: a record is an object, start with a key"
        )
    return path


def field_rules(
    value: Any, key: str, spec: SourceSpec, *, csv: bool = False
) -> tuple[FieldRule, ...]:
    """``{"product_code": "cenik[0].kod", "location": {"From": "regal", "Trim": false}}``."""
    record_type = spec.record_type
    typed = set(record_type.__struct_fields__)
    types = {field.name: field.type for field in msgspec.structs.fields(record_type)}
    rules = []
    for lowered, (written, rule) in as_object(value, key).items():
        # Record fields match case-insensitively like every key; a free-form attribute
        # (a name the record type does not have) keeps its spelling.
        field = lowered if lowered in typed else written
        rule_key = f"{key}:{field}"
        if isinstance(rule, dict):
            rules.append(_object_rule(field, rule, rule_key, types.get(field), csv=csv))
        else:
            path = record_path(rule, rule_key, csv=csv)
            rules.append(FieldRule(field=field, source=path.text, path=path))
    check_rules(record_type, rules, key)
    return tuple(rules)


def _object_rule(field: str, tree: Tree, key: str, type_: Any, *, csv: bool) -> FieldRule:
    """One rule written as an object; ``type_`` is the field's (``None``: free-form)."""
    reject_unknown(tree, key, RULE_OPTIONS)
    source = get(tree, "From")
    if source is None:
        raise ConfigError(f"{key}:From", "required: where the payload has the field")
    path = record_path(source, f"{key}:From", csv=csv)
    kind = _kind(type_)
    if kind != "text":
        for option in _TEXT_ONLY:
            if get(tree, option) is not None:
                raise ConfigError(f"{key}:{option}", f"only for text fields; {field} is {kind}")
    values: dict[str, Any] = {}
    for option, name in (
        ("RemovePrefix", "remove_prefix"),
        ("After", "after"),
        ("Before", "before"),
    ):
        if (text := get(tree, option)) is not None:
            values[name] = _separator(text, f"{key}:{option}")
    if (trim := get(tree, "Trim")) is not None:
        values["trim"] = as_bool(trim, f"{key}:Trim")
    if (empty := get(tree, "EmptyAsNull")) is not None:
        values["empty_as_null"] = as_bool(empty, f"{key}:EmptyAsNull")
    if (pattern := get(tree, "Pattern")) is not None:
        values["pattern"] = _pattern(pattern, f"{key}:Pattern")
    if (default := get(tree, "Default")) is not None:
        values["default"] = _default(default, f"{key}:Default", field, type_)
    if (mapping := get(tree, "Map")) is not None:
        values["value_map"] = _value_map(mapping, f"{key}:Map", field, type_)
    if (map_default := get(tree, "MapDefault")) is not None:
        if mapping is None:
            raise ConfigError(f"{key}:MapDefault", "needs Map: the value of a text not in it")
        values["map_default"] = _mapped(map_default, f"{key}:MapDefault", field, type_)
    return FieldRule(field=field, source=path.text, path=path, **values)


def _kind(type_: Any) -> str:
    """What a field holds, for messages: ``text``, ``a number``, ``true or false``..."""
    if type_ is None:
        return "text"  # a free-form attribute: whatever the payload sends
    info = msgspec.inspect.type_info(type_)
    if records.holds(info, msgspec.inspect.StrType):
        return "text"
    if records.holds(info, msgspec.inspect.BoolType):
        return "true or false"
    if records.holds(info, msgspec.inspect.FloatType, msgspec.inspect.IntType):
        return "a number"
    return "a list"


def _separator(value: Any, key: str) -> str:
    text = as_text(value, key)
    if not text:
        raise ConfigError(key, "must not be empty")
    return text


def _pattern(value: Any, key: str) -> str:
    text = _separator(value, key)
    try:
        re.compile(text)
    except re.error as exc:
        raise ConfigError(key, f"not a valid regular expression: {exc}") from None
    return text


def _fits(value: Any, key: str, field: str, type_: Any, *, from_text: bool) -> Any:
    """``value`` as ``field`` holds it; text from the environment (or a Map) may be read."""
    if type_ is None:
        return value
    try:
        return msgspec.convert(value, type_, strict=not from_text)
    except msgspec.ValidationError:
        shown = repr(str(value)) if from_text else json_kind(value)
        raise ConfigError(key, f"{field} is {_kind(type_)}, got {shown}") from None


def _default(value: Any, key: str, field: str, type_: Any) -> str | int | float | bool:
    """A ``Default``: a text, number or boolean that ``field`` can hold."""
    if isinstance(value, dict | list):
        raise ConfigError(key, f"expected a text, number or boolean, got {json_kind(value)}")
    fitted = _fits(value, key, field, type_, from_text=isinstance(value, EnvText))
    scalar: str | int | float | bool = str(fitted) if isinstance(fitted, str) else fitted
    return scalar


def _mapped(value: Any, key: str, field: str, type_: Any) -> str:
    """A value of ``Map`` or ``MapDefault``: text that ``field`` can hold once converted."""
    text = as_text(value, key)
    _fits(text, key, field, type_, from_text=True)
    return str(text)


def _value_map(value: Any, key: str, field: str, type_: Any) -> tuple[tuple[str, str], ...]:
    """``Map``: an object of texts, keys as written (the payload's values are matched exactly)."""
    tree = as_object(value, key)
    if not tree:
        raise ConfigError(key, "must not be empty: the texts to replace, each with its value")
    return tuple(
        (written, _mapped(mapped, f"{key}:{written}", field, type_))
        for written, mapped in tree.values()
    )


def check_rules(record_type: type[records.Record], rules: Iterable[FieldRule], key: str) -> None:
    """Refuse rules that cannot work together; ``key`` is the ``Fields`` object's key."""
    rules = tuple(rules)
    allowed = _mappable_fields(record_type)
    info = records.field_types(record_type)
    mapped = {rule.field for rule in rules}
    readers: dict[FieldRule, str] = {}
    for rule in rules:
        rule_key = f"{key}:{rule.field}"
        if allowed is not None and rule.field not in allowed:
            known = ", ".join(sorted(allowed))
            raise ConfigError(rule_key, f"not a field of this source; its fields: {known}")
        if rule.field == "extra":
            raise ConfigError(rule_key, "reserved for the free-form attributes")
        if not rule.source:
            raise ConfigError(rule_key, "the payload's field name must not be empty")
        # Two fields may read one path with different rules (a code and a name from
        # ``cenik@showAs``), but the same value twice is a mistake.
        same = dataclasses.replace(rule, field="")
        if same in readers:
            problem = f"{readers[same]} is read from {rule.source!r} already"
            raise ConfigError(rule_key, problem)
        readers[same] = rule.field
        # An unmapped field keeps its own name, so no other field may be read from it.
        first = rule.path.steps[0]
        if allowed is not None and first in allowed and first not in mapped:
            problem = f"{first!r} is where {first} is read from; map it too"
            raise ConfigError(rule_key, problem)
        if rule.remove_prefix is not None:
            if not rule.remove_prefix:
                raise ConfigError(f"{rule_key}:RemovePrefix", "must not be empty")
            if rule.field in info and not records.holds(info[rule.field], msgspec.inspect.StrType):
                raise ConfigError(f"{rule_key}:RemovePrefix", "only for text fields")


def _mappable_fields(record_type: type[records.Record]) -> frozenset[str] | None:
    """The fields a rule may target; ``None`` when any name is allowed (free-form attributes)."""
    if record_type is records.Attributes:
        return None
    return frozenset(record_type.__struct_fields__)


def describe_fields(rules: Iterable[FieldRule]) -> dict[str, Any] | None:
    """The rules in the file's shape: a path, or an object with the options that are set."""
    described: dict[str, Any] = {}
    for rule in rules:
        if not rule.has_value_rules:
            described[rule.field] = rule.source
            continue
        options: dict[str, Any] = {"From": rule.source}
        if rule.default is not None:
            options["Default"] = rule.default
        if not rule.trim:
            options["Trim"] = False
        for option, value in (
            ("RemovePrefix", rule.remove_prefix),
            ("After", rule.after),
            ("Before", rule.before),
            ("Pattern", rule.pattern),
            ("EmptyAsNull", rule.empty_as_null),
        ):
            if value is not None:
                options[option] = value
        if rule.value_map:
            options["Map"] = dict(rule.value_map)
        if rule.map_default is not None:
            options["MapDefault"] = rule.map_default
        described[rule.field] = options
    return described or None
