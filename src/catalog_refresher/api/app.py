"""The HTTP API's application factory (contract section 6).

``create_app`` takes every collaborator as an argument and reads nothing
global, so the service wires it to its own parts and a test wires it to a real
service on a fake clock. Routes live one concern per module: ``products``,
``sources``, ``runs``, ``cache``, ``health``, and the operators' status page
``dashboard``; errors are problem details (``problems``) and the admin token is
checked in ``auth``.
"""

from __future__ import annotations

from fastapi import FastAPI

from catalog_refresher import __version__
from catalog_refresher.api import (
    cache,
    dashboard,
    health,
    operator,
    problems,
    products,
    runs,
    sources,
    versions,
)
from catalog_refresher.api.context import ApiContext, Metrics
from catalog_refresher.api.docs import install_docs
from catalog_refresher.api.openapi import install_openapi
from catalog_refresher.catalog import Catalog
from catalog_refresher.clock import Clock
from catalog_refresher.config.settings import Settings
from catalog_refresher.control import Control
from catalog_refresher.refresh.runner import Offload
from catalog_refresher.store.base import Store

DESCRIPTION = """\
Reads of the product catalog kept current from ten external systems, the state
of each source and its refresh runs, and operator actions (refresh now, drop
the cache). Errors are RFC 9457 problem details. With an admin token
configured, every POST needs `Authorization: Bearer <token>`. A status page for
operators is at `/dashboard`.
"""


#: Every route of the API, by concern.
# versions first: its /api/products/{code}/history comes before the product route.
ROUTERS = tuple(
    module.router
    for module in (versions, products, sources, operator, runs, cache, health, dashboard)
)


def create_app(
    *,
    control: Control,
    catalog: Catalog,
    store: Store,
    settings: Settings,
    clock: Clock,
    offload: Offload,
    metrics: Metrics | None = None,
) -> FastAPI:
    """The API over these parts; blocking store and catalog calls go through ``offload``.

    ``offload`` is ``asyncio.to_thread`` in production (SQL never holds the event
    loop) and ``refresh.runner.inline`` in tests. ``metrics`` renders the
    Prometheus exposition; without it ``/metrics`` is a 404.
    """
    app = FastAPI(
        title="catalog-refresher",
        version=__version__,
        description=DESCRIPTION,
        docs_url=None,  # docs.install_docs: Swagger UI from the package, not a CDN
        redoc_url=None,
        openapi_url="/openapi.json",
    )
    app.state.context = ApiContext(
        control=control,
        catalog=catalog,
        store=store,
        settings=settings,
        clock=clock,
        offload=offload,
        metrics=metrics,
    )
    problems.install(app)
    for router in ROUTERS:
        app.include_router(router)
    install_openapi(app)
    install_docs(app)
    return app
