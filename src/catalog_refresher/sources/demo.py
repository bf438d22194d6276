"""Simulated external systems for ``catalog-refresher demo``.

One ``DemoWorld`` holds a small shop; ten ``DemoSource`` views of it answer with
JSON in exactly the record shapes of contract section 4. Between two reads a
system's data moves a little (stock, boxes, lots, sales of the current month),
now and then a product appears or is discontinued, and with probability
``failure_rate`` a fetch raises ``SourceConnectionError``. One seeded
``random.Random`` drives it all: the same seed and fetches give the same bytes.

ERP records carry ``changed_at``: when their stock last changed (or the product
appeared), ISO-8601 UTC with microseconds, every change a later time than any
before it. ``fetch("erp_stock", None, changed_since=t)`` answers only what
changed after ``t``, oldest first, with ``{"product_code", "deleted": true,
"changed_at"}`` for the products discontinued since: the incremental cursor
that ``catalog-refresher simulate`` serves (``simulator/``).

History is a pure function of ``(seed, month)``, cached per complete month as
encoded JSON: a fetch over 720 days joins bytes instead of building 50,000 rows.
"""

from __future__ import annotations

import asyncio
import calendar
import itertools
import random
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

import msgspec

from catalog_refresher.domain.specs import SPECS
from catalog_refresher.domain.window import Window
from catalog_refresher.errors import SourceConnectionError, UnknownSourceError
from catalog_refresher.sources.base import FetchState, Payload

__all__ = ["DemoSource", "DemoWorld"]

# The record shapes of contract section 4, in one place; rows are built as tuples
# in this order. ``attributes`` is absent: its rows are dicts with free-form extras.
_FIELDS: dict[str, tuple[str, ...]] = {
    "erp_stock": ("product_code", "product_name", "stock", "location", "changed_at"),
    "eshop_stock": ("product_code", "stock"),
    "sales_data": ("product_code", "period", "b2b_sold", "b2c_sold"),
    "purchase_history": ("product_code", "date", "quantity", "purchase_price", "currency",
                         "supplier_code", "supplier_name", "document_number"),
    "consumed_materials": ("product_code", "date", "quantity"),
    "transport_data": ("box_code", "product_code", "quantity", "state"),
    "lots": ("product_code", "lot", "amount", "expiration"),
    "stock_taking": ("product_code", "date", "amount_old", "amount_new", "user"),
    "suppliers": ("product_code", "supplier_code", "name", "is_primary"),
}  # fmt: skip
# Structs encode four times faster than dicts, which matters for 50,000 rows.
_SHAPES = {source_id: msgspec.defstruct(source_id, fields) for source_id, fields in _FIELDS.items()}
_TOMBSTONE = msgspec.defstruct("tombstone", ("product_code", "deleted", "changed_at"))

