"""The placeholders a request template may hold, and a parsed template
(``config/templates.py`` parses, ``sources/requests.py`` fills in); ``config.settings``
re-exports them."""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["CURSOR_PLACEHOLDER", "PLACEHOLDERS", "WINDOW_PLACEHOLDERS", "Placeholder", "Template"]

WINDOW_PLACEHOLDERS = ("date_from", "date_to")
"""The placeholders of a history source's window: its first and last day."""
CURSOR_PLACEHOLDER = "cursor"
"""The stored cursor of an ``Incremental`` source, as stored (empty on a full run)."""
PLACEHOLDERS = (*WINDOW_PLACEHOLDERS, "today", CURSOR_PLACEHOLDER)
"""Every placeholder a template may hold; ``today`` is the run's UTC date, for any source."""


@dataclass(frozen=True, slots=True)
class Placeholder:
    """``{date_to}`` or ``{date_to:%d.%m.%Y}`` in a template."""

    name: str
    """One of ``PLACEHOLDERS``."""
    format: str | None = None
    """A ``strftime`` format; ``None`` writes the ISO date ``YYYY-MM-DD``."""


@dataclass(frozen=True, slots=True)
class Template:
    """Text with placeholders, parsed by ``config/templates.py``: literal text and
    ``Placeholder`` parts in order (``{{``/``}}`` already turned into braces)."""

    parts: tuple[str | Placeholder, ...]

    @property
    def has_placeholders(self) -> bool:
        return any(isinstance(part, Placeholder) for part in self.parts)
