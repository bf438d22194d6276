"""A real local HTTP server that plays the ten external systems, for end-to-end tests.

``GET /<source id>`` answers with the demo world's current records for that
source (history sources read ``date_from``/``date_to``), so a service pointed
at it sees realistic, changing data over a real socket. A source named in
``failing`` answers HTTP 500 instead, as a broken external system would.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from datetime import UTC, date, datetime
from http.server import BaseHTTPRequestHandler
from urllib.parse import parse_qs, urlparse

from catalog_refresher.domain.specs import SPECS
from catalog_refresher.domain.window import Window
from catalog_refresher.sources.demo import DemoWorld
from tests.local_http import serving

#: The longest a held request waits for its event.
HOLD_LIMIT = 120.0


class SourceServer:
    def __init__(
        self,
        world: DemoWorld,
        failing: Iterable[str] = (),
        slow: Mapping[str, float] = {},
        held: Mapping[str, threading.Event] = {},
    ) -> None:
        self.world = world
        self.failing = frozenset(failing)
        self.slow = dict(slow)
        self.held = dict(held)
        self.lock = threading.Lock()  # the demo world is not thread-safe
        self.requests: list[str] = []
        self.url = ""

    def base_url(self) -> str:
        return self.url


def _handler(state: SourceServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            url = urlparse(self.path)
            source = url.path.strip("/")
            if source not in SPECS:
                self.send_error(404)
                return
            if source in state.failing:
                with state.lock:
                    state.requests.append(source)
                self.send_error(500, "Internal Server Error")
                return
            query = parse_qs(url.query)
            window = None
            if "date_from" in query:
                window = Window(
                    date_from=date.fromisoformat(query["date_from"][0]),
                    date_to=date.fromisoformat(query["date_to"][0]),
                )
            with state.lock:
                state.requests.append(source)
                body = state.world.fetch(source, window)
            # A held source answers once its event is set: the request is surely in
            # flight for as long as a test needs (bounded, so no thread outlives a test).
            hold = state.held.get(source)
            if hold is not None:
                hold.wait(timeout=HOLD_LIMIT)
            # A slow system: the answer takes this long (a test's replica can die meanwhile).
            time.sleep(state.slow.get(source, 0.0))
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            # The asker may be gone (a test killed it while the answer was held).
            with contextlib.suppress(BrokenPipeError, ConnectionResetError):
                self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    return Handler


@contextmanager
def serve_sources(
    products: int = 200,
    seed: int = 11,
    failing: Iterable[str] = (),
    slow: Mapping[str, float] = {},
    held: Mapping[str, threading.Event] = {},
) -> Iterator[SourceServer]:
    """Serve a demo world (no random failures but ``failing``; ``slow`` sources answer
    after that many seconds; ``held`` ones once their event is set) on 127.0.0.1 and a
    free port. Every held event is set when the block ends."""
    world = DemoWorld(
        products=products, seed=seed, failure_rate=0.0, clock_today=lambda: datetime.now(UTC).date()
    )
    state = SourceServer(world, failing, slow, held)
    with serving(_handler(state)) as state.url:
        try:
            yield state
        finally:
            for event in state.held.values():
                event.set()  # the server's close waits for its request threads
