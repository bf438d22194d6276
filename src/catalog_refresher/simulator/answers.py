"""What the simulator answers to one GET: routing, parameters, faults, versions.

``Simulator.answer`` is the whole protocol (the package docstring describes
it) as a function from a request target and its conditional headers to a
``Reply``; ``simulator/http.py`` only puts that on the wire, dribbling the body
out when the reply says so. The demo world is not thread-safe, so the fault
draw, the read and the version are taken under one lock, and the waits
(latency, trickle) happen outside it.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from urllib.parse import parse_qs, urlsplit

import msgspec

from catalog_refresher.clock import Clock, SystemClock
from catalog_refresher.domain.specs import SPECS
from catalog_refresher.domain.window import Window
from catalog_refresher.simulator.faults import Draw, Fault, FaultPlan, Faults
from catalog_refresher.simulator.versions import Versions, entity_tag, http_date, not_modified
from catalog_refresher.sources.demo import DemoWorld

__all__ = ["CURSOR_SOURCES", "Reply", "Simulator"]

#: The sources that answer ``changed_since`` with their changes only.
CURSOR_SOURCES = frozenset({"erp_stock"})
_JSON = "application/json"


@dataclass(frozen=True, slots=True, kw_only=True)
class Reply:
    """One answer: status, headers (``Content-Length`` is the writer's), body."""

    status: int
    headers: Mapping[str, str] = field(default_factory=dict)
    body: bytes = b""
    source: str | None = None
    """The source asked for, for the log line."""
    trickle: bool = False
    """Dribble the body out over the trickle time instead of sending it at once."""
    note: str = ""
    """What the log line adds: the fault, when there is one."""


@dataclass(frozen=True, slots=True)
class _Query:
    window: Window | None
    changed_since: datetime | None

    def key(self, source_id: str) -> tuple[str, ...]:
        """The representation asked for, which its version belongs to."""
        parts = [source_id]
        if self.window is not None:
            parts += [self.window.date_from.isoformat(), self.window.date_to.isoformat()]
        if self.changed_since is not None:
            parts.append(self.changed_since.isoformat())
        return tuple(parts)


class Simulator:
    """The ten external systems over one ``DemoWorld``, with the fault plan of ``faults``.

    ``clock`` dates ``Last-Modified``; ``sleep`` is how latency and trickle
    wait (tests pass one that only records).
    """

    def __init__(
        self,
        world: DemoWorld,
        faults: Faults,
        *,
        seed: int,
        clock: Clock | None = None,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.world, self.faults, self.sleep = world, faults, sleep
        self.plan = FaultPlan(faults, seed)
        self._clock: Clock = clock or SystemClock()
        self._versions = Versions()
        self._lock = threading.Lock()

    def answer(
        self, target: str, *, if_none_match: str | None = None, if_modified_since: str | None = None
    ) -> Reply:
        """The reply to ``GET target`` (path and query) with these conditional headers."""
        url = urlsplit(target)
        source_id = url.path.strip("/")
        if not source_id:
            return _json(200, _index())
        if source_id not in SPECS:
            return _error(404, f"no such system: /{source_id}; GET / lists the ten", None)
        query = _read_query(source_id, parse_qs(url.query, keep_blank_values=True))
        if isinstance(query, str):
            return _error(400, query, source_id)
        with self._lock:
            draw = self.plan.draw(source_id)
            if draw.fault is Fault.UNAVAILABLE:
                return _unavailable(source_id, draw)
            body = self.world.fetch(source_id, query.window, changed_since=query.changed_since)
            if draw.fault in (Fault.EMPTY, Fault.MALFORMED):
                # A broken answer is not a version of the data: it gets a tag, no 304.
                return _broken(source_id, body, draw.fault)
            version = self._versions.observe(query.key(source_id), body, self._clock.now())
        headers = {"ETag": version.etag, "Last-Modified": http_date(version.last_modified)}
        if not_modified(version, if_none_match, if_modified_since):
            return Reply(status=304, headers=headers, source=source_id)  # nothing to trickle
        trickle = draw.fault is Fault.TRICKLE
        note = f"(simulated trickle over {self.faults.trickle_seconds:g} s)" if trickle else ""
        headers["Content-Type"] = _JSON
        return Reply(
            status=200, headers=headers, body=body, source=source_id, trickle=trickle, note=note
        )


def _read_query(source_id: str, params: dict[str, list[str]]) -> _Query | str:
    """The window of a history source and the cursor of a cursor source, or what is wrong
    with them; other parameters are ignored, as real systems ignore what they do not know."""
    window = since = None
    if SPECS[source_id].is_history:
        if "date_from" not in params or "date_to" not in params:
            return f"{source_id} is a history source: date_from and date_to are required"
        first, last = _date(params, "date_from"), _date(params, "date_to")
        if isinstance(first, str):
            return first
        if isinstance(last, str):
            return last
        if first > last:
            return f"date_from {first} is after date_to {last}"
        window = Window(date_from=first, date_to=last)
    if "changed_since" in params:
        if source_id not in CURSOR_SOURCES:
            cursors = ", ".join(sorted(CURSOR_SOURCES))
            return f"changed_since is served by {cursors} only, not {source_id}"
        # An unencoded "+" of "+00:00" arrives as a space.
        text = params["changed_since"][0].strip().replace(" ", "+")
        try:
            since = datetime.fromisoformat(text)
        except ValueError:
            return f"changed_since {text!r} is not an ISO-8601 time"
        since = since.replace(tzinfo=UTC) if since.tzinfo is None else since  # naive is UTC
    return _Query(window, since)


def _date(params: dict[str, list[str]], name: str) -> date | str:
    """The ISO date of parameter ``name``, or what is wrong with it."""
    text = params[name][0].strip()
    try:
        return date.fromisoformat(text)
    except ValueError:
        return f"{name} {text!r} is not an ISO date (YYYY-MM-DD)"


def _index() -> dict[str, object]:
    """``GET /``: the ten systems and what each reads, for someone finding their way."""
    systems = []
    for spec in SPECS.values():
        parameters = ["date_from", "date_to"] if spec.is_history else []
        parameters += ["changed_since"] if spec.id in CURSOR_SOURCES else []
        systems.append({"path": f"/{spec.id}", "kind": spec.kind.value, "parameters": parameters})
    return {"systems": systems}


def _unavailable(source_id: str, draw: Draw) -> Reply:
    headers = {"Content-Type": _JSON}
    note = "scheduled" if draw.scheduled else "drawn"
    if draw.retry_after:
        headers["Retry-After"] = "1"
        note += ", Retry-After: 1"
    body = msgspec.json.encode({"error": f"{source_id} is unavailable (simulated)"})
    return Reply(
        status=503, headers=headers, body=body, source=source_id, note=f"(simulated outage, {note})"
    )


def _broken(source_id: str, body: bytes, fault: Fault) -> Reply:
    if fault is Fault.EMPTY:
        body, note = b"[]", "(simulated empty answer)"
    else:
        body, note = body[: max(1, len(body) // 2)], "(simulated malformed body: JSON cut short)"
    headers = {"Content-Type": _JSON, "ETag": entity_tag(body)}
    return Reply(status=200, headers=headers, body=body, source=source_id, note=note)


def _json(status: int, document: object, source_id: str | None = None) -> Reply:
    body = msgspec.json.encode(document)
    return Reply(status=status, headers={"Content-Type": _JSON}, body=body, source=source_id)


def _error(status: int, message: str, source_id: str | None) -> Reply:
    return _json(status, {"error": message}, source_id)
