"""The schema's SQL files, and which of them a store still needs.

Each dialect has a folder under ``store/sql/``: numbered migrations
(``001_initial.sql``, ``002_...``), each applied once and recorded in
``schema_migrations``, and ``schema.sql``, the whole current schema. A new
store (nothing recorded yet) is created from ``schema.sql`` in one step and
records every migration as applied; an existing one applies, in order, the
numbered migrations it lacks. ``tests/contract/test_migrations.py`` proves the
two roads end at the same schema.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from importlib import resources

#: Created by the store before it reads which migrations it has.
BOOKKEEPING = (
    "CREATE TABLE IF NOT EXISTS schema_migrations (version INTEGER PRIMARY KEY, name TEXT NOT NULL)"
)
APPLIED = "SELECT version FROM schema_migrations"

# The names are inlined into the bookkeeping SQL, so only these are taken.
_NUMBERED = re.compile(r"(\d{3})_[a-z0-9_]+\.sql")


@dataclass(frozen=True, slots=True, kw_only=True)
class Migration:
    version: int
    name: str
    sql: str


@dataclass(frozen=True, slots=True, kw_only=True)
class Step:
    """One script to run in one transaction, and the migrations it stands for."""

    name: str
    """Its file's name (for error messages)."""
    sql: str
    migrations: tuple[Migration, ...]

    @property
    def record(self) -> str:
        """The ``INSERT`` that records this step's migrations as applied."""
        rows = ", ".join(f"({m.version}, '{m.name}')" for m in self.migrations)
        return f"INSERT INTO schema_migrations (version, name) VALUES {rows}"


def migrations(dialect: str) -> list[Migration]:
    """The numbered migrations of ``dialect`` (``sqlite``, ``postgres``), in order."""
    found = [
        Migration(version=int(match[1]), name=path.name, sql=path.read_text())
        for path in resources.files(f"catalog_refresher.store.sql.{dialect}").iterdir()
        if (match := _NUMBERED.fullmatch(path.name))
    ]
    return sorted(found, key=lambda m: m.version)


def schema(dialect: str) -> str:
    """The whole current schema of ``dialect``: what a new store is created from."""
    return (resources.files(f"catalog_refresher.store.sql.{dialect}") / "schema.sql").read_text()


def plan(dialect: str, applied: set[int], *, to: int | None = None) -> list[Step]:
    """What a store that has ``applied`` must run to reach the latest version.

    ``to`` stops at that version, taking the numbered migrations even for a new
    store (how the tests build a store as an older release left it).
    """
    known = migrations(dialect)
    if not applied and to is None:
        return [Step(name="schema.sql", sql=schema(dialect), migrations=tuple(known))]
    return [
        Step(name=m.name, sql=m.sql, migrations=(m,))
        for m in known
        if m.version not in applied and (to is None or m.version <= to)
    ]
