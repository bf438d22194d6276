"""A source's ``Incremental`` section: read only what changed since the stored cursor.

```jsonc
"Incremental": {
  "CursorField": "changed_at",          // where each record has its change time or growing id
  "CursorParameter": "changed_since",   // the query parameter the stored cursor goes in
                                        //   (or {cursor} in Url/Query/Body; sql: :cursor)
  "Tombstone": { "Path": "deleted", "Equals": "true" },   // a record that says "gone"
  "FullEvery": "1.00:00:00",            // a full reconcile at least this often
  "FullEveryRuns": 24                   //   or every N runs
}
```

What a run does with it is ``refresh/incremental.py``'s; here each option is read
and checked, so that ``check-config`` names a mistake's key. Only snapshot sources
read JSON pages may be incremental: a history source is already read by its window,
and a CSV page has no typed values to compare cursors by. Where the cursor goes
depends on the endpoint (``check_cursor_target``): an http endpoint sends it in
``CursorParameter`` or a ``{cursor}`` placeholder of its templates, a sql endpoint binds
it to its ``Query``'s ``:cursor``, and a file set cannot be asked for changes.
"""

from __future__ import annotations

from typing import Any

import sqlalchemy

from catalog_refresher.config.fields import record_path
from catalog_refresher.config.settings import (
    EndpointSettings,
    EndpointType,
    IncrementalSettings,
    Tombstone,
    comparable_text,
)
from catalog_refresher.config.templates import uses_cursor
from catalog_refresher.config.tree import as_object, get, reject_unknown
from catalog_refresher.config.values import as_duration, as_int, as_text
from catalog_refresher.errors import ConfigError

__all__ = ["check_cursor_target", "incremental_settings"]

_KEYS = ("CursorField", "CursorParameter", "Tombstone", "FullEvery", "FullEveryRuns")


def incremental_settings(
    value: Any, key: str, *, is_history: bool, csv: bool
) -> IncrementalSettings | None:
    """The ``Incremental`` object at ``key``, or ``None`` when it is absent."""
    if value is None:
        return None
    if is_history:
        raise ConfigError(key, "only a snapshot source can be incremental (history is windowed)")
    if csv:
        raise ConfigError(key, "needs JSON pages; a Csv payload cannot be incremental")
    tree = as_object(value, key)
    reject_unknown(tree, key, _KEYS)
    field = get(tree, "CursorField")
    if field is None:
        raise ConfigError(f"{key}:CursorField", "required: where each record has its cursor")
    parameter = get(tree, "CursorParameter")
    name = None
    if parameter is not None:
        name = as_text(parameter, f"{key}:CursorParameter").strip()
        if not name:
            raise ConfigError(f"{key}:CursorParameter", "must not be empty")
    every = get(tree, "FullEvery")
    runs = get(tree, "FullEveryRuns")
    return IncrementalSettings(
        cursor_field=record_path(field, f"{key}:CursorField", csv=False),
        cursor_parameter=name,
        tombstone=_tombstone(get(tree, "Tombstone"), f"{key}:Tombstone"),
        full_every=None if every is None else as_duration(every, f"{key}:FullEvery", positive=True),
        full_every_runs=None if runs is None else as_int(runs, f"{key}:FullEveryRuns", 1),
    )


def check_cursor_target(
    incremental: IncrementalSettings | None, endpoint: EndpointSettings, key: str
) -> None:
    """Refuse an ``Incremental`` whose cursor the endpoint ``key`` would not send."""
    if incremental is None:
        if endpoint.type is EndpointType.HTTP and uses_cursor(endpoint):
            raise ConfigError(key, "{cursor} is only for a source with Incremental")
        return
    parameter = f"{key}:Incremental:CursorParameter"
    if endpoint.type is EndpointType.FILE:
        raise ConfigError(f"{key}:Incremental", "not for Type file: a file set is read whole")
    if endpoint.type is EndpointType.SQL:
        if incremental.cursor_parameter is not None:
            raise ConfigError(parameter, "not for Type sql: the cursor is bound to :cursor")
        if "cursor" not in sqlalchemy.text(endpoint.sql or "").compile().params:
            raise ConfigError(f"{key}:Query", "an Incremental query needs :cursor")
        return
    if (
        endpoint.type is EndpointType.HTTP
        and incremental.cursor_parameter is None
        and not uses_cursor(endpoint)
    ):
        problem = "required unless Url, Query or Body holds {cursor}"
        raise ConfigError(parameter, problem)


def _tombstone(value: Any, key: str) -> Tombstone | None:
    if value is None:
        return None
    tree = as_object(value, key)
    reject_unknown(tree, key, ("Path", "Equals"))
    path, equals = get(tree, "Path"), get(tree, "Equals")
    if path is None:
        raise ConfigError(f"{key}:Path", "required: where a record says it is deleted")
    text = comparable_text(True if equals is None else equals)
    if text is None:
        raise ConfigError(f"{key}:Equals", "expected a text, number or boolean")
    return Tombstone(path=record_path(path, f"{key}:Path", csv=False), equals=text)