# (goods, variants, sizes, trait): "perishable" goods are kept in lots, "material"
# is consumed in the workshop, "winter"/"summer" goods sell mostly in that season.
_GOODS = (
    ("mug", ("Ceramic", "Enamel", "Stoneware"), ("250 ml", "350 ml"), ""),
    ("candle", ("Beeswax", "Soy wax", "Pillar"), ("small", "large"), "winter"),
    ("soap", ("Olive oil", "Goat milk", "Lavender", "Oat"), ("100 g",), "perishable"),
    ("honey", ("Acacia", "Forest", "Linden"), ("250 g", "500 g"), "perishable"),
    ("tea", ("Black", "Green", "Mint", "Rooibos"), ("50 g", "100 g"), "perishable"),
    ("notebook", ("Recycled", "Kraft", "Linen-bound"), ("A5", "A6"), ""),
    ("basket", ("Willow", "Seagrass"), ("small", "medium"), "summer"),
    ("scarf", ("Wool", "Merino"), ("one size",), "winter"),
    ("twine", ("Jute", "Hemp"), ("50 m", "100 m"), "material"),
    ("gift box", ("Kraft", "White"), ("S", "M", "L"), "material"),
    ("wax block", ("Beeswax", "Soy"), ("1 kg",), "material"),
)
_COLORS = ("natural", "white", "sage", "ochre", "rust", "navy", "charcoal", "rose")
_SEASONS = {"winter": [1, 2, 10, 11, 12], "summer": [4, 5, 6, 7, 8]}
_SUPPLIERS = (
    ("SUP-001", "Moravská keramika s.r.o."), ("SUP-002", "Včelařství Novák"),
    ("SUP-003", "Lnářský závod Šumava a.s."), ("SUP-004", "Nordic Home Goods AB"),
    ("SUP-005", "Papírna Bělá s.r.o."), ("SUP-006", "Zahradní košíkárna"),
    ("SUP-007", "Tea Traders GmbH"), ("SUP-008", "Mýdlárna U Lípy"),
)  # fmt: skip
_USERS = ("jana.novakova", "petr.svoboda", "eva.dvorakova", "tomas.cerny")
_BOX_STATES = ("packed", "in_transit", "at_hub")
_ENCODER = msgspec.json.Encoder()
# When a product's ERP row last changed: the moment, and the same as it is sent.
_Stamp = tuple[datetime, str]
_UNSTAMPED: _Stamp = (datetime.min.replace(tzinfo=UTC), "")
_TICK = timedelta(microseconds=1)


