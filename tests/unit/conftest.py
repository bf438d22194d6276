"""Unit tests are pure and in-process: no PostgreSQL, no child process.

Tests that need either live in ``tests/integration``, ``tests/contract`` (every
store) or ``tests/e2e`` (real processes and sockets). This guard makes a unit
test that reaches for one fail, naming what it reached for.
"""

from __future__ import annotations

import multiprocessing.process
import subprocess
from typing import Any, NoReturn

import psycopg
import pytest


def _refuse(what: str) -> Any:
    def refuse(*args: object, **kwargs: object) -> NoReturn:
        pytest.fail(f"a unit test must not {what}; move it to tests/integration")

    return refuse


@pytest.fixture(autouse=True)
def _in_process_only(monkeypatch: pytest.MonkeyPatch) -> None:
    """Starting a process or connecting to PostgreSQL fails the unit test that tries."""
    monkeypatch.setattr(subprocess.Popen, "__init__", _refuse("start a subprocess"))
    monkeypatch.setattr(
        multiprocessing.process.BaseProcess, "start", _refuse("start a worker process")
    )
    monkeypatch.setattr(psycopg, "connect", _refuse("connect to PostgreSQL"))
    monkeypatch.setattr(psycopg.Connection, "connect", _refuse("connect to PostgreSQL"))
    monkeypatch.setattr(psycopg.AsyncConnection, "connect", _refuse("connect to PostgreSQL"))
