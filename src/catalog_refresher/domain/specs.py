"""The ten sources and what sets each apart (contract section 1).

Everything source-specific that the rest of the service needs is in this table:
the service, the store and the aggregate are written once, for all ten. The
per-source ``CatalogRepository`` options are named and defaulted here too, so
``config`` holds them by source id and never lists the sources again.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import timedelta

from catalog_refresher.domain import records


class Kind(enum.StrEnum):
    SNAPSHOT = "snapshot"
    """The source returns its whole current state."""
    HISTORY = "history"
    """The source returns a date window; older rows age out by retention."""


@dataclass(frozen=True, slots=True, kw_only=True)
class SourceSpec:
    id: str
    config_key: str
    kind: Kind
    default_interval: timedelta
    """How often the source is read unless its ``interval_option`` says otherwise."""
    record_type: type[records.Record]
    key_fields: tuple[str, ...]
    """Fields that identify a row of a snapshot source (empty for history sources)."""
    log_name: str
    log_unit: str
    retention_option: str | None = None
    """The ``CatalogRepository`` option that holds this history source's window, in days."""
    default_retention_days: int | None = None
    """That window unless the option says otherwise."""

    def __post_init__(self) -> None:
        # History sources, and only they, have a window: options are held on that premise.
        windowed = (self.retention_option is not None, self.default_retention_days is not None)
        if windowed != (self.is_history, self.is_history):
            problem = "needs a retention option and default" if self.is_history else "has no window"
            raise ValueError(f"source {self.id}: a {self.kind} source {problem}")

    @property
    def interval_option(self) -> str:
        """The ``CatalogRepository`` option that holds the refresh interval."""
        return f"{self.config_key}RefreshInterval"

    @property
    def is_history(self) -> bool:
        return self.kind is Kind.HISTORY


def _minutes(n: int) -> timedelta:
    return timedelta(minutes=n)


SPECS: Mapping[str, SourceSpec] = {
    spec.id: spec
    for spec in (
        SourceSpec(
            id="erp_stock",
            config_key="ErpStock",
            kind=Kind.SNAPSHOT,
            default_interval=_minutes(5),
            record_type=records.ErpStock,
            key_fields=("product_code",),
            log_name="ERP stock",
            log_unit="products",
        ),
        SourceSpec(
            id="eshop_stock",
            config_key="EshopStock",
            kind=Kind.SNAPSHOT,
            default_interval=_minutes(10),
            record_type=records.EshopStock,
            key_fields=("product_code",),
            log_name="e-shop stock",
            log_unit="products",
        ),
        SourceSpec(
            id="sales_data",
            config_key="SalesData",
            kind=Kind.HISTORY,
            default_interval=_minutes(30),
            record_type=records.Sale,
            key_fields=(),
            log_name="sales data",
            log_unit="records",
            retention_option="SalesHistoryRetentionDays",
            default_retention_days=365,
        ),
        SourceSpec(
            id="purchase_history",
            config_key="PurchaseHistory",
            kind=Kind.HISTORY,
            default_interval=_minutes(60),
            record_type=records.Purchase,
            key_fields=(),
            log_name="purchase history",
            log_unit="records",
            retention_option="PurchaseHistoryRetentionDays",
            default_retention_days=365,
        ),
        SourceSpec(
            id="consumed_materials",
            config_key="ConsumedMaterials",
            kind=Kind.HISTORY,
            default_interval=_minutes(30),
            record_type=records.Consumption,
            key_fields=(),
            log_name="consumed materials",
            log_unit="records",
            retention_option="ConsumedMaterialsRetentionDays",
            default_retention_days=720,
        ),
        SourceSpec(
            id="transport_data",
            config_key="TransportData",
            kind=Kind.SNAPSHOT,
            default_interval=_minutes(15),
            record_type=records.TransportBox,
            key_fields=("box_code", "product_code"),
            log_name="transport data",
            log_unit="records",
        ),
        SourceSpec(
            id="attributes",
            config_key="Attributes",
            kind=Kind.SNAPSHOT,
            default_interval=_minutes(60),
            record_type=records.Attributes,
            key_fields=("product_code",),
            log_name="attributes",
            log_unit="products",
        ),
        SourceSpec(
            id="lots",
            config_key="Lots",
            kind=Kind.SNAPSHOT,
            default_interval=_minutes(15),
            record_type=records.Lot,
            key_fields=("product_code", "lot"),
            log_name="lots",
            log_unit="records",
        ),
        SourceSpec(
            id="stock_taking",
            config_key="StockTaking",
            kind=Kind.SNAPSHOT,
            default_interval=_minutes(10),
            record_type=records.StockTaking,
            key_fields=("product_code", "date"),
            log_name="stock taking",
            log_unit="records",
        ),
        SourceSpec(
            id="suppliers",
            config_key="Suppliers",
            kind=Kind.SNAPSHOT,
            default_interval=_minutes(120),
            record_type=records.Supplier,
            key_fields=("product_code", "supplier_code"),
            log_name="suppliers",
            log_unit="records",
        ),
    )
}

SOURCE_IDS: tuple[str, ...] = tuple(SPECS)
SPECS_BY_CONFIG_KEY: Mapping[str, SourceSpec] = {s.config_key.lower(): s for s in SPECS.values()}
