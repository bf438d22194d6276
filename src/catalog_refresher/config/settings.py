"""Immutable settings, the product of ``config.load``.

Names mirror the configuration file (contract section 3) in snake_case. Nothing
after ``config.load`` reads files or environment variables again.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from datetime import timedelta
from types import MappingProxyType
from typing import TypeVar

from catalog_refresher.config.field_settings import FieldRule, Scalar
from catalog_refresher.config.incremental_settings import IncrementalSettings, Tombstone
from catalog_refresher.config.json_path import JsonPath
from catalog_refresher.config.placeholders import (
    CURSOR_PLACEHOLDER,
    PLACEHOLDERS,
    WINDOW_PLACEHOLDERS,
    Placeholder,
    Template,
)
from catalog_refresher.config.policy_settings import FreshnessSettings, ValidatorSettings
from catalog_refresher.domain.specs import SPECS, SourceSpec

__all__ = [  # defined beside, read by all as settings
    "CURSOR_PLACEHOLDER",
    "PLACEHOLDERS",
    "WINDOW_PLACEHOLDERS",
    "FieldRule",
    "FreshnessSettings",
    "IncrementalSettings",
    "JsonPath",
    "Placeholder",
    "Scalar",
    "Template",
    "Tombstone",
    "ValidatorSettings",
]

_T = TypeVar("_T")


@dataclass(frozen=True, slots=True)
class Secret:
    """A value that must never be logged or printed.

    ``reference`` is how the configuration named it (``env:ERP_TOKEN``,
    ``file:/run/secrets/erp``, or ``None`` for a literal).
    """

    value: str = field(repr=False)
    reference: str | None = None

    def __str__(self) -> str:
        return self.masked()

    def masked(self) -> str:
        return f"***({self.reference})" if self.reference else "***"


def reveal(value: str | Secret) -> str:
    """The plain text of a setting that may be a secret; only for the wire."""
    return value.value if isinstance(value, Secret) else value


@dataclass(frozen=True, slots=True, kw_only=True)
class RepositoryOptions:
    """The ``CatalogRepository`` section: the seed's options plus the service's own (5b).

    The per-source options are held by source id; their names in the file
    (``ErpStockRefreshInterval``, ``SalesHistoryRetentionDays``) and their defaults
    are the specs' (``domain/specs.py``). A source left out of ``intervals`` or
    ``retentions`` gets its spec's default, so both always hold every source they may.
    """

    intervals: Mapping[str, timedelta] = field(default_factory=lambda: MappingProxyType({}))
    """Refresh interval by source id; ``00:00:00`` disables the source."""
    retentions: Mapping[str, int] = field(default_factory=lambda: MappingProxyType({}))
    """The window of each history source, in days, by source id."""

    max_concurrent_refreshes: int = 3
    refresh_timeout: timedelta = timedelta(minutes=10)
    enable_metrics: bool = True

    # The service's own options (contract section 5b).
    retry_attempts: int = 3
    retry_base_delay: timedelta = timedelta(seconds=2)
    circuit_breaker_failure_threshold: int = 5
    circuit_breaker_open_duration: timedelta = timedelta(minutes=1)
    max_delete_share: float = 0.5
    stale_after_intervals: int = 3
    health_degraded_after: timedelta = timedelta(minutes=30)
    shutdown_grace_period: timedelta = timedelta(seconds=30)
    versions_kept: int = 10
    versions_retention: timedelta = timedelta(days=30)
    """00:00:00: versions are pruned by count only (store/versions.py)."""
    memory_limit_mb: int | None = None
    """The ceiling of the process tree's RSS (``refresh/pressure.py``); ``None``: none."""
    unconditional_every: timedelta = timedelta(days=1)
    """At least this often a run asks without validators (``refresh/incremental.py``)."""
    auto_pause_after_failures: int = 0
    """Pause a source after this many consecutive failed runs; 0 (the default): never."""

    def __post_init__(self) -> None:
        # Frozen: the completed mappings are set the way dataclasses set fields themselves.
        intervals = _complete(self.intervals, _INTERVALS, "an interval: no such source")
        retentions = _complete(self.retentions, _RETENTIONS, "a retention: not a history source")
        object.__setattr__(self, "intervals", intervals)
        object.__setattr__(self, "retentions", retentions)

    def interval(self, spec: SourceSpec) -> timedelta:
        return self.intervals[spec.id]

    def retention_days(self, spec: SourceSpec) -> int | None:
        """The history window in days; ``None`` for a snapshot source, which has none."""
        return self.retentions.get(spec.id)


