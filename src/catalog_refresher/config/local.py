"""The endpoints that are not HTTP requests: ``"Type": "sql"`` and ``"Type": "file"``.

Each takes only the options that mean something for it, and refuses every other
endpoint option with its key named, so that an HTTP option left behind (``Paging``,
``Method``, ``Tls``...) is not silently ignored:

- sql: ``Url`` (any SQLAlchemy URL, secret-capable), ``Query`` (the SQL text; its
  bound parameters among ``SQL_PARAMETERS``, the window's only for history
  sources), ``Fields``, ``Filter``.
- file: ``Path`` (a path or glob; a relative one is relative to the configuration
  file, like ``file:`` secrets), ``Format`` (csv, json, ndjson), ``Csv`` (csv only),
  ``RecordsPath`` (json only), ``Fields``, ``Filter``.

What they mean is told where they are used (``sources/sql.py``, ``sources/files.py``).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import sqlalchemy
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError, NoSuchModuleError

from catalog_refresher.config.fields import field_rules
from catalog_refresher.config.filters import record_filters
from catalog_refresher.config.paths import parse_path
from catalog_refresher.config.payload import csv_format
from catalog_refresher.config.settings import (
    WINDOW_PLACEHOLDERS,
    EndpointSettings,
    EndpointType,
    FileFormat,
    Secret,
)
from catalog_refresher.config.tree import Tree, get
from catalog_refresher.config.values import as_choice, as_text
from catalog_refresher.domain.specs import SourceSpec
from catalog_refresher.errors import ConfigError

__all__ = ["LOCAL_OPTIONS", "SQL_PARAMETERS", "local_endpoint"]

_SQL_OPTIONS = ("Type", "Url", "Query", "Fields", "Filter")
_FILE_OPTIONS = ("Type", "Path", "Format", "Csv", "RecordsPath", "Fields", "Filter")
#: The bound parameters a ``Query`` may use: the history window's first and last day
#: (history sources only) and the incremental cursor (``NULL`` until there is one).
SQL_PARAMETERS = ("date_from", "date_to", "cursor")
#: The options only these endpoints have (``Query`` is an HTTP option too, an object there).
LOCAL_OPTIONS = ("Path", "Format")


def local_endpoint(
    tree: Tree,
    key: str,
    type_: EndpointType,
    *,
    options: Iterable[str],
    secret: Callable[[Any, str], Secret],
    base_dir: Path | None,
    spec: SourceSpec,
) -> EndpointSettings:
    """A sql or file endpoint; ``options`` are every endpoint option, to refuse the others."""
    allowed = _SQL_OPTIONS if type_ is EndpointType.SQL else _FILE_OPTIONS
    for option in options:
        if option not in allowed and get(tree, option) is not None:
            raise ConfigError(f"{key}:{option}", f"not for Type {type_}")
    if type_ is EndpointType.SQL:
        url, query = _sql(tree, key, secret, spec)
        return EndpointSettings(
            type=type_,
            url=url,
            sql=query,
            fields=_fields(tree, key, spec, csv=False),
            filters=_filters(tree, key, csv=False),
        )
    path, format_ = _file(tree, key, base_dir)
    csv = format_ is FileFormat.CSV
    fmt = None
    if get(tree, "Csv") is not None:
        if not csv:
            raise ConfigError(f"{key}:Csv", f"only for Format csv, not {format_}")
        fmt = csv_format(get(tree, "Csv"), f"{key}:Csv")
    records_path = None
    if get(tree, "RecordsPath") is not None:
        if format_ is not FileFormat.JSON:
            raise ConfigError(f"{key}:RecordsPath", f"only for Format json, not {format_}")
        records_path = parse_path(get(tree, "RecordsPath"), f"{key}:RecordsPath")
    return EndpointSettings(
        type=type_,
        path=path,
        format=format_,
        csv=fmt,
        records_path=records_path,
        fields=_fields(tree, key, spec, csv=csv),
        filters=_filters(tree, key, csv=csv),
    )


def _sql(
    tree: Tree, key: str, secret: Callable[[Any, str], Secret], spec: SourceSpec
) -> tuple[str, str]:
    raw_url = get(tree, "Url")
    if raw_url is None:
        raise ConfigError(f"{key}:Url", "required for Type sql")
    url = secret(raw_url, f"{key}:Url")
    # The value is never quoted: it holds the password. The reference is named instead.
    shown = f" ({url.reference})" if url.reference else ""
    try:
        make_url(url.value).get_dialect()
    except NoSuchModuleError:  # an ArgumentError too, so first
        raise ConfigError(f"{key}:Url", f"no SQLAlchemy dialect or driver for it{shown}") from None
    except ArgumentError:
        raise ConfigError(
            f"{key}:Url", f"not a SQLAlchemy URL (dialect+driver://user:password@host/db){shown}"
        ) from None
    raw_query = get(tree, "Query")
    if raw_query is None:
        raise ConfigError(f"{key}:Query", "required for Type sql: the SQL text")
    query = as_text(raw_query, f"{key}:Query").strip()
    if not query:
        raise ConfigError(f"{key}:Query", "must not be empty")
    known = (
        SQL_PARAMETERS
        if spec.is_history
        else tuple(name for name in SQL_PARAMETERS if name not in WINDOW_PLACEHOLDERS)
    )
    for name in sqlalchemy.text(query).compile().params:
        if name in WINDOW_PLACEHOLDERS and not spec.is_history:
            raise ConfigError(f"{key}:Query", f":{name} is only for history sources")
        if name not in known:
            listed = ", ".join(f":{n}" for n in known)
            raise ConfigError(f"{key}:Query", f"unknown bound parameter :{name}; known: {listed}")
    return url.value, query


def _file(tree: Tree, key: str, base_dir: Path | None) -> tuple[str, FileFormat]:
    raw_path = get(tree, "Path")
    if raw_path is None:
        raise ConfigError(f"{key}:Path", "required for Type file: a path or a glob")
    text = as_text(raw_path, f"{key}:Path").strip()
    if not text:
        raise ConfigError(f"{key}:Path", "must not be empty")
    path = Path(text).expanduser()
    if base_dir is not None and not path.is_absolute():
        path = base_dir / path
    if get(tree, "Format") is None:
        raise ConfigError(f"{key}:Format", "required for Type file: csv, json or ndjson")
    format_ = as_choice(get(tree, "Format"), f"{key}:Format", FileFormat, FileFormat.JSON)
    return str(path), format_


def _fields(tree: Tree, key: str, spec: SourceSpec, *, csv: bool) -> Any:
    if get(tree, "Fields") is None:
        return ()
    return field_rules(get(tree, "Fields"), f"{key}:Fields", spec, csv=csv)


def _filters(tree: Tree, key: str, *, csv: bool) -> Any:
    if get(tree, "Filter") is None:
        return ()
    return record_filters(get(tree, "Filter"), f"{key}:Filter", csv=csv)
