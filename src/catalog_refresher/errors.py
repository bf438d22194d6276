"""The project's exception tree: every error the service raises on purpose.

Foreign errors (httpx, sqlite3, psycopg, msgspec) are translated at the boundary
that meets them and chained with ``raise ... from exc``; ``describe`` turns a
chain into the one line an audit entry, a log line or the CLI shows::

    CatalogRefresherError
    ├── ConfigError                 a configuration key is missing or wrong
    ├── SourceError                 fetching from an external system failed
    │   ├── TransientSourceError    worth retrying: connection, timeout, 429, 5xx
    │   │   ├── SourceConnectionError
    │   │   ├── SourceTimeoutError
    │   │   └── SourceStatusError (also permanent, see ``transient``)
    │   └── InvalidPayloadError     the payload is not JSON, or not the expected shape
    ├── InvalidRecord               one record broke a rule: counted and left out
    ├── PublishRejected             the publish guard refused a run's data
    ├── SourcePinned                the source is pinned to a version: a run publishes nothing
    ├── VersionNotKept              no such version of the source (never one, or pruned)
    ├── StoreError                  the store failed; nothing was applied
    │   ├── StoreUnreachable        its server cannot be reached (down, no connection in time)
    │   ├── RunFenced               the run was finished elsewhere (timed out, cancelled)
    │   └── IndexOutOfDate          the source's data changed since the diff; diff again
    ├── UnknownSourceError          no such source id
    ├── SourceNotEnabled            the source is not configured, or is disabled
    ├── ReloadRefused               a configuration reload was refused; the old one stays
    ├── RunConflict                 a forced refresh cannot join the run in flight
    ├── NotOurTurn                  a peer replica has the source (ran it, or runs it)
    ├── ServiceStopping             the service is shutting down: no new run starts
    ├── AlertDeliveryError          the alert webhook did not take an alert
    │   └── AlertStatusError        it answered with an error status (transient for 429, 5xx)
    ├── ServeError                  the HTTP API could not be served
    ├── ServiceCallError            an operator command's call to the running service failed
    └── ApiProblem                  an HTTP problem a route answers on purpose (404, 401...)

Each class's docstring is its default message. ``transient`` tells whether the
failure may pass, so that trying again is worth it (``refresh/resilience.py``
retries exactly those); ``error_type`` is the label of a failed run in the audit
log and the metrics.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import timedelta


class CatalogRefresherError(Exception):
    """catalog-refresher failed."""

    #: The ``error_type`` label used in metrics and the audit log.
    error_type = "other"
    #: Worth retrying: the same call may succeed later.
    transient = False

    def __init__(self, message: str | None = None) -> None:
        super().__init__(message or (self.__doc__ or "").strip())


class ConfigError(CatalogRefresherError):
    """The configuration is invalid.

    The message is one line whatever the file holds: control characters of a key or a
    value it quotes (a key written with a newline in it) are shown escaped (``\\n``).
    """

    def __init__(self, key: str, problem: str) -> None:
        self.key = key
        self.problem = problem
        super().__init__(f"{_one_line(key)}: {_one_line(problem)}")


_CONTROL = {n: f"\\x{n:02x}" for n in (*range(0x20), 0x7F)} | {
    0x0A: "\\n",
    0x0D: "\\r",
    0x09: "\\t",
}


def _one_line(text: str) -> str:
    """``text`` with its control characters escaped, so that it stays on one line."""
    return text.translate(_CONTROL)


class SourceError(CatalogRefresherError):
    """The external system could not be read."""


class TransientSourceError(SourceError):
    """The external system failed in a way that may pass; worth retrying."""

    transient = True


class SourceConnectionError(TransientSourceError):
    """Could not connect to the external system."""

    error_type = "connection"


class SourceTimeoutError(TransientSourceError):
    """The external system did not answer in time."""

    error_type = "timeout"


class SourceStatusError(TransientSourceError):
    """The external system answered with an error status."""

    error_type = "http_status"

    def __init__(
        self,
        status_code: int,
        url: str,
        *,
        detail: str | None = None,
        retry_after: float | None = None,
    ) -> None:
        """``detail`` is what the answer said (never a secret); ``retry_after`` the seconds
        its ``Retry-After`` asked to wait, which a retry honours."""
        self.status_code = status_code
        self.transient = transient_status(status_code)
        self.retry_after = retry_after
        message = f"HTTP {status_code} from {url}"
        if detail:
            message += f": {detail}"
        if retry_after is not None:
            message += f" (retry after {retry_after:g} s)"
        super().__init__(message)


class InvalidPayloadError(SourceError):
    """The payload is not valid JSON, or not the expected shape."""

    error_type = "invalid_payload"


class InvalidRecord(CatalogRefresherError):
    """One record broke a rule; the message says which. It is counted and left out:
    a run fails on a payload it cannot read, never on one bad record."""


class PublishRejected(CatalogRefresherError):
    """The publish guard refused the data; the previous data stays served."""

    error_type = "rejected"


class SourcePinned(CatalogRefresherError):
    """The source is pinned to an older version; the run published nothing (``skipped``)."""

    error_type = "pinned"


class VersionNotKept(CatalogRefresherError):
    """No such kept version of the source."""

    def __init__(self, source: str, run_id: int, *, pruned: bool) -> None:
        self.source = source
        self.run_id = run_id
        self.pruned = pruned
        why = "was pruned (beyond VersionsKept or VersionsRetention)" if pruned else "is unknown"
        super().__init__(f"version {run_id} of {source} {why}")


class StoreError(CatalogRefresherError):
    """The store failed; nothing was applied."""

    error_type = "store"


class StoreUnreachable(StoreError):
    """The store's server cannot be reached (down, restarting, or no connection in time)."""


