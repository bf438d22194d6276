"""A real local HTTP server playing ABRA Flexi and Shoptet, paging included.

``serve(handler)`` answers every GET with ``handler(path, query)``; ``flexi`` and
``shoptet`` are handlers that page a list of records the way those systems do
(Flexi: ``start``/``limit``, the total in ``winstrom.@rowCount`` as a string;
Shoptet: ``page``/``itemsPerPage``, ``data.paginator.pageCount``), either one
capping the page size like the real systems. The records come from the sample
files in ``tests/data/samples``.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlparse

from tests.local_http import serving

SAMPLES = Path(__file__).parent / "data" / "samples"


def sample(name: str) -> bytes:
    return (SAMPLES / name).read_bytes()


def flexi_cards() -> list[dict[str, Any]]:
    """The five stock cards of the two Flexi sample pages."""
    return [
        card
        for page in (1, 2)
        for card in json.loads(sample(f"abraflexi_skladova-karta_page{page}.json"))["winstrom"][
            "skladova-karta"
        ]
    ]


def shoptet_supplies() -> list[dict[str, Any]]:
    """The five supplies of the two Shoptet sample pages."""
    return [
        supply
        for page in (1, 2)
        for supply in json.loads(sample(f"shoptet_stocks_supplies_page{page}.json"))["data"][
            "supplies"
        ]
    ]


@dataclass(frozen=True)
class Reply:
    status: int = 200
    body: bytes = b""
    content_type: str = "application/json"


Handler = Callable[[str, dict[str, str]], Reply]


@dataclass
class Server:
    url: str
    requests: list[dict[str, str]] = field(default_factory=list)
    """The query of every request, in order."""
    headers: list[dict[str, str]] = field(default_factory=list)


@contextmanager
def serve(handler: Handler) -> Iterator[Server]:
    """Serve ``handler`` on 127.0.0.1 and a free port until the block ends."""
    state = Server(url="")
    lock = threading.Lock()

    class _Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            url = urlparse(self.path)
            query = dict(parse_qsl(url.query))
            with lock:
                state.requests.append(query)
                state.headers.append(dict(self.headers))
                reply = handler(url.path, query)
            self.send_response(reply.status)
            self.send_header("Content-Type", reply.content_type)
            self.send_header("Content-Length", str(len(reply.body)))
            self.end_headers()
            self.wfile.write(reply.body)

        def log_message(self, *args: object) -> None:
            pass

    with serving(_Handler) as state.url:
        yield state


def flexi_page(cards: list[dict[str, Any]], row_count: int) -> bytes:
    """One page in Flexi's envelope; ``@rowCount`` is a string, as Flexi sends it."""
    envelope = {"@version": "1.0", "@rowCount": str(row_count), "skladova-karta": cards}
    return json.dumps({"winstrom": envelope}, ensure_ascii=False).encode()


def flexi(cards: list[dict[str, Any]], *, cap: int | None = None) -> Handler:
    """Flexi paging over ``cards``: ``start``/``limit`` (``limit=0`` is all), at most ``cap``."""

    def handle(path: str, query: dict[str, str]) -> Reply:
        start, limit = int(query.get("start", 0)), int(query.get("limit", 20))
        limit = limit or len(cards)
        if cap is not None:
            limit = min(limit, cap)
        return Reply(body=flexi_page(cards[start : start + limit], len(cards)))

    return handle


def shoptet_page(
    supplies: list[dict[str, Any]], *, page: int, page_count: int, per_page: int, total: int
) -> bytes:
    paginator = {
        "totalCount": total,
        "page": page,
        "pageCount": page_count,
        "itemsOnPage": len(supplies),
        "itemsPerPage": per_page,
    }
    document = {
        "data": {"supplies": supplies, "paginator": paginator},
        "errors": None,
        "metadata": {"requestId": f"req-{page}"},
    }
    return json.dumps(document, ensure_ascii=False).encode()


def shoptet(supplies: list[dict[str, Any]], *, cap: int = 100) -> Handler:
    """Shoptet paging over ``supplies``: ``itemsPerPage`` silently capped at ``cap``."""

    def handle(path: str, query: dict[str, str]) -> Reply:
        page = int(query.get("page", 1))
        per_page = min(int(query.get("itemsPerPage", 20)), cap)
        page_count = -(-len(supplies) // per_page)
        items = supplies[(page - 1) * per_page : page * per_page]
        body = shoptet_page(
            items, page=page, page_count=page_count, per_page=per_page, total=len(supplies)
        )
        return Reply(body=body)

    return handle
