"""``catalog-refresher simulate`` over a real socket: a server thread, an httpx client.

Time is a ``FakeClock`` (it dates ``Last-Modified`` and the ERP's changes), and
the simulator's waits go to a recorder instead of sleeping, so latency and
trickle are checked without waiting for them.
"""

from __future__ import annotations

import logging
import socket
import ssl
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from email.utils import parsedate_to_datetime
from typing import Any

import httpx
import msgspec
import pytest
from typer.testing import CliRunner

from catalog_refresher.cli import app
from catalog_refresher.domain.specs import SOURCE_IDS, SPECS
from catalog_refresher.simulator import TRICKLE_CHUNKS, Faults, Simulator, serving
from catalog_refresher.sources.demo import DemoWorld
from catalog_refresher.testing import FakeClock

CLEAN = Faults(error_rate=0.0)
# Plain HTTP, but httpx builds a TLS context per client (0.1 s): share one instead.
TLS = ssl.create_default_context()
PAST_QUARTER = {"date_from": "2026-01-01", "date_to": "2026-03-31"}


@dataclass
class Harness:
    url: str
    client: httpx.AsyncClient
    clock: FakeClock
    simulator: Simulator
    sleeps: list[float] = field(default_factory=list)

    async def get(self, path: str, **params: str) -> httpx.Response:
        return await self.client.get(f"{self.url}{path}", params=params or None)

    async def source(self, source_id: str, headers: dict[str, str] | None = None) -> httpx.Response:
        """One source, a history source with its default window up to today."""
        params = window(source_id) or {}
        return await self.client.get(f"{self.url}/{source_id}", params=params, headers=headers)


def window(source_id: str) -> dict[str, str] | None:
    days = SPECS[source_id].default_retention_days
    if days is None:
        return None
    today = date(2026, 11, 29)
    return {"date_from": (today - timedelta(days=days)).isoformat(), "date_to": today.isoformat()}


@asynccontextmanager
async def simulated(faults: Faults = CLEAN, *, seed: int = 11) -> AsyncIterator[Harness]:
    clock = FakeClock()
    world = DemoWorld(
        products=200,
        seed=seed,
        failure_rate=0.0,
        clock_today=lambda: clock.now().date(),
        clock_now=clock.now,
    )
    sleeps: list[float] = []
    simulator = Simulator(world, faults, seed=seed, clock=clock, sleep=sleeps.append)
    with serving(simulator, port=0) as url:
        async with httpx.AsyncClient(verify=TLS, trust_env=False) as client:
            yield Harness(url, client, clock, simulator, sleeps)


def rows(response: httpx.Response) -> list[dict[str, Any]]:
    decoded: list[dict[str, Any]] = msgspec.json.decode(response.content)
    return decoded


@pytest.mark.parametrize("source_id", SOURCE_IDS)
async def test_each_source_answers_its_records_in_the_contract_shape(source_id: str) -> None:
    """GET /<source id> is a JSON array that the source's record type reads, row by row."""
    async with simulated() as sim:
        response = await sim.source(source_id)

    assert response.status_code == 200
    assert response.headers["content-type"] == "application/json"
    assert int(response.headers["content-length"]) == len(response.content)
    records = rows(response)
    assert records
    for record in records:
        msgspec.convert(record, SPECS[source_id].record_type)
    if source_id == "erp_stock":
        assert all(record["changed_at"].endswith("Z") for record in records)


