"""What the operator commands print: tables for a terminal, plain columns for a pipe."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from rich.table import Table


def age(iso: str | None, now: datetime) -> str:
    """``"2 min ago"`` / ``"in 4 min"`` for an ISO time; a dash for none."""
    if not iso:
        return "–"
    seconds = round((now - datetime.fromisoformat(iso)).total_seconds())
    span = abs(seconds)
    if span < 2:
        return "just now"
    for size, unit in ((86400, "d"), (3600, "h"), (60, "min"), (1, "s")):
        if span >= size:
            amount = f"{span // size} {unit}"
            break
    return f"{amount} ago" if seconds >= 0 else f"in {amount}"


STATUS_COLUMNS = (
    "source",
    "health",
    "last status",
    "last success",
    "next run",
    "circuit",
    "failures",
    "records",
    "paused",
    "pinned",
)
_HEALTH_STYLE = {"Healthy": "green", "Degraded": "yellow", "Unhealthy": "red"}


def status_rows(
    sources: Sequence[Mapping[str, Any]], health: Mapping[str, Any], now: datetime
) -> list[tuple[str, ...]]:
    """One row per source, in STATUS_COLUMNS order."""
    entries = health.get("entries", {})
    rows: list[tuple[str, ...]] = []
    for source in sources:
        entry = entries.get(source["id"], {})
        pinned = source.get("pinned_run_id") if source.get("pinned") else None
        rows.append(
            (
                source["id"],
                entry.get("status", "–") if source["enabled"] else "disabled",
                source.get("last_status") or "never run",
                age(source.get("last_success_at"), now),
                age(source.get("next_run_at"), now) if source["enabled"] else "–",
                source["circuit_state"].replace("_", "-"),
                str(source["consecutive_failures"]),
                f"{source['record_count']:,}",
                _paused(source),
                f"run {pinned}"
                if pinned not in (None, False, True)
                else ("yes" if pinned else "no"),
            )
        )
    return rows


def _paused(source: Mapping[str, Any]) -> str:
    if not source.get("paused"):
        return "no"
    reason = source.get("pause_reason")
    return f"yes: {reason}" if reason else "yes"


def status_table(rows: Sequence[tuple[str, ...]], overall: str) -> Table:
    table = Table(title=f"catalog-refresher: {overall}", title_justify="left")
    for column in STATUS_COLUMNS:
        table.add_column(column, justify="right" if column in ("failures", "records") else "left")
    for row in rows:
        style = _HEALTH_STYLE.get(row[1], "")
        table.add_row(*row, style=style if row[1] != "Healthy" else "")
    return table


def plain(rows: Sequence[tuple[str, ...]], columns: Sequence[str]) -> str:
    """Tab-separated, header first: what a pipe into ``cut``/``awk`` wants."""
    lines = ["\t".join(columns), *("\t".join(row) for row in rows)]
    return "\n".join(lines)
