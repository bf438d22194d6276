"""``/api/sources``: each source's state, and ``POST .../refresh`` to run one now.

A refresh answers 202 with the run, or, when a run of the source is already
queued or running, that run (no second run). ``?wait=true`` answers 200 with
the run once it has finished, whatever its status; if it has not finished
within ``RefreshTimeout`` plus ``WAIT_MARGIN`` (a run waiting for a slot can
take longer) the answer is 202 with the run as it stands. ``?force=true``
overrides the publish guard; it is a 409 while an unforced run is in flight.
"""

from __future__ import annotations

import asyncio
from datetime import timedelta
from typing import Annotated

from fastapi import APIRouter, Query
from starlette.responses import Response

from catalog_refresher.api.auth import Admin, Reader
from catalog_refresher.api.context import Ctx
from catalog_refresher.api.dry_run import answer_dry_run
from catalog_refresher.api.openapi import responses
from catalog_refresher.api.params import KnownQueryOnly
from catalog_refresher.api.schemas import MsgspecResponse, run_out, source_out
from catalog_refresher.clock import Clock
from catalog_refresher.domain.runs import Run
from catalog_refresher.domain.specs import SPECS
from catalog_refresher.errors import UnknownSourceError

router = APIRouter(prefix="/api/sources", tags=["sources"])

#: Beyond ``RefreshTimeout``: the audit write after a timeout, and a short queue.
WAIT_MARGIN = timedelta(seconds=30)

Wait = Annotated[bool, Query(description="Answer when the run has finished (200).")]
Force = Annotated[bool, Query(description="Override the publish guard for this run.")]
DryRun = Annotated[
    bool, Query(description="Fetch, diff, guard and validate; publish nothing (200, DryRunOut).")
]


@router.get(
    "",
    summary="Every source, in contract order",
    dependencies=[Reader],
    response_class=MsgspecResponse,
    responses=responses("SourceOut", 401, 403, array=True),
)
async def list_sources(context: Ctx) -> Response:
    """All ten sources, configured or not (a source not configured has ``enabled`` false)."""
    statuses = await context.control.sources()
    return MsgspecResponse([source_out(status) for status in statuses])


@router.get(
    "/{source}",
    summary="One source",
    dependencies=[Reader],
    response_class=MsgspecResponse,
    responses=responses("SourceOut", 401, 403, 404),
)
async def get_source(context: Ctx, source: str) -> Response:
    """The source ``source``; 404 if there is no such source id."""
    if source not in SPECS:
        raise UnknownSourceError(source)
    for status in await context.control.sources():
        if status.id == source:
            return MsgspecResponse(source_out(status))
    raise UnknownSourceError(source)  # a known id the control does not list


@router.post(
    "/{source}/refresh",
    summary="Start a run now, or join the one in flight",
    dependencies=[Admin, KnownQueryOnly],
    status_code=202,
    response_class=MsgspecResponse,
    responses={
        **responses("RunOut", status=202),
        **responses("RunOut", 401, 403, 404, 409, 422, 502, 504, status=200),
    },
)
async def refresh_source(
    context: Ctx, source: str, wait: Wait = False, force: Force = False, dry_run: DryRun = False
) -> Response:
    """202 with the run (new or joined); 200 with the finished run under ``wait``;
    200 with what would change under ``dry_run`` (``api/dry_run.py``)."""
    if dry_run:
        return await answer_dry_run(context, source, force=force)
    submitted = await context.control.refresh(source, force=force)
    if wait:
        bound = context.settings.repository.refresh_timeout + WAIT_MARGIN
        await wait_for_end(submitted.done, context.clock, bound.total_seconds())
    # Read the run back: a joined run has moved on since it was first recorded.
    run = await context.offload(context.store.get_run, submitted.run.id) or submitted.run
    status = 200 if wait and run.status.finished else 202
    return MsgspecResponse(
        run_out(run), status_code=status, headers={"Location": f"/api/runs/{run.id}"}
    )


@router.post(
    "/{source}/reset-cursor",
    summary="Forget the source's cursor: its next run is full",
    dependencies=[Admin, KnownQueryOnly],
    status_code=204,
    responses=responses(None, 401, 403, 404, 422),
)
async def reset_cursor(context: Ctx, source: str) -> Response:
    """204: the incremental cursor and the last fetch's validators are forgotten in the
    store (so on every replica); the next run reads the whole snapshot, unconditionally."""
    if source not in SPECS:
        raise UnknownSourceError(source)
    await context.offload(context.store.reset_sync, source)
    return Response(status_code=204)


async def wait_for_end(done: asyncio.Future[Run], clock: Clock, seconds: float) -> bool:
    """Wait until ``done`` or until ``seconds`` pass on ``clock``; true if it ended.

    Never cancels ``done``: a client that hangs up (which cancels this request)
    must not cancel the run it started. Hence ``asyncio.wait``, not ``await done``,
    and a clock-driven alarm, not ``asyncio.timeout`` (a fake clock cannot move it).
    """
    alarm: asyncio.Future[None] = asyncio.ensure_future(clock.sleep(seconds))
    waited: list[asyncio.Future[Run] | asyncio.Future[None]] = [done, alarm]
    try:
        await asyncio.wait(waited, return_when=asyncio.FIRST_COMPLETED)
    finally:
        alarm.cancel()
    return done.done()
