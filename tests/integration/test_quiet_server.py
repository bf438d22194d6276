"""The API server without uvicorn's 100 ms tick (``server.QuietServer``): responses still
carry a current ``Date``, ``should_exit`` still stops it, and idle it schedules nothing."""

from __future__ import annotations

import asyncio
import threading
import time
from email.utils import parsedate_to_datetime

import httpx
import uvicorn

from catalog_refresher.server import QuietServer, _DatedState


async def _hello(scope: dict[str, object], receive: object, send: object) -> None:
    assert scope["type"] == "http"
    await send({"type": "http.response.start", "status": 200, "headers": []})  # type: ignore[operator]
    await send({"type": "http.response.body", "body": b"hi"})  # type: ignore[operator]


def _config() -> uvicorn.Config:
    return uvicorn.Config(_hello, host="127.0.0.1", port=0, lifespan="off", log_level="warning")


async def _started(server: QuietServer) -> tuple[asyncio.Task[None], str]:
    task = asyncio.create_task(server.serve())
    while not server.started:
        assert not task.done(), "the server ended before it started"
        await asyncio.sleep(0)
    port = server.servers[0].sockets[0].getsockname()[1]
    return task, f"http://127.0.0.1:{port}"


def test_the_date_header_is_made_when_read_once_per_second() -> None:
    """The date follows the wall clock by the second, and is not rebuilt within one."""
    now = [1_700_000_000.2]
    state = _DatedState(_config(), wall=lambda: now[0])
    first = state.default_headers
    assert first == [(b"date", b"Tue, 14 Nov 2023 22:13:20 GMT")]
    now[0] += 0.5
    assert state.default_headers is first
    now[0] += 1
    assert state.default_headers == [(b"date", b"Tue, 14 Nov 2023 22:13:21 GMT")]


async def test_responses_carry_a_current_date_and_should_exit_stops_it() -> None:
    """A response's Date is within a second of now; setting should_exit ends serve()."""
    server = QuietServer(_config())
    task, url = await _started(server)
    async with httpx.AsyncClient() as client:
        response = await client.get(url)
        answered = response.headers["date"]
    assert response.text == "hi"
    assert abs(time.time() - parsedate_to_datetime(answered).timestamp()) < 2
    server.should_exit = True
    await asyncio.wait_for(task, timeout=10)


async def test_an_idle_server_schedules_no_timer_and_wakes_when_told_from_a_thread() -> None:
    """Started and idle, the loop holds no timer (uvicorn's tick was one every 100 ms);
    should_exit set from another thread (as a signal handler may) wakes it."""
    server = QuietServer(_config())
    task, _ = await _started(server)
    loop = asyncio.get_running_loop()
    for _ in range(3):  # let the startup's callbacks run out
        await asyncio.sleep(0)
    timers = [h for h in loop._scheduled if not h.cancelled()]  # type: ignore[attr-defined]
    assert timers == []
    setter = threading.Thread(target=setattr, args=(server, "should_exit", True))
    setter.start()
    setter.join()
    await asyncio.wait_for(task, timeout=10)
    assert task.exception() is None