_INTERVALS = {spec.id: spec.default_interval for spec in SPECS.values()}
_RETENTIONS = {
    spec.id: spec.default_retention_days
    for spec in SPECS.values()
    if spec.default_retention_days is not None
}

#: The scalar ``CatalogRepository`` options: the file's PascalCase name -> the field that
#: holds it. Derived from the fields, so a new option needs no second edit; the
#: per-source options are named by the specs.
SCALAR_OPTIONS: Mapping[str, str] = MappingProxyType(
    {
        "".join(word.capitalize() for word in f.name.split("_")): f.name
        for f in fields(RepositoryOptions)
        if f.name not in {"intervals", "retentions"}
    }
)


def _complete(
    given: Mapping[str, _T], defaults: Mapping[str, _T], refusal: str
) -> Mapping[str, _T]:
    """``given`` with a default for every source it leaves out, in SPECS order."""
    if unknown := sorted(set(given) - set(defaults)):
        raise ValueError(f"{', '.join(unknown)} given {refusal}")
    return MappingProxyType({id_: given.get(id_, default) for id_, default in defaults.items()})


class EndpointType(enum.StrEnum):
    HTTP = "http"
    DEMO = "demo"
    SQL = "sql"  # a query on a database (sources/sql.py, config/local.py)
    FILE = "file"  # a file or a glob of files: the snapshot (sources/files.py)


class FileFormat(enum.StrEnum):
    """How a ``Type`` file endpoint's files are written (``ndjson``: a record per line)."""

    CSV = "csv"
    JSON = "json"
    NDJSON = "ndjson"


class PagingKind(enum.StrEnum):
    OFFSET = "offset"
    """``start``/``limit`` style: the offset of the first record and a page size (ABRA Flexi)."""
    PAGE = "page"
    """``page``/``itemsPerPage`` style: a page number and a page size (Shoptet)."""
    NEXT = "next"
    """A link to the next page inside each page's body (``links.next``)."""
    LINK = "link"
    """An RFC 8288 ``Link`` response header with ``rel="next"``."""
    CURSOR = "cursor"
    """An opaque token inside each page, sent back to ask for the next one."""


class ParametersIn(enum.StrEnum):
    """Where the paging parameters travel."""

    QUERY = "query"
    BODY = "body"
    """In the JSON body, at (dotted) keys: ABRA Flexi's ``POST .../query``."""


#: Pages one fetch may take before it fails: a source that never ends must not loop forever.
DEFAULT_MAX_PAGES = 10_000


@dataclass(frozen=True, slots=True, kw_only=True)
class PagingSettings:
    """How a source's records are spread over several requests (``sources/paging.py``)."""

    kind: PagingKind
    page_size: int | None = None
    """Records asked for per page; required for ``offset`` and ``page``, optional for
    ``cursor``, none for ``next`` and ``link`` (their links say it)."""
    size_parameter: str | None = None
    """The parameter that carries ``page_size``."""
    position_parameter: str | None = None
    """The parameter that says which page: the offset, the page number, or the cursor."""
    first_page: int = 1
    """The number of the first page (``page`` kind only)."""
    count_path: JsonPath | None = None
    """Path, inside each page, to the total number of records (``offset`` kind) or of
    pages (``page`` kind); without it paging stops at the first short or empty page."""
    max_pages: int = DEFAULT_MAX_PAGES
    parameters_in: ParametersIn = ParametersIn.QUERY
    """Whether the position and size go in the query or, at dotted keys, in the body."""
    next_path: JsonPath | None = None
    """Where each page holds the link to the next one (``next`` kind)."""
    cursor_path: JsonPath | None = None
    """Where each page holds the cursor of the next one (``cursor`` kind)."""


class HttpMethod(enum.StrEnum):
    GET = "GET"
    POST = "POST"


