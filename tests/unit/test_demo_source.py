"""DemoWorld and DemoSource: the ten simulated systems of ``catalog-refresher demo``."""

from __future__ import annotations

import calendar
from datetime import date, timedelta
from typing import Any

import msgspec
import pytest

from catalog_refresher.domain.specs import SOURCE_IDS, SPECS
from catalog_refresher.domain.window import Window
from catalog_refresher.errors import SourceConnectionError, UnknownSourceError
from catalog_refresher.sources.demo import DemoSource, DemoWorld

TODAY = date(2026, 11, 29)

# The bold fields of contract section 4 (sales also need a period or a date).
REQUIRED = {
    "erp_stock": {"product_code", "stock"},
    "eshop_stock": {"product_code", "stock"},
    "sales_data": {"product_code"},
    "purchase_history": {"product_code", "date", "quantity"},
    "consumed_materials": {"product_code", "date", "quantity"},
    "transport_data": {"box_code", "product_code", "quantity"},
    "attributes": {"product_code"},
    "lots": {"product_code", "lot", "amount"},
    "stock_taking": {"product_code", "date"},
    "suppliers": {"product_code", "supplier_code", "name"},
}
HISTORY = [source_id for source_id in SOURCE_IDS if SPECS[source_id].is_history]
Rows = list[dict[str, Any]]


def make_world(**overrides: Any) -> DemoWorld:
    options: dict[str, Any] = {"products": 300, "failure_rate": 0.0, "clock_today": lambda: TODAY}
    return DemoWorld(**(options | overrides))


def default_window(source_id: str, today: date = TODAY) -> Window | None:
    days = SPECS[source_id].default_retention_days
    if days is None:
        return None
    return Window(date_from=today - timedelta(days=days), date_to=today)


async def read(world: DemoWorld, source_id: str, window: Window | None = None) -> Rows:
    payload = await DemoSource(source_id, world).fetch(window or default_window(source_id))
    assert len(payload.pages) == 1
    assert payload.records_path is None
    rows: Rows = msgspec.json.decode(payload.pages[0])
    return rows


def month_span(period: str) -> tuple[date, date]:
    year, month = map(int, period.split("-"))
    return date(year, month, 1), date(year, month, calendar.monthrange(year, month)[1])


@pytest.mark.parametrize("source_id", SOURCE_IDS)
async def test_every_source_answers_in_the_contract_shape(source_id: str) -> None:
    """Each of the ten sources returns a JSON array of objects with the required fields."""
    rows = await read(make_world(), source_id)

    assert rows
    assert isinstance(rows, list)
    for row in rows:
        assert REQUIRED[source_id] <= row.keys()
        if source_id == "sales_data":
            assert "period" in row or "date" in row
    # The domain record type accepts every row as it stands.
    for row in rows:
        msgspec.convert(row, SPECS[source_id].record_type)


async def test_attributes_carry_free_form_extras() -> None:
    """Attributes include fields outside the contract's list, such as color."""
    rows = await read(make_world(), "attributes")

    assert all("color" in row for row in rows)
    assert any("season_months" in row for row in rows)


async def test_all_sources_describe_the_same_products() -> None:
    """Every product code any source mentions is one the ERP lists."""
    world = make_world()
    erp_codes = {row["product_code"] for row in await read(world, "erp_stock")}

    for source_id in SOURCE_IDS:
        codes = {row["product_code"] for row in await read(world, source_id)}
        assert codes <= erp_codes, source_id


@pytest.mark.parametrize("source_id", HISTORY)
@pytest.mark.parametrize(
    ("start", "end"),
    [(TODAY - timedelta(days=200), TODAY - timedelta(days=100)), (TODAY - timedelta(40), TODAY)],
)
async def test_history_rows_stay_inside_the_window(source_id: str, start: date, end: date) -> None:
    """History rows lie in [date_from, date_to]; a sales period's month overlaps it."""
    rows = await read(make_world(), source_id, Window(date_from=start, date_to=end))

    assert rows
    for row in rows:
        if "period" in row:
            first, last = month_span(row["period"])
            assert last >= start
            assert first <= end
        else:
            assert start <= date.fromisoformat(row["date"]) <= end


@pytest.mark.parametrize("source_id", HISTORY)
async def test_history_never_reaches_past_today(source_id: str) -> None:
    """A window that ends in the future gets nothing dated after today."""
    window = Window(date_from=TODAY - timedelta(days=30), date_to=TODAY + timedelta(days=60))
    rows = await read(make_world(), source_id, window)

    for row in rows:
        day = month_span(row["period"])[0] if "period" in row else date.fromisoformat(row["date"])
        assert day <= TODAY


async def test_history_window_without_rows_is_an_empty_array() -> None:
    """A window before any history, or an inverted one, returns a valid empty array."""
    world = make_world()
    inverted = Window(date_from=TODAY, date_to=TODAY - timedelta(days=1))
    future = Window(date_from=TODAY + timedelta(days=1), date_to=TODAY + timedelta(days=9))

    assert await read(world, "purchase_history", inverted) == []
    assert await read(world, "purchase_history", future) == []


