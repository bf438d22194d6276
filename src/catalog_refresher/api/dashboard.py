"""``/dashboard``: a status page for operators, drawn from the API's own reads.

One self-contained page, shipped as package data under ``static/`` (no build
step, nothing from a CDN): it polls ``/health``, ``/api/sources``,
``/api/runs`` and ``/api/cache``, offers "Refresh now" per source, draws each
source's recent runs as a small chart, and shows the catalog's products (search,
one product's aggregate with its lineage and history). The page
itself holds no data and needs no token; the browser sends the admin token
(kept in ``sessionStorage``) with its API calls, so ``Api:ProtectReads``
guards the data, not the page.

Every file is read once, at import, and served with a strict
Content-Security-Policy: scripts, styles, images and fetches from this origin
only, nothing inline, no framing. The script sits in its own file so that the
policy needs neither a hash nor a nonce.
"""

from __future__ import annotations

from dataclasses import dataclass
from importlib import resources

from fastapi import APIRouter
from starlette.responses import Response

from catalog_refresher.errors import ApiProblem

# Not an API for programs: kept out of the OpenAPI document.
router = APIRouter(include_in_schema=False)

CONTENT_SECURITY_POLICY = "; ".join(
    (
        "default-src 'none'",
        "script-src 'self'",
        "style-src 'self'",
        "img-src 'self'",
        "connect-src 'self'",
        "base-uri 'none'",
        "form-action 'none'",
        "frame-ancestors 'none'",
    )
)
HEADERS = {
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    # Small files: revalidate every load, so an upgrade never pairs an old page
    # with a new script.
    "Cache-Control": "no-cache",
}


@dataclass(frozen=True, slots=True, kw_only=True)
class Asset:
    body: bytes
    media_type: str


def _load(file: str, media_type: str) -> Asset:
    body = (resources.files("catalog_refresher.api") / "static" / file).read_bytes()
    return Asset(body=body, media_type=media_type)


PAGE = _load("dashboard.html", "text/html")
#: What the page loads, by the name in its URL (``/dashboard/<name>``). An
#: explicit list: nothing else in the package can be fetched through here.
ASSETS = {
    "app.js": _load("dashboard.js", "text/javascript"),
    # The modules app.js imports (relative to the page's dashboard/ path).
    "api.js": _load("api.js", "text/javascript"),
    "format.js": _load("format.js", "text/javascript"),
    "chart.js": _load("chart.js", "text/javascript"),
    "products.js": _load("products.js", "text/javascript"),
    "controls.js": _load("controls.js", "text/javascript"),
    "style.css": _load("dashboard.css", "text/css"),
    "favicon.svg": _load("favicon.svg", "image/svg+xml"),
}


def _serve(asset: Asset) -> Response:
    return Response(asset.body, media_type=asset.media_type, headers=HEADERS)


@router.get("/dashboard")
async def page() -> Response:
    """The status page; it fetches its data itself."""
    return _serve(PAGE)


@router.get("/dashboard/{name}")
async def asset(name: str) -> Response:
    """The page's script, stylesheet and icon; anything else is a 404 problem."""
    found = ASSETS.get(name)
    if found is None:
        raise ApiProblem(
            404, "unknown-asset", f"The dashboard has no file {name}.", title="Unknown asset"
        )
    return _serve(found)
