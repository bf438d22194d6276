"""What only the PostgreSQL store does (the shared behaviour is in ``tests/contract``)."""

from __future__ import annotations

import socket

import pytest

from catalog_refresher.errors import StoreError
from catalog_refresher.store.postgres import PostgresStore


def test_an_unreachable_server_is_a_clear_error_without_the_password() -> None:
    """A server that refuses the connection fails the store at once, its password unshown."""
    with socket.socket() as sock:  # a port nobody listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    url = f"postgresql://catalog:hunter2-secret@127.0.0.1:{port}/catalog"
    with pytest.raises(StoreError) as caught:
        PostgresStore(url)
    message = str(caught.value)
    assert message.startswith("cannot connect to the PostgreSQL store:")
    assert "refused" in message
    assert "hunter2" not in message
    assert "hunter2" not in repr(caught.value.__cause__)
