"""What an answer says beyond its records: an HTML page, an error envelope, a wait.

- An HTML page where JSON or CSV was expected is nearly always a login page, a
  proxy's or a load balancer's error page: ``got text/html, 2.1 kB: a login page?``
  says so, instead of a JSON decoding error about ``<``.
- An error envelope (ABRA Flexi: ``{"winstrom": {"success": "false", "message":
  "..."}}``) is told by the endpoint's ``ErrorWhen`` and ``ErrorMessagePath``;
  its message is the system's own, clipped.
- ``Retry-After`` (seconds, or an HTTP date) on 429 and 503 says how long to wait.

Error envelopes are small, so only a body up to ``ENVELOPE_LIMIT`` is looked at:
a large spooled page is never read into the service process for it.
"""

from __future__ import annotations

import email.utils
from collections.abc import Mapping
from datetime import datetime

import msgspec

from catalog_refresher.config.settings import JsonPath, RequestSettings
from catalog_refresher.sources.decoding import value_at

__all__ = [
    "ENVELOPE_LIMIT",
    "clip",
    "envelope_message",
    "html_problem",
    "looks_like_html",
    "retry_after",
    "size_text",
]

#: The largest body looked at for an error envelope, or read from an error answer.
ENVELOPE_LIMIT = 1 << 20
#: How much of a system's message a run's error quotes.
MESSAGE_LIMIT = 300
#: Bytes of a body enough to tell an HTML page.
HEAD = 64

_BOM = b"\xef\xbb\xbf"


def looks_like_html(content_type: str | None, head: bytes) -> bool:
    """An HTML document: it starts like one, or says it is one and starts with a tag."""
    start = head.removeprefix(_BOM).lstrip()
    if start[:9].lower() == b"<!doctype" or start[:5].lower() == b"<html":
        return True
    media = (content_type or "").partition(";")[0].strip().lower()
    # A JSON body mislabelled text/html still parses: only a tag makes it a page.
    return media == "text/html" and start[:1] == b"<"


def html_problem(size: int, *, more: bool = False) -> str:
    """What to tell about an HTML page of ``size`` bytes (``more``: at least that many)."""
    return f"got text/html, {'over ' if more else ''}{size_text(size)}"


def size_text(size: int) -> str:
    """``812 B``, ``2.1 kB``, ``3.4 MB``: decimal units, as browsers show them."""
    if size < 1000:
        return f"{size} B"
    if size < 1_000_000:
        return f"{size / 1000:.1f} kB"
    return f"{size / 1_000_000:.1f} MB"


def envelope_message(body: bytes, request: RequestSettings, *, failed: bool) -> str | None:
    """The system's error message if ``body`` is its error envelope, else ``None``.

    On a 2xx answer (``failed`` false) the page is an error when ``ErrorWhen`` holds,
    or, without it, when ``ErrorMessagePath`` holds a message. On an error status the
    message is read whatever ``ErrorWhen`` says: the status said it already.
    """
    when, path = request.error_when, request.error_message_path
    if when is None and path is None:
        return None
    if not failed:
        if when is not None:
            value = _text_at(body, when.path)
            if value is None:
                return None  # absent: pages of data seldom carry the error flag
            if when.equals is not None and value != when.equals:
                return None
            if when.not_equals is not None and value == when.not_equals:
                return None
        elif path is not None and not _text_at(body, path):
            return None
    message = None if path is None else _text_at(body, path)
    if message:
        return clip(message)
    if when is not None and not failed:
        return f"the system reported an error ({when.path.text} = {_text_at(body, when.path)})"
    return None


def _text_at(body: bytes, path: JsonPath) -> str | None:
    """The value at ``path`` as trimmed text (``false`` and ``"false"`` alike); ``None``
    when absent, null, or the body is not JSON."""
    raw = value_at(body, path)
    if raw is None:
        return None
    try:
        value = msgspec.json.decode(raw)
    except msgspec.DecodeError:
        return None
    if value is None:
        return None
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return value.strip()
    if isinstance(value, int | float):
        return str(value)
    return raw.decode(errors="replace")  # an object or array: its JSON text


def clip(text: str, limit: int = MESSAGE_LIMIT) -> str:
    """``text`` on one line, at most ``limit`` characters."""
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def retry_after(headers: Mapping[str, str], now: datetime) -> float | None:
    """Seconds to wait that ``Retry-After`` asks for; ``None`` without a usable one."""
    value = headers.get("retry-after", "").strip()
    if not value:
        return None
    if value.isdecimal():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:  # an HTTP date is GMT; one without a zone is read so
        when = when.replace(tzinfo=now.tzinfo)
    return max(0.0, (when - now).total_seconds())