class _Product:
    """One product and its state in every simulated system, drawn from ``rng``."""

    __slots__ = ("attrs", "born", "code", "demand", "erp", "eshop", "gone", "index", "location",
                 "lots", "name", "price", "stamp", "stamped_erp", "suppliers", "tombstone",
                 "trait")  # fmt: skip

    def __init__(self, rng: random.Random, index: int, today: date, born: date | None) -> None:
        goods, variants, sizes, self.trait = rng.choice(_GOODS)
        color, self.demand = rng.choice(_COLORS), round(rng.lognormvariate(2.0, 0.8), 1)
        self.index, self.code = index, f"DEMO-{index + 1:05d}"  # index in DemoWorld._products
        self.name = f"{rng.choice(variants)} {goods} {rng.choice(sizes)} ({color})"
        self.location = f"{rng.choice('ABCDEF')}{rng.randint(1, 4)}-R{rng.randint(1, 12):02d}"
        self.erp = int(self.demand * rng.uniform(0.5, 3.0))  # demand: units sold a month
        self.eshop = max(0, self.erp - rng.randint(0, 2))
        self.price = round(rng.uniform(19, 890), 2)
        self.suppliers = rng.sample(range(len(_SUPPLIERS)), k=rng.randint(1, 3))  # 1st: primary
        self.attrs: dict[str, Any] = {
            "optimal_stock_days": rng.choice((14, 30, 45, 60)),
            "stock_min": int(self.demand // 2),
            "batch_size": rng.choice((6, 10, 12, 24, 50)),
            # Free-form extras, which the attributes source keeps as they come.
            "color": color,
            "weight_g": rng.randrange(50, 1500, 10),
            "country_of_origin": rng.choice(("CZ", "CZ", "SK", "PL", "SE", "DE")),
        }
        if self.trait in _SEASONS:
            self.attrs["season_months"] = _SEASONS[self.trait]
        self.born = born  # None: older than any window
        self.gone: date | None = None
        # The ERP's change journal (DemoWorld._stamp): when ``erp`` last changed, the
        # value it was stamped with, and when the product was discontinued.
        self.stamp, self.stamped_erp, self.tombstone = _UNSTAMPED, -1, _UNSTAMPED
        self.lots: dict[str, tuple[int, str]] = {}  # lot -> (amount, expiration), oldest first
        for _ in range(rng.randint(1, 3) if self.trait == "perishable" else 0):
            self.add_lot(rng, today)

    def add_lot(self, rng: random.Random, today: date) -> None:
        expiration = today + timedelta(days=rng.randint(60, 540))
        lot = f"L{today.year % 100:02d}{today.month:02d}-{rng.randrange(10_000):04d}"
        self.lots[lot] = (rng.randint(4, 60), expiration.isoformat())

    def alive(self, first: date, last: date) -> bool:
        """Whether the product existed on some day of ``[first, last]``."""
        return (self.born is None or self.born <= last) and (self.gone is None or self.gone > first)


class DemoWorld:
    """The shared state behind the ten demo sources.

    ``clock_today`` gives the simulated systems' current date (UTC); history
    never reaches past it. ``clock_now`` (default: midnight of ``clock_today``)
    times the ERP's changes. ``failure_rate`` is the chance that a fetch fails.
    """

    def __init__(
        self,
        products: int = 3000,
        seed: int = 7,
        failure_rate: float = 0.05,
        *,
        clock_today: Callable[[], date],
        clock_now: Callable[[], datetime] | None = None,
    ) -> None:
        if products < 1 or not 0.0 <= failure_rate <= 1.0:
            raise ValueError("products must be positive and failure_rate within [0, 1]")
        self._seed, self._failure_rate, self._today = seed, failure_rate, clock_today
        self._now = clock_now or (lambda: datetime.combine(clock_today(), time(), UTC))
        self._last_tick = _UNSTAMPED[0]
        self._rng = random.Random(seed)
        today = clock_today()
        self._products: list[_Product] = []
        for index in range(products):
            self._products.append(_Product(self._rng, index, today, born=None))
        self._boxes: dict[str, tuple[str, list[tuple[int, int]]]] = {}
        self._box_numbers = itertools.count(1)
        for _ in range(max(1, products // 20)):
            self._add_box()
        self._takings: dict[tuple[int, date], tuple[int, int, str]] = {}
        for p in self._rng.sample(self._products, k=products // 10):
            when = today - timedelta(days=self._rng.randrange(1, 180))
            self._takings[(p.index, when)] = (p.erp, p.erp, self._rng.choice(_USERS))
        self._months: dict[tuple[str, date], list[tuple[date, bytes]]] = {}
        self._live_month: date | None = None
        self._live_sales: dict[int, list[int]] = {}
        self._stamp()

    def fetch(
        self, source_id: str, window: Window | None, *, changed_since: datetime | None = None
    ) -> bytes:
        """One read of ``source_id``: a JSON array; history only inside ``window``, up to today.

        ``changed_since`` (``erp_stock`` only, timezone-aware) asks for the ERP's
        changes after that moment instead of its snapshot.
        """
        spec = SPECS.get(source_id)
        if spec is None:
            raise UnknownSourceError(source_id)
        if changed_since is not None and (source_id != "erp_stock" or not changed_since.tzinfo):
            raise ValueError("changed_since is an aware time, and for erp_stock only")
        today = self._today()
        # Drawn first: the external system moves on whether or not we get through.
        failed = self._rng.random() < self._failure_rate
        self._move(source_id, today)
        self._stamp()
        if failed:
            raise SourceConnectionError(f"demo {source_id}: simulated connection failure")
        if changed_since is not None:
            return self._erp_changes(changed_since)
        if source_id == "attributes":
            return _ENCODER.encode([{"product_code": p.code, **p.attrs} for p in self._active()])
        if not spec.is_history:
            return b"[" + _fragment(source_id, self._snapshot(source_id)) + b"]"
        if window is None:
            raise ValueError(f"{source_id} is a history source and needs a window")
        return self._history(source_id, window, today)

    def _move(self, source_id: str, today: date) -> None:
        """Between two reads of a system its own data changes a little."""
        rng, active = self._rng, self._active()
        match source_id:
            case "erp_stock":
                for p in self._sample(active, 0.03):
                    if rng.random() < 0.8:  # mostly sales, sometimes a delivery
                        p.erp = max(0, p.erp - rng.randint(1, 4))
                    else:
                        p.erp += int(p.attrs["batch_size"]) * rng.randint(1, 3)
                if rng.random() < 0.15:
                    self._products.append(_Product(rng, len(self._products), today, today))
                if rng.random() < 0.1 and len(active) > 1:  # never retire the last product
                    rng.choice(active).gone = today
            case "eshop_stock":  # syncs from the ERP with a lag, sells on its own meanwhile
                for p in self._sample(active, 0.04):
                    synced = rng.random() < 0.75
                    p.eshop = max(0, p.erp - rng.randint(0, 2) if synced else p.eshop - 1)
            case "transport_data":
                for code, (state, items) in list(self._boxes.items()):
                    roll = rng.random()
                    if roll < 0.03:  # delivered: the goods land in ERP stock
                        del self._boxes[code]
                        for index, quantity in items:
                            self._products[index].erp += quantity
                    elif roll < 0.2 and state != _BOX_STATES[-1]:
                        self._boxes[code] = (_BOX_STATES[_BOX_STATES.index(state) + 1], items)
                for _ in range(rng.randint(2, 7)):  # about as many as were delivered
                    self._add_box()
            case "attributes" if rng.random() < 0.1:
                p = rng.choice(active)
                p.attrs["stock_min"] = max(0, int(p.attrs["stock_min"]) + rng.choice((-2, 2)))
            case "lots":
                perishable = [p for p in active if p.trait == "perishable"]
                for p in [p for p in rng.sample(perishable, k=len(perishable) // 30) if p.lots]:
                    lot = next(iter(p.lots))  # first in, first out
                    amount, expiration = p.lots.pop(lot)
                    if amount > 3:  # put back what is left, still first in line
                        p.lots = {lot: (amount - rng.randint(1, 3), expiration), **p.lots}
                if perishable and rng.random() < 0.5:
                    rng.choice(perishable).add_lot(rng, today)
            case "stock_taking":
                for p in rng.sample(active, k=min(len(active), rng.choice((0, 0, 1, 3, 5)))):
                    counted = max(0, p.erp + rng.randint(-2, 1))
                    self._takings[(p.index, today)] = (p.erp, counted, rng.choice(_USERS))
                    p.erp = counted  # a count corrects the ERP
            case "suppliers" if rng.random() < 0.05:
                p = rng.choice(active)
                p.suppliers.append(p.suppliers.pop(0))  # another supplier becomes primary
            case "sales_data":
                self._roll_month(today)
                for p in self._sample(active, 0.02):
                    # [b2b, b2c]: a small shop sells mostly to consumers.
                    sold = self._live_sales.setdefault(p.index, [0, 0])
                    sold[rng.random() < 0.8] += rng.randint(1, 3)

    def _stamp(self) -> None:
        """Give each ERP row changed since the last pass its own ``changed_at``.

        Run after every move, since reads of other systems change ERP stock too
        (a delivered box, a stock count); a pass over the products costs far less
        than a read.
        """
        for p in self._products:
            if p.tombstone[1]:
                continue  # discontinued: its tombstone is its last change
            if p.gone is not None:
                p.tombstone = self._tick()
            elif p.erp != p.stamped_erp:
                p.stamp, p.stamped_erp = self._tick(), p.erp

    def _tick(self) -> _Stamp:
        """Now, or a microsecond after the last change if the clock has not moved past it."""
        moment = max(self._now().astimezone(UTC), self._last_tick + _TICK)
        self._last_tick = moment
        return moment, f"{moment:%Y-%m-%dT%H:%M:%S.%f}Z"

    def _erp_changes(self, since: datetime) -> bytes:
        """ERP rows changed after ``since`` and tombstones of products gone since, oldest first."""
        changed = [(p.stamp, p) for p in self._active() if p.stamp[0] > since]
        gone = [(p.tombstone, p) for p in self._products if p.tombstone[0] > since]
        rows = [
            _SHAPES["erp_stock"](p.code, p.name, p.erp, p.location, stamp[1])
            if p.gone is None
            else _TOMBSTONE(p.code, True, stamp[1])
            for stamp, p in sorted(changed + gone, key=lambda entry: entry[0][0])
        ]
        return _ENCODER.encode(rows)

    def _snapshot(self, source_id: str) -> Iterable[tuple[Any, ...]]:
        """A snapshot source's rows, as tuples in the order of ``_FIELDS``."""
        active, products = self._active(), self._products
        rows: dict[str, Iterable[tuple[Any, ...]]] = {
            "erp_stock": ((p.code, p.name, p.erp, p.location, p.stamp[1]) for p in active),
            "eshop_stock": ((p.code, p.eshop) for p in active),
            "transport_data": (
                (code, products[index].code, quantity, state)
                for code, (state, items) in self._boxes.items()
                for index, quantity in items
                if products[index].gone is None
            ),
            "lots": (
                (p.code, lot, amount, expiration)
                for p in active
                for lot, (amount, expiration) in p.lots.items()
            ),
            "stock_taking": (
                (products[index].code, when.isoformat(), old, new, user)
                for (index, when), (old, new, user) in self._takings.items()
                if products[index].gone is None
            ),
            "suppliers": (
                (p.code, *_SUPPLIERS[supplier], rank == 0)
                for p in active
                for rank, supplier in enumerate(p.suppliers)
            ),
        }
        return rows[source_id]

    def _history(self, source_id: str, window: Window, today: date) -> bytes:
        start, end = window.date_from, min(window.date_to, today)
        # A period belongs when its month overlaps the window; its rows sit on the 1st.
        low = start.replace(day=1) if source_id == "sales_data" else start
        parts: list[bytes] = []
        month = start.replace(day=1)
        while start <= end and month <= end:
            days = self._month(source_id, month, today)
            parts += [fragment for day, fragment in days if low <= day <= end]
            month = _last_day(month) + timedelta(days=1)
        return b"[" + b",".join(parts) + b"]"

    def _month(self, source_id: str, month: date, today: date) -> list[tuple[date, bytes]]:
        """The month's rows up to today, one JSON fragment a day; cached once it is over."""
        if (cached := self._months.get((source_id, month))) is not None:
            return cached
        if source_id == "sales_data":
            sold = self._live_sales if month == self._live_month else self._pure_sales(month)
            by_day = [self._sales_rows(month, sold)]
        else:
            by_day = self._dated(source_id, month)
        days = [
            (day, _fragment(source_id, rows))
            for day, rows in zip(_days(month), by_day, strict=False)
            if rows and day <= today
        ]
        if _last_day(month) < today:
            self._months[(source_id, month)] = days
        return days

    def _dated(self, source_id: str, month: date) -> list[list[tuple[Any, ...]]]:
        """Purchases or consumption in ``month``, day by day: a pure function of the seed."""
        draw = random.Random(f"{self._seed}:{source_id}:{month:%Y-%m}").random
        days = _days(month)
        isos = [day.isoformat() for day in days]
        by_day: list[list[tuple[Any, ...]]] = [[] for _ in days]
        if source_id == "consumed_materials":
            # Only materials draw; a product's trait never changes, so draws stay aligned.
            for p in [p for p in self._products if p.trait == "material"]:
                hit, n, quantity_u = draw(), int(draw() * len(days)), draw()
                if hit < 0.8 and p.alive(days[n], days[n]):
                    by_day[n].append((p.code, isos[n], 1 + int(quantity_u * p.demand)))
            return by_day
        prefix = f"PO-{month:%Y%m}-"  # strftime is slow: once a month, not once a row
        for p in self._products:
            # How many draws a product takes depends on the stream alone, so each
            # product's history stays the same whatever happens to the others.
            if draw() >= 0.35:
                continue
            n, supplier_u, price_u = int(draw() * len(days)), draw(), draw()
            if p.alive(days[n], days[n]):
                supplier = _SUPPLIERS[p.suppliers[0 if supplier_u < 0.8 else -1]]
                quantity = int(p.attrs["batch_size"]) * (1 + int(supplier_u * 4))
                price = round(p.price * (0.95 + price_u * 0.1), 2)
                number = f"{prefix}{p.index + 1:05d}"
                by_day[n].append((p.code, isos[n], quantity, price, "CZK", *supplier, number))
        return by_day

    def _pure_sales(self, month: date, share: float = 1.0) -> dict[int, list[int]]:
        """What each product sold in ``month`` as [b2b, b2c], scaled by ``share``."""
        draw = random.Random(f"{self._seed}:sales_data:{month:%Y-%m}").random
        sold: dict[int, list[int]] = {}
        for p in self._products:
            b2b_u, b2c_u = draw(), draw()
            season = p.attrs.get("season_months")
            rate = p.demand * share * (1.0 if season is None or month.month in season else 0.25)
            # Businesses buy now and then, and in bulk.
            sold[p.index] = [int(rate * 3 * b2b_u) if b2b_u > 0.8 else 0, int(rate * 2 * b2c_u)]
        return sold

    def _sales_rows(self, month: date, sold: dict[int, list[int]]) -> list[tuple[Any, ...]]:
        period, last, products = f"{month:%Y-%m}", _last_day(month), self._products
        return [
            (products[index].code, period, b2b, b2c)
            for index, (b2b, b2c) in sorted(sold.items())
            if (b2b or b2c) and products[index].alive(month, last)
        ]

    def _roll_month(self, today: date) -> None:
        """Start live sales counters for a new month, freezing the month that ended."""
        month, ended = today.replace(day=1), self._live_month
        if ended == month:
            return
        if ended is not None and ended < month:
            frozen = _fragment("sales_data", self._sales_rows(ended, self._live_sales))
            self._months[("sales_data", ended)] = [(ended, frozen)] if frozen else []
        # A month first seen mid-way starts with what was sold on its days so far.
        share = today.day / calendar.monthrange(today.year, today.month)[1]
        self._live_month, self._live_sales = month, self._pure_sales(month, share)

    def _active(self) -> list[_Product]:
        return [p for p in self._products if p.gone is None]

    def _sample(self, products: list[_Product], share: float) -> list[_Product]:
        return self._rng.sample(products, k=max(1, int(len(products) * share)))

    def _add_box(self) -> None:
        active = self._active()
        chosen = self._rng.sample(active, k=min(len(active), self._rng.randint(1, 4)))
        items = [(p.index, self._rng.randint(1, 40)) for p in chosen]
        code = f"BOX-{next(self._box_numbers):06d}"
        self._boxes[code] = (self._rng.choice(_BOX_STATES[:2]), items)


@dataclass(frozen=True, slots=True)
class DemoSource:
    """One of the ten simulated systems: a view of a shared ``DemoWorld``."""

    source_id: str
    world: DemoWorld

    def __post_init__(self) -> None:
        if self.source_id not in SPECS:
            raise UnknownSourceError(self.source_id)

    async def fetch(self, window: Window | None, state: FetchState | None = None) -> Payload:
        """The records as one bare JSON array; may raise ``SourceConnectionError``."""
        await asyncio.sleep(0)  # a real fetch yields to the loop, so the simulation does too
        return Payload(pages=[self.world.fetch(self.source_id, window)], origin="demo")

    async def aclose(self) -> None:
        """Nothing to release."""


def _fragment(source_id: str, rows: Iterable[tuple[Any, ...]]) -> bytes:
    """The JSON objects of ``rows`` without the brackets, ready to join with commas."""
    return _ENCODER.encode(list(itertools.starmap(_SHAPES[source_id], rows)))[1:-1]


def _days(month: date) -> list[date]:
    return [month.replace(day=day) for day in range(1, _last_day(month).day + 1)]


def _last_day(month: date) -> date:
    return month.replace(day=calendar.monthrange(month.year, month.month)[1])
