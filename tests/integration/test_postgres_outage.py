"""PostgreSQL going away: the store's reads fail fast as ``StoreUnreachable``, then recover.

The fault matrix's postgres_restart cell (tests/e2e/test_fault_matrix.py) found a read
that needs the store waiting for psycopg_pool's default 30 s with the server down
(``GET /api/products`` got no answer within 10 s). Here the server is the shared one,
reached through a TCP relay on loopback that the test takes down (every connection
dropped, the port refusing) and brings back: the server itself is never stopped.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import threading
import time
from urllib.parse import urlsplit, urlunsplit

import pytest

from catalog_refresher.errors import StoreUnreachable
from catalog_refresher.store.base import RunQuery
from catalog_refresher.store.postgres import CONNECTION_WAIT, PostgresStore
from tests.postgres import fresh_schema


class Relay:
    """Forwards a loopback port to ``target``; ``down()`` drops every connection and
    closes the port (connections are refused), ``up()`` listens on the same port again."""

    def __init__(self, target: tuple[str, int]) -> None:
        self.target = target
        self.port = 0
        self._listener: socket.socket | None = None
        self._open: list[socket.socket] = []
        self._lock = threading.Lock()
        self.up()

    def up(self) -> None:
        listener = socket.socket()
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", self.port))
        listener.listen(16)
        self.port = listener.getsockname()[1]
        self._listener = listener
        threading.Thread(target=self._accept, args=(listener,), daemon=True).start()

    def down(self) -> None:
        assert self._listener is not None
        # shutdown first: a close alone leaves the port listening while accept() waits on it.
        with contextlib.suppress(OSError):
            self._listener.shutdown(socket.SHUT_RDWR)
        self._listener.close()
        self._listener = None
        with self._lock:
            for sock in self._open:
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)
                sock.close()
            self._open.clear()

    def _accept(self, listener: socket.socket) -> None:
        while True:
            try:
                client, _ = listener.accept()
            except OSError:
                return
            server = socket.create_connection(self.target)
            with self._lock:
                self._open += [client, server]
            for a, b in ((client, server), (server, client)):
                threading.Thread(target=_pump, args=(a, b), daemon=True).start()


def _pump(source: socket.socket, sink: socket.socket) -> None:
    with contextlib.suppress(OSError):
        while data := source.recv(65536):
            sink.sendall(data)
    with contextlib.suppress(OSError):
        sink.shutdown(socket.SHUT_WR)


def _through(url: str, relay: Relay) -> str:
    parts = urlsplit(url)
    user = parts.netloc.rsplit("@", 1)[0]
    return urlunsplit(parts._replace(netloc=f"{user}@127.0.0.1:{relay.port}"))


def test_reads_fail_fast_while_the_server_is_gone_and_recover_after() -> None:
    """With the server unreachable, each read (the pool's and the loop's) raises
    ``StoreUnreachable`` within CONNECTION_WAIT and a little, never psycopg_pool's 30 s;
    once it is back, reads answer again by themselves."""
    with fresh_schema("outage") as url:
        target = urlsplit(url)
        relay = Relay((target.hostname or "127.0.0.1", target.port or 5432))
        store = PostgresStore(_through(url, relay))
        try:
            store.migrate()
            assert store.list_runs(RunQuery(limit=1)) == ([], 0)
            relay.down()
            for _ in range(3):
                started = time.monotonic()
                with pytest.raises(StoreUnreachable, match="PostgreSQL cannot be reached"):
                    store.list_runs(RunQuery(limit=1))
                assert time.monotonic() - started < CONNECTION_WAIT + 2
            started = time.monotonic()
            with pytest.raises(StoreUnreachable):
                asyncio.run(store.product_parts("P-1"))
            assert time.monotonic() - started < CONNECTION_WAIT + 2
            relay.up()
            ends = time.monotonic() + 30
            while True:
                try:
                    assert store.list_runs(RunQuery(limit=1)) == ([], 0)
                    break
                except StoreUnreachable:
                    assert time.monotonic() < ends, "the store did not recover in 30 s"
        finally:
            store.close()
