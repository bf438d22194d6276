"""What every route needs, handed over once by ``create_app``.

Routes reach it through the ``Ctx`` dependency rather than module globals, so
that one process (or one test) can hold several apps over different services.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Request

from catalog_refresher.catalog import Catalog
from catalog_refresher.clock import Clock
from catalog_refresher.config.settings import Settings
from catalog_refresher.control import Control
from catalog_refresher.refresh.runner import Offload
from catalog_refresher.store.base import Store

Metrics = Callable[[], tuple[bytes, str]]
"""Renders the metrics exposition: its body and its content type."""


@dataclass(frozen=True, slots=True, kw_only=True)
class ApiContext:
    control: Control
    catalog: Catalog
    store: Store
    settings: Settings
    clock: Clock
    offload: Offload
    """Runs every blocking store or catalog call, so the event loop never waits on SQL."""
    metrics: Metrics | None = None


async def get_context(request: Request) -> ApiContext:
    # async: FastAPI would run a plain def dependency on a worker thread, for nothing.
    context: ApiContext = request.app.state.context
    return context


Ctx = Annotated[ApiContext, Depends(get_context)]
