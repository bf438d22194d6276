"""Logging: the seed's log lines, with a timestamp and the source id.

The refresh loop emits events (``refresh/events.py``); ``RunLog``, an
``Observer`` of the bus, turns them into log records. Every record carries
``source`` and ``run_id`` as structured fields, which the JSON format writes
out for log shippers.
"""

from __future__ import annotations

import json
import logging
import sys
from collections.abc import Iterable
from datetime import UTC, datetime

from catalog_refresher.config.settings import LogFormat
from catalog_refresher.domain.runs import RunStatus
from catalog_refresher.domain.specs import SPECS
from catalog_refresher.refresh.events import (
    ConfigReloaded,
    Event,
    FailingOver,
    MemoryPressure,
    Purged,
    RunDeferred,
    RunFinished,
    RunRetrying,
    RunStarted,
    SourceNotConfigured,
    SourcePaused,
    SourceResumed,
    StoreWriteFailed,
)

log = logging.getLogger("catalog_refresher.refresh")


def error_line(source: str) -> str:
    """``Error refreshing ERP stock data``; ``Error refreshing sales data`` (not "data data")."""
    name = SPECS[source].log_name
    return f"Error refreshing {name}" if name.endswith("data") else f"Error refreshing {name} data"


class RunLog:
    """The ``EventBus`` observer that writes the contract's log lines (section 5)."""

    def __init__(self, logger: logging.Logger = log) -> None:
        self.logger = logger

    def on_event(self, event: Event) -> None:
        match event:
            case RunStarted(run=run):
                self._log(logging.INFO, run.source, run.id, f"Starting {_name(run.source)} refresh")
            case RunRetrying(run=run, attempt=attempt, attempts=attempts, error=error):
                self._log(
                    logging.WARNING,
                    run.source,
                    run.id,
                    f"Retry {attempt}/{attempts} for {run.source}: {error}",
                )
            case FailingOver(run=run, error=error):
                self._log(
                    logging.WARNING,
                    run.source,
                    run.id,
                    f"Primary of {run.source} failed ({error}); failing over to its backup",
                )
            case RunFinished(run=run, valid=valid):
                self._finished(event, valid)
            case SourceNotConfigured(source=source, reason=reason):
                self._log(logging.INFO, source, None, f"{source} is not refreshed: {reason}")
            case Purged(source=source, rows=rows):
                self._log(logging.INFO, source, None, f"Purged {rows} {source} rows past retention")
            case SourcePaused(source=source, reason=reason, auto=auto):
                by = "auto-paused" if auto else "paused"
                why = f": {reason}" if reason else ""
                level = logging.WARNING if auto else logging.INFO
                self._log(level, source, None, f"{source} {by}{why}")
            case SourceResumed(source=source):
                self._log(logging.INFO, source, None, f"{source} resumed")
            case ConfigReloaded(changes=changes, error=None):
                what = "; ".join(changes) or "nothing changed"
                self._log(logging.INFO, None, None, f"Configuration reloaded: {what}")
            case ConfigReloaded(error=error):
                self._log(logging.ERROR, None, None, f"Configuration reload refused: {error}")
            case MemoryPressure():
                self._pressure(event)
            case StoreWriteFailed(source=source, error=error, run_id=run_id, repeated=again):
                what = f"the end of run {run_id}" if run_id is not None else "a run"
                self._log(
                    logging.DEBUG if again else logging.ERROR,
                    source,
                    run_id,
                    f"The store cannot be written: {what} of {source} was not recorded ({error})",
                )
            case RunDeferred(source=source, run=run, rss=rss, limit=limit):
                self._log(
                    logging.INFO,
                    source,
                    run.id if run is not None else None,
                    f"{source} waits: memory {_mb(rss)} above the {_mb(limit)} limit",
                )

    def _pressure(self, event: MemoryPressure) -> None:
        rss, limit = _mb(event.rss), _mb(event.limit)
        fields: dict[str, object] = {"rss_bytes": event.rss, "limit_bytes": event.limit}
        if event.above:
            share = f"{event.cache_share:.0%}"
            message = (
                f"Memory {rss} above the {limit} limit: cache shrunk to {share} of its size;"
                " runs of lower-priority sources wait"
            )
            self._log(logging.WARNING, "", None, message, fields)
        else:
            message = f"Memory {rss} within the {limit} limit again: deferred runs go"
            self._log(logging.INFO, "", None, message, fields)

    def _finished(self, event: RunFinished, valid: int) -> None:
        run = event.run
        name, unit = _name(run.source), SPECS[run.source].log_unit
        match run.status:
            case RunStatus.SUCCEEDED:
                c = run.counts
                level, message = logging.INFO, f"Completed {name} refresh. Updated {valid} {unit}"
                extra: dict[str, object] = {
                    "inserted": c.inserted,
                    "updated": c.updated,
                    "deleted": c.deleted,
                    "invalid": c.invalid,
                    "duration_s": round(event.duration, 3),
                }
                self._log(level, run.source, run.id, message, extra)
                if c.invalid:
                    self._log(
                        logging.WARNING,
                        run.source,
                        run.id,
                        f"{c.invalid} invalid {name} records skipped: "
                        + "; ".join(run.invalid_reasons[:3]),
                    )
                return
            case RunStatus.FAILED | RunStatus.TIMED_OUT:
                level, message = logging.ERROR, f"{error_line(run.source)}: {run.error}"
            case RunStatus.REJECTED:
                level, message = logging.WARNING, f"Rejected {name} refresh: {run.error}"
            case RunStatus.SKIPPED:
                level, message = logging.WARNING, f"Skipped {name} refresh: {run.error}"
            case _:
                level, message = logging.WARNING, f"Cancelled {name} refresh"
        self._log(level, run.source, run.id, message)

    def _log(
        self,
        level: int,
        source: str | None,
        run_id: int | None,
        message: str,
        extra: dict[str, object] | None = None,
    ) -> None:
        self.logger.log(
            level, message, extra={"source": source, "run_id": run_id, "fields": extra or {}}
        )


