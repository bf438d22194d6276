"""The OpenAPI document, with the response schemas taken from ``schemas.py``.

Routes answer with msgspec-encoded bytes, which FastAPI cannot introspect; so
each route names its responses with ``responses()`` and the msgspec structs'
JSON schemas are merged into ``components.schemas`` once, on first request.

Two corrections are made to what FastAPI writes (both found by schemathesis,
``tests/e2e/test_api_fuzz.py``): a documented body is the ``$ref`` alone (FastAPI
merges its own ``{"type": "string"}`` for a raw ``Response`` beside it, and in
OpenAPI 3.1 siblings of ``$ref`` apply, so no JSON object would match); and a
``GET`` declares the token optional (``[{"AdminToken": []}, {}]``): reads need it
only with ``Api:ProtectReads``.
"""

from __future__ import annotations

from http import HTTPStatus
from typing import Any

import msgspec
from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi

from catalog_refresher.api.control_schemas import OPERATOR_DOCUMENTED
from catalog_refresher.api.problems import PROBLEM_JSON
from catalog_refresher.api.schemas import DOCUMENTED

REF = "#/components/schemas/{name}"
Responses = dict[int | str, dict[str, Any]]


def ref(name: str) -> dict[str, str]:
    return {"$ref": REF.format(name=name)}


def responses(
    body: str | None,
    *problems: int,
    status: int = 200,
    array: bool = False,
    media: str = "application/json",
    extra_media: dict[str, dict[str, Any]] | None = None,
) -> Responses:
    """``status`` answering ``body`` (a struct name, or a list of it), and problem statuses."""
    documented: Responses = {}
    if body is not None:
        schema: dict[str, Any] = {"type": "array", "items": ref(body)} if array else ref(body)
        documented[status] = {
            "description": HTTPStatus(status).phrase,
            "content": {media: {"schema": schema}, **(extra_media or {})},
        }
    for code in problems:
        documented[code] = {
            "description": HTTPStatus(code).phrase,
            "content": {PROBLEM_JSON: {"schema": ref("Problem")}},
        }
    return documented


def install_openapi(app: FastAPI) -> None:
    _, components = msgspec.json.schema_components(
        (*DOCUMENTED, *OPERATOR_DOCUMENTED), ref_template=REF
    )

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            document = get_openapi(
                title=app.title,
                version=app.version,
                description=app.description,
                routes=app.routes,
            )
            document.setdefault("components", {}).setdefault("schemas", {}).update(components)
            _correct(document)
            app.openapi_schema = document
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]


def _correct(document: dict[str, Any]) -> None:
    """A ``$ref`` body stands alone; a read's token is optional (see the module's doc)."""
    for operations in document.get("paths", {}).values():
        for method, operation in operations.items():
            for answer in operation.get("responses", {}).values():
                for media in answer.get("content", {}).values():
                    schema = media.get("schema", {})
                    if "$ref" in schema:
                        media["schema"] = {"$ref": schema["$ref"]}
            security = operation.get("security")
            if method == "get" and security and {} not in security:
                operation["security"] = [*security, {}]
