"""The effective configuration written back in the file's shape, secrets masked (``check-config``).

Every key the file may hold is shown, in the order the sections are documented,
with the value in effect (defaults included), so that the output can be saved
and loaded again. Time spans are written as ``[d.]hh:mm:ss[.fff]``; a secret
shows only its reference (``***(env:ERP_TOKEN)``) and a URL loses its password
and credential-like query values.
"""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Any

from catalog_refresher.config.fields import describe_fields
from catalog_refresher.config.filters import describe_filters
from catalog_refresher.config.paging import COUNT_OPTIONS, POSITION_OPTIONS
from catalog_refresher.config.policies import describe_policies
from catalog_refresher.config.request import REQUEST_OPTIONS
from catalog_refresher.config.settings import (
    SCALAR_OPTIONS,
    CsvFormat,
    EndpointSettings,
    EndpointType,
    HttpMethod,
    IncrementalSettings,
    JsonPath,
    PagingKind,
    PagingSettings,
    RepositoryOptions,
    RequestSettings,
    Secret,
    Settings,
    TlsSettings,
    reveal,
)
from catalog_refresher.config.values import format_timespan, is_sensitive_parameter, mask_url
from catalog_refresher.domain.specs import SPECS

__all__ = ["describe"]


def describe(settings: Settings) -> dict[str, Any]:
    """The effective configuration as JSON-ready data in the file's own shape, secrets masked."""
    api = settings.api
    return {
        "CatalogRepository": _describe_repository(settings.repository),
        "Sources": {
            source.spec.config_key: {
                **_describe_endpoint(source.primary, source.spec.is_history),
                "Priority": source.priority,
                "MaxDeleteShare": source.max_delete_share,
                "Incremental": _describe_incremental(source.incremental),
                **describe_policies(source.validators, source.freshness),
                "Backup": None
                if source.backup is None
                else _describe_endpoint(source.backup, source.spec.is_history),
            }
            for source in settings.sources.values()
        },
        "Store": {
            "Url": _masked_url(settings.store.url),
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
            else _masked_url(settings.alerts.webhook_url),
            "Headers": dict.fromkeys(settings.alerts.headers, "***"),
            "Timeout": format_timespan(settings.alerts.timeout),
        },
        "Logging": {"Level": settings.logging.level, "Format": settings.logging.format.value},
    }


def _describe_repository(options: RepositoryOptions) -> dict[str, Any]:
    """Every source's interval, then the history sources' retention, then the rest."""
    return {
        **{
            spec.interval_option: format_timespan(options.interval(spec)) for spec in SPECS.values()
        },
        **{
            option: options.retentions[spec.id]
            for spec in SPECS.values()
            if (option := spec.retention_option) is not None
        },
        **{option: _plain(getattr(options, name)) for option, name in SCALAR_OPTIONS.items()},
    }


def _plain(value: object) -> object:
    return format_timespan(value) if isinstance(value, timedelta) else value


def _describe_endpoint(endpoint: EndpointSettings, is_history: bool) -> dict[str, Any]:
    if endpoint.type in (EndpointType.SQL, EndpointType.FILE):
        return _describe_local(endpoint)
    return _describe_http(endpoint, is_history)


def _describe_local(endpoint: EndpointSettings) -> dict[str, Any]:
    """A sql or file endpoint: only its own options (``config/local.py`` refuses others)."""
    if endpoint.type is EndpointType.SQL:
        assert endpoint.url is not None
        return {
            "Type": endpoint.type.value,
            "Url": mask_url(endpoint.url),
            "Query": endpoint.sql,
            "Fields": describe_fields(endpoint.fields),
            "Filter": describe_filters(endpoint.filters),
        }
    return {
        "Type": endpoint.type.value,
        "Path": endpoint.path,
        "Format": None if endpoint.format is None else endpoint.format.value,
        "Csv": _describe_csv(endpoint.csv),
        "RecordsPath": _text(endpoint.records_path),
        "Fields": describe_fields(endpoint.fields),
        "Filter": describe_filters(endpoint.filters),
    }


def _describe_csv(csv: CsvFormat | None) -> dict[str, Any] | None:
    if csv is None:
        return None
    return {
        "Delimiter": csv.delimiter,
        "Encoding": csv.encoding,
        "DecimalComma": csv.decimal_comma,
        "HasHeader": csv.has_header,
        "Columns": list(csv.columns) or None,
    }