@pytest.mark.parametrize("source_id", ["purchase_history", "consumed_materials", "sales_data"])
async def test_a_history_source_answers_only_inside_its_window(source_id: str) -> None:
    """date_from and date_to bound the rows a history source answers, both inclusive."""
    async with simulated() as sim:
        response = await sim.get(f"/{source_id}", **PAST_QUARTER)

    days = {record.get("date") or f"{record['period']}-01" for record in rows(response)}
    assert days
    assert min(days) >= "2026-01-01"
    assert max(days) <= "2026-03-31"


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({}, "date_from and date_to are required"),
        ({"date_from": "2026-01-01"}, "date_from and date_to are required"),
        ({"date_from": "2026-03-01", "date_to": "2026-01-01"}, "is after date_to"),
        ({"date_from": "1.1.2026", "date_to": "2026-01-31"}, "not an ISO date"),
    ],
)
async def test_a_history_source_without_a_good_window_is_a_400(
    params: dict[str, str], message: str
) -> None:
    """A missing, reversed or unreadable window is refused, saying what is wrong."""
    async with simulated() as sim:
        response = await sim.get("/sales_data", **params)

    assert response.status_code == 400
    assert message in response.json()["error"]


async def test_the_index_lists_the_ten_and_an_unknown_path_is_a_404() -> None:
    """GET / names each system's path and parameters; another path is a 404."""
    async with simulated() as sim:
        index = (await sim.get("/")).json()
        missing = await sim.get("/warehouse")

    assert [system["path"] for system in index["systems"]] == [f"/{s}" for s in SOURCE_IDS]
    assert index["systems"][0]["parameters"] == ["changed_since"]
    assert missing.status_code == 404
    assert "/warehouse" in missing.json()["error"]


