"""Reading a source from a database (``"Type": "sql"``).

``SqlSource`` runs the endpoint's ``Query`` on its ``Url`` (any SQLAlchemy URL)
and hands the rows back as pages of JSON, each page one chunk of rows: a JSON
array of objects keyed by column name. ``sources/decoding.py`` then reads them
exactly as it reads an HTTP body, so ``Fields`` and ``Filter`` apply unchanged
and the per-record rules, invalid-record reasons and counts are the same.

Why JSON pages rather than handing rows straight to validation: the payload is
the one thing that crosses to the worker processes (as bytes, or a spooled file
they read), and decoding, mapping and the fast msgspec path exist once, for
bytes. The cost is one msgspec encode per row on top of the decode (about a
fifth of decode and validation's time, measured in docs/connectors.md), well
below the database's own cost of producing the rows.

Parameters are bound, never formatted into the text: ``:date_from`` and
``:date_to`` are the history window's first and last day (``date`` values);
``:cursor`` is the stored incremental cursor (``Incremental``; ``FetchState.cursor``),
bound as the text it is stored as, and ``NULL`` on a full run (write
``:cursor IS NULL OR changed_at > :cursor``; cast it where the database wants a type:
``CAST(:cursor AS timestamptz)``). Only the parameters the query names are bound.

Rows are streamed: ``stream_results`` (a server-side cursor on PostgreSQL) with
``yield_per``, one chunk of ``chunk_rows`` in memory at a time, each written out
as a page (to the spool folder when there is one, as HTTP bodies are) before the
next is fetched. Each fetch opens its own connection (``NullPool``): a refresh
every few minutes gains nothing from a pool, and a connection is never left
stale between runs.

Errors are translated here::

    failing to connect, or the connection lost mid-query -> SourceConnectionError (transient)
    the query refused (bad SQL, a missing table, no rows returned) -> SourceError

Messages quote the driver's first line, with the URL's password scrubbed; the URL
is shown masked (``Payload.origin``), never whole.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import os
import tempfile
from pathlib import Path
from typing import Any

import msgspec
import sqlalchemy
from sqlalchemy.engine import Connection, make_url
from sqlalchemy.exc import DBAPIError, SQLAlchemyError
from sqlalchemy.pool import NullPool

from catalog_refresher.config.settings import EndpointSettings
from catalog_refresher.config.values import mask_url
from catalog_refresher.domain.specs import SPECS
from catalog_refresher.domain.window import Window
from catalog_refresher.errors import ConfigError, SourceConnectionError, SourceError
from catalog_refresher.sources.base import FetchState, Payload

__all__ = ["DEFAULT_CHUNK_ROWS", "SqlSource"]

#: Rows per page: large enough that per-page overhead vanishes, small enough to stay
#: a few megabytes in memory.
DEFAULT_CHUNK_ROWS = 10_000
# Decimal columns (NUMERIC) as JSON numbers, not strings; anything msgspec cannot
# write (an interval, a network address) as its text.
_ENCODER = msgspec.json.Encoder(decimal_format="number", enc_hook=str)


class SqlSource:
    """One external system read with a query.

    ``spool``, when given, is the folder the pages are written to (worker
    processes read them there); without it each page is held as bytes.
    """

    def __init__(
        self,
        source_id: str,
        endpoint: EndpointSettings,
        *,
        spool: Path | None = None,
        chunk_rows: int = DEFAULT_CHUNK_ROWS,
    ) -> None:
        spec = SPECS[source_id]
        if not endpoint.url or not endpoint.sql:
            raise ConfigError(f"Sources:{spec.config_key}:Url", "is required for a sql source")
        self._id = source_id
        self._endpoint = endpoint
        self._spool = spool
        self._chunk_rows = chunk_rows
        self._origin = mask_url(endpoint.url)
        self._password = make_url(endpoint.url).password
        self._statement = sqlalchemy.text(endpoint.sql)
        self._names = frozenset(self._statement.compile().params)
        # Creating the engine connects to nothing; each fetch opens its own connection.
        self._engine = sqlalchemy.create_engine(endpoint.url, poolclass=NullPool)

    @property
    def source_id(self) -> str:
        return self._id

    async def fetch(self, window: Window | None, state: FetchState | None = None) -> Payload:
        """Run the query with ``window`` (history sources) and ``state.cursor`` (incremental
        runs; ``NULL`` on a full one) bound; the rows as JSON pages."""
        cursor = None if state is None else state.cursor
        return await asyncio.to_thread(self._read, self._parameters(window, cursor))

    async def aclose(self) -> None:
        self._engine.dispose()

    def _parameters(self, window: Window | None, cursor: str | None) -> dict[str, Any]:
        values: dict[str, Any] = {"cursor": cursor}
        if window is not None:
            values |= {"date_from": window.date_from, "date_to": window.date_to}
        return {name: value for name, value in values.items() if name in self._names}

    def _read(self, parameters: dict[str, Any]) -> Payload:
        try:
            connection = self._engine.connect()
        except SQLAlchemyError as exc:
            raise SourceConnectionError(
                f"cannot connect to {self._origin}: {self._message(exc)}"
            ) from exc
        pages: list[bytes | Path] = []
        try:
            with connection:
                self._stream(connection, parameters, pages)
        except DBAPIError as exc:
            Payload(pages=pages).discard()
            if exc.connection_invalidated:
                raise SourceConnectionError(
                    f"lost the connection to {self._origin}: {self._message(exc)}"
                ) from exc
            raise SourceError(f"the query failed: {self._message(exc)}") from exc
        except SQLAlchemyError as exc:
            Payload(pages=pages).discard()
            raise SourceError(f"the query failed: {self._message(exc)}") from exc
        except BaseException:
            Payload(pages=pages).discard()
            raise
        endpoint = self._endpoint
        return Payload(
            pages=pages, origin=self._origin, fields=endpoint.fields, filters=endpoint.filters
        )

    def _stream(
        self, connection: Connection, parameters: dict[str, Any], pages: list[bytes | Path]
    ) -> None:
        """Fetch the rows a chunk at a time, each chunk written out as a page at once."""
        streaming = connection.execution_options(stream_results=True, yield_per=self._chunk_rows)
        result = streaming.execute(self._statement, parameters)
        if not result.returns_rows:
            raise SourceError("the query failed: it returns no rows (is it a SELECT?)")
        row_type = _row_type(list(result.keys()))
        for rows in result.partitions(self._chunk_rows):
            body = _ENCODER.encode(list(itertools.starmap(row_type, rows)))
            pages.append(body if self._spool is None else self._spooled(body))

    def _spooled(self, body: bytes) -> Path:
        assert self._spool is not None
        handle, name = tempfile.mkstemp(dir=self._spool, prefix=f"{self._id}-", suffix=".page")
        try:
            with os.fdopen(handle, "wb") as out:
                out.write(body)
        except BaseException:
            with contextlib.suppress(FileNotFoundError):
                Path(name).unlink()
            raise
        return Path(name)

    def _message(self, exc: SQLAlchemyError) -> str:
        """The driver's first line (SQLAlchemy's adds the SQL and a link), password scrubbed."""
        cause = exc.orig if isinstance(exc, DBAPIError) else exc
        lines = str(cause).strip().splitlines()
        text = lines[0] if lines else type(cause).__name__
        if self._password:
            text = text.replace(self._password, "***")
        return text


def _row_type(names: list[str]) -> type[msgspec.Struct]:
    """A struct that encodes a row as an object keyed by ``names``, the columns' names.

    Built per query result: a struct made from the row's values and encoded is about
    four times quicker than a dict zipped from them (measured in docs/connectors.md).
    Columns are held as ``c0``, ``c1``... and renamed, so any name a database allows works.
    """
    if len(set(names)) != len(names):
        twice = next(name for name in names if names.count(name) > 1)
        raise SourceError(f"the query returns the column {twice!r} twice; name them apart")
    slots = [f"c{index}" for index in range(len(names))]
    return msgspec.defstruct(
        "Row", [(slot, Any) for slot in slots], rename=dict(zip(slots, names, strict=True))
    )
