"""The product aggregate users read (contract section 6), assembled from stored rows.

Pure: takes each source's stored records for one product and returns the
aggregate. Parts with no data are null (``stock.erp`` is null, not 0, for a
product the ERP does not know); lists are empty.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

import msgspec

from catalog_refresher.domain import records
from catalog_refresher.domain.specs import SPECS


class Stock(msgspec.Struct, kw_only=True):
    erp: float | None = None
    eshop: float | None = None
    transport: float = 0.0


class SalesPeriod(msgspec.Struct, kw_only=True):
    period: str
    b2b_sold: float = 0.0
    b2c_sold: float = 0.0


class PartLineage(msgspec.Struct, kw_only=True):
    run_id: int | None
    """The run that last changed this part (null: a retention purge)."""
    changed_at: datetime | None
    refreshed_at: datetime | None
    """The source's last successful run: the data was confirmed current then."""


class ProductAggregate(msgspec.Struct, kw_only=True):
    product_code: str
    product_name: str | None = None
    location: str | None = None
    stock: Stock = msgspec.field(default_factory=Stock)
    sales_history: list[SalesPeriod] = msgspec.field(default_factory=list)
    purchase_history: list[records.Purchase] = msgspec.field(default_factory=list)
    consumed_history: list[records.Consumption] = msgspec.field(default_factory=list)
    transport_boxes: list[records.TransportBox] = msgspec.field(default_factory=list)
    attributes: dict[str, Any] = msgspec.field(default_factory=dict)
    lots: list[records.Lot] = msgspec.field(default_factory=list)
    stock_taking: list[records.StockTaking] = msgspec.field(default_factory=list)
    suppliers: list[records.Supplier] = msgspec.field(default_factory=list)
    lineage: dict[str, PartLineage] = msgspec.field(default_factory=dict)


_decoders = {spec.id: msgspec.json.Decoder(spec.record_type) for spec in SPECS.values()}


def decode_rows(source: str, rows: list[bytes]) -> list[Any]:
    decode = _decoders[source].decode
    return [decode(row) for row in rows]


def assemble(
    code: str,
    parts: Mapping[str, list[Any]],
    lineage: Mapping[str, tuple[int | None, datetime | None]],
    refreshed: Mapping[str, datetime | None],
) -> ProductAggregate:
    """Build one product's aggregate from its records, by source id."""
    product = ProductAggregate(product_code=code)
    if erp := parts.get("erp_stock"):
        row: records.ErpStock = erp[-1]
        product.product_name, product.location, product.stock.erp = (
            row.product_name,
            row.location,
            row.stock,
        )
    if eshop := parts.get("eshop_stock"):
        product.stock.eshop = eshop[-1].stock
    product.sales_history = group_sales(parts.get("sales_data", []))
    product.purchase_history = sorted(parts.get("purchase_history", []), key=_by_date)
    product.consumed_history = sorted(parts.get("consumed_materials", []), key=_by_date)
    boxes: list[records.TransportBox] = list(parts.get("transport_data", []))
    product.transport_boxes = sorted(boxes, key=lambda b: b.box_code)
    product.stock.transport = sum(box.quantity for box in boxes)
    if attrs := parts.get("attributes"):
        product.attributes = attributes_view(attrs[-1])
    product.lots = sorted(parts.get("lots", []), key=lambda lot: lot.lot)
    product.stock_taking = sorted(parts.get("stock_taking", []), key=_by_date)
    product.suppliers = sorted(
        parts.get("suppliers", []), key=lambda s: (not s.is_primary, s.supplier_code)
    )
    product.lineage = {
        source: PartLineage(
            run_id=run_id, changed_at=changed_at, refreshed_at=refreshed.get(source)
        )
        for source, (run_id, changed_at) in sorted(lineage.items())
    }
    return product


def group_sales(sales: list[records.Sale]) -> list[SalesPeriod]:
    """Sales summed per period (the seed groups by product and period), oldest first."""
    periods: dict[str, SalesPeriod] = {}
    for sale in sales:
        assert sale.period is not None  # validation books every sale to a period
        total = periods.setdefault(sale.period, SalesPeriod(period=sale.period))
        total.b2b_sold += sale.b2b_sold
        total.b2c_sold += sale.b2c_sold
    return [periods[p] for p in sorted(periods)]


def attributes_view(attrs: records.Attributes) -> dict[str, Any]:
    """Typed attributes and the free-form ones in one object."""
    view: dict[str, Any] = msgspec.json.decode(attrs.extra) if attrs.extra else {}
    for name in records.attribute_fields() - {"product_code"}:
        value = getattr(attrs, name)
        if value is not None:
            view[name] = list(value) if isinstance(value, tuple) else value
    return view


def _by_date(row: Any) -> str:
    return str(row.date)
