"""Operator control (contract 8): pause and resume a source, reload the configuration.

Every route here writes, so every one needs the admin token. A pause is kept in
the store and holds on every replica; a reload re-reads this process's
configuration file (a replica reloads its own: send it to each, or SIGHUP them).
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query
from starlette.responses import Response

from catalog_refresher.api.auth import Admin
from catalog_refresher.api.context import Ctx
from catalog_refresher.api.control_schemas import PauseOut, pause_out, reload_out
from catalog_refresher.api.openapi import responses
from catalog_refresher.api.params import KnownQueryOnly
from catalog_refresher.api.schemas import MsgspecResponse
from catalog_refresher.errors import ApiProblem, ReloadRefused

router = APIRouter(tags=["operator control"])

#: A pause reason is a short note for the other operators, not a document.
REASON_LENGTH = 500

Reason = Annotated[
    str | None,
    Query(max_length=REASON_LENGTH, description="Why: shown in /api/sources and health."),
]


@router.post(
    "/api/sources/{source}/pause",
    summary="No scheduled runs of the source until resumed",
    dependencies=[Admin, KnownQueryOnly],
    response_class=MsgspecResponse,
    responses=responses("PauseOut", 401, 403, 404, 422),
)
async def pause_source(context: Ctx, source: str, reason: Reason = None) -> Response:
    """200 with the pause. A run in flight finishes; a manual refresh still runs."""
    pause = await context.control.pause(source, reason.strip() or None if reason else None)
    return MsgspecResponse(pause_out(pause))


@router.post(
    "/api/sources/{source}/resume",
    summary="Back on the schedule; runs at once if due",
    dependencies=[Admin, KnownQueryOnly],
    response_class=MsgspecResponse,
    responses=responses("PauseOut", 401, 403, 404, 422),
)
async def resume_source(context: Ctx, source: str) -> Response:
    """200; ``resumed`` is false when the source was not paused."""
    resumed = await context.control.resume(source)
    return MsgspecResponse(PauseOut(source=source, paused=False, resumed=resumed))


@router.post(
    "/api/config/reload",
    summary="Re-read the configuration file and apply it without a restart",
    dependencies=[Admin, KnownQueryOnly],
    response_class=MsgspecResponse,
    responses=responses("ReloadOut", 401, 403, 409, 422),
)
async def reload_config(context: Ctx) -> Response:
    """200 with what changed; 422 for an invalid file (the key named), 409 for a change
    that needs a restart. Either way the running configuration stays."""
    try:
        reloaded = await context.control.reload()
    except ReloadRefused as exc:
        if exc.restart:
            raise ApiProblem(409, "restart-required", str(exc), title="Restart required") from None
        raise ApiProblem(422, "reload-refused", str(exc), title="Reload refused") from None
    return MsgspecResponse(reload_out(reloaded))
