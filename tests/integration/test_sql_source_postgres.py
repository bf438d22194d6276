"""SQL sources on the machine's PostgreSQL: server-side chunks, dates, NUMERIC, errors."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from datetime import UTC, date, datetime
from pathlib import Path

import psycopg
import pytest

from catalog_refresher.config.settings import EndpointSettings, EndpointType
from catalog_refresher.domain.runs import RunMode
from catalog_refresher.domain.specs import SPECS
from catalog_refresher.domain.window import Window
from catalog_refresher.errors import SourceConnectionError, SourceError, TransientSourceError
from catalog_refresher.refresh.pipeline import Pipeline
from catalog_refresher.refresh.validate import validate
from catalog_refresher.sources.sql import SqlSource
from catalog_refresher.store.sqlite import SqliteStore
from tests.helpers import T0
from tests.incremental_world import refresh_from
from tests.postgres import fresh_schema


@pytest.fixture
def database() -> Iterator[str]:
    """A SQLAlchemy URL of a fresh schema holding a stock and a sales table."""
    with fresh_schema("sqlsrc") as url:
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute(
                "CREATE TABLE stock (kod text, qty numeric(12, 3), changed_at timestamptz)"
            )
            conn.execute(
                "INSERT INTO stock SELECT 'P' || lpad(n::text, 5, '0'), n + 0.125,"
                " timestamptz '2024-01-01 00:00+00' + n * interval '1 minute'"
                " FROM generate_series(1, 2500) AS n"
            )
            conn.execute("CREATE TABLE sales (code text, day date, b2b int, b2c int)")
            conn.execute(
                "INSERT INTO sales SELECT 'P1', date '2024-03-01' + n, n, 1"
                " FROM generate_series(0, 29) AS n"
            )
        yield url.replace("postgresql://", "postgresql+psycopg://", 1)


def _sql(url: str, query: str) -> EndpointSettings:
    return EndpointSettings(type=EndpointType.SQL, url=url, sql=query)


async def test_rows_stream_in_chunks_with_numeric_as_numbers(database: str) -> None:
    """2,500 rows at 1,000 a chunk are 3 pages; NUMERIC columns arrive as numbers."""
    query = "SELECT kod AS product_code, qty AS stock FROM stock ORDER BY kod"
    source = SqlSource("erp_stock", _sql(database, query), chunk_rows=1000)
    payload = await source.fetch(None)
    assert len(payload.pages) == 3
    batch = validate(SPECS["erp_stock"], payload, None)
    assert (batch.fetched, batch.invalid) == (2500, 0)
    assert batch.rows["P00002"].stock == 2.125
    await source.aclose()


async def test_the_window_is_bound_as_dates_on_postgres(database: str) -> None:
    """date columns compare with the bound window's days; the records' dates come as ISO."""
    query = (
        "SELECT code AS product_code, day AS date, b2b AS b2b_sold, b2c AS b2c_sold"
        " FROM sales WHERE day BETWEEN :date_from AND :date_to"
    )
    source = SqlSource("sales_data", _sql(database, query))
    window = Window(date_from=date(2024, 3, 5), date_to=date(2024, 3, 11))
    batch = validate(SPECS["sales_data"], await source.fetch(window), window)
    assert (batch.fetched, batch.invalid) == (7, 0)
    await source.aclose()


async def test_the_null_cursor_is_typed_by_the_query(database: str) -> None:
    """:cursor bound to NULL in a typed comparison reads every row."""
    query = (
        "SELECT kod AS product_code, qty AS stock FROM stock"
        " WHERE CAST(:cursor AS timestamptz) IS NULL OR changed_at > CAST(:cursor AS timestamptz)"
    )
    source = SqlSource("erp_stock", _sql(database, query))
    assert validate(SPECS["erp_stock"], await source.fetch(None), None).fetched == 2500
    await source.aclose()


async def test_an_incremental_run_binds_the_stored_cursor_on_postgres(
    database: str, tmp_path: Path
) -> None:
    """A full run reads all 2,500 rows and stores the largest timestamptz as the cursor;
    after 3 rows change, the next run binds it (cast in the query) and reads only those 3."""
    query = (
        "SELECT kod AS product_code, qty AS stock, changed_at FROM stock"
        " WHERE CAST(:cursor AS timestamptz) IS NULL OR changed_at > CAST(:cursor AS timestamptz)"
    )
    source = SqlSource("erp_stock", _sql(database, query), chunk_rows=1000)
    store = SqliteStore(tmp_path / "c.db")
    store.migrate()
    pipeline = Pipeline(store, now=lambda: T0)
    first, processed = await refresh_from(store, pipeline, source)
    assert (first.mode, processed.outcome.counts.inserted) == (RunMode.FULL, 2500)
    cursor = store.sync_state("erp_stock").cursor
    assert cursor is not None
    assert datetime.fromisoformat(cursor) == datetime(2024, 1, 2, 17, 40, tzinfo=UTC)
    with psycopg.connect(database.replace("+psycopg", ""), autocommit=True) as conn:
        conn.execute(
            "UPDATE stock SET qty = 7, changed_at = timestamptz '2024-02-01 00:00+00'"
            " WHERE kod IN ('P00001', 'P00002', 'P00003')"
        )
    second, processed = await refresh_from(store, pipeline, source)
    assert (second.mode, second.state.cursor) == (RunMode.INCREMENTAL, cursor)
    counts = processed.outcome.counts
    assert (counts.fetched, counts.updated, counts.inserted) == (3, 3, 0)
    assert datetime.fromisoformat(store.sync_state("erp_stock").cursor or "") == datetime(
        2024, 2, 1, tzinfo=UTC
    )
    await source.aclose()
    store.close()


async def test_bad_sql_names_the_problem_and_is_not_retried(database: str) -> None:
    """A missing relation is a permanent SourceError quoting PostgreSQL's message."""
    source = SqlSource("erp_stock", _sql(database, "SELECT * FROM nope"))
    with pytest.raises(SourceError, match='relation "nope" does not exist') as caught:
        await source.fetch(None)
    assert not isinstance(caught.value, TransientSourceError)


async def test_a_refused_connection_is_transient_without_the_password() -> None:
    """Nothing listening is a SourceConnectionError; the password appears nowhere."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]  # closed again: nothing listens there
    url = f"postgresql+psycopg://erp:pw-very-secret@127.0.0.1:{port}/erp"
    source = SqlSource("erp_stock", _sql(url, "SELECT 1"))
    with pytest.raises(SourceConnectionError) as caught:
        await source.fetch(None)
    assert "pw-very-secret" not in str(caught.value)
    assert "erp:***@127.0.0.1" in str(caught.value)
