"""The simulator on a socket: the standard library's threading HTTP server.

Why not uvicorn, which serves the API: every answer is computed under the
demo world's one lock, so an event loop would buy no concurrency, and the two
waits the faults need (latency, a trickled body) are plain sleeps on the
request's own thread, outside that lock, which a fake ``sleep`` makes
instant in tests. The server also runs on a thread of a unit test exactly as
the tests' other fake systems do (``tests/local_http.py``).

HTTP/1.1 with keep-alive; every answer but a 304 carries ``Content-Length``.
One log line per request, in the service's log format: method, target,
status, bytes sent, the time it took, and the fault if there was one.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from catalog_refresher.simulator.answers import Reply, Simulator

__all__ = ["TRICKLE_CHUNKS", "serving"]

log = logging.getLogger("catalog_refresher.simulator")

#: A trickled body goes out in this many pieces, one per equal share of the trickle time.
TRICKLE_CHUNKS = 20


#: How long the end waits for answers still being sent (and their log lines).
CLOSE_WAIT = 2.0


class _Server(ThreadingHTTPServer):
    daemon_threads = True  # a body still trickling never holds up the end for long
    block_on_close = False  # ``close`` below waits, but only so long
    allow_reuse_address = True

    def __init__(self, *args: Any) -> None:
        super().__init__(*args)
        self._handlers: list[threading.Thread] = []

    def process_request(self, request: Any, client_address: Any) -> None:
        # ThreadingMixIn's, keeping the thread: daemon, yet waited for (briefly) at the end.
        handler = threading.Thread(
            target=self.process_request_thread, args=(request, client_address), daemon=True
        )
        self._handlers = [t for t in self._handlers if t.is_alive()]
        self._handlers.append(handler)
        handler.start()

    def close(self) -> None:
        """Stop serving; answers under way get ``CLOSE_WAIT`` to finish and be logged."""
        self.server_close()
        deadline = time.monotonic() + CLOSE_WAIT
        for handler in self._handlers:
            handler.join(max(0.0, deadline - time.monotonic()))


@contextmanager
def serving(simulator: Simulator, host: str = "127.0.0.1", port: int = 8100) -> Iterator[str]:
    """Serve ``simulator`` until the block ends; yields its base URL (port 0: a free one).

    Binding fails with ``OSError`` (a port in use) before anything is served.
    """
    server = _Server((host, port), _handler(simulator))
    url = f"http://{host}:{server.server_address[1]}"
    # A short poll interval: shutdown() waits for the loop to notice, 0.5 s by default.
    thread = threading.Thread(
        target=server.serve_forever, args=(0.05,), name="simulator", daemon=True
    )
    thread.start()
    scheduled = simulator.plan.scheduled
    on_purpose = f"; the first request of {scheduled} fails on purpose (503)" if scheduled else ""
    log.info("Simulating the ten external systems on %s%s", url, on_purpose, extra=_fields(None))
    try:
        yield url
    finally:
        server.shutdown()
        server.close()
        thread.join()
        log.info("Simulator stopped", extra=_fields(None))


def _handler(simulator: Simulator) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        server_version = "catalog-refresher-simulator"
        # Headers and body go out in separate writes: with Nagle's algorithm the body of a
        # small answer waits for the client's delayed ACK, 40 ms a request on keep-alive.
        disable_nagle_algorithm = True

        def do_GET(self) -> None:
            started = time.monotonic()
            if simulator.faults.latency:
                simulator.sleep(simulator.faults.latency)
            try:
                reply = simulator.answer(
                    self.path,
                    if_none_match=self.headers.get("If-None-Match"),
                    if_modified_since=self.headers.get("If-Modified-Since"),
                )
            except Exception:
                log.exception("GET %s failed", self.path, extra=_fields(None))
                reply = Reply(status=500, headers={"Connection": "close"})
                self.close_connection = True
            self._reply(reply, started)

        def do_POST(self) -> None:
            """The systems are only read: any other method is a 405, logged like a GET."""
            body = b"" if self.command == "HEAD" else b'{"error":"only GET is served"}'
            # A request body, if any, is left unread, so the connection ends; said in the
            # answer, else a client may send its next request on it (a flaky reset, seen).
            headers = {"Allow": "GET", "Content-Type": "application/json", "Connection": "close"}
            self.close_connection = True
            self._reply(Reply(status=405, headers=headers, body=body), time.monotonic())

        do_HEAD = do_PUT = do_PATCH = do_DELETE = do_POST

        def _reply(self, reply: Reply, started: float) -> None:
            """Send ``reply`` and write its log line."""
            self.send_response(reply.status)
            for name, value in reply.headers.items():
                self.send_header(name, value)
            if reply.status != 304:  # a 304 has no body, and its length is the cached one's
                self.send_header("Content-Length", str(len(reply.body)))
            self.end_headers()
            sent = self._write(reply)
            took = time.monotonic() - started
            line = f"{self.command} {self.path} {reply.status} {sent} bytes in {took:.2f} s"
            notes = [reply.note] if reply.note else []
            if sent < len(reply.body):
                notes.append(f"(the client left after {sent} of {len(reply.body)} bytes)")
                self.close_connection = True
            level = logging.WARNING if notes else logging.INFO
            log.log(level, " ".join([line, *notes]), extra=_fields(reply.source))

        def _write(self, reply: Reply) -> int:
            """Send the body, in pieces over the trickle time if asked; the bytes sent."""
            body, sent = reply.body, 0
            size = -(-len(body) // TRICKLE_CHUNKS) if reply.trickle else len(body)
            pause = simulator.faults.trickle_seconds / TRICKLE_CHUNKS if reply.trickle else 0.0
            try:
                for start in range(0, len(body), max(1, size)):
                    if pause:
                        simulator.sleep(pause)
                    self.wfile.write(body[start : start + size])  # unbuffered: goes out now
                    sent = min(len(body), start + size)
            except (BrokenPipeError, ConnectionResetError):
                pass
            return sent

        def log_message(self, format: str, *args: object) -> None:
            """Silenced: ``do_GET`` writes the one line per request, in the service's format."""

    return Handler


def _fields(source: str | None) -> dict[str, object]:
    """The structured fields the service's log formats expect."""
    return {"source": source, "run_id": None, "fields": {}}
