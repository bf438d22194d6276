"""Pin and unpin: serve a kept version of a source until told otherwise.

A pin rewrites the source's rows to the pinned version through the same writes,
lineage, product list and change feed as a run, so every endpoint, every cache
and every replica serves it with no change of its own. The newest values of the
rewritten keys are kept aside (``pin_aside``), with the lineage the pin replaced
(``pin_lineage``); unpinning writes them back. Both cost what differs between
the two versions (``store/versions.py`` says how a version is reconstructed).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from catalog_refresher.store.base import Applied, RowDelete, RowWrite
from catalog_refresher.store.rows import NAME_SOURCE, touched_by
from catalog_refresher.store.versions import (
    AFTER,
    ASIDE,
    KEPT,
    Before,
    Versioned,
    day_of,
    first_after,
)

_ADD_PIN = (
    "INSERT INTO pins (source, run_id, pinned_at) VALUES ({p}, {p}, {p})"
    " ON CONFLICT (source) DO UPDATE SET run_id = excluded.run_id, pinned_at = excluded.pinned_at"
)
_ADD_ASIDE = (
    "INSERT INTO pin_aside (source, key, product_code, day, data) VALUES ({p}, {p}, {p}, {p}, {p})"
)
_CURRENT = "SELECT k.key, r.data FROM vkeys k JOIN records r ON r.source = {p} AND r.key = k.key"
_SAVE_LINEAGE = (
    "INSERT INTO pin_lineage (source, product_code, run_id, changed_at)"
    " SELECT source, product_code, run_id, changed_at FROM lineage"
    " WHERE source = {p} AND product_code IN (SELECT code FROM touched)"
    " ON CONFLICT (source, product_code) DO NOTHING"
)
_DROP_LINEAGE = (
    "DELETE FROM lineage WHERE source = {p} AND product_code IN (SELECT code FROM touched)"
)
_RESTORE_LINEAGE = (
    "INSERT INTO lineage (product_code, source, run_id, changed_at)"
    " SELECT product_code, source, run_id, changed_at FROM pin_lineage"
    " WHERE source = {p} AND product_code IN (SELECT code FROM touched)"
)
_PIN_LINEAGE = (
    "INSERT INTO lineage (product_code, source, run_id, changed_at) VALUES ({p}, {p}, {p}, {p})"
    " ON CONFLICT (product_code, source) DO UPDATE"
    " SET run_id = excluded.run_id, changed_at = excluded.changed_at"
)
_CHANGED = "INSERT INTO changes (product_code, changed_at) SELECT code, {p} FROM touched"
_SERVED_STATE = (
    "UPDATE source_state SET data_version = data_version + 1, row_count = row_count + {p}"
    " WHERE source = {p}"
)


class Pinned(Versioned):
    """The pins half of ``SqlStore`` (mixed in over ``Versioned``)."""

    # --- pin and unpin ---------------------------------------------------------------

    def pin(self, source: str, run_id: int, *, at: datetime) -> Applied:
        """Serve the kept version ``run_id`` of ``source`` until ``unpin``."""
        with self._write() as conn:
            version = self._lock_state(conn, source)
            kept = [int(r[0]) for r in conn.execute(self._q(KEPT), (source,)).fetchall()]
            if run_id not in kept:
                raise self._not_kept(conn, source, run_id)
            target = None if run_id == kept[0] else run_id
            touched = self._serve(conn, source, target, run_id, at)
            conn.execute(self._q(_ADD_PIN), (source, run_id, self._time_param(at)))
        return Applied(products=frozenset(touched), version=version + (1 if touched else 0))

    def unpin(self, source: str, *, at: datetime) -> Applied:
        """Serve the newest version again (a no-op for a source not pinned)."""
        with self._write() as conn:
            version = self._lock_state(conn, source)
            if self.pinned_run(conn, source) is None:
                return Applied(products=frozenset(), version=version)
            kept = conn.execute(self._q(KEPT), (source,)).fetchall()
            touched = self._serve(conn, source, None, int(kept[0][0]) if kept else 0, at)
            for table in ("pins", "pin_aside", "pin_lineage"):
                conn.execute(self._q(f"DELETE FROM {table} WHERE source = {{p}}"), (source,))
        return Applied(products=frozenset(touched), version=version + (1 if touched else 0))

    def _serve(
        self, conn: Any, source: str, target: int | None, run_id: int, at: datetime
    ) -> set[str]:
        """Rewrite the source's rows to version ``target`` (``None``: the newest); the
        products it touched. Each staging table is filled once (PostgreSQL drops them
        at commit)."""
        aside = {
            str(k): Before(str(c), d, None if v is None else str(v))
            for k, c, d, v in conn.execute(self._q(ASIDE), (source,)).fetchall()
        }
        wanted: dict[str, Before] = {}
        if target is not None:
            after = conn.execute(self._q(AFTER), (source, target)).fetchall()
            wanted = first_after(after, target)
        keys = aside.keys() | wanted.keys()
        if not keys:
            return set()
        every = {**aside, **wanted}
        self._stage_keys(conn, ((k, every[k].product_code, None) for k in keys))
        current = {str(k): str(v) for k, v in conn.execute(self._q(_CURRENT), (source,)).fetchall()}
        # The newest values of the keys the target differs in, set aside for unpin.
        new_aside = {
            k: aside[k] if k in aside else Before(b.product_code, b.day, current.get(k))
            for k, b in wanted.items()
        }
        goal = {k: (wanted[k] if k in wanted else aside[k]) for k in keys}
        deletes = [
            RowDelete(k, b.product_code) for k, b in goal.items() if b.data is None and k in current
        ]
        writes = [
            RowWrite(k, b.product_code, day_of(b.day), b.data.encode())
            for k, b in goal.items()
            if b.data is not None and b.data != current.get(k)
        ]
        at_param = self._time_param(at)
        if deletes:
            self._delete_rows(conn, source, deletes)
        if writes:
            self._write_rows(conn, source, writes, run_id, at_param)
        conn.execute(self._q("DELETE FROM pin_aside WHERE source = {p}"), (source,))
        if new_aside:
            conn.cursor().executemany(
                self._q(_ADD_ASIDE),
                [
                    (source, k, b.product_code, self._day_param(day_of(b.day)), b.data)
                    for k, b in new_aside.items()
                ],
            )
        touched = touched_by((d.product_code for d in deletes), (w.product_code for w in writes))
        if touched:
            self._stage_touched(conn, touched, named=source == NAME_SOURCE)
            conn.execute(self._q(_SAVE_LINEAGE), (source,))
            conn.execute(self._q(_DROP_LINEAGE), (source,))
            conn.execute(self._q(_RESTORE_LINEAGE), (source,))
            if target is not None:
                pinned = {wanted[k].product_code for k in wanted} & touched.keys()
                conn.cursor().executemany(
                    self._q(_PIN_LINEAGE), [(c, source, run_id, at_param) for c in pinned]
                )
            for statement in self._refresh_products:
                conn.execute(statement)
            conn.execute(self._q(_CHANGED), (at_param,))
            delta = sum(b.data is not None for b in goal.values()) - sum(k in current for k in keys)
            conn.execute(self._q(_SERVED_STATE), (delta, source))
        return set(touched)
