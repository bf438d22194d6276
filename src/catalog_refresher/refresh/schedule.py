"""Pure timing rules of contract section 5b; time is always passed in.

Fixed rate: a source is due one interval after its previous slot. A run never
overlaps the previous one of its source, and slots missed while a run took too
long (or the process was down) are not replayed: one run at once, then back on
the grid.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta


@dataclass(frozen=True, slots=True)
class Slot:
    """When to run next, and the grid point that run stands for."""

    run_at: datetime
    grid: datetime


def first_slot(*, last_started_at: datetime | None, interval: timedelta, now: datetime) -> Slot:
    """The first run after start: at once if due (never run, or a whole interval ago)."""
    if last_started_at is None or last_started_at + interval <= now:
        return Slot(run_at=now, grid=now)
    due = last_started_at + interval
    return Slot(run_at=due, grid=due)


def next_slot(previous: Slot, *, interval: timedelta, now: datetime) -> Slot:
    """The slot after ``previous``, judged at ``now`` (when the previous run ended)."""
    due = previous.grid + interval
    if due > now:
        return Slot(run_at=due, grid=due)
    # Missed one or more slots: run once now, standing for the latest missed grid point.
    missed = (now - previous.grid) // interval
    return Slot(run_at=now, grid=previous.grid + missed * interval)


def is_stale(
    *,
    last_success_at: datetime | None,
    started_at: datetime,
    interval: timedelta,
    stale_after_intervals: int,
    now: datetime,
) -> bool:
    """Not succeeded within ``stale_after_intervals`` intervals and at least a minute.

    Before a first success, the time counts from when the service started.
    """
    allowance = max(interval * stale_after_intervals, timedelta(minutes=1))
    return now - (last_success_at or started_at) > allowance
