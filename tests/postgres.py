"""The PostgreSQL server the tests use, and a fresh schema per test.

Tests that need it skip with the reason when no server answers, except under
``CI=true``, where a missing server is a failure (``.ci/run`` starts it).
"""

from __future__ import annotations

import hashlib
import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from urllib.parse import quote

import psycopg
import pytest

SERVER = os.environ.get("CATALOG_TEST_POSTGRES", "postgresql://postgres@127.0.0.1:5432/test")


def require_server() -> None:
    """Skip (or, under CI, fail) the calling test when the server does not answer."""
    try:
        psycopg.connect(SERVER, connect_timeout=3).close()
    except psycopg.OperationalError as exc:
        reason = f"PostgreSQL at {SERVER} is not answering: {str(exc).strip()[:200]}"
        if os.environ.get("CI") == "true":
            pytest.fail(f"{reason} (CI=true: PostgreSQL tests must run)")
        pytest.skip(reason)


def schema_for(key: str) -> str:
    return "t_" + hashlib.sha1(key.encode()).hexdigest()[:20]


def create_schema(schema: str) -> str:
    """Create ``schema`` (if new); the URL of a store that lives in it."""
    require_server()
    with psycopg.connect(SERVER, autocommit=True) as conn:
        conn.execute(f"CREATE SCHEMA IF NOT EXISTS {schema}")
    return f"{SERVER}?options={quote(f'-csearch_path={schema}')}"


@contextmanager
def fresh_schema(prefix: str) -> Iterator[str]:
    """A store URL in a new schema named ``<prefix>_<random>``, dropped afterwards."""
    schema = f"{prefix}_{uuid.uuid4().hex[:12]}"
    url = create_schema(schema)
    try:
        yield url
    finally:
        drop_schema(schema)


def drop_schema(schema: str) -> None:
    with psycopg.connect(SERVER, autocommit=True) as conn:
        conn.execute(f"DROP SCHEMA IF EXISTS {schema} CASCADE")