class RunFenced(StoreError):
    """The run was already finished (timed out or cancelled); its data was not applied."""


class IndexOutOfDate(StoreError):
    """The source's data changed since the diff was computed; diff again."""


class UnknownSourceError(CatalogRefresherError):
    """No such source."""

    def __init__(self, source_id: str) -> None:
        self.source_id = source_id
        super().__init__(f"unknown source {source_id!r}")


class SourceNotEnabled(CatalogRefresherError):
    """The source is not configured, or its interval is 00:00:00."""


class ReloadRefused(CatalogRefresherError):
    """A configuration reload was refused; the running configuration stays.

    ``restart``: the new file is valid but changes what only a restart can change.
    """

    def __init__(self, message: str, *, restart: bool = False) -> None:
        self.restart = restart
        super().__init__(message)


class RunConflict(CatalogRefresherError):
    """An unforced run of this source is already in flight; a forced one cannot join it."""


class NotOurTurn(CatalogRefresherError):
    """A peer replica ran this source within its interval, or runs it now."""

    def __init__(self, source: str, retry_after: timedelta) -> None:
        super().__init__(f"{source}: a peer has it; ask again in {retry_after}")
        self.retry_after = retry_after


class ServiceStopping(CatalogRefresherError):
    """The service is shutting down; no new run starts."""


class AlertDeliveryError(CatalogRefresherError):
    """The alert webhook did not take the alert."""

    def __init__(self, reason: str, *, transient: bool) -> None:
        """``reason`` reaches log lines: never the webhook's URL or a header value."""
        self.transient = transient
        super().__init__(reason)


class AlertStatusError(AlertDeliveryError):
    """The alert webhook answered with an error status."""

    def __init__(self, status_code: int) -> None:
        self.status_code = status_code
        super().__init__(f"HTTP {status_code}", transient=transient_status(status_code))


def transient_status(status_code: int) -> bool:
    """An HTTP error status that may pass (429 and 5xx); any other one will not."""
    return status_code == 429 or status_code >= 500


class ServeError(CatalogRefresherError):
    """The HTTP API could not be served."""


class ServiceCallError(CatalogRefresherError):
    """The running service did not answer, or refused the call."""


class ApiProblem(CatalogRefresherError):
    """A problem a route answers on purpose: 404 for an unknown product, 401, 403.

    ``api/problems.py`` turns it into a problem details response with ``status``,
    the type ``urn:catalog-refresher:problem:<slug>`` and ``detail``; ``title``
    defaults to the status's reason phrase.
    """

    def __init__(
        self,
        status: int,
        slug: str,
        detail: str,
        *,
        title: str | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(detail)
        self.status = status
        self.slug = slug
        self.title = title
        self.detail = detail
        self.headers = dict(headers or {})


#: How many links of a cause chain ``describe`` follows.
MAX_CAUSES = 4


def describe(exc: BaseException) -> str:
    """The error and its causes (``raise ... from``) on one line, each said once.

    Messages often quote their cause already (``f"not valid JSON: {exc}"``): a cause
    whose text is in the line so far is not repeated. The traceback that
    ``concurrent.futures`` chains to an error re-raised from a worker process is left
    out: it belongs in a debug log, not in an audit entry or an operator's terminal.
    """
    parts: list[str] = []
    current: BaseException | None = exc
    while current is not None and len(parts) < MAX_CAUSES:
        if type(current).__name__ != "_RemoteTraceback":
            text = " ".join(str(current).split()) or type(current).__name__
            if not any(text in part for part in parts):
                parts.append(text)
        current = current.__cause__
    return ": ".join(parts)
