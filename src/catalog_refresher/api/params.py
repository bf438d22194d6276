"""Query and path parameters shared by several routes, with their bounds.

Every bound is checked before any store call, so bad input is a 422 problem
and never reaches SQLite as a value it cannot bind (a 500).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated

from fastapi import Depends, Path, Query, Request
from fastapi.dependencies.models import Dependant
from fastapi.exceptions import RequestValidationError
from fastapi.routing import APIRoute
from pydantic import AfterValidator

from catalog_refresher.domain.specs import SOURCE_IDS, SPECS

#: The largest integer SQLite binds; ids and offsets beyond it cannot match anything.
MAX_SQL_INT = 2**63 - 1
MAX_PAGE = 1000
DEFAULT_PAGE = 50


def known_source(value: str | None) -> str | None:
    if value is not None and value not in SPECS:
        raise ValueError(f"not a source id; one of: {', '.join(SOURCE_IDS)}")
    return value


def as_utc(value: datetime | None) -> datetime | None:
    """A naive time is taken as UTC (the contract's times are all UTC)."""
    if value is None:
        return None
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    try:
        return value.astimezone(UTC)
    except OverflowError as exc:  # 0001-01-01T00:00+01:00 has no UTC equivalent
        raise ValueError("the time is out of range once converted to UTC") from exc


Limit = Annotated[int, Query(ge=1, le=MAX_PAGE, description=f"Items per page, 1..{MAX_PAGE}.")]
Offset = Annotated[int, Query(ge=0, le=MAX_SQL_INT, description="Items to skip.")]
Search = Annotated[
    str | None,
    Query(
        max_length=200,
        description="A substring of the code or the name, in any case (Unicode).",
    ),
]
SourceFilter = Annotated[
    str | None,
    Query(description="Only runs of this source.", json_schema_extra={"enum": list(SOURCE_IDS)}),
    AfterValidator(known_source),
]
Since = Annotated[
    datetime | None,
    Query(description="Only runs queued at or after this ISO 8601 time (naive = UTC)."),
    AfterValidator(as_utc),
]
RunId = Annotated[int, Path(ge=1, le=MAX_SQL_INT, description="The run's id.")]
ProductCode = Annotated[
    str, Path(description="The product code, exact and case-sensitive; URL-encode '/' as %2F.")
]


async def _only_known_query(request: Request) -> None:
    """Refuse a query parameter the route does not declare (422, naming it).

    FastAPI ignores unknown parameters, which on a write endpoint is a trap: a
    misspelt ``?forse=true``, or a ``?dry_run=true`` this version does not know,
    would run a real refresh and publish it. A write endpoint does only what it
    was asked, or nothing.
    """
    route = request.scope.get("route")
    if not isinstance(route, APIRoute):  # pragma: no cover - only routes depend on this
        return
    known = _query_names(route.dependant)
    unknown = sorted({name for name in request.query_params if name not in known})
    if unknown:
        takes = ", ".join(sorted(known)) or "no query parameters"
        raise RequestValidationError(
            [
                {
                    "type": "extra_forbidden",
                    "loc": ("query", name),
                    "msg": f"unknown parameter; this endpoint takes {takes}",
                }
                for name in unknown
            ]
        )


def _query_names(dependant: Dependant) -> set[str]:
    """The query parameters of a route and of everything it depends on."""
    names = {param.alias for param in dependant.query_params}
    for sub in dependant.dependencies:
        names |= _query_names(sub)
    return names


KnownQueryOnly = Depends(_only_known_query)
"""Every write endpoint's dependency: its query holds only the parameters it declares."""
