"""An ERP whose stock changes between reads and that answers ``changed_since`` the way
the simulator does: the changes after a cursor, with tombstones, or the whole snapshot.
Shared by the contract, unit and e2e tests of incremental runs."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from catalog_refresher.config.settings import IncrementalSettings, JsonPath, Tombstone
from catalog_refresher.domain.runs import RunMode
from catalog_refresher.refresh.incremental import Plan, plan
from catalog_refresher.refresh.pipeline import Job, Pipeline, Processed
from catalog_refresher.sources.base import FetchState, Payload, Source
from catalog_refresher.store.base import Store
from tests.helpers import T0, start_run

INCREMENTAL = IncrementalSettings(
    cursor_field=JsonPath("changed_at", ("changed_at",)),
    cursor_parameter="changed_since",
    tombstone=Tombstone(path=JsonPath("deleted", ("deleted",)), equals="true"),
)


@dataclass
class ErpWorld:
    """Products by code (stock, the second it changed), and tombstones by code."""

    live: dict[str, tuple[float, int]] = field(default_factory=dict)
    gone: dict[str, int] = field(default_factory=dict)
    clock: int = 0

    def put(self, code: str, stock: float) -> None:
        self.clock += 1
        self.live[code] = (stock, self.clock)
        self.gone.pop(code, None)

    def remove(self, code: str) -> None:
        self.clock += 1
        del self.live[code]
        self.gone[code] = self.clock

    def stamp(self, second: int) -> str:
        return (T0 + timedelta(seconds=second)).isoformat().replace("+00:00", "Z")

    def answer(self, cursor: str | None) -> list[dict[str, object]]:
        """The snapshot (no cursor), or what changed after ``cursor`` with tombstones."""
        since = None if cursor is None else datetime.fromisoformat(cursor)
        records: list[dict[str, object]] = []
        for code, (stock, second) in sorted(self.live.items()):
            if since is None or T0 + timedelta(seconds=second) > since:
                records.append(
                    {"product_code": code, "stock": stock, "changed_at": self.stamp(second)}
                )
        if since is not None:
            for code, second in sorted(self.gone.items()):
                if T0 + timedelta(seconds=second) > since:
                    stamp = self.stamp(second)
                    records.append({"product_code": code, "deleted": True, "changed_at": stamp})
        return records

    def payload(self, state: FetchState) -> Payload:
        return Payload(pages=[json.dumps(self.answer(state.cursor)).encode()], origin="world")


def refresh(
    store: Store,
    pipeline: Pipeline,
    world: ErpWorld,
    *,
    incremental: IncrementalSettings | None = INCREMENTAL,
    forced: bool = False,
    max_delete_share: float = 0.5,
) -> tuple[RunMode, Processed]:
    """One run of ``erp_stock`` as the runner makes it: plan from the store, fetch, process."""
    run = start_run(store, "erp_stock", forced=forced)
    planned = plan(incremental, store.sync_state("erp_stock"), forced=forced, now=T0)
    job = Job(
        run_id=run.id,
        source="erp_stock",
        forced=forced,
        window=None,
        max_delete_share=max_delete_share,
        attempts=1,
        used_backup=False,
        plan=planned,
        incremental=incremental,
    )
    return planned.mode, pipeline.process(job, world.payload(planned.state))


async def refresh_from(
    store: Store,
    pipeline: Pipeline,
    source: Source,
    incremental: IncrementalSettings | None = INCREMENTAL,
    *,
    forced: bool = False,
) -> tuple[Plan, Processed]:
    """One run of ``source`` as the runner makes it, its fetch a real one: plan from the
    store, ``source.fetch(None, plan.state)``, process."""
    run = start_run(store, source.source_id, forced=forced)
    planned = plan(incremental, store.sync_state(source.source_id), forced=forced, now=T0)
    payload = await source.fetch(None, planned.state)
    job = Job(
        run_id=run.id,
        source=source.source_id,
        forced=forced,
        window=None,
        max_delete_share=0.5,
        attempts=1,
        used_backup=False,
        plan=planned,
        incremental=incremental,
    )
    try:
        return planned, pipeline.process(job, payload)
    finally:
        payload.discard()