def _describe_http(endpoint: EndpointSettings, is_history: bool) -> dict[str, Any]:
    return {
        "Type": endpoint.type.value,
        "Url": _describe_url(endpoint),
        "Headers": {
            name: value.masked() if isinstance(value, Secret) else "***"
            for name, value in endpoint.headers.items()
        },
        "RecordsPath": _text(endpoint.records_path),
        "RequestTimeout": format_timespan(endpoint.request_timeout),
        "Paging": None if endpoint.paging is None else _describe_paging(endpoint.paging),
        "Fields": describe_fields(endpoint.fields),
        "Csv": _describe_csv(endpoint.csv),
        "Filter": describe_filters(endpoint.filters),
        # null where the file could not set it (a demo endpoint), so the output loads again.
        "Conditional": endpoint.conditional if endpoint.type is EndpointType.HTTP else None,
        **_describe_request(endpoint, is_history),
    }


def _describe_request(endpoint: EndpointSettings, is_history: bool) -> dict[str, Any]:
    """The request options; ``None`` where the file could not set one (a demo endpoint,
    a GET's ContentType, a snapshot source's WindowParameters), so the output loads again."""
    request = endpoint.request
    if endpoint.type is not EndpointType.HTTP:
        return dict.fromkeys(REQUEST_OPTIONS)
    post = request.method is HttpMethod.POST
    return {
        "Method": request.method.value,
        "Query": {name: _query_value(name, value) for name, value in request.query},
        "Body": None if request.body is None else json.loads(request.body),
        "ContentType": request.content_type if post else None,
        "WindowParameters": request.window_parameters if is_history else None,
        "ConnectTimeout": _timespan(request.connect_timeout),
        "ReadTimeout": _timespan(request.read_timeout),
        "MaxRequestsPerSecond": request.max_requests_per_second,
        "Tls": _describe_tls(request.tls),
        "Proxy": None if request.proxy is None else mask_url(request.proxy.value),
        "ErrorWhen": _describe_error_when(request),
        "ErrorMessagePath": _text(request.error_message_path),
    }


def _query_value(name: str, value: str | Secret) -> str:
    if isinstance(value, Secret):
        return value.masked()
    return "***" if is_sensitive_parameter(name) else value


def _describe_tls(tls: TlsSettings) -> dict[str, Any] | None:
    if tls == TlsSettings():
        return None
    return {
        "Verify": tls.verify,
        "CaBundle": tls.ca_bundle,
        "ClientCertificate": tls.client_certificate,
        "ClientKey": None if tls.client_key is None else tls.client_key.masked(),
    }


def _describe_error_when(request: RequestSettings) -> dict[str, Any] | None:
    when = request.error_when
    if when is None:
        return None
    if when.equals is not None:
        return {"Path": when.path.text, "Equals": when.equals}
    return {"Path": when.path.text, "NotEquals": when.not_equals}


def _timespan(value: timedelta | None) -> str | None:
    return None if value is None else format_timespan(value)


def _describe_paging(paging: PagingSettings) -> dict[str, Any]:
    """The kind's own options, in the order the docs list them."""
    described: dict[str, Any] = {"Kind": paging.kind.value}
    if paging.kind is PagingKind.NEXT:
        described["NextPath"] = _text(paging.next_path)
    if paging.kind is PagingKind.CURSOR:
        described["CursorPath"] = _text(paging.cursor_path)
    if paging.kind in POSITION_OPTIONS:
        described["PageSize"] = paging.page_size
        described[POSITION_OPTIONS[paging.kind][0]] = paging.position_parameter
        described["SizeParameter"] = paging.size_parameter
    if paging.kind in COUNT_OPTIONS:
        described[COUNT_OPTIONS[paging.kind]] = _text(paging.count_path)
    described["MaxPages"] = paging.max_pages
    if paging.kind is PagingKind.PAGE:
        described["FirstPage"] = paging.first_page
    if paging.kind in POSITION_OPTIONS:
        described["In"] = paging.parameters_in.value
    return described


def _text(path: JsonPath | None) -> str | None:
    return None if path is None else path.text


def _describe_url(endpoint: EndpointSettings) -> str | None:
    if endpoint.url is None:
        return None
    return _masked_url(Secret(endpoint.url, endpoint.url_reference))


def _masked_url(url: str | Secret) -> str:
    """A URL read from a secret store (``env:``, ``file:``) by its name alone: a webhook's
    path or an export's ``?hash=`` is the credential; any other with its password and
    credential-like query values masked."""
    if isinstance(url, Secret) and url.reference is not None:
        return url.masked()
    return mask_url(reveal(url))


def _describe_incremental(incremental: IncrementalSettings | None) -> dict[str, Any] | None:
    if incremental is None:
        return None
    tombstone = incremental.tombstone
    every = incremental.full_every
    return {
        "CursorField": incremental.cursor_field.text,
        "CursorParameter": incremental.cursor_parameter,
        "Tombstone": None
        if tombstone is None
        else {"Path": tombstone.path.text, "Equals": tombstone.equals},
        "FullEvery": None if every is None else format_timespan(every),
        "FullEveryRuns": incremental.full_every_runs,
    }
