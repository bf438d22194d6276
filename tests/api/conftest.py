"""Fixtures for the API tests: a fake clock and a factory of apps over real services."""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from pathlib import Path
from typing import Any

import pytest

from catalog_refresher.sources.base import Source
from catalog_refresher.testing import FakeClock
from tests.api.support import Api, ApiFactory, catalog_sources, new_api


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
async def make_api(tmp_path: Path, clock: FakeClock) -> AsyncIterator[ApiFactory]:
    """Builds apps (each on its own SQLite file) and closes them after the test."""
    made: list[Api] = []

    def make(sources: Mapping[str, Source] | None = None, **kwargs: Any) -> Api:
        api = new_api(
            tmp_path / f"catalog-{len(made)}.db",
            clock,
            catalog_sources(clock) if sources is None else sources,
            **kwargs,
        )
        made.append(api)
        return api

    yield make
    for api in made:
        await api.close()


@pytest.fixture
async def api(make_api: ApiFactory) -> Api:
    """An app over all ten sources, not started yet."""
    return make_api()


@pytest.fixture
async def started(api: Api) -> Api:
    """An app whose ten sources have each refreshed once."""
    await api.start()
    return api
