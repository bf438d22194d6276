"""catalog.Catalog: product aggregates read from a real SQLite store, and their LRU cache."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import timedelta
from pathlib import Path

import pytest

from catalog_refresher.catalog import Catalog
from catalog_refresher.domain.aggregate import ProductAggregate, SalesPeriod, Stock
from catalog_refresher.domain.specs import SOURCE_IDS
from catalog_refresher.refresh.events import DataChanged
from catalog_refresher.store.base import Applied, StoredPart
from catalog_refresher.store.sqlite import SqliteStore
from tests.helpers import T0, load, record


@pytest.fixture
def store(tmp_path: Path) -> Iterator[SqliteStore]:
    """A migrated, empty SQLite store."""
    store = SqliteStore(tmp_path / "catalog.db")
    store.migrate()
    yield store
    store.close()


async def stock_of(catalog: Catalog, code: str) -> float | None:
    """The ERP stock the catalog serves for ``code``."""
    product = await catalog.get(code)
    assert product is not None
    return product.stock.erp


def erp_stocks(store: SqliteStore, **stocks: float) -> Applied:
    """Refresh the ERP with ``code=stock`` rows; returns what the run changed."""
    rows = [record("erp_stock", code, stock=stock) for code, stock in stocks.items()]
    return load(store, "erp_stock", rows)[1]


def data_changed(applied: Applied) -> DataChanged:
    """The event the runner emits once an ERP run committed ``applied``."""
    return DataChanged(source="erp_stock", products=applied.products, version=applied.version)


async def read(catalog: Catalog, codes: str) -> None:
    """Read each one-letter product code in turn."""
    for code in codes:
        await catalog.get(code)


# --- assembly -------------------------------------------------------------------------------


async def test_product_is_assembled_from_all_ten_sources(store: SqliteStore) -> None:
    """Every source's rows land in their part of the aggregate, with that source's lineage."""
    extra = {
        "sales_data": [
            record("sales_data", period=None, date="2026-10-20", b2b_sold=1, b2c_sold=2),
            record("sales_data", period="2026-09", b2b_sold=4, b2c_sold=0),
        ],
        "transport_data": [record("transport_data", box_code="BOX-2", quantity=6)],
        "suppliers": [record("suppliers", supplier_code="S0", name="Other", is_primary=False)],
    }
    runs = {}
    for source in SOURCE_IDS:
        runs[source], _ = load(store, source, [record(source), *extra.get(source, [])])

    product = await Catalog(store).get("P-1")

    assert product is not None
    assert (product.product_name, product.location) == ("Test Product 1", "A1")
    assert product.stock == Stock(erp=100, eshop=80, transport=4 + 6)
    assert product.sales_history == [
        SalesPeriod(period="2026-09", b2b_sold=4, b2c_sold=0),
        SalesPeriod(period="2026-10", b2b_sold=10 + 1, b2c_sold=5 + 2),
    ]
    assert [p.document_number for p in product.purchase_history] == ["PO-1"]
    assert [(c.date, c.quantity) for c in product.consumed_history] == [("2026-11-01", 3)]
    assert [b.box_code for b in product.transport_boxes] == ["BOX-1", "BOX-2"]
    assert product.attributes["season_months"] == [11, 12]
    assert product.attributes["stock_min"] == 10
    assert [(lot.lot, lot.amount) for lot in product.lots] == [("L1", 20)]
    assert [(t.date, t.amount_new) for t in product.stock_taking] == [("2026-11-15", 100)]
    assert [s.supplier_code for s in product.suppliers] == ["S1", "S0"]  # primary first
    assert {s: part.run_id for s, part in product.lineage.items()} == {
        s: run.id for s, run in runs.items()
    }
    assert {part.changed_at for part in product.lineage.values()} == {T0}


async def test_unknown_product_is_none(store: SqliteStore) -> None:
    """A code no source holds gives ``None`` and is not cached."""
    erp_stocks(store, A=1)
    catalog = Catalog(store)
    assert await catalog.get("NOPE") is None
    assert await catalog.get("a") is None  # codes match exactly
    assert catalog.stats().size == 0


async def test_product_without_erp_row_has_null_erp_parts(store: SqliteStore) -> None:
    """A product only the e-shop knows has ``stock.erp`` and ``product_name`` null, not 0."""
    load(store, "eshop_stock", [record("eshop_stock", "P-9", stock=3)])
    product = await Catalog(store).get("P-9")
    assert product is not None
    assert (product.product_name, product.location) == (None, None)
    assert product.stock == Stock(erp=None, eshop=3, transport=0)
    assert set(product.lineage) == {"eshop_stock"}


# --- the cache ------------------------------------------------------------------------------


async def test_second_get_is_a_cache_hit(store: SqliteStore) -> None:
    """The second read of a product is served from the cache with the same content."""
    erp_stocks(store, A=1)
    catalog = Catalog(store)
    first, second = await catalog.get("A"), await catalog.get("A")
    assert first == second
    stats = catalog.stats()
    assert (stats.size, stats.hits, stats.misses) == (1, 1, 1)


async def test_only_the_changed_product_is_invalidated(store: SqliteStore) -> None:
    """After a run changes A, A is read afresh while B stays cached."""
    erp_stocks(store, A=1, B=2)
    catalog = Catalog(store)
    await read(catalog, "AB")
    changed = erp_stocks(store, A=5, B=2)
    assert changed.products == {"A"}
    catalog.on_event(data_changed(changed))
    assert (await stock_of(catalog, "A"), await stock_of(catalog, "B")) == (5, 2)
    assert (catalog.stats().hits, catalog.stats().misses) == (1, 3)


async def test_invalidate_by_code_and_all(store: SqliteStore) -> None:
    """``invalidate`` drops the named cached products, ``invalidate_all`` every one."""
    erp_stocks(store, A=1, B=2, C=3)
    catalog = Catalog(store)
    await read(catalog, "ABC")
    assert catalog.invalidate({"A", "NOPE"}) == 1
    assert catalog.stats().size == 2
    assert catalog.invalidate_all() == 2
    assert catalog.stats().size == 0


async def test_cache_never_exceeds_max_size(store: SqliteStore) -> None:
    """However many products are read, at most ``max_size`` are cached."""
    erp_stocks(store, **{f"P{n}": n for n in range(10)})
    catalog = Catalog(store, max_size=3)
    for n in range(10):
        await catalog.get(f"P{n}")
        assert catalog.stats().size == min(n + 1, 3)
    assert catalog.stats().max_size == 3


async def test_cache_evicts_the_least_recently_used(store: SqliteStore) -> None:
    """A hit makes a product recent again, so the one read longest ago is evicted."""
    erp_stocks(store, A=1, B=2, C=3)
    catalog = Catalog(store, max_size=2)
    await read(catalog, "ABAC")  # A is hit before C comes in: B is the least recently used
    hits = catalog.stats().hits
    await catalog.get("A")
    assert catalog.stats().hits == hits + 1
    await catalog.get("B")
    assert catalog.stats().hits == hits + 1


async def test_max_size_zero_disables_the_cache(store: SqliteStore) -> None:
    """With ``max_size`` 0 every read goes to the store and nothing is kept."""
    erp_stocks(store, A=1)
    catalog = Catalog(store, max_size=0)
    await read(catalog, "AA")
    assert (catalog.stats().size, catalog.stats().hits, catalog.stats().misses) == (0, 0, 2)


async def test_hit_ratio_counts_hits_over_lookups(store: SqliteStore) -> None:
    """The hit ratio is hits / (hits + misses), and 0 before any lookup."""
    erp_stocks(store, A=1)
    catalog = Catalog(store)
    assert catalog.stats().hit_ratio == 0.0
    for _ in range(4):
        await catalog.get("A")
    assert catalog.stats().hit_ratio == 0.75


async def test_follow_changes_invalidates_what_the_feed_names(store: SqliteStore) -> None:
    """Changes written by another process reach the cache through the store's change feed."""
    erp_stocks(store, A=1, B=2)
    catalog = Catalog(store)
    catalog.follow_changes()  # catch up with the initial load
    await read(catalog, "AB")
    erp_stocks(store, A=7, B=2)  # another process: this catalog is not told
    assert await stock_of(catalog, "A") == 1  # still the cached aggregate
    assert catalog.follow_changes() == 1
    assert (await stock_of(catalog, "A"), await stock_of(catalog, "B")) == (7, 2)
    assert catalog.follow_changes() == 0


