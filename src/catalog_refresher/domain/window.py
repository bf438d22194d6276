"""The date window of a history source (contract section 1).

A history source is asked for the rows of a window of days, and only the rows
inside it are valid; the window comes from the source's retention option
(``refresh/runner.py``) and travels with the run.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date


@dataclass(frozen=True, slots=True, kw_only=True)
class Window:
    """The date window a history source is asked for, both ends inclusive."""

    date_from: date
    date_to: date
