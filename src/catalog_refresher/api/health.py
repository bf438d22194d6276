"""Probes and scraping: ``/health``, ``/health/live``, ``/health/ready``, ``/metrics``.

Never behind the admin token: load balancers, orchestrators and Prometheus
call these without credentials. ``/health`` is 200 when Healthy or Degraded and
503 when Unhealthy (the store cannot be read); ``/health/live`` is 200 as long
as the process answers at all, whatever the sources do.
"""

from __future__ import annotations

from fastapi import APIRouter
from starlette.responses import Response

from catalog_refresher.api.context import Ctx
from catalog_refresher.api.openapi import responses
from catalog_refresher.api.schemas import HealthOut, MsgspecResponse, health_out
from catalog_refresher.errors import ApiProblem
from catalog_refresher.status import Health

router = APIRouter(tags=["health"])

#: A probe must see the state of now, never a proxy's copy.
NO_STORE = {"Cache-Control": "no-store"}


@router.get(
    "/health",
    summary="Health of the refresh and of each source",
    response_class=MsgspecResponse,
    responses={**responses("HealthOut"), **responses("HealthOut", status=503)},
)
async def health(context: Ctx) -> Response:
    report = await context.control.health()
    status = 503 if report.status is Health.UNHEALTHY else 200
    return MsgspecResponse(health_out(report), status_code=status, headers=NO_STORE)


@router.get(
    "/health/live",
    summary="Liveness: the process answers",
    response_class=MsgspecResponse,
    responses=responses("HealthOut"),
)
async def live() -> Response:
    return MsgspecResponse(HealthOut(status=Health.HEALTHY), headers=NO_STORE)


@router.get(
    "/health/ready",
    summary="Readiness: the store answers and every enabled source has data or a finished run",
    response_class=MsgspecResponse,
    responses={**responses("HealthOut"), **responses("HealthOut", status=503)},
)
async def ready(context: Ctx) -> Response:
    if await context.control.ready():
        return MsgspecResponse(HealthOut(status=Health.HEALTHY), headers=NO_STORE)
    return MsgspecResponse(HealthOut(status=Health.UNHEALTHY), status_code=503, headers=NO_STORE)


@router.get(
    "/metrics",
    summary="Prometheus metrics",
    response_class=Response,
    responses={
        200: {"description": "OK", "content": {"text/plain": {"schema": {"type": "string"}}}},
        **responses(None, 404),
    },
)
async def metrics(context: Ctx) -> Response:
    """The Prometheus exposition; 404 when the service was started without metrics."""
    if context.metrics is None:
        raise ApiProblem(
            404,
            "metrics-disabled",
            "Metrics are not served by this process.",
            title="Metrics disabled",
        )
    body, content_type = await context.offload(context.metrics)
    return Response(body, headers={"Content-Type": content_type, **NO_STORE})