class WriteDuringRead:
    """The real store, with a refresh committing between a read and the caching of its result."""

    def __init__(self, store: SqliteStore, during: Callable[[], None]) -> None:
        self._store, self._during = store, during

    async def product_parts(self, code: str) -> dict[str, StoredPart] | None:
        parts = await self._store.product_parts(code)
        self._during()
        self._during = lambda: None
        return parts

    def __getattr__(self, name: str) -> object:
        return getattr(self._store, name)


async def test_invalidation_during_a_read_is_not_lost(store: SqliteStore) -> None:
    """A refresh that commits while a read is assembling the old data does not leave it cached."""
    erp_stocks(store, A=1)

    def refresh() -> None:
        catalog.on_event(data_changed(erp_stocks(store, A=9)))

    catalog = Catalog(WriteDuringRead(store, refresh))  # type: ignore[arg-type]
    assert await stock_of(catalog, "A") == 1  # read before the refresh committed
    assert await stock_of(catalog, "A") == 9


async def test_lineage_carries_the_last_successful_refresh(store: SqliteStore) -> None:
    """Each lineage part carries its source's last successful refresh, as loaded at start."""
    erp_stocks(store, A=1)
    catalog = Catalog(store)
    catalog.load_refreshed({"erp_stock": T0})
    product = await catalog.get("A")
    assert isinstance(product, ProductAggregate)
    assert product.lineage["erp_stock"].refreshed_at == T0


async def test_reloading_the_same_refresh_times_keeps_the_cached_json(store: SqliteStore) -> None:
    """A replica reloads its peers' refresh times every second: unchanged times leave
    the cached JSON alone; a moved one re-stamps it on the next read."""
    erp_stocks(store, A=1)
    catalog = Catalog(store)
    catalog.load_refreshed({"erp_stock": T0})
    first = await catalog.get_json("A")
    catalog.load_refreshed({"erp_stock": T0})
    assert await catalog.get_json("A") is first
    later = T0 + timedelta(minutes=5)
    catalog.load_refreshed({"erp_stock": later})
    moved = await catalog.get_json("A")
    assert moved is not first
    assert (await catalog.get("A")).lineage["erp_stock"].refreshed_at == later  # type: ignore[union-attr]


async def test_a_huge_change_set_walks_the_cache_and_none_means_all(store: SqliteStore) -> None:
    """More changed codes than cached ones still drop exactly the cached changed ones;
    ``products=None`` (too many to list) drops everything."""
    erp_stocks(store, A=1, B=2, C=3)
    catalog = Catalog(store)
    await read(catalog, "ABC")
    many = frozenset({"A", *(f"X{i}" for i in range(1000))})
    assert catalog.invalidate(many) == 1
    assert catalog.stats().size == 2
    catalog.on_event(DataChanged(source="erp_stock", products=None, version=9))
    assert catalog.stats().size == 0
