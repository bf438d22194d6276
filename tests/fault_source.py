"""Two external systems on loopback for the fault matrix: a victim that can be told to
misbehave, and a bystander that never does.

``GET /erp`` is the victim (the service's ERP stock): ``PRODUCTS`` stock records, paged
(``start``/``limit``, the total in ``total``, records under ``items``), whose stock values
are those of ``generation`` (bump it to make the source's data change). Set ``mode`` to
one of ``MODES`` and every later request misbehaves that way until it is set back to
``"ok"``. ``GET /eshop`` is the bystander (e-shop stock), always right.

The two listen on ports of their own: ``refused`` closes the victim's listening socket
(its port then refuses connections) and any other mode opens it again on the same port.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qsl, urlparse

from tests.local_http import serving

PRODUCTS = 12
PAGE_SIZE = 5
#: A stock value's millions are its generation: ``stock // GENERATION``.
GENERATION = 1_000_000
MODES = (
    "ok",
    "http_500",
    "timeout",
    "refused",
    "trickle",
    "malformed",
    "wrong_shape",
    "invalid_rows",
    "empty",
    "page_missing",
    "slow",
)


def stock(code: int, generation: int) -> int:
    """The victim's stock of product ``code`` in data ``generation``."""
    return GENERATION * generation + code


def code(n: int) -> str:
    return f"F{n:06d}"


def erp_records(generation: int, products: int = PRODUCTS) -> list[dict[str, object]]:
    return [
        {"product_code": code(n), "product_name": f"Fault {n}", "stock": stock(n, generation)}
        for n in range(products)
    ]


def eshop_records() -> list[dict[str, object]]:
    return [{"product_code": code(n), "stock": n} for n in range(PRODUCTS)]


class FaultSource:
    """The state both systems answer from; change ``mode``/``generation`` at any time."""

    def __init__(
        self, *, products: int = PRODUCTS, trickle_seconds: float = 14.0, slow_seconds: float = 1.5
    ) -> None:
        self.products = products
        self.mode = "ok"
        self.generation = 1
        self.trickle_seconds = trickle_seconds
        self.slow_seconds = slow_seconds
        self.requests: list[tuple[float, str, str]] = []
        """(monotonic time, path, mode) of every request answered."""
        self.first_pages = 0
        """How many times the victim's first page has been asked for (a run began reading)."""
        self.last_pages_sent = 0
        """How many times the victim's last page has been sent whole."""
        self.release = threading.Event()
        """Set to end every hanging ``timeout`` answer."""
        self.port = 0
        self.eshop_url = ""
        self._cache: tuple[tuple[int, int], list[dict[str, object]]] = ((0, 0), [])
        self._read: tuple[str, int] = ("ok", 1)
        """The victim's (mode, generation) as its current read's first page found them."""
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    @property
    def erp_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/erp"

    def set_mode(self, mode: str) -> None:
        assert mode in MODES, mode
        if mode == "refused" and self._server is not None:
            self._stop()
        self.mode = mode
        if mode != "refused" and self._server is None:
            self._start()

    def _start(self) -> None:
        server = ThreadingHTTPServer(("127.0.0.1", self.port), _handler(self))
        server.daemon_threads = True
        self.port = int(server.server_address[1])
        self._server = server
        self._thread = threading.Thread(target=server.serve_forever, args=(0.01,), daemon=True)
        self._thread.start()

    def _stop(self) -> None:
        assert self._server is not None
        assert self._thread is not None
        self._server.shutdown()
        self._server.server_close()
        self._thread.join()
        self._server = None

    def victim_mode(self, query: dict[str, str]) -> str:
        """The mode a victim request is answered in. A read's later pages keep what its
        first page found: a test's switch of mode and generation (two steps) takes effect
        at the next read, never between the pages of one (a read straddling it would be a
        torn snapshot of the test's making)."""
        if query.get("start", "0") == "0":
            self._read = (self.mode, self.generation)
        return self._read[0]

    def answer(self, path: str, query: dict[str, str]) -> tuple[int, bytes, float, bool]:
        """(status, body, seconds to spread the body over, whether it is the victim's last
        page) for one request."""
        if path == "/eshop":
            return 200, json.dumps(eshop_records()).encode(), 0.0, False
        mode = self._read[0]
        if mode == "http_500":
            return 500, b'{"error": "internal"}', 0.0, False
        if mode == "malformed":
            return 200, b'{"items": [{"product_code": "F000", "sto', 0.0, False
        if mode == "wrong_shape":
            return 200, json.dumps({"items": {"F000": 1}, "total": 1}).encode(), 0.0, False
        start, limit = int(query.get("start", 0)), int(query.get("limit", PAGE_SIZE))
        if mode == "page_missing" and start > 0:
            return 404, b'{"error": "no such page"}', 0.0, False
        records = self._records()
        last_page = start + limit >= len(records)
        if mode == "invalid_rows":
            records = [{"product_code": r["product_code"], "stock": "lots"} for r in records]
        if mode == "empty":
            records = []
        page = {"items": records[start : start + limit], "total": len(records)}
        seconds = self.trickle_seconds if mode == "trickle" else 0.0
        return 200, json.dumps(page).encode(), seconds, last_page

    def _records(self) -> list[dict[str, object]]:
        key = (self._read[1], self.products)
        if self._cache[0] != key:  # a large world is built once per generation
            self._cache = (key, erp_records(key[0], self.products))
        return self._cache[1]


def _handler(state: FaultSource) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            url = urlparse(self.path)
            query = dict(parse_qsl(url.query))
            mode = state.victim_mode(query) if url.path == "/erp" else "ok"
            state.requests.append((time.monotonic(), url.path, mode))
            if url.path == "/erp" and dict(parse_qsl(url.query)).get("start", "0") == "0":
                state.first_pages += 1
            if mode == "timeout":  # accept, read, never answer (until released)
                state.release.wait(30)
                self.close_connection = True
                return
            if mode == "slow":
                time.sleep(state.slow_seconds)  # a slow system: the run stays in flight
            status, body, seconds, last = state.answer(url.path, dict(parse_qsl(url.query)))
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            if not seconds:
                self.wfile.write(body)
                self.wfile.flush()
                if last:
                    state.last_pages_sent += 1
                return
            # A trickle: a few bytes at a time, each well within any read timeout.
            step = max(1, len(body) // int(seconds / 0.1))
            try:
                for offset in range(0, len(body), step):
                    self.wfile.write(body[offset : offset + step])
                    self.wfile.flush()
                    time.sleep(0.1)
            except OSError:
                self.close_connection = True  # the service gave up: that is the point

        def log_message(self, *args: object) -> None:
            pass

    return Handler


@contextmanager
def serve_faults(**options: float) -> Iterator[FaultSource]:
    """Both systems on 127.0.0.1 and a free port, until the block ends."""
    state = FaultSource(**options)
    state._start()
    try:
        with serving(_handler(state)) as bystander:
            state.eshop_url = f"{bystander}/eshop"
            yield state
    finally:
        state.release.set()
        if state._server is not None:
            state._stop()
