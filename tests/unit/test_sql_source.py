"""SQL sources on a real SQLite database: chunks, window and cursor parameters, errors, a run."""

from __future__ import annotations

import sqlite3
from datetime import date
from pathlib import Path

import pytest

from catalog_refresher.config.settings import EndpointSettings, EndpointType, FieldRule
from catalog_refresher.domain.runs import RunMode, RunStatus
from catalog_refresher.domain.specs import SPECS
from catalog_refresher.domain.window import Window
from catalog_refresher.errors import SourceConnectionError, SourceError, TransientSourceError
from catalog_refresher.refresh.pipeline import Pipeline
from catalog_refresher.refresh.validate import validate
from catalog_refresher.sources.base import FetchState
from catalog_refresher.sources.decoding import read_page
from catalog_refresher.sources.sql import SqlSource
from catalog_refresher.store.sqlite import SqliteStore
from catalog_refresher.testing import FakeClock
from tests.helpers import T0
from tests.incremental_world import refresh_from
from tests.service_harness import build

STOCK_QUERY = "SELECT kod AS product_code, qty AS stock, regal FROM stock ORDER BY kod"


def _database(path: Path, rows: int = 10) -> str:
    with sqlite3.connect(path) as db:
        db.execute("CREATE TABLE stock (kod TEXT, qty REAL, regal TEXT, changed_at TEXT)")
        db.executemany(
            "INSERT INTO stock VALUES (?, ?, ?, ?)",
            [(f"P{i:03}", i * 1.5, f"R{i}", f"2024-01-{i % 28 + 1:02}") for i in range(rows)],
        )
        db.execute("CREATE TABLE sales (code TEXT, day TEXT, b2b REAL, b2c REAL)")
        db.executemany(
            "INSERT INTO sales VALUES (?, ?, ?, ?)",
            [("P1", f"2024-03-{d:02}", d, 1) for d in range(1, 31)],
        )
    return f"sqlite:///{path}"


def _sql(url: str, query: str, *fields: FieldRule) -> EndpointSettings:
    return EndpointSettings(type=EndpointType.SQL, url=url, sql=query, fields=fields)


REGAL = FieldRule(field="location", source="regal")


async def test_rows_come_in_chunks_of_json_pages_read_like_http(tmp_path: Path) -> None:
    """10 rows at 3 a chunk make 4 pages; columns are field names, Fields maps the rest."""
    url = _database(tmp_path / "erp.db")
    source = SqlSource("erp_stock", _sql(url, STOCK_QUERY, REGAL), chunk_rows=3)
    payload = await source.fetch(None)
    assert len(payload.pages) == 4
    assert read_page(payload.pages[0]).startswith(b'[{"product_code":"P000","stock":0.0,')
    batch = validate(SPECS["erp_stock"], payload, None)
    assert (batch.fetched, batch.invalid) == (10, 0)
    assert batch.rows["P003"].stock == 4.5
    assert batch.rows["P003"].location == "R3"
    assert payload.origin == url
    await source.aclose()


async def test_the_history_window_is_bound_as_dates(tmp_path: Path) -> None:
    """:date_from and :date_to are the window's days: only the rows inside it come."""
    url = _database(tmp_path / "erp.db")
    query = (
        "SELECT code AS product_code, day AS date, b2b AS b2b_sold, b2c AS b2c_sold"
        " FROM sales WHERE day BETWEEN :date_from AND :date_to"
    )
    source = SqlSource("sales_data", _sql(url, query))
    window = Window(date_from=date(2024, 3, 10), date_to=date(2024, 3, 19))
    batch = validate(SPECS["sales_data"], await source.fetch(window), window)
    assert batch.fetched == 10
    assert batch.invalid == 0
    await source.aclose()


async def test_the_cursor_is_bound_to_null_until_there_is_one(tmp_path: Path) -> None:
    """:cursor is NULL: a query written for incremental runs reads everything on a full one."""
    url = _database(tmp_path / "erp.db")
    query = (
        "SELECT kod AS product_code, qty AS stock FROM stock"
        " WHERE :cursor IS NULL OR changed_at > :cursor"
    )
    source = SqlSource("erp_stock", _sql(url, query))
    assert validate(SPECS["erp_stock"], await source.fetch(None), None).fetched == 10
    await source.aclose()


async def test_bad_sql_is_a_permanent_error_naming_the_problem(tmp_path: Path) -> None:
    """A missing table is a SourceError quoting the driver's first line, not retried."""
    url = _database(tmp_path / "erp.db")
    source = SqlSource("erp_stock", _sql(url, "SELECT * FROM no_such_table"))
    with pytest.raises(SourceError, match="the query failed: no such table: no_such_table") as e:
        await source.fetch(None)
    assert not isinstance(e.value, TransientSourceError)
    assert "[SQL:" not in str(e.value)


async def test_a_statement_without_rows_is_refused(tmp_path: Path) -> None:
    """A query that returns no rows (an UPDATE) fails the fetch saying so."""
    url = _database(tmp_path / "erp.db")
    source = SqlSource("erp_stock", _sql(url, "UPDATE stock SET qty = 0 WHERE 1 = 0"))
    with pytest.raises(SourceError, match="returns no rows"):
        await source.fetch(None)


async def test_a_database_that_cannot_be_opened_is_a_connection_error(tmp_path: Path) -> None:
    """Failing to connect is a SourceConnectionError: transient, retried."""
    url = f"sqlite:///{tmp_path / 'missing-folder' / 'erp.db'}"
    source = SqlSource("erp_stock", _sql(url, STOCK_QUERY))
    with pytest.raises(SourceConnectionError, match="cannot connect to sqlite:///"):
        await source.fetch(None)


