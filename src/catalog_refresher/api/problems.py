"""Every error the API answers is an RFC 9457 problem details document.

The body is ``application/problem+json`` with ``type``, ``title``, ``status``,
``detail`` and ``instance`` (the request path); a validation problem adds
``errors``, one ``{"in", "name", "detail"}`` per bad parameter. ``type`` is
``about:blank`` for plain HTTP errors (unknown route, wrong method) and a
stable, non-dereferenceable ``urn:catalog-refresher:problem:<slug>`` for the
service's own problems, so clients can branch on it.

Mapping (contract section 6: bad input never gets a 500):

====================================  ======  ======================
``RequestValidationError``            422     ``validation``
``UnknownSourceError``                404     ``unknown-source``
``SourceNotEnabled``                  409     ``source-not-enabled``
``RunConflict``                       409     ``run-conflict``
``ServiceStopping``                   503     ``service-stopping`` (``Retry-After``)
``StoreError``                        503     ``store-unavailable``
``ApiProblem``                        its own status and slug
Starlette ``HTTPException``           its status, ``about:blank``
anything else                         500     ``internal`` (no internals)
====================================  ======  ======================
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from http import HTTPStatus
from typing import Any

import msgspec
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from catalog_refresher.api.schemas import FieldError, Problem
from catalog_refresher.errors import (
    ApiProblem,
    RunConflict,
    ServiceStopping,
    SourceNotEnabled,
    StoreError,
    UnknownSourceError,
)

log = logging.getLogger("catalog_refresher.api")

PROBLEM_JSON = "application/problem+json"
PROBLEM_TYPE = "urn:catalog-refresher:problem:"
#: Details echo user input (a product code, a source id); a bounded echo keeps a
#: hostile ten-kilobyte path from coming back ten kilobytes long.
MAX_DETAIL = 300


def phrase(status: int) -> str:
    """The status's reason phrase; a code outside ``HTTPStatus`` must not fail the handler."""
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return "Error"


def clip(text: str, limit: int = MAX_DETAIL) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def problem_response(
    request: Request | None,
    status: int,
    *,
    slug: str | None,
    detail: str,
    title: str | None = None,
    headers: Mapping[str, str] | None = None,
    errors: list[FieldError] | None = None,
    path: str | None = None,
) -> Response:
    """A problem details response; ``slug`` None means ``about:blank``."""
    body = Problem(
        type=PROBLEM_TYPE + slug if slug else "about:blank",
        title=title or phrase(status),
        status=status,
        detail=clip(detail),
        instance=clip(request.url.path if request is not None else path or "/"),
        errors=errors,
    )
    return Response(
        msgspec.json.encode(body), status_code=status, media_type=PROBLEM_JSON, headers=headers
    )


# Starlette types a handler as taking ``Exception``; each narrows with an assert.


async def _api_problem(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, ApiProblem)
    return problem_response(
        request, exc.status, slug=exc.slug, detail=exc.detail, title=exc.title, headers=exc.headers
    )


async def _http_exception(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    generic = not exc.detail or exc.detail == phrase(exc.status_code)
    detail = _default_detail(request, exc) if generic else exc.detail
    return problem_response(request, exc.status_code, slug=None, detail=detail, headers=exc.headers)


def _default_detail(request: Request, exc: HTTPException) -> str:
    if exc.status_code == 404:
        return f"Nothing is served at {request.url.path}."
    if exc.status_code == 405:
        allowed = (exc.headers or {}).get("Allow", "")
        return f"{request.method} is not allowed here; allowed: {allowed}."
    try:
        return HTTPStatus(exc.status_code).description
    except ValueError:
        return "The request failed."


async def _validation(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, RequestValidationError)
    errors = field_errors(exc.errors())
    names = ", ".join(dict.fromkeys(e.name for e in errors))
    return problem_response(
        request,
        422,
        slug="validation",
        title="Invalid request parameters",
        detail=f"Invalid parameter(s): {names}." if names else "The request is invalid.",
        errors=errors,
    )


def field_errors(raw: Sequence[Any]) -> list[FieldError]:
    """Pydantic's errors as ``{"in", "name", "detail"}``; the rejected input is not echoed."""
    out = []
    for error in raw:
        loc = tuple(error.get("loc", ()))
        where = str(loc[0]) if loc else "request"
        name = ".".join(str(part) for part in loc[1:]) or where
        out.append(FieldError(in_=where, name=name, detail=clip(str(error.get("msg", "invalid")))))
    return out


async def _unknown_source(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, UnknownSourceError)
    return problem_response(
        request, 404, slug="unknown-source", title="Unknown source", detail=str(exc)
    )


async def _not_enabled(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, SourceNotEnabled)
    return problem_response(
        request, 409, slug="source-not-enabled", title="Source not enabled", detail=str(exc)
    )


async def _conflict(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, RunConflict)
    return problem_response(
        request, 409, slug="run-conflict", title="Run already in flight", detail=str(exc)
    )


async def _stopping(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, ServiceStopping)
    # A replica behind the same load balancer can take the refresh at once.
    return problem_response(
        request,
        503,
        slug="service-stopping",
        title="Service stopping",
        detail=str(exc),
        headers={"Retry-After": "1"},
    )


async def _store_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, StoreError)
    # The message may name the database file or server; it goes to the log only.
    log.warning(
        "store error serving %s %s: %s",
        request.method,
        request.url.path,
        exc,
        extra={"source": None, "run_id": None},
    )
    return problem_response(
        request,
        503,
        slug="store-unavailable",
        title="Store unavailable",
        detail="The catalog store cannot be read right now; try again shortly.",
        headers={"Retry-After": "5"},
    )


class CatchAll:
    """Turns an unexpected exception into a 500 problem, logged here with its traceback.

    A middleware rather than an ``Exception`` handler: Starlette re-raises after
    such a handler answers, and the server would log every failure twice.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = False

        async def tracking(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, receive, tracking)
        except Exception:
            log.exception(
                "unexpected error serving %s %s",
                scope.get("method"),
                scope.get("path"),
                extra={"source": None, "run_id": None},
            )
            if started:  # too late for a problem document; let the server drop it
                raise
            response = problem_response(
                None,
                500,
                slug="internal",
                detail="The server failed to answer; the error is logged.",
                path=str(scope.get("path", "/")),
            )
            await response(scope, receive, send)


def install(app: FastAPI) -> None:
    """Register the handlers and the catch-all middleware on ``app``."""
    app.add_exception_handler(ApiProblem, _api_problem)
    app.add_exception_handler(HTTPException, _http_exception)
    app.add_exception_handler(RequestValidationError, _validation)
    app.add_exception_handler(UnknownSourceError, _unknown_source)
    app.add_exception_handler(SourceNotEnabled, _not_enabled)
    app.add_exception_handler(RunConflict, _conflict)
    app.add_exception_handler(ServiceStopping, _stopping)
    app.add_exception_handler(StoreError, _store_error)
    app.add_middleware(CatchAll)
