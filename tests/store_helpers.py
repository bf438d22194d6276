"""Factories for raw store tests: encoded rows, outcomes and one-call refreshes."""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from datetime import date, datetime, timedelta
from typing import overload

from catalog_refresher.domain.runs import RunCounts, RunOutcome, RunStatus
from catalog_refresher.store.base import (
    Applied,
    Changeset,
    EncodedOnRead,
    RowDelete,
    RowWrite,
    Store,
)
from tests.helpers import T0, start_run


def erp(code: str, stock: float = 1.0, name: str | None = None) -> RowWrite:
    """An ``erp_stock`` row as ``refresh/diff.py`` would encode it."""
    data = {"product_code": code, "stock": stock} | ({"product_name": name} if name else {})
    return RowWrite(code, code, None, json.dumps(data).encode())


def eshop(code: str, stock: float = 1.0) -> RowWrite:
    """An ``eshop_stock`` row."""
    return RowWrite(code, code, None, json.dumps({"product_code": code, "stock": stock}).encode())


def consumed(code: str, day: date) -> RowWrite:
    """A ``consumed_materials`` history row of ``day``, keyed as validation keys it."""
    data = {"product_code": code, "date": day.isoformat(), "quantity": 1.0}
    return RowWrite(f"{code}\x1f{day.isoformat()}\x1f0", code, day, json.dumps(data).encode())


def gone(row: RowWrite) -> RowDelete:
    """The delete of ``row``."""
    return RowDelete(row.key, row.product_code)


def succeeded(
    at: datetime = T0, *, inserted: int = 0, updated: int = 0, deleted: int = 0
) -> RunOutcome:
    """A succeeded outcome with the given counts."""
    counts = RunCounts(
        fetched=inserted + updated, inserted=inserted, updated=updated, deleted=deleted
    )
    return RunOutcome(status=RunStatus.SUCCEEDED, finished_at=at, attempts=1, counts=counts)


def ended(status: RunStatus, at: datetime = T0) -> RunOutcome:
    """An outcome other than success, with no counts."""
    return RunOutcome(status=status, finished_at=at, error=status.value)


def apply(
    store: Store,
    source: str,
    writes: Sequence[RowWrite] = (),
    deletes: Sequence[RowDelete] = (),
    *,
    at: datetime = T0,
    updated: int = 0,
) -> tuple[int, Applied]:
    """Run one refresh of ``source`` writing ``writes`` (the last ``updated`` are updates)."""
    run = start_run(store, source, at=at)
    changes = Changeset(
        source=source, writes=writes, deletes=deletes, expected_version=store.data_version(source)
    )
    outcome = succeeded(at, inserted=len(writes) - updated, updated=updated, deleted=len(deletes))
    return run.id, store.apply(run.id, changes, outcome)


def codes(store: Store, search: str | None = None, limit: int = 100, offset: int = 0) -> list[str]:
    """The listed product codes, without the total."""
    return store.list_products(search=search, limit=limit, offset=offset)[0]


async def stored_rows(store: Store, code: str, source: str) -> list[dict[str, object]]:
    """The decoded rows ``source`` holds for product ``code``."""
    parts = await store.product_parts(code) or {}
    return [json.loads(r) for r in parts[source].rows] if source in parts else []


def finished_run(store: Store, status: RunStatus, at: datetime, source: str = "erp_stock") -> int:
    """A run of ``source`` started at ``at`` and finished with ``status`` (no data)."""
    run = start_run(store, source, at=at)
    store.finish_run(run.id, ended(status, at + timedelta(seconds=5)))
    return run.id


class Lazy(EncodedOnRead):
    """``rows`` as the pipeline hands them to the store: a sequence that also gives each
    row's key, product and day (``heads``) and product name (``names``) without its JSON
    being read back."""

    def __init__(self, rows: Sequence[RowWrite]) -> None:
        self._rows = list(rows)

    def __len__(self) -> int:
        return len(self._rows)

    @overload
    def __getitem__(self, index: int) -> RowWrite: ...

    @overload
    def __getitem__(self, index: slice) -> list[RowWrite]: ...

    def __getitem__(self, index: int | slice) -> RowWrite | list[RowWrite]:
        return self._rows[index]

    def heads(self) -> Iterator[tuple[str, str, date | None]]:
        return ((r.key, r.product_code, r.day) for r in self._rows)

    def names(self) -> Iterator[tuple[str, str | None]]:
        return ((r.product_code, json.loads(r.data).get("product_name")) for r in self._rows)
