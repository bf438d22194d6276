"""Each section of the merged configuration tree read into its immutable settings.

Keys match case-insensitively everywhere; header names keep their spelling. Other
top-level sections (``AllowedHosts``...) are ignored; an unknown key inside a known
section is an error. ``null`` means "not set": the default applies, and a source set
to ``null`` is not configured.

Secret-capable values (endpoint ``Url``, header values, ``Query`` values, ``Proxy``,
``Tls:ClientKey``, ``Store:Url``, ``Api:AdminToken``, ``Alerts:WebhookUrl`` and
its headers) may be written
``env:NAME`` or ``file:/path`` (a relative path is relative to the configuration
file). Every failure is a ``ConfigError`` whose key is the colon path
(``Sources:ErpStock:Url``); no error message contains a secret.

A backup endpoint inherits nothing from its primary: headers in particular are not
copied, so a token meant for one host never reaches another. An endpoint's
``Csv`` is read by ``payload.py``, ``Paging`` by ``paging.py``, ``Fields`` by
``fields.py``, ``Filter`` by ``filters.py``, and how it is requested (``Method``,
``Body``, ``Tls``...) by ``request.py``; a sql or file endpoint all by ``local.py``.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Mapping
from datetime import timedelta
from pathlib import Path
from types import MappingProxyType
from typing import Any

from catalog_refresher.config.fields import field_rules
from catalog_refresher.config.filters import record_filters
from catalog_refresher.config.incremental import check_cursor_target, incremental_settings
from catalog_refresher.config.local import LOCAL_OPTIONS, local_endpoint
from catalog_refresher.config.paging import paging_settings
from catalog_refresher.config.paths import parse_path
from catalog_refresher.config.payload import csv_format
from catalog_refresher.config.policies import freshness_settings, validator_settings
from catalog_refresher.config.request import REQUEST_OPTIONS, check_url_template, request_settings
from catalog_refresher.config.settings import (
    SCALAR_OPTIONS,
    AlertSettings,
    ApiSettings,
    CacheSettings,
    EndpointSettings,
    EndpointType,
    FieldRule,
    FilterCondition,
    LogFormat,
    LoggingSettings,
    RefreshSettings,
    RepositoryOptions,
    Secret,
    Settings,
    SourceSettings,
    StoreSettings,
)
from catalog_refresher.config.tree import Tree, as_object, get, reject_unknown
from catalog_refresher.config.values import (
    as_bool,
    as_choice,
    as_duration,
    as_int,
    as_interval,
    as_share,
    as_text,
    check_url,
    mask_url,
    resolve_secret,
)
from catalog_refresher.domain.specs import SPECS, SPECS_BY_CONFIG_KEY, SourceSpec
from catalog_refresher.errors import ConfigError

__all__ = ["read_settings"]

_ENDPOINT_KEYS = (
    "Type",
    "Url",
    "Headers",
    "RecordsPath",
    "RequestTimeout",
    "Paging",
    "Fields",
    "Csv",
    "Filter",
    "Conditional",
    *REQUEST_OPTIONS,
    *LOCAL_OPTIONS,
)
_SOURCE_KEYS = (
    *_ENDPOINT_KEYS,
    *("Priority", "MaxDeleteShare", "Backup", "Incremental", "Validators", "Freshness"),
)
_DEFAULT_REPOSITORY = RepositoryOptions()
# Every CatalogRepository option, in the order check-config shows them.
_REPOSITORY_OPTIONS = (
    *(spec.interval_option for spec in SPECS.values()),
    *(spec.retention_option for spec in SPECS.values() if spec.retention_option is not None),
    *SCALAR_OPTIONS,
)
_ZERO_TURNS_OFF = {"auto_pause_after_failures"}
_DEFAULT_LOG_LEVEL = LoggingSettings().level
# Counts that are off by default: null or 0; else a positive integer.
_OPTIONAL_COUNTS = {"memory_limit_mb"}
_MAX_MEMORY_LIMIT_MB = 1024 * 1024
_POSITIVE_DURATIONS = {"refresh_timeout", "circuit_breaker_open_duration", "health_degraded_after"}
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


def read_settings(tree: Tree, *, environ: Mapping[str, str], base_dir: Path | None) -> Settings:
    """The ``Settings`` of the merged ``tree``; ``base_dir`` anchors relative ``file:`` secrets."""
    context = _Context(environ, base_dir)
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


def _section(tree: Tree, name: str) -> Tree:
    return as_object(get(tree, name), name)


def _repository(tree: Tree) -> RepositoryOptions:
    """Each source's interval, the history sources' retention, then the scalar options."""
    reject_unknown(tree, "CatalogRepository", _REPOSITORY_OPTIONS)
    intervals: dict[str, timedelta] = {}
    for spec in SPECS.values():
        if (raw := get(tree, spec.interval_option)) is not None:
            intervals[spec.id] = as_interval(raw, f"CatalogRepository:{spec.interval_option}")
    retentions: dict[str, int] = {}
    for spec in SPECS.values():
        option = spec.retention_option
        if option is not None and (raw := get(tree, option)) is not None:
            key = f"CatalogRepository:{option}"
            retentions[spec.id] = as_int(raw, key, 0, _MAX_RETENTION_DAYS)
    values: dict[str, Any] = {}
    for option, name in SCALAR_OPTIONS.items():
        raw = get(tree, option)
        if raw is None:
            continue
        key = f"CatalogRepository:{option}"
        default = getattr(_DEFAULT_REPOSITORY, name)
        if isinstance(default, timedelta):
            values[name] = as_duration(raw, key, positive=name in _POSITIVE_DURATIONS)
        elif isinstance(default, bool):
            values[name] = as_bool(raw, key)
        elif name in _OPTIONAL_COUNTS:
            # 0, like null, turns it off; the bound (a tebibyte in MB) catches bytes given.
            values[name] = as_int(raw, key, 0, _MAX_MEMORY_LIMIT_MB) or None
        elif isinstance(default, int):
            # Every count among them (refreshes, attempts, failures, intervals) needs one;
            # but AutoPauseAfterFailures, whose 0 turns it off.
            values[name] = as_int(raw, key, 0 if name in _ZERO_TURNS_OFF else 1)
        else:
            values[name] = as_share(raw, key)
    return RepositoryOptions(intervals=intervals, retentions=retentions, **values)


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
        primary = _endpoint(source, key, context, spec)
        incremental = incremental_settings(
            get(source, "Incremental"),
            f"{key}:Incremental",
            is_history=spec.is_history,
            csv=primary.csv is not None,
        )
        check_cursor_target(incremental, primary, key)
        second = None if backup is None else _endpoint(backup, f"{key}:Backup", context, spec)
        if second is not None:
            check_cursor_target(incremental, second, f"{key}:Backup")
        found[spec.id] = SourceSettings(
            id=spec.id,
            primary=primary,
            backup=second,
            priority=0 if priority is None else as_int(priority, f"{key}:Priority"),
            max_delete_share=None if share is None else as_share(share, f"{key}:MaxDeleteShare"),
            incremental=incremental,
            validators=validator_settings(get(source, "Validators"), f"{key}:Validators"),
            freshness=freshness_settings(get(source, "Freshness"), f"{key}:Freshness"),
        )
    # In SPECS order, so every listing of the sources is stable.
    return MappingProxyType({id_: found[id_] for id_ in SPECS if id_ in found})


def _endpoint(tree: Tree, key: str, context: _Context, spec: SourceSpec) -> EndpointSettings:
    """One endpoint; the caller has checked the keys (a source has more than its backup)."""
    type_ = as_choice(get(tree, "Type"), f"{key}:Type", EndpointType, EndpointType.HTTP)
    if type_ in (EndpointType.SQL, EndpointType.FILE):
        return local_endpoint(
            tree,
            key,
            type_,
            options=_ENDPOINT_KEYS,
            secret=context.secret,
            base_dir=context.base_dir,
            spec=spec,
        )
    for option in LOCAL_OPTIONS:
        if get(tree, option) is not None:
            raise ConfigError(f"{key}:{option}", f"only for Type file, not {type_}")
    url = get(tree, "Url")
    if url is not None:
        url = context.secret(url, f"{key}:Url")
        check_url(url, f"{key}:Url", ("http://", "https://"), "an http(s) URL with a host")
        check_url_template(url, f"{key}:Url", has_window=spec.is_history)
    elif type_ is EndpointType.HTTP:
        raise ConfigError(f"{key}:Url", "required for Type http")
    headers = _headers(get(tree, "Headers"), f"{key}:Headers", context)
    records_path = get(tree, "RecordsPath")
    if records_path is not None:
        records_path = parse_path(records_path, f"{key}:RecordsPath")
    timeout = get(tree, "RequestTimeout")
    if type_ is not EndpointType.HTTP:
        for option in ("Paging", "Fields", "Csv", "Filter", "Conditional", *REQUEST_OPTIONS):
            if get(tree, option) is not None:
                raise ConfigError(f"{key}:{option}", f"only for Type http, not {type_}")
    request = request_settings(
        tree,
        key,
        url=url,
        headers=headers,
        has_window=spec.is_history,
        secret=context.secret,
        base_dir=context.base_dir,
    )
    csv = None if get(tree, "Csv") is None else csv_format(get(tree, "Csv"), f"{key}:Csv")
    if csv is not None and records_path is not None:
        raise ConfigError(f"{key}:RecordsPath", "not for a Csv payload, which is all records")
    if csv is not None:
        for option in ("ErrorWhen", "ErrorMessagePath"):
            if get(tree, option) is not None:
                raise ConfigError(f"{key}:{option}", "not for a Csv payload: it has no envelope")
    paging = None
    if get(tree, "Paging") is not None:
        if csv is not None:
            raise ConfigError(f"{key}:Paging", "not for a Csv payload (no count to follow in it)")
        paging = paging_settings(
            get(tree, "Paging"), f"{key}:Paging", records_path, request, has_window=spec.is_history
        )
    fields: tuple[FieldRule, ...] = ()
    if get(tree, "Fields") is not None:
        fields = field_rules(get(tree, "Fields"), f"{key}:Fields", spec, csv=csv is not None)
    filters: tuple[FilterCondition, ...] = ()
    if get(tree, "Filter") is not None:
        filters = record_filters(get(tree, "Filter"), f"{key}:Filter", csv=csv is not None)
    return EndpointSettings(
        type=type_,
        url=None if url is None else url.value,
        url_reference=None if url is None else url.reference,
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
        request=request,
        filters=filters,
        conditional=(
            True
            if get(tree, "Conditional") is None
            else as_bool(get(tree, "Conditional"), f"{key}:Conditional")
        ),
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
