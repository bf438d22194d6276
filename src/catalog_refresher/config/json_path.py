"""A path into a JSON document, as the settings hold it (parsed by ``config/paths.py``).

Its own module, so that settings defined beside ``settings.py`` can hold paths
without an import circle; ``config.settings`` re-exports it.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class JsonPath:
    """A path into a JSON document (``cenik[0].kod``), parsed by ``config/paths.py``:
    ``text`` as written, ``steps`` its object keys (``str``) and array indexes (``int``)."""

    text: str
    steps: tuple[str | int, ...]

    def __str__(self) -> str:
        return self.text

    @property
    def is_flat(self) -> bool:
        """One key, no nesting: what a plain field name is."""
        return len(self.steps) == 1 and isinstance(self.steps[0], str)
