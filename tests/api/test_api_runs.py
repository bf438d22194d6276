"""``GET /api/runs`` (filters, paging, CSV) and ``GET /api/runs/{id}`` over a real audit log."""

from __future__ import annotations

import csv
import io

import pytest

from catalog_refresher.domain.specs import SOURCE_IDS
from catalog_refresher.errors import InvalidPayloadError
from catalog_refresher.testing import FakeClock, StaticSource
from tests.api.support import Api, ApiFactory, assert_problem, catalog_sources, failing


@pytest.fixture
async def history(make_api: ApiFactory, clock: FakeClock) -> Api:
    """Ten startup runs at 10:00 (ERP failing), then ERP's next, failing too, at 10:05."""
    sources = catalog_sources(clock)
    sources["erp_stock"] = failing("erp_stock", clock)
    api = make_api(sources)
    await api.start()
    await clock.advance_to(clock.now().replace(minute=7))  # past the 10:05 run's retries
    return api


async def test_runs_are_listed_newest_first_with_totals(history: Api) -> None:
    """Runs come newest first, with total, limit and offset."""
    page = (await history.client.get("/api/runs")).json()
    ids = [run["id"] for run in page["items"]]
    assert ids == sorted(ids, reverse=True)
    assert page["total"] == len(ids) == len(SOURCE_IDS) + 1
    assert (page["limit"], page["offset"]) == (50, 0)


async def test_runs_page_with_limit_and_offset(history: Api) -> None:
    """Pages of runs follow each other without overlap."""
    every = (await history.client.get("/api/runs")).json()["items"]
    second = (await history.client.get("/api/runs", params={"limit": 3, "offset": 3})).json()
    assert [r["id"] for r in second["items"]] == [r["id"] for r in every[3:6]]
    assert second["total"] == len(every)


async def test_runs_filter_by_source(history: Api) -> None:
    """``source`` keeps only that source's runs."""
    page = (await history.client.get("/api/runs", params={"source": "eshop_stock"})).json()
    assert {run["source"] for run in page["items"]} == {"eshop_stock"}
    assert page["total"] == 1


async def test_runs_filter_by_status(history: Api) -> None:
    """``status`` keeps only runs that ended that way."""
    page = (await history.client.get("/api/runs", params={"status": "failed"})).json()
    assert [(r["source"], r["status"]) for r in page["items"]] == [("erp_stock", "failed")] * 2
    assert page["items"][0]["error"] == "connection refused"


@pytest.mark.parametrize(
    "since", ["2026-11-29T10:05:00Z", "2026-11-29T11:05:00+01:00", "2026-11-29T10:05:00"]
)
async def test_runs_filter_since(history: Api, since: str) -> None:
    """``since`` keeps runs queued at or after it; offsets convert and naive means UTC."""
    page = (await history.client.get("/api/runs", params={"since": since})).json()
    assert [(r["source"], r["queued_at"]) for r in page["items"]] == [
        ("erp_stock", "2026-11-29T10:05:00Z")
    ]


async def test_runs_filters_combine(history: Api) -> None:
    """Filters combine: ERP's failed runs since 10:01 are the one at 10:05 only."""
    params = {"source": "erp_stock", "status": "failed", "since": "2026-11-29T10:01:00Z"}
    page = (await history.client.get("/api/runs", params=params)).json()
    assert [r["queued_at"] for r in page["items"]] == ["2026-11-29T10:05:00Z"]
    params["status"] = "succeeded"
    assert (await history.client.get("/api/runs", params=params)).json()["total"] == 0


async def test_run_by_id(history: Api) -> None:
    """``GET /api/runs/{id}`` answers that run with every field."""
    listed = (await history.client.get("/api/runs", params={"limit": 1})).json()["items"][0]
    response = await history.client.get(f"/api/runs/{listed['id']}")
    assert response.status_code == 200
    assert response.json() == listed


async def test_unknown_run_is_404(history: Api) -> None:
    """A run id with no run is a 404 problem."""
    body = assert_problem(await history.client.get("/api/runs/424242"), 404)
    assert body["type"].endswith(":unknown-run")


async def test_runs_as_csv(history: Api) -> None:
    """``format=csv`` answers an attachment with a header row and one row per run."""
    response = await history.client.get("/api/runs", params={"format": "csv", "limit": 1000})
    assert response.status_code == 200
    assert response.headers["content-type"] == "text/csv; charset=utf-8"
    assert response.headers["content-disposition"] == 'attachment; filename="runs.csv"'
    rows = list(csv.DictReader(io.StringIO(response.text)))
    as_json = (await history.client.get("/api/runs")).json()
    assert response.headers["x-total-count"] == str(as_json["total"])
    assert [int(row["id"]) for row in rows] == [run["id"] for run in as_json["items"]]
    assert set(rows[0]) == set(as_json["items"][0])
    erp = next(row for row in rows if row["source"] == "erp_stock")
    assert (erp["status"], erp["used_backup"], erp["error"]) == (
        "failed",
        "false",
        "connection refused",
    )
    assert erp["queued_at"] == "2026-11-29T10:05:00Z"
    assert erp["error_type"] == "connection"
    assert erp["invalid_reasons"] == "[]"


async def test_csv_allows_big_pages_json_does_not(history: Api) -> None:
    """A page of 100000 is fine as CSV and a 422 naming ``limit`` as JSON."""
    csv_page = await history.client.get("/api/runs?format=csv&limit=100000")
    assert csv_page.status_code == 200
    body = assert_problem(await history.client.get("/api/runs?limit=100000"), 422)
    assert [e["name"] for e in body["errors"]] == ["limit"]
    assert_problem(await history.client.get("/api/runs?format=csv&limit=100001"), 422)


@pytest.mark.parametrize(
    ("query", "bad"),
    [
        ("source=nope", "source"),
        ("status=bogus", "status"),
        ("since=notadate", "since"),
        ("since=0001-01-01T00:00:00%2B01:00", "since"),
        ("limit=0", "limit"),
        ("offset=-1", "offset"),
        ("format=xml", "format"),
    ],
)
async def test_bad_run_filters_are_422_naming_the_parameter(
    history: Api, query: str, bad: str
) -> None:
    """Each malformed filter is a 422 validation problem whose errors name that parameter."""
    body = assert_problem(await history.client.get(f"/api/runs?{query}"), 422)
    assert body["type"].endswith(":validation")
    assert [(e["in"], e["name"]) for e in body["errors"]] == [("query", bad)]
    assert body["errors"][0]["detail"]


async def test_csv_defuses_formulas_in_error_text(make_api: ApiFactory, clock: FakeClock) -> None:
    """An error text that starts like a spreadsheet formula is prefixed with a quote in CSV."""
    source = StaticSource(
        "erp_stock", [], failures=[InvalidPayloadError("=HYPERLINK(evil)")], clock=clock
    )
    api = make_api({"erp_stock": source})
    await api.start()
    response = await api.client.get("/api/runs?format=csv")
    [row] = list(csv.DictReader(io.StringIO(response.text)))
    assert row["error"] == "'=HYPERLINK(evil)"
    json_run = (await api.client.get("/api/runs")).json()["items"][0]
    assert json_run["error"] == "=HYPERLINK(evil)"
