"""Read the configuration once, at the edge (contract section 3).

``load(path, environment=, environ=)`` turns an ASP.NET-style ``appsettings.json``
into immutable ``Settings``. Layers, later wins:

1. the defaults of ``settings.py``;
2. the file (JSON with ``//`` and ``/* */`` comments);
3. ``<file stem>.<Environment>.json`` beside it, when an environment is named
   (argument, else ``CATALOG_REFRESHER_ENVIRONMENT``); a missing one is fine;
4. environment variables ``Section__Key=value`` for the known sections
   (``CatalogRepository``, ``Sources``, ``Store``, ``Api``, ``Cache``, ``Refresh``,
   ``Alerts``, ``Logging``).

Keys match case-insensitively everywhere; header names keep their spelling. Other
top-level sections (``AllowedHosts``...) are ignored; an unknown key inside a known
section is an error. ``null`` means "not set": the default applies, and a source set
to ``null`` is not configured.

Secret-capable values (endpoint ``Url``, header values, ``Store:Url``,
``Api:AdminToken``, ``Alerts:WebhookUrl`` and its headers) may be written
``env:NAME`` or ``file:/path`` (a relative path is relative to the configuration
file). Every failure is a ``ConfigError`` whose key
is the colon path (``Sources:ErpStock:Url``); no error message and nothing that
``describe`` returns contains a secret.

A backup endpoint inherits nothing from its primary: headers in particular are not
copied, so a token meant for one host never reaches another.

An endpoint's ``Paging``, ``Fields`` and ``Csv`` are checked here too (a wrong
paging kind, a missing page size, a rule for a field the source does not have),
so that a source that could never be read is refused at start.

Value parsing (time spans, typed values, secrets, URL masking) is in ``config_values``.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Iterable, Mapping
from datetime import timedelta
from pathlib import Path
from types import MappingProxyType
from typing import Any

import json5

from catalog_refresher.config_payload import (
    csv_format,
    describe_payload,
    dotted_path,
    field_rules,
    paging_settings,
)
from catalog_refresher.config_tree import Tree, as_object, get, reject_unknown
from catalog_refresher.config_values import (
    EnvText,
    as_bool,
    as_choice,
    as_duration,
    as_int,
    as_interval,
    as_share,
    as_text,
    check_url,
    format_timespan,
    mask_url,
    parse_timespan,
    resolve_secret,
)
from catalog_refresher.domain.specs import SPECS, SPECS_BY_CONFIG_KEY, SourceSpec
from catalog_refresher.errors import ConfigError
from catalog_refresher.settings import (
    AlertSettings,
    ApiSettings,
    CacheSettings,
    EndpointSettings,
    EndpointType,
    FieldRule,
    LogFormat,
    LoggingSettings,
    RefreshSettings,
    RepositoryOptions,
    Secret,
    Settings,
    SourceSettings,
    StoreSettings,
    reveal,
)

__all__ = [
    "ENVIRONMENT_VARIABLE",
    "describe",
    "format_timespan",
    "load",
    "mask_url",
    "parse_timespan",
]

ENVIRONMENT_VARIABLE = "CATALOG_REFRESHER_ENVIRONMENT"
SECTIONS = (
    "CatalogRepository",
    "Sources",
    "Store",
    "Api",
    "Cache",
    "Refresh",
    "Alerts",
    "Logging",
)

_ENDPOINT_KEYS = (
    "Type",
    "Url",
    "Headers",
    "RecordsPath",
    "RequestTimeout",
    "Paging",
    "Fields",
    "Csv",
)
_SOURCE_KEYS = (*_ENDPOINT_KEYS, "Priority", "MaxDeleteShare", "Backup")
_DEFAULT_REPOSITORY = RepositoryOptions()
_DEFAULT_LOG_LEVEL = LoggingSettings().level
# PascalCase option -> field name; derived so a new field needs no second edit here.
_REPOSITORY_OPTIONS = {
    "".join(word.capitalize() for word in f.name.split("_")): f.name
    for f in dataclasses.fields(RepositoryOptions)
}
_POSITIVE_DURATIONS = {"refresh_timeout", "circuit_breaker_open_duration", "health_degraded_after"}
_AT_LEAST_ONE = {
    "max_concurrent_refreshes",
    "retry_attempts",
    "circuit_breaker_failure_threshold",
    "stale_after_intervals",
}
# Retention is subtracted from today's date; beyond a century it would overflow `date`.
_MAX_RETENTION_DAYS = 36_525
_LOG_LEVELS = {"trace": "DEBUG", "debug": "DEBUG", "information": "INFO", "info": "INFO"}
_LOG_LEVELS |= {name: name.upper() for name in ("warning", "error", "critical")}
_HEADER_NAME = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")  # an RFC 9110 token


@dataclasses.dataclass(frozen=True, slots=True)
class _Context:
    environ: Mapping[str, str]
    base_dir: Path | None
    """Where relative ``file:`` secrets are looked up (the configuration file's folder)."""

    def secret(self, value: Any, key: str) -> Secret:
        return resolve_secret(value, key, self.environ, self.base_dir)


def load(path: Path | None, *, environment: str | None, environ: Mapping[str, str]) -> Settings:
    """Build the effective ``Settings`` from the layers described in the module docstring.

    ``path=None`` means defaults and environment variables only. A ``path`` that does
    not exist, or any invalid value, raises ``ConfigError`` naming the key.
    """
    tree: Tree = {}
    if path is not None:
        tree = _read_file(path, required=True)
        name = environment or environ.get(ENVIRONMENT_VARIABLE) or None
        if name is not None:
            if name in {".", ".."} or "/" in name or "\\" in name:
                raise ConfigError("Environment", f"{name!r} is not a valid environment name")
            overlay = path.with_name(f"{path.stem}.{name}{path.suffix or '.json'}")
            tree = _merge(tree, _read_file(overlay, required=False))
    tree = _merge(tree, _environment_layer(environ))

    context = _Context(environ, None if path is None else path.parent)
    logging = _section(tree, "Logging")
    reject_unknown(logging, "Logging", ("Level", "Format"), ignore=("loglevel",))
    return Settings(
        repository=_repository(_section(tree, "CatalogRepository")),
        sources=_sources(_section(tree, "Sources"), context),
        store=_store(_section(tree, "Store"), context),
        api=_api(_section(tree, "Api"), context),
        cache=_cache(_section(tree, "Cache")),
        refresh=_refresh(_section(tree, "Refresh")),
        alerts=_alerts(_section(tree, "Alerts"), context),
        logging=LoggingSettings(
            level=_log_level(get(logging, "Level")),
            format=as_choice(get(logging, "Format"), "Logging:Format", LogFormat, LogFormat.TEXT),
        ),
    )


def describe(settings: Settings) -> dict[str, Any]:
    """The effective configuration as JSON-ready data in the file's own shape, secrets masked.

    Time spans are written back as ``[d.]hh:mm:ss[.fff]``; header values and the admin
    token show only their reference (``***(env:ERP_TOKEN)``); URLs lose their passwords.
    """
    repository = settings.repository
    api = settings.api
    return {
        "CatalogRepository": {
            option: _plain(getattr(repository, name))
            for option, name in _REPOSITORY_OPTIONS.items()
        },
        "Sources": {
            source.spec.config_key: {
                **_describe_endpoint(source.primary),
                "Priority": source.priority,
                "MaxDeleteShare": source.max_delete_share,
                "Backup": None if source.backup is None else _describe_endpoint(source.backup),
            }
            for source in settings.sources.values()
        },
        "Store": {
            "Url": mask_url(reveal(settings.store.url)),
            "Lease": format_timespan(settings.store.lease),
        },
        "Api": {
            "Host": api.host,
            "Port": api.port,
            "AdminToken": None if api.admin_token is None else api.admin_token.masked(),
            "ProtectReads": api.protect_reads,
        },
        "Cache": {"MaxSize": settings.cache.max_size},
        "Refresh": {"WorkerProcesses": settings.refresh.worker_processes},
        "Alerts": {
            "WebhookUrl": None
            if settings.alerts.webhook_url is None
            else mask_url(reveal(settings.alerts.webhook_url)),
            "Headers": dict.fromkeys(settings.alerts.headers, "***"),
            "Timeout": format_timespan(settings.alerts.timeout),
        },
        "Logging": {"Level": settings.logging.level, "Format": settings.logging.format.value},
    }


# --- reading and layering -------------------------------------------------------------------


def _read_file(path: Path, *, required: bool) -> Tree:
    def as_tree(pairs: Iterable[tuple[str, Any]]) -> Tree:
        tree: Tree = {}
        for key, value in pairs:
            if key.lower() in tree:
                # ASP.NET refuses duplicates too; silently picking one would hide a mistake.
                problem = f"key {key!r} appears twice in one object (keys are case-insensitive)"
                raise ConfigError(str(path), problem)
            tree[key.lower()] = (key, value)
        return tree

    try:
        # utf-8-sig: files saved by Visual Studio start with a byte order mark.
        text = path.read_text(encoding="utf-8-sig")
    except FileNotFoundError:
        if not required:
            return {}
        raise ConfigError(str(path), "configuration file not found") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(str(path), f"cannot read the configuration file: {exc}") from exc
    try:
        document = json5.loads(text, object_pairs_hook=as_tree)
    except ValueError as exc:
        raise ConfigError(str(path), f"not valid JSON: {exc}") from exc
    if not isinstance(document, dict):
        raise ConfigError(str(path), "must hold a JSON object")
    return document


def _environment_layer(environ: Mapping[str, str]) -> Tree:
    """``Section__Key__Sub=value`` variables of the known sections, as a tree of ``EnvText``."""
    sections = {name.lower() for name in SECTIONS}
    tree: Tree = {}
    seen: dict[tuple[str, ...], str] = {}
    for variable in sorted(environ):
        parts = variable.split("__")
        if len(parts) < 2 or parts[0].lower() not in sections:
            continue
        key = ":".join(parts)
        if not all(parts):
            raise ConfigError(key, f"environment variable {variable} has an empty key segment")
        lowered = tuple(part.lower() for part in parts)
        if lowered in seen:
            raise ConfigError(key, f"set by both {seen[lowered]} and {variable}")
        seen[lowered] = variable
        node = tree
        for part in parts[:-1]:
            entry = node.get(part.lower())
            if entry is None or not isinstance(entry[1], dict):
                entry = node[part.lower()] = (part, {})
            node = entry[1]
        node[parts[-1].lower()] = (parts[-1], EnvText(environ[variable]))
    return tree


def _merge(base: Tree, overlay: Tree) -> Tree:
    """Objects merge key by key; anything else in ``overlay`` replaces what ``base`` had."""
    merged = dict(base)
    for key, (name, value) in overlay.items():
        old = merged.get(key)
        if old is not None and isinstance(old[1], dict) and isinstance(value, dict):
            merged[key] = (old[0], _merge(old[1], value))
        else:
            merged[key] = (name, value)
    return merged


def _section(tree: Tree, name: str) -> Tree:
    return as_object(get(tree, name), name)


# --- sections --------------------------------------------------------------------------------


def _repository(tree: Tree) -> RepositoryOptions:
    reject_unknown(tree, "CatalogRepository", _REPOSITORY_OPTIONS)
    values: dict[str, Any] = {}
    for option, name in _REPOSITORY_OPTIONS.items():
        raw = get(tree, option)
        if raw is None:
            continue
        key = f"CatalogRepository:{option}"
        default = getattr(_DEFAULT_REPOSITORY, name)
        if isinstance(default, timedelta):
            if name.endswith("_refresh_interval"):
                values[name] = as_interval(raw, key)
            else:
                values[name] = as_duration(raw, key, positive=name in _POSITIVE_DURATIONS)
        elif isinstance(default, bool):
            values[name] = as_bool(raw, key)
        elif isinstance(default, int):
            low, high = (1, None) if name in _AT_LEAST_ONE else (0, _MAX_RETENTION_DAYS)
            values[name] = as_int(raw, key, low, high)
        else:
            values[name] = as_share(raw, key)
    return RepositoryOptions(**values)


def _sources(tree: Tree, context: _Context) -> Mapping[str, SourceSettings]:
    found: dict[str, SourceSettings] = {}
    for lowered, (written, value) in tree.items():
        spec = SPECS_BY_CONFIG_KEY.get(lowered)
        if spec is None:
            known = ", ".join(s.config_key for s in SPECS.values())
            raise ConfigError(f"Sources:{written}", f"unknown source; known: {known}")
        if value is None:
            continue  # a later layer may un-configure a source with null
        key = f"Sources:{spec.config_key}"
        source = as_object(value, key)
        reject_unknown(source, key, _SOURCE_KEYS)
        backup = None
        if get(source, "Backup") is not None:
            backup = as_object(get(source, "Backup"), f"{key}:Backup")
            reject_unknown(backup, f"{key}:Backup", _ENDPOINT_KEYS)
        priority = get(source, "Priority")
        share = get(source, "MaxDeleteShare")
        found[spec.id] = SourceSettings(
            id=spec.id,
            primary=_endpoint(source, key, context, spec),
            backup=None if backup is None else _endpoint(backup, f"{key}:Backup", context, spec),
            priority=0 if priority is None else as_int(priority, f"{key}:Priority"),
            max_delete_share=None if share is None else as_share(share, f"{key}:MaxDeleteShare"),
        )
    # In SPECS order, so every listing of the sources is stable.
    return MappingProxyType({id_: found[id_] for id_ in SPECS if id_ in found})


def _endpoint(tree: Tree, key: str, context: _Context, spec: SourceSpec) -> EndpointSettings:
    """One endpoint; the caller has checked the keys (a source has more than its backup)."""
    type_ = as_choice(get(tree, "Type"), f"{key}:Type", EndpointType, EndpointType.HTTP)
    url = get(tree, "Url")
    if url is not None:
        url = context.secret(url, f"{key}:Url")
        check_url(url, f"{key}:Url", ("http://", "https://"), "an http(s) URL with a host")
    elif type_ is EndpointType.HTTP:
        raise ConfigError(f"{key}:Url", "required for Type http")
    headers = _headers(get(tree, "Headers"), f"{key}:Headers", context)
    records_path = get(tree, "RecordsPath")
    if records_path is not None:
        records_path = dotted_path(records_path, f"{key}:RecordsPath")
    timeout = get(tree, "RequestTimeout")
    if type_ is not EndpointType.HTTP:
        for option in ("Paging", "Fields", "Csv"):
            if get(tree, option) is not None:
                raise ConfigError(f"{key}:{option}", f"only for Type http, not {type_}")
    csv = None if get(tree, "Csv") is None else csv_format(get(tree, "Csv"), f"{key}:Csv")
    if csv is not None and records_path is not None:
        raise ConfigError(f"{key}:RecordsPath", "not for a Csv payload, which is all records")
    paging = None
    if get(tree, "Paging") is not None:
        if csv is not None:
            raise ConfigError(f"{key}:Paging", "not for a Csv payload (no count to follow in it)")
        paging = paging_settings(get(tree, "Paging"), f"{key}:Paging", records_path, spec)
    fields: tuple[FieldRule, ...] = ()
    if get(tree, "Fields") is not None:
        fields = field_rules(get(tree, "Fields"), f"{key}:Fields", spec)
    return EndpointSettings(
        type=type_,
        url=None if url is None else url.value,
        headers=headers,
        records_path=records_path,
        request_timeout=(
            timedelta(seconds=60)
            if timeout is None
            else as_duration(timeout, f"{key}:RequestTimeout", positive=True)
        ),
        paging=paging,
        fields=fields,
        csv=csv,
    )


def _store(tree: Tree, context: _Context) -> StoreSettings:
    reject_unknown(tree, "Store", ("Url", "Lease"))
    values: dict[str, Any] = {}
    if (lease := get(tree, "Lease")) is not None:
        values["lease"] = as_duration(lease, "Store:Lease", positive=True)
        if values["lease"] < timedelta(seconds=3):
            raise ConfigError("Store:Lease", "must be at least 00:00:03 (heartbeats every third)")
    raw = get(tree, "Url")
    if raw is None:
        return StoreSettings(**values)
    url = context.secret(raw, "Store:Url")
    schemes = ("sqlite:///", "postgresql://", "postgres://")
    check_url(url, "Store:Url", schemes, "a sqlite:/// or postgresql:// URL")
    # Kept secret when it was referenced or carries a credential, so it is never printed whole.
    secret = url.reference is not None or mask_url(url.value) != url.value
    return StoreSettings(url=url if secret else url.value, **values)


def _api(tree: Tree, context: _Context) -> ApiSettings:
    reject_unknown(tree, "Api", ("Host", "Port", "AdminToken", "ProtectReads"))
    host = get(tree, "Host")
    if host is not None and not as_text(host, "Api:Host").strip():
        raise ConfigError("Api:Host", "must not be empty")
    values: dict[str, Any] = {} if host is None else {"host": host.strip()}
    if (port := get(tree, "Port")) is not None:
        values["port"] = as_int(port, "Api:Port", 1, 65535)
    if (protect := get(tree, "ProtectReads")) is not None:
        values["protect_reads"] = as_bool(protect, "Api:ProtectReads")
    if (token := get(tree, "AdminToken")) is not None:
        values["admin_token"] = context.secret(token, "Api:AdminToken")
        if not values["admin_token"].value:
            # An empty token would look configured yet guard nothing; say so instead.
            raise ConfigError("Api:AdminToken", "must not be empty; leave it out to disable auth")
    return ApiSettings(**values)


def _cache(tree: Tree) -> CacheSettings:
    reject_unknown(tree, "Cache", ("MaxSize",))
    size = get(tree, "MaxSize")
    return (
        CacheSettings()
        if size is None
        else CacheSettings(max_size=as_int(size, "Cache:MaxSize", 0))
    )


def _headers(value: Any, key: str, context: _Context) -> Mapping[str, str | Secret]:
    headers: dict[str, str | Secret] = {}
    for name, header in as_object(value, key).values():
        header_key = f"{key}:{name}"
        if not _HEADER_NAME.fullmatch(name):
            raise ConfigError(header_key, "not a valid HTTP header name")
        # Any header may carry a credential, so every value is a Secret, literals included.
        headers[name] = secret = context.secret(header, header_key)
        if any(c in secret.value for c in "\r\n\0"):
            raise ConfigError(header_key, "the value contains a line break or NUL character")
    return MappingProxyType(headers)


def _refresh(tree: Tree) -> RefreshSettings:
    reject_unknown(tree, "Refresh", ("WorkerProcesses",))
    workers = get(tree, "WorkerProcesses")
    if workers is None:
        return RefreshSettings()
    return RefreshSettings(worker_processes=as_int(workers, "Refresh:WorkerProcesses", 0, 16))


def _alerts(tree: Tree, context: _Context) -> AlertSettings:
    reject_unknown(tree, "Alerts", ("WebhookUrl", "Headers", "Timeout"))
    values: dict[str, Any] = {}
    if (raw := get(tree, "WebhookUrl")) is not None:
        url = context.secret(raw, "Alerts:WebhookUrl")
        check_url(url, "Alerts:WebhookUrl", ("http://", "https://"), "an http(s) URL")
        values["webhook_url"] = url
    if (headers := get(tree, "Headers")) is not None:
        values["headers"] = _headers(headers, "Alerts:Headers", context)
    if (timeout := get(tree, "Timeout")) is not None:
        values["timeout"] = as_duration(timeout, "Alerts:Timeout", positive=True)
    return AlertSettings(**values)


def _log_level(value: Any) -> str:
    if value is None:
        return _DEFAULT_LOG_LEVEL
    level = _LOG_LEVELS.get(as_text(value, "Logging:Level").strip().lower())
    if level is None:
        raise ConfigError("Logging:Level", "expected DEBUG, INFO, WARNING, ERROR or CRITICAL")
    return level


# --- values ----------------------------------------------------------------------------------


def _plain(value: object) -> object:
    return format_timespan(value) if isinstance(value, timedelta) else value


def _describe_endpoint(endpoint: EndpointSettings) -> dict[str, Any]:
    return {
        "Type": endpoint.type.value,
        "Url": None if endpoint.url is None else mask_url(endpoint.url),
        "Headers": {
            name: value.masked() if isinstance(value, Secret) else "***"
            for name, value in endpoint.headers.items()
        },
        "RecordsPath": endpoint.records_path,
        "RequestTimeout": format_timespan(endpoint.request_timeout),
        **describe_payload(endpoint),
    }
