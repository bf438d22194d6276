"""Small factories shared by the unit and contract tests: records, payloads, runs, loads."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime, timedelta
from typing import Any

from catalog_refresher.config.paths import parse_path
from catalog_refresher.config.settings import JsonPath
from catalog_refresher.domain.runs import Run, RunCounts, RunOutcome, RunStatus, Trigger
from catalog_refresher.domain.specs import SPECS, SourceSpec
from catalog_refresher.domain.window import Window
from catalog_refresher.refresh.diff import Diff, FingerprintIndex, changeset, diff
from catalog_refresher.refresh.validate import Batch, validate
from catalog_refresher.sources.base import Payload
from catalog_refresher.store.base import Applied, Store

#: The moment every test starts from, and its UTC date.
T0 = datetime(2026, 11, 29, 10, 0, tzinfo=UTC)
TODAY = T0.date()

#: One valid record per source, in the shape of contract section 4 (dates inside the
#: default window ending ``TODAY``).
VALID: dict[str, dict[str, Any]] = {
    "erp_stock": {"product_name": "Test Product 1", "stock": 100, "location": "A1"},
    "eshop_stock": {"stock": 80},
    "sales_data": {"period": "2026-10", "b2b_sold": 10, "b2c_sold": 5},
    "purchase_history": {
        "date": "2026-09-01",
        "quantity": 50,
        "purchase_price": 12.5,
        "currency": "CZK",
        "supplier_code": "S1",
        "supplier_name": "Dodavatel s.r.o.",
        "document_number": "PO-1",
    },
    "consumed_materials": {"date": "2026-11-01", "quantity": 3},
    "transport_data": {"box_code": "BOX-1", "quantity": 4, "state": "in_transit"},
    "attributes": {"optimal_stock_days": 30, "stock_min": 10, "batch_size": 5,
                   "season_months": [11, 12]},
    "lots": {"lot": "L1", "amount": 20, "expiration": "2027-06-30"},
    "stock_taking": {"date": "2026-11-15", "amount_old": 98, "amount_new": 100, "user": "novak"},
    "suppliers": {"supplier_code": "S1", "name": "Dodavatel s.r.o.", "is_primary": True},
}  # fmt: skip


def record(source: str, code: str = "P-1", **fields: Any) -> dict[str, Any]:
    """A valid raw record of ``source`` for product ``code``, with ``fields`` overriding."""
    return {"product_code": code, **VALID[source], **fields}


def payload(records: Any, *, records_path: str | None = None) -> Payload:
    """A one-page payload holding ``records`` (a bare array unless ``records_path``)."""
    body: Any = records
    if records_path:
        for step in reversed(records_path.split(".")):
            body = {step: body}
    return Payload(
        pages=[json.dumps(body).encode()],
        records_path=None if records_path is None else json_path(records_path),
    )


def json_path(text: str) -> JsonPath:
    """``text`` parsed as the configuration parses a path."""
    return parse_path(text, "test")


def window_of(spec: SourceSpec, today: date = TODAY) -> Window | None:
    """The default window of a history source ending ``today``; ``None`` for a snapshot."""
    if spec.default_retention_days is None:
        return None
    return Window(date_from=today - timedelta(days=spec.default_retention_days), date_to=today)


def validated(source: str, records: list[Any], window: Window | None = None) -> Batch:
    """``records`` validated for ``source`` (history sources get their default window)."""
    spec = SPECS[source]
    return validate(spec, payload(records), window or window_of(spec))


def start_run(store: Store, source: str, *, at: datetime = T0, forced: bool = False) -> Run:
    """A run of ``source`` created and marked running at ``at``."""
    run = store.create_run(source=source, trigger=Trigger.MANUAL, forced=forced, at=at)
    assert store.mark_running(run.id, at=at)
    return run


def outcome_of(found: Diff, batch: Batch, at: datetime) -> RunOutcome:
    """The succeeded outcome a runner would record for ``found``."""
    counts = RunCounts(
        fetched=batch.fetched,
        invalid=batch.invalid,
        inserted=len(found.inserts),
        updated=len(found.updates),
        deleted=len(found.deletes),
    )
    return RunOutcome(status=RunStatus.SUCCEEDED, finished_at=at, attempts=1, counts=counts)


def load(
    store: Store, source: str, records: list[Any], *, at: datetime = T0
) -> tuple[Run, Applied]:
    """Refresh ``source`` with ``records`` as the runner does: validate, diff, apply."""
    spec = SPECS[source]
    window = window_of(spec, at.date())
    batch = validate(spec, payload(records), window)
    version = store.data_version(source)
    index = FingerprintIndex.build(spec, version, list(store.iter_rows(source)))
    found = diff(spec, index, batch, window)
    run = start_run(store, source, at=at)
    applied = store.apply(
        run.id, changeset(spec, found, batch, version), outcome_of(found, batch, at)
    )
    return run, applied
