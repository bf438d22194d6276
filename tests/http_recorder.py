"""A real local HTTP(S) server that records every request as it came on the wire.

``recording(handler)`` serves on 127.0.0.1 and a free port until the block ends,
answering GET and POST with ``handler(seen)``; each ``Seen`` keeps the raw
request line (the target exactly as the client sent it, not re-encoded), the
headers, the body and, over TLS, the client certificate's subject. Pass an
``ssl.SSLContext`` to serve HTTPS. It also serves as a forward proxy's stand-in:
a request for ``http://elsewhere/x`` arrives with that absolute target.
"""

from __future__ import annotations

import json
import ssl
import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl, urlsplit


@dataclass(frozen=True)
class Seen:
    method: str
    target: str
    """The request target as sent: ``/path?query``, or an absolute URL through a proxy."""
    headers: dict[str, str]
    body: bytes
    client_subject: str | None = None
    """The ``commonName`` of the client certificate, over TLS with one."""

    @property
    def path(self) -> str:
        return urlsplit(self.target).path

    @property
    def query(self) -> dict[str, str]:
        return dict(parse_qsl(urlsplit(self.target).query))

    def json(self) -> Any:
        return json.loads(self.body)


@dataclass(frozen=True)
class Answer:
    status: int = 200
    body: bytes = b"[]"
    content_type: str | None = "application/json"
    headers: Sequence[tuple[str, str]] = ()


def ok_json(value: Any, **kwargs: Any) -> Answer:
    return Answer(body=json.dumps(value).encode(), **kwargs)


@dataclass
class Recorder:
    url: str = ""
    seen: list[Seen] = field(default_factory=list)

    @property
    def targets(self) -> list[str]:
        return [s.target for s in self.seen]


@contextmanager
def recording(
    handler: Callable[[Seen], Answer], *, tls: ssl.SSLContext | None = None
) -> Iterator[Recorder]:
    """Serve ``handler`` on 127.0.0.1 (HTTPS with ``tls``); yields the recorder."""
    state = Recorder()
    lock = threading.Lock()

    class _Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def _serve(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length) if length else b""
            subject = None
            if isinstance(self.connection, ssl.SSLSocket):
                cert = self.connection.getpeercert()
                if cert:
                    subject = dict(pair[0] for pair in cert["subject"]).get("commonName")
            seen = Seen(self.command, self.path, dict(self.headers), body, subject)
            with lock:
                state.seen.append(seen)
                answer = handler(seen)
            self.send_response(answer.status)
            if answer.content_type is not None:
                self.send_header("Content-Type", answer.content_type)
            for name, value in answer.headers:
                self.send_header(name, value)
            self.send_header("Content-Length", str(len(answer.body)))
            self.end_headers()
            self.wfile.write(answer.body)

        do_GET = _serve
        do_POST = _serve

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    if tls is not None:
        server.socket = tls.wrap_socket(server.socket, server_side=True)
    thread = threading.Thread(target=server.serve_forever, args=(0.01,), daemon=True)
    thread.start()
    scheme = "https" if tls is not None else "http"
    state.url = f"{scheme}://127.0.0.1:{server.server_address[1]}"
    try:
        yield state
    finally:
        server.shutdown()
        server.server_close()
        thread.join()