async def test_the_systems_are_only_read_other_methods_are_a_405(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """POST, DELETE and HEAD get 405 with Allow: GET, and a log line naming the method."""
    with caplog.at_level(logging.INFO, "catalog_refresher.simulator"):
        async with simulated() as sim:
            answers = [
                await sim.client.request(method, f"{sim.url}/erp_stock")
                for method in ("POST", "DELETE", "HEAD")
            ]

    assert [(a.status_code, a.headers["allow"]) for a in answers] == [(405, "GET")] * 3
    assert answers[2].content == b""
    logged = [r.getMessage() for r in caplog.records if " 405 " in r.getMessage()]
    assert [line.split()[0] for line in logged] == ["POST", "DELETE", "HEAD"]


async def test_an_unchanged_source_answers_the_same_bytes_and_version() -> None:
    """A past window read twice, minutes apart, is byte for byte alike with one ETag and date."""
    async with simulated() as sim:
        first = await sim.get("/purchase_history", **PAST_QUARTER)
        await sim.clock.advance(600)
        again = await sim.get("/purchase_history", **PAST_QUARTER)

    assert again.content == first.content
    assert again.headers["etag"] == first.headers["etag"]
    assert again.headers["last-modified"] == first.headers["last-modified"]


async def test_a_matching_etag_gets_a_304_without_a_body() -> None:
    """If-None-Match with the current ETag (alone, in a list, or weak) answers 304, no body."""
    async with simulated() as sim:
        first = await sim.get("/purchase_history", **PAST_QUARTER)
        etag = first.headers["etag"]
        answers = [
            await sim.client.get(
                f"{sim.url}/purchase_history", params=PAST_QUARTER, headers={"If-None-Match": tag}
            )
            for tag in (etag, f'"stale", W/{etag}', '"stale"')
        ]

    assert [a.status_code for a in answers] == [304, 304, 200]
    assert answers[0].content == b""
    assert answers[0].headers["etag"] == etag
    assert answers[0].headers["last-modified"] == first.headers["last-modified"]
    assert answers[2].content == first.content


async def test_if_modified_since_gets_a_304_until_the_data_changes() -> None:
    """If-Modified-Since answers 304 while the data is unchanged, 200 with a later date after."""
    async with simulated() as sim:
        first = await sim.source("erp_stock")
        since = {"If-Modified-Since": first.headers["last-modified"]}
        await sim.clock.advance(30)
        changed = await sim.source("erp_stock", headers=since)  # ERP stock moves on every read
        stable = await sim.get("/purchase_history", **PAST_QUARTER)
        await sim.clock.advance(30)
        unchanged = await sim.client.get(
            f"{sim.url}/purchase_history",
            params=PAST_QUARTER,
            headers={"If-Modified-Since": stable.headers["last-modified"]},
        )

    assert changed.status_code == 200
    assert _date(changed.headers["last-modified"]) - _date(first.headers["last-modified"]) == (
        timedelta(seconds=30)
    )
    assert unchanged.status_code == 304


async def test_a_source_that_changes_twice_within_a_second_still_dates_the_change_later() -> None:
    """Last-Modified grows by a second when the data changed again before the clock did."""
    async with simulated() as sim:
        first = await sim.source("eshop_stock")
        second = await sim.source(
            "eshop_stock", headers={"If-Modified-Since": first.headers["last-modified"]}
        )

    assert second.status_code == 200
    assert _date(second.headers["last-modified"]) == _date(first.headers["last-modified"]) + (
        timedelta(seconds=1)
    )


async def test_changed_since_answers_the_erp_changes_and_tombstones_only() -> None:
    """?changed_since= on erp_stock gives what changed after it, with tombstones, oldest first."""
    async with simulated() as sim:
        snapshot = rows(await sim.source("erp_stock"))
        cursor = max(record["changed_at"] for record in snapshot)
        for n in range(60):
            await sim.clock.advance(5)
            await sim.source(("erp_stock", "transport_data", "stock_taking")[n % 3])
        changes = rows(await sim.get("/erp_stock", changed_since=cursor))
        current = {record["product_code"] for record in rows(await sim.source("erp_stock"))}

    assert changes
    assert len(changes) < len(current)
    stamps = [change["changed_at"] for change in changes]
    assert stamps == sorted(stamps)
    assert min(stamps) > cursor
    gone = {c["product_code"] for c in changes if c.get("deleted")}
    assert gone
    assert gone == {r["product_code"] for r in snapshot} - current
    assert all("deleted" not in record for record in snapshot)


@pytest.mark.parametrize(
    ("path", "value", "status"),
    [
        ("/erp_stock", "2026-11-29T10:00:00.000001Z", 200),
        ("/erp_stock", "2026-11-29T10:00:00+00:00", 200),  # "+" sent unencoded becomes " "
        ("/erp_stock", "2026-11-29T10:00:00", 200),  # no zone: UTC
        ("/erp_stock", "yesterday", 400),
        ("/eshop_stock", "2026-11-29T10:00:00Z", 400),
    ],
)
async def test_changed_since_is_read_leniently_and_only_on_erp_stock(
    path: str, value: str, status: int
) -> None:
    """An ISO time (Z, an offset, or none) is a cursor; other text, or another source, is a 400."""
    async with simulated() as sim:
        response = await sim.client.get(f"{sim.url}{path}?changed_since={value}")

    assert response.status_code == status, response.text
    if status == 400:
        assert "changed_since" in response.json()["error"]


async def test_error_rate_one_answers_every_request_with_a_503() -> None:
    """--error-rate 1: every request is a 503 (about half with Retry-After: 1), and 1 0 bytes."""
    async with simulated(Faults(error_rate=1.0)) as sim:
        answers = [await sim.source(source_id) for source_id in SOURCE_IDS for _ in range(4)]

    assert {a.status_code for a in answers} == {503}
    assert {a.headers.get("retry-after") for a in answers} == {"1", None}
    assert all("unavailable" in a.json()["error"] for a in answers)


async def test_the_planned_failure_is_the_first_request_of_its_source() -> None:
    """With the default knobs one source's first request is a 503 and its retry a 200."""
    async with simulated(Faults(), seed=7) as sim:
        scheduled = sim.simulator.plan.scheduled
        assert scheduled is not None
        first = await sim.source(scheduled)
        retry = await sim.source(scheduled)

    assert (first.status_code, first.headers["retry-after"]) == (503, "1")
    assert retry.status_code == 200


async def test_latency_waits_before_every_answer() -> None:
    """--latency 0.25 makes each request wait that long, faulty or not."""
    async with simulated(Faults(error_rate=0.0, latency=0.25)) as sim:
        await sim.source("lots")
        await sim.get("/nowhere")

    assert sim.sleeps == [0.25, 0.25]


async def test_a_trickle_dribbles_the_whole_body_out_over_the_trickle_time() -> None:
    """--trickle-rate 1: the body arrives whole, written in pieces spread over --trickle-seconds."""
    knobs = Faults(error_rate=0.0, trickle_rate=1.0, trickle_seconds=2.0)
    async with simulated(knobs) as sim, simulated() as clean:
        slow = await sim.get("/suppliers")
        fast = await clean.get("/suppliers")

    assert slow.status_code == 200
    assert slow.content == fast.content
    assert sim.sleeps == [pytest.approx(2.0 / TRICKLE_CHUNKS)] * TRICKLE_CHUNKS


async def test_a_malformed_body_is_json_cut_short() -> None:
    """--malformed-rate 1: a 200 whose body is the start of the real one, not valid JSON."""
    async with simulated(Faults(error_rate=0.0, malformed_rate=1.0)) as sim, simulated() as clean:
        cut = await sim.get("/suppliers")
        whole = await clean.get("/suppliers")

    assert cut.status_code == 200
    assert 0 < len(cut.content) < len(whole.content)
    assert whole.content.startswith(cut.content)
    with pytest.raises(msgspec.DecodeError):
        msgspec.json.decode(cut.content)


async def test_an_empty_answer_is_an_empty_array_and_no_version_of_the_data() -> None:
    """--empty-rate 1: every answer is [], never a 304 and without Last-Modified."""
    async with simulated(Faults(error_rate=0.0, empty_rate=1.0)) as sim:
        first = await sim.get("/suppliers")
        again = await sim.client.get(
            f"{sim.url}/suppliers", headers={"If-None-Match": first.headers["etag"]}
        )

    assert (first.status_code, first.content) == (200, b"[]")
    assert "last-modified" not in first.headers
    assert (again.status_code, again.content) == (200, b"[]")


async def test_each_request_is_one_log_line_in_the_service_format(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A line per request names method, target, status and bytes; a fault's line says which."""
    with caplog.at_level(logging.INFO, "catalog_refresher.simulator"):
        async with simulated(Faults(), seed=7) as sim:
            scheduled = sim.simulator.plan.scheduled
            assert scheduled is not None
            ok = await sim.get("/suppliers") if scheduled != "suppliers" else await sim.get("/lots")
            await sim.source(scheduled)

    lines = [r for r in caplog.records if r.getMessage().startswith("GET ")]
    assert len(lines) == 2
    first, failed = lines
    assert first.levelno == logging.INFO
    assert first.getMessage().startswith(f"GET {ok.request.url.path} 200 {len(ok.content)} bytes")
    assert getattr(first, "source", None) == ok.request.url.path.strip("/")
    assert failed.levelno == logging.WARNING
    assert getattr(failed, "source", None) == scheduled
    assert " 503 " in failed.getMessage()
    assert "(simulated outage, scheduled, Retry-After: 1)" in failed.getMessage()


async def test_a_port_in_use_is_refused_before_serving() -> None:
    """Serving on a port something else holds raises OSError at once."""
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        simulator = Simulator(_world(), CLEAN, seed=1)
        with pytest.raises(OSError, match="in use"), serving(simulator, port=port):
            pass


@pytest.mark.parametrize(
    ("options", "message"),
    [
        (["--error-rate", "1.5"], "--error-rate must be within [0, 1]"),
        (["--empty-rate", "0.6", "--malformed-rate", "0.6"], "add up to more than 1"),
        (["--latency", "-2"], "--latency must be zero or more seconds"),
    ],
)
def test_simulate_refuses_bad_knobs_with_exit_2(options: list[str], message: str) -> None:
    """`simulate` with a knob out of range exits 2 before serving, naming the option."""
    result = CliRunner().invoke(app, ["simulate", "--port", "0", *options])

    assert result.exit_code == 2
    assert message in result.output


def _world() -> DemoWorld:
    return DemoWorld(products=10, failure_rate=0.0, clock_today=lambda: date(2026, 11, 29))


def _date(text: str) -> datetime:
    return parsedate_to_datetime(text)
