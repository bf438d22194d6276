"""A real local HTTP server playing ABRA Flexi and Shoptet for the shipped examples.

It answers GET and POST from the fixtures in ``tests/data/flexi`` and
``tests/data/shoptet``, page by page as the systems do, and records every request
(method, path, query, JSON body, headers) for the tests to check what was asked:

- Flexi (``/c/<company>/<evidence>[/(<filter>)][/query].json``): the page whose first
  record is at ``start``, read from the query or, for a ``/query`` call, from the
  body's ``winstrom.start``; a ``start`` that is not where a page begins is a 400 in
  Flexi's error envelope, so a pager that miscounts fails loudly;
- Shoptet (``/api/...``): the page ``page`` of a paged answer;
- anything else: a fixed reply, such as the product CSV export.

Routes are keyed by ``(method, evidence or path)``; a request nobody expects is a 404.
"""

from __future__ import annotations

import json
import re
import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, unquote, urlsplit

from tests.local_http import serving
from tests.paged_server import Reply

DATA = Path(__file__).parent / "data"
FLEXI = DATA / "flexi"
SHOPTET = DATA / "shoptet"
SAMPLES = DATA / "samples"

#: ``/c/<company>/<evidence>``, an optional ``/(<filter>)``, an optional ``/query``, ``.json``.
_FLEXI_PATH = re.compile(
    r"^/c/(?P<company>[^/]+)/(?P<evidence>[a-z-]+)"
    r"(?:/\((?P<filter>.*)\))?(?P<query>/query)?\.json$"
)


@dataclass(frozen=True)
class Request:
    method: str
    path: str
    """The path, percent-decoded (a Flexi filter is readable here)."""
    raw_path: str
    raw_query: str
    """The query string exactly as it came, percent-escapes and all."""
    query: Mapping[str, str]
    body: Any
    """The JSON body, parsed; ``None`` without a body."""
    headers: Mapping[str, str]

    @property
    def flexi(self) -> re.Match[str] | None:
        return _FLEXI_PATH.match(self.path)


Route = Callable[[Request], Reply]


@dataclass
class Systems:
    url: str
    routes: dict[tuple[str, str], Route] = field(default_factory=dict)
    requests: list[Request] = field(default_factory=list)

    def route(self, method: str, name: str, handler: Route) -> None:
        """Answer ``method`` requests for a Flexi evidence or a path with ``handler``."""
        self.routes[(method, name)] = handler

    def asked(self, name: str) -> list[Request]:
        """The requests made for a Flexi evidence or a path, in order."""
        return [r for r in self.requests if _name(r) == name]


def _name(request: Request) -> str:
    match = request.flexi
    return match["evidence"] if match else request.path


@contextmanager
def serve() -> Iterator[Systems]:
    """Serve the routes added to the yielded ``Systems`` on 127.0.0.1 and a free port."""
    state = Systems(url="")
    lock = threading.Lock()

    class _Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self._answer("GET")

        def do_POST(self) -> None:
            self._answer("POST")

        def _answer(self, method: str) -> None:
            url = urlsplit(self.path)
            length = int(self.headers.get("Content-Length") or 0)
            raw = self.rfile.read(length) if length else b""
            request = Request(
                method=method,
                path=unquote(url.path),
                raw_path=url.path,
                raw_query=url.query,
                query=dict(parse_qsl(url.query, keep_blank_values=True)),
                body=json.loads(raw) if raw else None,
                headers=dict(self.headers),
            )
            with lock:
                state.requests.append(request)
                handler = state.routes.get((method, _name(request)))
                reply = Reply(status=404) if handler is None else handler(request)
            self.send_response(reply.status)
            self.send_header("Content-Type", reply.content_type)
            self.send_header("Content-Length", str(len(reply.body)))
            self.end_headers()
            self.wfile.write(reply.body)

        def log_message(self, *args: object) -> None:
            pass

    with serving(_Handler) as state.url:
        yield state


def fixture(path: Path) -> bytes:
    return path.read_bytes()


def flexi_records(page: Path) -> list[Any]:
    """The records of one Flexi page (the one array in its ``winstrom`` envelope)."""
    envelope = json.loads(page.read_bytes())["winstrom"]
    (records,) = (v for k, v in envelope.items() if isinstance(v, list))
    return list(records)


def flexi_error(message: str, status: int = 400) -> Reply:
    body = {"winstrom": {"@version": "1.0", "success": "false", "message": message}}
    return Reply(status=status, body=json.dumps(body, ensure_ascii=False).encode())


def flexi_pages(pages: Sequence[Path], *, in_body: bool = False) -> Route:
    """Flexi paging over page files: the page that starts at ``start``, as Flexi sends it.

    ``in_body``: a ``/query`` call carries ``start`` and ``limit`` in ``winstrom`` of
    its JSON body, not in the URL.
    """
    starts: dict[int, bytes] = {}
    offset = 0
    for page in pages:
        starts[offset] = page.read_bytes()
        offset += len(flexi_records(page))

    def handle(request: Request) -> Reply:
        source: Any = request.query
        if in_body:
            source = (request.body or {}).get("winstrom", {})
        if "limit" not in source:
            return flexi_error("limit missing: Flexi would send only 20 records")
        body = starts.get(int(source.get("start", 0)))
        if body is None:
            return flexi_error(f"start={source.get('start')} is not where a page begins")
        return Reply(body=body)

    return handle


def shoptet_pages(pages: Sequence[Path], *, token: str) -> Route:
    """Shoptet paging over page files: ``page`` (from 1), behind the private API token."""

    def handle(request: Request) -> Reply:
        if request.headers.get("Shoptet-Private-API-Token") != token:
            return Reply(status=401, body=fixture(SHOPTET / "error_invalid-token.json"))
        page = int(request.query.get("page", 1))
        if not 1 <= page <= len(pages):
            return Reply(status=400)
        return Reply(body=pages[page - 1].read_bytes())

    return handle


def always(reply: Reply) -> Route:
    return lambda request: reply
