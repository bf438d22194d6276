"""The effective configuration written back in the file's shape, secrets masked (``check-config``).

Every key the file may hold is shown, in the order the sections are documented,
with the value in effect (defaults included), so that the output can be saved
and loaded again. Time spans are written as ``[d.]hh:mm:ss[.fff]``; a secret
shows only its reference (``***(env:ERP_TOKEN)``) and a URL loses its password
and credential-like query values.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from catalog_refresher.config.fields import describe_fields
from catalog_refresher.config.filters import describe_filters
from catalog_refresher.config.payload import PAGING_OPTIONS
from catalog_refresher.config.settings import (
    SCALAR_OPTIONS,
    EndpointSettings,
    JsonPath,
    PagingKind,
    PagingSettings,
    RepositoryOptions,
    Secret,
    Settings,
    reveal,
)
from catalog_refresher.config.values import format_timespan, mask_url
from catalog_refresher.domain.specs import SPECS

__all__ = ["describe"]


def describe(settings: Settings) -> dict[str, Any]:
    """The effective configuration as JSON-ready data in the file's own shape, secrets masked."""
    api = settings.api
    return {
        "CatalogRepository": _describe_repository(settings.repository),
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


def _describe_endpoint(endpoint: EndpointSettings) -> dict[str, Any]:
    csv = endpoint.csv
    return {
        "Type": endpoint.type.value,
        "Url": None if endpoint.url is None else mask_url(endpoint.url),
        "Headers": {
            name: value.masked() if isinstance(value, Secret) else "***"
            for name, value in endpoint.headers.items()
        },
        "RecordsPath": _text(endpoint.records_path),
        "RequestTimeout": format_timespan(endpoint.request_timeout),
        "Paging": None if endpoint.paging is None else _describe_paging(endpoint.paging),
        "Fields": describe_fields(endpoint.fields),
        "Csv": None
        if csv is None
        else {
            "Delimiter": csv.delimiter,
            "Encoding": csv.encoding,
            "DecimalComma": csv.decimal_comma,
            "HasHeader": csv.has_header,
            "Columns": list(csv.columns) or None,
        },
        "Filter": describe_filters(endpoint.filters),
    }


def _describe_paging(paging: PagingSettings) -> dict[str, Any]:
    position_option, count_option = PAGING_OPTIONS[paging.kind][:2]
    described: dict[str, Any] = {
        "Kind": paging.kind.value,
        "PageSize": paging.page_size,
        position_option: paging.position_parameter,
        "SizeParameter": paging.size_parameter,
        count_option: _text(paging.count_path),
        "MaxPages": paging.max_pages,
    }
    if paging.kind is PagingKind.PAGE:
        described["FirstPage"] = paging.first_page
    return described


def _text(path: JsonPath | None) -> str | None:
    return None if path is None else path.text