@dataclass(frozen=True, slots=True, kw_only=True)
class TlsSettings:
    """How an HTTPS endpoint's server is checked and how this service proves who it is."""

    verify: bool = True
    ca_bundle: str | None = None
    """A PEM file of the certificate authorities to trust instead of the system's."""
    client_certificate: str | None = None
    """A PEM file with the client certificate (and possibly its key)."""
    client_key: Secret | None = None
    """The client certificate's private key, PEM text (``file:``/``env:`` capable)."""


@dataclass(frozen=True, slots=True, kw_only=True)
class ErrorCondition:
    """When a page is the system's error envelope rather than data (``ErrorWhen``)."""

    path: JsonPath
    equals: str | None = None
    """An error when the value at ``path``, as trimmed text, is this."""
    not_equals: str | None = None
    """An error when the value at ``path`` is present and, as trimmed text, is not this."""


@dataclass(frozen=True, slots=True, kw_only=True)
class RequestSettings:
    """How one endpoint's requests are made (``sources/requests.py``, ``http_client.py``)."""

    method: HttpMethod = HttpMethod.GET
    query: tuple[tuple[str, str | Secret], ...] = ()
    """Parameters added to the URL's own query, in order; values are templates."""
    body: str | None = None
    """The JSON body template as JSON text (placeholders inside its strings); POST only."""
    content_type: str = "application/json"
    window_parameters: bool = True
    """History sources also send ``date_from``/``date_to`` in the query."""
    connect_timeout: timedelta | None = None
    """Bound on connecting; ``None``: RequestTimeout."""
    read_timeout: timedelta | None = None
    """Bound on each wait for data from the server; ``None``: RequestTimeout."""
    max_requests_per_second: float | None = None
    tls: TlsSettings = field(default_factory=TlsSettings)
    proxy: Secret | None = None
    """The proxy every request goes through (a URL, credentials allowed)."""
    error_when: ErrorCondition | None = None
    error_message_path: JsonPath | None = None
    """Where an error envelope holds the system's message."""


class FilterOperator(enum.StrEnum):
    """How a ``Filter`` condition compares the value at its path (``sources/filters.py``)."""

    EQUALS = "Equals"
    NOT_EQUALS = "NotEquals"
    IN = "In"
    NOT_IN = "NotIn"
    MATCHES = "Matches"


@dataclass(frozen=True, slots=True, kw_only=True)
class FilterCondition:
    """One condition of an endpoint's ``Filter``: a record is kept only if all hold."""

    path: JsonPath
    operator: FilterOperator
    values: tuple[str, ...]
    """The texts compared with (``comparable_text``); for ``Matches`` the one expression."""


def comparable_text(value: object) -> str | None:
    """A JSON value as ``Filter`` and ``Map`` compare it: text trimmed; numbers and booleans
    as JSON writes them (``1``, ``1.5``, ``true``), so ``1``, ``1.0`` and ``"1"`` are equal;
    ``None`` for no value (absent, null, an object or an array), which equals nothing."""
    if isinstance(value, str):
        return value.strip()
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return str(int(value)) if value.is_integer() else repr(value)
    return None


@dataclass(frozen=True, slots=True, kw_only=True)
class CsvFormat:
    """A payload that is a CSV document rather than JSON (``sources/csv_payload.py``)."""

    delimiter: str = ","
    encoding: str = "utf-8"
    decimal_comma: bool = False
    """Numbers are written ``87,5``: the comma is read as the decimal point."""
    has_header: bool = True
    """The first row names the columns (and is skipped when ``columns`` are given)."""
    columns: tuple[str, ...] = ()
    """The column names, in order; needed when there is no header row."""


