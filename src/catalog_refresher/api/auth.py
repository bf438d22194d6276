"""The admin token (contract section 6): ``Authorization: Bearer <AdminToken>``.

With ``Api:AdminToken`` set, every ``POST`` needs the token; with
``Api:ProtectReads`` too, so do the ``GET /api/*`` reads. Health and metrics
stay open for probes and scrapers. Without a token nothing is checked.

A missing or malformed header is 401 with ``WWW-Authenticate: Bearer``; a wrong
token is 403. The token is compared in constant time and never logged or echoed.
"""

from __future__ import annotations

import hmac
from typing import Annotated

from fastapi import Depends
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from catalog_refresher.api.context import Ctx
from catalog_refresher.errors import ApiProblem

# auto_error=False: the 401/403 problems below are ours; the scheme is still
# declared in OpenAPI, so /docs offers to send the token.
bearer = HTTPBearer(
    auto_error=False,
    scheme_name="AdminToken",
    description="Api:AdminToken; needed for POST (and for reads with Api:ProtectReads).",
)
Credentials = Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)]


def check_token(context: Ctx, credentials: HTTPAuthorizationCredentials | None) -> None:
    """Raise the 401/403 problem unless ``credentials`` carry the configured token."""
    token = context.settings.api.admin_token
    if token is None:
        return
    if credentials is None:
        raise ApiProblem(
            401,
            "unauthorized",
            "This endpoint needs an 'Authorization: Bearer <admin token>' header.",
            headers={"WWW-Authenticate": "Bearer"},
        )
    # Bytes, not str: compare_digest on str rejects non-ASCII, and a header may carry it.
    if not hmac.compare_digest(credentials.credentials.encode(), token.value.encode()):
        raise ApiProblem(403, "forbidden", "The bearer token is not the admin token.")


async def require_admin(context: Ctx, credentials: Credentials) -> None:
    """For write endpoints: the admin token when one is configured."""
    check_token(context, credentials)


async def require_reader(context: Ctx, credentials: Credentials) -> None:
    """For ``/api`` reads: the admin token when ``Api:ProtectReads`` is on."""
    if context.settings.api.protect_reads:
        check_token(context, credentials)


Admin = Depends(require_admin)
Reader = Depends(require_reader)
