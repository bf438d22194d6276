"""Fixtures of the end-to-end tests."""

from __future__ import annotations

import pytest

from tests.deploy import REPO, FakeRoot
from tests.e2e.installed import Installed, build, install


@pytest.fixture(scope="session")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Installed:
    """The wheel `python -m build` makes of this checkout, installed into a fresh virtual
    environment at /opt/catalog-refresher of a root of its own (once per session)."""
    base = tmp_path_factory.mktemp("installed")
    wheel = build(REPO, base / "dist")
    return install(wheel, FakeRoot(base / "root"))
