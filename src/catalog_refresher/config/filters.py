"""An endpoint's ``Filter`` in the configuration: which records are this source's.

``Filter`` is an array of conditions, each a ``Path`` inside the record and exactly
one operator: ``Equals``, ``NotEquals`` (a text, number or boolean), ``In``,
``NotIn`` (an array of them) or ``Matches`` (a regular expression, searched).
What they mean is told where they are applied (``sources/filters.py``); here each
is read and checked, so that a filter that could never work is refused at start
with its key named (``Sources:ConsumedMaterials:Filter:1:NotIn``). From the
environment, an array is written with indexes: ``Filter__0__Path``.
"""

from __future__ import annotations

import re
from typing import Any

from catalog_refresher.config.fields import record_path
from catalog_refresher.config.settings import FilterCondition, FilterOperator, comparable_text
from catalog_refresher.config.tree import as_object, get, reject_unknown
from catalog_refresher.config.values import as_text, json_kind
from catalog_refresher.errors import ConfigError

__all__ = ["describe_filters", "record_filters"]

_OPERATORS = ", ".join(operator.value for operator in FilterOperator)


def record_filters(value: Any, key: str, *, csv: bool = False) -> tuple[FilterCondition, ...]:
    """``[{"Path": "doklSklad[0].typPohybuK", "Equals": "typPohybu.vydej"}, ...]``."""
    conditions = []
    for index, raw in enumerate(_array(value, key)):
        condition_key = f"{key}:{index}"
        tree = as_object(raw, condition_key)
        reject_unknown(tree, condition_key, ("Path", *(o.value for o in FilterOperator)))
        path = get(tree, "Path")
        if path is None:
            raise ConfigError(f"{condition_key}:Path", "required: where the record has the value")
        given = [operator for operator in FilterOperator if get(tree, operator.value) is not None]
        if len(given) != 1:
            found = f"; it has {', '.join(given)}" if given else ""
            raise ConfigError(condition_key, f"needs exactly one of {_OPERATORS}{found}")
        (operator,) = given
        option_key = f"{condition_key}:{operator.value}"
        operand = get(tree, operator.value)
        if operator is FilterOperator.MATCHES:
            values: tuple[str, ...] = (_pattern(operand, option_key),)
        elif operator in {FilterOperator.IN, FilterOperator.NOT_IN}:
            listed = _array(operand, option_key)
            if not listed:
                raise ConfigError(option_key, "must not be empty")
            values = tuple(_comparable(item, f"{option_key}:{n}") for n, item in enumerate(listed))
        else:
            values = (_comparable(operand, option_key),)
        conditions.append(
            FilterCondition(
                path=record_path(path, f"{condition_key}:Path", csv=csv),
                operator=operator,
                values=values,
            )
        )
    return tuple(conditions)


def _array(value: Any, key: str) -> list[Any]:
    """A JSON array; or an object keyed 0, 1, ... (how environment variables write one)."""
    if isinstance(value, list):
        return value
    if isinstance(value, dict) and value and all(k.isdecimal() for k in value):
        return [value[k][1] for k in sorted(value, key=int)]
    raise ConfigError(key, f"expected an array, got {json_kind(value)}")


def _comparable(value: Any, key: str) -> str:
    """A value a record's is compared with: a text, number or boolean, as compared."""
    text = comparable_text(value)
    if text is None:
        raise ConfigError(key, f"expected a text, number or boolean, got {json_kind(value)}")
    return text


def _pattern(value: Any, key: str) -> str:
    text = as_text(value, key)
    try:
        re.compile(text)
    except re.error as exc:
        raise ConfigError(key, f"not a valid regular expression: {exc}") from None
    return str(text)


def describe_filters(conditions: tuple[FilterCondition, ...]) -> list[dict[str, Any]] | None:
    """The conditions in the file's shape."""
    described: list[dict[str, Any]] = []
    for condition in conditions:
        many = condition.operator in {FilterOperator.IN, FilterOperator.NOT_IN}
        operand: Any = list(condition.values) if many else condition.values[0]
        described.append({"Path": condition.path.text, condition.operator.value: operand})
    return described or None