async def test_past_history_is_stable_between_fetches() -> None:
    """A window of past months returns the same rows on every fetch."""
    world = make_world()
    window = Window(date_from=TODAY - timedelta(days=300), date_to=TODAY - timedelta(days=90))

    for source_id in HISTORY:
        assert await read(world, source_id, window) == await read(world, source_id, window)


async def test_sales_accumulate_in_the_current_month() -> None:
    """Each sales fetch adds sales to the current month and leaves past months alone."""
    world = make_world()
    current = f"{TODAY:%Y-%m}"

    def split(rows: Rows) -> tuple[float, Rows]:
        now = sum(r["b2b_sold"] + r["b2c_sold"] for r in rows if r["period"] == current)
        return now, [r for r in rows if r["period"] != current]

    before_total, before_past = split(await read(world, "sales_data"))
    after_total, after_past = split(await read(world, "sales_data"))

    assert after_total > before_total
    assert after_past == before_past


async def test_month_end_freezes_the_live_month() -> None:
    """When the month turns, the finished month keeps the sales counted live during it."""
    today = [TODAY]
    world = make_world(clock_today=lambda: today[0])
    november = [r for r in await read(world, "sales_data") if r["period"] == "2026-11"]

    today[0] = date(2026, 12, 2)
    rows = await read(world, "sales_data", default_window("sales_data", today[0]))

    assert [r for r in rows if r["period"] == "2026-11"] == november
    assert any(r["period"] == "2026-12" for r in rows)


async def test_stock_moves_for_some_products_but_most_stay() -> None:
    """Between two ERP reads a few products' stock changes and the rest stays put."""
    world = make_world(products=3000)
    first = {r["product_code"]: r["stock"] for r in await read(world, "erp_stock")}
    second = {r["product_code"]: r["stock"] for r in await read(world, "erp_stock")}

    common = first.keys() & second.keys()
    changed = [code for code in common if first[code] != second[code]]
    assert 0 < len(changed) <= 0.1 * len(common)


async def test_products_appear_and_disappear_over_time() -> None:
    """Over many ERP reads new product codes show up and some known ones vanish."""
    world = make_world()
    start = {r["product_code"] for r in await read(world, "erp_stock")}
    for _ in range(60):
        await read(world, "erp_stock")
    end = {r["product_code"] for r in await read(world, "erp_stock")}

    assert end - start
    assert start - end


async def test_transport_boxes_come_and_go() -> None:
    """Between transport reads some boxes are delivered and new ones are sent."""
    world = make_world()
    start = {r["box_code"] for r in await read(world, "transport_data")}
    for _ in range(10):
        await read(world, "transport_data")
    end = {r["box_code"] for r in await read(world, "transport_data")}

    assert end - start
    assert start - end


async def test_same_seed_gives_the_same_first_payload() -> None:
    """Two worlds with one seed answer byte for byte alike; another seed answers differently."""
    for source_id in SOURCE_IDS:
        window = default_window(source_id)
        first = await DemoSource(source_id, make_world(seed=11)).fetch(window)
        again = await DemoSource(source_id, make_world(seed=11)).fetch(window)
        assert first.pages == again.pages, source_id

    other = await DemoSource("erp_stock", make_world(seed=12)).fetch(None)
    assert other.pages != (await DemoSource("erp_stock", make_world(seed=11)).fetch(None)).pages


@pytest.mark.parametrize("source_id", SOURCE_IDS)
async def test_failure_rate_one_always_fails(source_id: str) -> None:
    """With failure_rate=1.0 every fetch raises a transient SourceConnectionError."""
    source = DemoSource(source_id, make_world(failure_rate=1.0))

    with pytest.raises(SourceConnectionError) as caught:
        await source.fetch(default_window(source_id))

    assert caught.value.transient


async def test_failures_follow_the_seed() -> None:
    """Which fetches fail is decided by the seed: two equal worlds fail on the same fetches."""

    async def outcomes(world: DemoWorld) -> list[bool]:
        results = []
        for _ in range(40):
            try:
                await DemoSource("eshop_stock", world).fetch(None)
                results.append(True)
            except SourceConnectionError:
                results.append(False)
        return results

    first = await outcomes(make_world(failure_rate=0.3))
    assert first == await outcomes(make_world(failure_rate=0.3))
    assert True in first
    assert False in first


async def test_history_source_needs_a_window() -> None:
    """Fetching a history source without a window is refused as a programming error."""
    with pytest.raises(ValueError, match="needs a window"):
        await DemoSource("sales_data", make_world()).fetch(None)


def test_unknown_source_is_refused() -> None:
    """A DemoSource for a source id outside the ten is refused at construction."""
    with pytest.raises(UnknownSourceError):
        DemoSource("weather", make_world())
