"""Shared fixtures: every test starts from a scrubbed environment."""

from __future__ import annotations

import os

import pytest


@pytest.fixture(autouse=True)
def _scrub_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """No test sees the developer's configuration variables."""
    for name in list(os.environ):
        if "__" in name or name.startswith("CATALOG_"):
            monkeypatch.delenv(name, raising=False)
