"""``/api/runs``: the audit log of refresh runs, newest first, as JSON or CSV.

Filters: ``source`` (a source id), ``status`` (a run status), ``since`` (runs
queued at or after it; a naive time is UTC). ``?format=csv`` answers
``text/csv`` (one header row, one row per run, every ``RunOut`` field) as the
attachment ``runs.csv``, with ``X-Total-Count``; a CSV page may hold up to
``MAX_CSV_PAGE`` runs, a JSON page up to ``MAX_PAGE``.
"""

from __future__ import annotations

import csv
import io
import json
from datetime import datetime
from enum import Enum
from typing import Annotated, Literal

from fastapi import APIRouter, Query
from fastapi.exceptions import RequestValidationError
from starlette.responses import Response

from catalog_refresher.api.auth import Reader
from catalog_refresher.api.context import ApiContext, Ctx
from catalog_refresher.api.openapi import responses
from catalog_refresher.api.params import (
    DEFAULT_PAGE,
    MAX_PAGE,
    Offset,
    RunId,
    Since,
    SourceFilter,
)
from catalog_refresher.api.schemas import MsgspecResponse, RunOut, RunPage, run_out
from catalog_refresher.domain.runs import RunStatus
from catalog_refresher.errors import ApiProblem
from catalog_refresher.store.base import RunQuery

router = APIRouter(prefix="/api/runs", tags=["runs"], dependencies=[Reader])

MAX_CSV_PAGE = 100_000
CSV_COLUMNS = tuple(RunOut.__struct_fields__)
#: Free-text columns that may carry an external system's words into a spreadsheet.
_TEXT_COLUMNS = frozenset({"error", "invalid_reasons"})

RunLimit = Annotated[
    int,
    Query(
        ge=1,
        le=MAX_CSV_PAGE,
        description=f"Runs per page, 1..{MAX_PAGE} ({MAX_CSV_PAGE} with format=csv).",
    ),
]
Format = Annotated[Literal["json", "csv"], Query(alias="format")]


@router.get(
    "",
    summary="Runs, newest first",
    response_class=MsgspecResponse,
    responses=responses(
        "RunPage",
        401,
        403,
        422,
        extra_media={"text/csv": {"schema": {"type": "string"}}},
    ),
)
async def list_runs(
    context: Ctx,
    source: SourceFilter = None,
    status: RunStatus | None = None,
    since: Since = None,
    limit: RunLimit = DEFAULT_PAGE,
    offset: Offset = 0,
    output: Format = "json",
) -> Response:
    """``{"items": [run, ...], "total", "limit", "offset"}``, or CSV with ``format=csv``."""
    if output == "json" and limit > MAX_PAGE:
        raise RequestValidationError(
            [
                {
                    "type": "less_than_equal",
                    "loc": ("query", "limit"),
                    "msg": f"Input should be less than or equal to {MAX_PAGE}"
                    f" ({MAX_CSV_PAGE} with format=csv)",
                }
            ]
        )
    query = RunQuery(source=source, status=status, since=since, limit=limit, offset=offset)
    if output == "csv":
        body, total = await context.offload(_csv, context, query)
        return Response(
            body,
            media_type="text/csv; charset=utf-8",
            headers={
                "Content-Disposition": 'attachment; filename="runs.csv"',
                "X-Total-Count": str(total),
            },
        )
    page = await context.offload(_page, context, query)
    return MsgspecResponse(page)


@router.get(
    "/{run_id}",
    summary="One run",
    response_class=MsgspecResponse,
    responses=responses("RunOut", 401, 403, 404, 422),
)
async def get_run(context: Ctx, run_id: RunId) -> Response:
    """The run ``run_id``; 404 if there is none."""
    run = await context.offload(context.store.get_run, run_id)
    if run is None:
        raise ApiProblem(404, "unknown-run", f"No run with id {run_id}.", title="Unknown run")
    return MsgspecResponse(run_out(run))


def _page(context: ApiContext, query: RunQuery) -> RunPage:
    runs, total = context.store.list_runs(query)
    return RunPage(
        items=[run_out(run) for run in runs], total=total, limit=query.limit, offset=query.offset
    )


def _csv(context: ApiContext, query: RunQuery) -> tuple[bytes, int]:
    runs, total = context.store.list_runs(query)
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")  # RFC 4180 line ends
    writer.writerow(CSV_COLUMNS)
    for run in runs:
        row = run_out(run)
        writer.writerow(_cell(name, getattr(row, name)) for name in CSV_COLUMNS)
    return out.getvalue().encode("utf-8"), total


def _cell(column: str, value: object) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, datetime):
        return value.isoformat().replace("+00:00", "Z")
    if isinstance(value, Enum):
        return str(value.value)
    text = json.dumps(value, ensure_ascii=False) if isinstance(value, list) else str(value)
    if column in _TEXT_COLUMNS and text[:1] in ("=", "+", "-", "@", "\t", "\r"):
        # A leading quote keeps a spreadsheet from running the text as a formula.
        text = "'" + text
    return text