async def test_pages_go_to_the_spool_and_are_discarded(tmp_path: Path) -> None:
    """With a spool each chunk is a file there as soon as it is fetched; discard deletes them."""
    spool = tmp_path / "spool"
    spool.mkdir()
    url = _database(tmp_path / "erp.db", rows=25)
    source = SqlSource("erp_stock", _sql(url, STOCK_QUERY), spool=spool, chunk_rows=10)
    payload = await source.fetch(None)
    assert [isinstance(page, Path) for page in payload.pages] == [True, True, True]
    assert validate(SPECS["erp_stock"], payload, None).fetched == 25
    payload.discard()
    assert list(spool.iterdir()) == []


async def test_a_run_from_sql_applies_the_changed_rows(tmp_path: Path) -> None:
    """Two service runs: the second applies the database's update, insert and delete only."""
    db = tmp_path / "erp.db"
    url = _database(db)
    source = SqlSource("erp_stock", _sql(url, STOCK_QUERY), chunk_rows=4)
    h = build(tmp_path / "c.db", FakeClock(), {"erp_stock": source})
    await h.service.prepare()
    first = await h.service.refresh("erp_stock")
    assert (first.status, first.counts.inserted) == (RunStatus.SUCCEEDED, 10)
    with sqlite3.connect(db) as conn:
        conn.execute("UPDATE stock SET qty = 99 WHERE kod = 'P001'")
        conn.execute("INSERT INTO stock VALUES ('P100', 1, 'R', '2024-02-01')")
        conn.execute("DELETE FROM stock WHERE kod = 'P009'")
    second = await h.service.refresh("erp_stock")
    counts = second.counts
    assert (counts.fetched, counts.inserted, counts.updated, counts.deleted) == (10, 1, 1, 1)
    await source.aclose()


async def test_a_column_named_twice_is_refused_naming_it(tmp_path: Path) -> None:
    """Two columns of one name would make one field from two values: refused, named."""
    url = _database(tmp_path / "erp.db")
    twice = SqlSource("erp_stock", _sql(url, "SELECT kod AS stock, qty AS stock FROM stock"))
    with pytest.raises(SourceError, match="returns the column 'stock' twice"):
        await twice.fetch(None)


async def test_the_stored_cursor_is_bound_and_only_changes_are_read(tmp_path: Path) -> None:
    """An incremental sql source: the first run is full (``:cursor`` NULL), the next binds
    the stored cursor, reads only the rows changed after it (an update, an insert, a
    soft-deleted row as tombstone) and ends with the rows a full read gives."""
    db = tmp_path / "erp.db"
    with sqlite3.connect(db) as conn:
        conn.execute("CREATE TABLE stock (kod TEXT, qty REAL, changed_at TEXT, deleted TEXT)")
        conn.executemany(
            "INSERT INTO stock VALUES (?, ?, ?, NULL)",
            [(f"P{i}", i, f"2024-01-01T00:00:0{i}Z") for i in range(5)],
        )
    query = (
        "SELECT kod AS product_code, qty AS stock, changed_at, deleted FROM stock"
        " WHERE :cursor IS NULL OR changed_at > :cursor"
    )
    source = SqlSource("erp_stock", _sql(f"sqlite:///{db}", query))
    store = SqliteStore(tmp_path / "c.db")
    store.migrate()
    pipeline = Pipeline(store, now=lambda: T0)
    first, processed = await refresh_from(store, pipeline, source)
    assert (first.mode, processed.outcome.counts.inserted) == (RunMode.FULL, 5)
    assert store.sync_state("erp_stock").cursor == "2024-01-01T00:00:04Z"
    with sqlite3.connect(db) as conn:
        conn.execute(
            "UPDATE stock SET qty = 99, changed_at = '2024-01-02T00:00:00Z' WHERE kod='P1'"
        )
        conn.execute("INSERT INTO stock VALUES ('P9', 9, '2024-01-02T00:00:01Z', NULL)")
        conn.execute(
            "UPDATE stock SET deleted = 'true', changed_at = '2024-01-02T00:00:02Z'"
            " WHERE kod = 'P3'"
        )
    second, processed = await refresh_from(store, pipeline, source)
    assert second.mode is RunMode.INCREMENTAL
    assert second.state.cursor == "2024-01-01T00:00:04Z"
    counts = processed.outcome.counts
    assert (counts.fetched, counts.inserted, counts.updated, counts.deleted) == (2, 1, 1, 1)
    assert store.sync_state("erp_stock").cursor == "2024-01-02T00:00:02Z"
    assert sorted(dict(store.iter_rows("erp_stock"))) == ["P0", "P1", "P2", "P4", "P9"]
    await source.aclose()
    store.close()


async def test_a_cursor_in_the_fetch_state_is_bound_as_its_text(tmp_path: Path) -> None:
    """``FetchState.cursor`` is what ``:cursor`` gets: rows after it, none at or before."""
    url = _database(tmp_path / "erp.db")
    query = "SELECT kod AS product_code, qty AS stock FROM stock WHERE changed_at > :cursor"
    source = SqlSource("erp_stock", _sql(url, query))
    payload = await source.fetch(None, FetchState(cursor="2024-01-08"))
    assert validate(SPECS["erp_stock"], payload, None).fetched == 2  # the 9th and 10th day
    await source.aclose()
