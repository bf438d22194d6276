"""The ``store`` fixture: every contract test runs once per Store implementation.

An implementation is an ``Implementation`` entry in ``IMPLEMENTATIONS``: how to open
a store on one test's database, how to read that database's schema and run a script
on it from outside the store, and the optional hooks a few tests need to reach
inside it. PostgreSQL tests run each in a schema of their own, dropped after.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path

import pytest

from catalog_refresher.store.base import Store
from catalog_refresher.store.postgres import PostgresStore
from catalog_refresher.store.sqlite import SqliteStore
from tests.contract.schema import (
    Schema,
    describe_postgres,
    describe_sqlite,
    run_postgres_script,
    run_sqlite_script,
)
from tests.postgres import create_schema, drop_schema, schema_for

Action = Callable[[], object]


@dataclass(frozen=True, slots=True, kw_only=True)
class Implementation:
    open: Callable[[Path], Store]
    """Open a store on the database that belongs to the test's ``tmp_path``."""
    dialect: str
    """Its folder of SQL files under ``store/sql/``."""
    describe: Callable[[Path], Schema]
    """The schema of that database, read from the database's own catalog."""
    run_script: Callable[[Path, str], None]
    """Run SQL statements on that database, outside any store."""
    break_apply: Callable[[Store, pytest.MonkeyPatch], None] | None = None
    """Make the next ``apply`` fail after it wrote rows, before it commits."""
    count_work: Callable[[Store, Action], int] | None = None
    """Deterministic database work ``action`` took (for complexity, not timing)."""
    cleanup: Callable[[Path], None] | None = None
    """Remove the test's database after the test."""


# --- SQLite -------------------------------------------------------------------------------


def _break_apply(store: Store, monkeypatch: pytest.MonkeyPatch) -> None:
    def explode(*args: object) -> None:
        raise RuntimeError("the disk caught fire")

    # Runs inside apply's transaction, after the rows were written.
    monkeypatch.setattr(store, "_record_touched", explode)


def _sqlite_file(tmp_path: Path) -> Path:
    return tmp_path / "catalog.db"


def _sqlite_open(tmp_path: Path) -> Store:
    return SqliteStore(_sqlite_file(tmp_path))


def _sqlite_count_work(store: Store, action: Action) -> int:
    assert isinstance(store, SqliteStore)
    ticks = 0

    def tick() -> int:
        nonlocal ticks
        ticks += 1
        return 0  # go on

    store._writer.set_progress_handler(tick, 1000)  # once per 1000 VM instructions
    try:
        action()
    finally:
        store._writer.set_progress_handler(None, 0)
    return ticks


SQLITE = Implementation(
    open=_sqlite_open,
    dialect="sqlite",
    describe=lambda tmp_path: describe_sqlite(_sqlite_file(tmp_path)),
    run_script=lambda tmp_path, script: run_sqlite_script(_sqlite_file(tmp_path), script),
    break_apply=_break_apply,
    count_work=_sqlite_count_work,
)

# --- PostgreSQL ---------------------------------------------------------------------------


def _postgres_url(tmp_path: Path) -> str:
    return create_schema(schema_for(str(tmp_path)))


def _postgres_open(tmp_path: Path) -> Store:
    return PostgresStore(_postgres_url(tmp_path))


POSTGRES = Implementation(
    open=_postgres_open,
    dialect="postgres",
    describe=lambda tmp_path: describe_postgres(_postgres_url(tmp_path)),
    run_script=lambda tmp_path, script: run_postgres_script(_postgres_url(tmp_path), script),
    break_apply=_break_apply,
    cleanup=lambda tmp_path: drop_schema(schema_for(str(tmp_path))),
)

IMPLEMENTATIONS = [
    pytest.param(SQLITE, id="sqlite"),
    pytest.param(POSTGRES, id="postgres", marks=pytest.mark.postgres),
]


# --- fixtures -------------------------------------------------------------------------------


class Opener:
    """Opens migrated stores on one test's database and closes them all at the end."""

    def __init__(self, implementation: Implementation, tmp_path: Path) -> None:
        self.implementation = implementation
        self.tmp_path = tmp_path
        self._open: list[Store] = []
        self._others: list[Opener] = []

    def open(self, *, migrated: bool = True) -> Store:
        """A store on the test's database; ``migrated=False`` leaves its schema alone."""
        store = self.implementation.open(self.tmp_path)
        if migrated:
            store.migrate()
        self._open.append(store)
        return store

    async def reopen(self, store: Store) -> Store:
        """Close ``store`` and open a new one on the same database (a process restart)."""
        await store.aclose()
        store.close()
        self._open.remove(store)
        return self.open()

    def beside(self, name: str) -> Opener:
        """An opener on a second database of the test's (closed with this one)."""
        other = Opener(self.implementation, self.tmp_path / name)
        self._others.append(other)
        return other

    def describe(self) -> Schema:
        """The schema of the test's database."""
        return self.implementation.describe(self.tmp_path)

    def run_script(self, script: str) -> None:
        self.implementation.run_script(self.tmp_path, script)

    async def close_all(self) -> None:
        for other in self._others:
            await other.close_all()
        for store in self._open:
            await store.aclose()
            store.close()
        self._open.clear()
        if self.implementation.cleanup is not None:
            self.implementation.cleanup(self.tmp_path)


@pytest.fixture(params=IMPLEMENTATIONS)
async def opener(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Opener]:
    """Opens stores of one implementation on a fresh database."""
    opener = Opener(request.param, tmp_path)
    yield opener
    await opener.close_all()


@pytest.fixture
def store(opener: Opener) -> Store:
    """A migrated, empty store of each implementation in turn."""
    return opener.open()


@pytest.fixture
def break_next_apply(
    opener: Opener, store: Store, monkeypatch: pytest.MonkeyPatch
) -> Callable[[], None]:
    """Call it to make ``store``'s next ``apply`` fail midway (skips where unsupported)."""
    hook = opener.implementation.break_apply
    if hook is None:
        pytest.skip("this implementation cannot be broken inside a transaction yet")
    return lambda: hook(store, monkeypatch)


@pytest.fixture
def work_of(opener: Opener, store: Store) -> Callable[[Action], int]:
    """Counts the database work an action takes (skips where unsupported)."""
    hook = opener.implementation.count_work
    if hook is None:
        pytest.skip("this implementation has no work counter yet")
    return lambda action: hook(store, action)
