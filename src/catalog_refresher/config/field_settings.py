"""A record field read from elsewhere in the payload (``Fields``), read by
``config/fields.py`` and used by ``sources/mapping.py``; ``config.settings`` re-exports it."""

from __future__ import annotations

from dataclasses import dataclass

from catalog_refresher.config.json_path import JsonPath

#: A ``Default`` value: what a field takes when the payload has nothing for it.
Scalar = str | int | float | bool

#: ``FieldRule.path`` until ``__post_init__`` sets it.
_UNSET_PATH = JsonPath(text="", steps=())


@dataclass(frozen=True, slots=True, kw_only=True)
class FieldRule:
    """One record field read from somewhere else in the payload, and the value rules on it.

    The rules apply in the order of the fields below (``sources/values.py``); the
    text rules only to text. Each is checked when the configuration is read
    (``config/fields.py``).
    """

    field: str
    """The record field of contract section 4 (``product_code``)."""
    source: str
    """Where the payload has it, as the configuration wrote it (``cenik[0].kod``)."""
    remove_prefix: str | None = None
    """Dropped from the start of the (trimmed) value: ``code:`` of an ABRA Flexi relation."""
    trim: bool = True
    """Strip white space around a text (and around each part the rules below cut)."""
    after: str | None = None
    """Keep the text after the first occurrence (``": "`` of ``"KRM001: name"``)."""
    before: str | None = None
    """Keep the text before the first occurrence (applied after ``after``)."""
    pattern: str | None = None
    """A regular expression searched in the text: its first group, or the whole match."""
    empty_as_null: bool | None = None
    """``""`` becomes null; ``None`` is the default: true for optional fields."""
    default: Scalar | None = None
    """The value when the payload has none (absent or null); ``None``: no default."""
    value_map: tuple[tuple[str, str], ...] = ()
    """Exact text -> value, applied last (``typPohybu.vydej`` -> ``issue``)."""
    map_default: str | None = None
    """The value of a text that is not in ``value_map``; ``None`` keeps it as it is."""
    path: JsonPath = _UNSET_PATH
    """``source`` parsed (``config/paths.py``); by default ``source`` is one key (a name)."""

    def __post_init__(self) -> None:
        if not self.path.steps:
            # Frozen: set the way dataclasses set fields themselves.
            object.__setattr__(self, "path", JsonPath(text=self.source, steps=(self.source,)))

    @property
    def has_value_rules(self) -> bool:
        """Whether any rule is set to other than its default (else a path says it all)."""
        return self != FieldRule(field=self.field, source=self.source, path=self.path)

    @property
    def transforms(self) -> bool:
        """Whether a rule other than ``Trim`` and ``EmptyAsNull`` is set."""
        plain = FieldRule(
            field=self.field,
            source=self.source,
            path=self.path,
            trim=self.trim,
            empty_as_null=self.empty_as_null,
        )
        return self != plain