@dataclass(frozen=True, slots=True, kw_only=True)
class EndpointSettings:
    """Where one source (or its backup) is read from, and how its payload is read."""

    type: EndpointType
    url: str | None = None
    url_reference: str | None = None
    """How the file named the URL when it came from a secret store (``env:SHOP_URL``):
    such a URL (a Shoptet export's ``?hash=``) is a credential, never printed."""
    headers: Mapping[str, str | Secret] = field(default_factory=lambda: MappingProxyType({}))
    records_path: JsonPath | None = None
    """Where the records array is inside a JSON page (``data.items``)."""
    request_timeout: timedelta = timedelta(seconds=60)
    paging: PagingSettings | None = None
    fields: tuple[FieldRule, ...] = ()
    """Record fields the payload names differently; empty when it uses the contract's names.
    A tuple, not a mapping, so that it pickles to worker processes with the payload."""
    csv: CsvFormat | None = None
    request: RequestSettings = field(default_factory=RequestSettings)
    """How each request is made: method, body, query, timeouts, TLS, proxy, error envelope."""
    filters: tuple[FilterCondition, ...] = ()
    """Only records for which every condition holds are this source's (``Filter``)."""
    # Type sql's Query text; Type file's absolute Path (or glob) and Format.
    sql: str | None = None
    path: str | None = None
    format: FileFormat | None = None
    conditional: bool = True
    """Send the last good fetch's validators (``If-None-Match``, ``If-Modified-Since``)."""


@dataclass(frozen=True, slots=True, kw_only=True)
class SourceSettings:
    """One entry of ``Sources``."""

    id: str
    primary: EndpointSettings
    backup: EndpointSettings | None = None
    priority: int = 0
    max_delete_share: float | None = None
    """Overrides ``CatalogRepository.MaxDeleteShare`` for this source."""
    incremental: IncrementalSettings | None = None
    """Read only the changes since the stored cursor between full runs (``Incremental``)."""
    validators: ValidatorSettings = field(default_factory=ValidatorSettings)
    freshness: FreshnessSettings | None = None

    @property
    def spec(self) -> SourceSpec:
        return SPECS[self.id]


class LogFormat(enum.StrEnum):
    TEXT = "text"
    JSON = "json"


@dataclass(frozen=True, slots=True, kw_only=True)
class StoreSettings:
    url: str | Secret = "sqlite:///catalog.db"
    lease: timedelta = timedelta(seconds=30)
    """PostgreSQL: a replica silent this long is dead and its sources are taken over."""


@dataclass(frozen=True, slots=True, kw_only=True)
class ApiSettings:
    host: str = "127.0.0.1"
    port: int = 8000
    admin_token: Secret | None = None
    protect_reads: bool = False
    """Require the admin token on the read endpoints too (health and metrics stay open)."""


@dataclass(frozen=True, slots=True, kw_only=True)
class RefreshSettings:
    worker_processes: int = 1
    """Processes that validate and apply payloads, so that large refreshes never
    stall the API; 0 does that work on threads of the service process instead."""


@dataclass(frozen=True, slots=True, kw_only=True)
class CacheSettings:
    max_size: int = 10_000
    """Product aggregates kept in memory; 0 turns the cache off."""


@dataclass(frozen=True, slots=True, kw_only=True)
class AlertSettings:
    """Where to POST source state changes (failing, circuit open, recovered)."""

    webhook_url: str | Secret | None = None
    headers: Mapping[str, str | Secret] = field(default_factory=lambda: MappingProxyType({}))
    timeout: timedelta = timedelta(seconds=10)


@dataclass(frozen=True, slots=True, kw_only=True)
class LoggingSettings:
    level: str = "INFO"
    format: LogFormat = LogFormat.TEXT


@dataclass(frozen=True, slots=True, kw_only=True)
class Settings:
    repository: RepositoryOptions = field(default_factory=RepositoryOptions)
    sources: Mapping[str, SourceSettings] = field(default_factory=lambda: MappingProxyType({}))
    """Configured sources by source id; a source missing here is not refreshed."""
    store: StoreSettings = field(default_factory=StoreSettings)
    api: ApiSettings = field(default_factory=ApiSettings)
    cache: CacheSettings = field(default_factory=CacheSettings)
    refresh: RefreshSettings = field(default_factory=RefreshSettings)
    alerts: AlertSettings = field(default_factory=AlertSettings)
    logging: LoggingSettings = field(default_factory=LoggingSettings)

    def enabled(self, source_id: str) -> bool:
        """Configured, and with a non-zero interval."""
        spec = SPECS[source_id]
        return source_id in self.sources and self.repository.interval(spec) > timedelta(0)