def _mb(size: int) -> str:
    return f"{size / (1024 * 1024):.0f} MB"


def _name(source: str) -> str:
    return SPECS[source].log_name


class TextFormatter(logging.Formatter):
    """``2026-11-29T10:00:00.123Z INFO  erp_stock run=12 Starting ERP stock refresh``."""

    def format(self, record: logging.LogRecord) -> str:
        source = getattr(record, "source", None) or "-"
        run_id = getattr(record, "run_id", None)
        run = f" run={run_id}" if run_id is not None else ""
        line = f"{_timestamp(record)} {record.levelname:<7} {source}{run} {record.getMessage()}"
        if record.exc_info:
            line += "\n" + self.formatException(record.exc_info)
        return line


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, source, run_id, message, and any fields."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, object] = {
            "time": _timestamp(record),
            "level": record.levelname,
            "logger": record.name,
            "source": getattr(record, "source", None),
            "run_id": getattr(record, "run_id", None),
            "message": record.getMessage(),
        }
        entry.update(getattr(record, "fields", None) or {})
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry, ensure_ascii=False)


class RedactSecrets(logging.Filter):
    """Defence in depth: replaces any configured secret value that reaches a log line."""

    def __init__(self, secrets: Iterable[str]) -> None:
        super().__init__()
        # Very short values would redact ordinary words; sources never log them anyway.
        self.secrets = sorted({s for s in secrets if len(s) >= 4}, key=len, reverse=True)

    def filter(self, record: logging.LogRecord) -> bool:
        if not self.secrets:
            return True
        message = record.getMessage()
        redacted = message
        for secret in self.secrets:
            redacted = redacted.replace(secret, "***")
        if redacted != message:
            record.msg, record.args = redacted, None
        return True


def setup_logging(
    *, level: str = "INFO", format: LogFormat = LogFormat.TEXT, secrets: Iterable[str] = ()
) -> None:
    """Send the service's logs to stderr in the chosen format."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter() if format is LogFormat.JSON else TextFormatter())
    handler.addFilter(RedactSecrets(secrets))
    root = logging.getLogger("catalog_refresher")
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    root.propagate = False
    # httpx logs every request's full URL at INFO; a URL may carry a token.
    logging.getLogger("httpx").setLevel(logging.WARNING)


def _timestamp(record: logging.LogRecord) -> str:
    moment = datetime.fromtimestamp(record.created, UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"
