"""Both roads to the current schema meet: a new store made from ``schema.sql``, and a
store of the first release brought up by the numbered migrations (every implementation)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from catalog_refresher.domain.runs import RunStatus
from catalog_refresher.store.migrations import migrations
from catalog_refresher.store.sql_store import SqlStore

if TYPE_CHECKING:
    from tests.contract.conftest import Opener

#: What a store of version 001 held: a run, two products (one without a name), their
#: rows, lineage, change feed and source state. Plain SQL both dialects take.
VERSION_1_ROWS = """
INSERT INTO runs (source, trigger, status, forced, queued_at, started_at, finished_at,
                  attempts, fetched, inserted)
VALUES ('erp_stock', 'manual', 'succeeded', false, '2026-11-29T10:00:00+00:00',
        '2026-11-29T10:00:00+00:00', '2026-11-29T10:00:05+00:00', 1, 2, 2);
INSERT INTO records (source, key, product_code, day, data, run_id, changed_at) VALUES
    ('erp_stock', 'ŘEZ-2', 'ŘEZ-2', NULL,
     '{"product_code": "ŘEZ-2", "product_name": "Řezák", "stock": 1.0}', 1,
     '2026-11-29T10:00:05+00:00'),
    ('erp_stock', 'P-3', 'P-3', NULL, '{"product_code": "P-3", "stock": 2.0}', 1,
     '2026-11-29T10:00:05+00:00');
INSERT INTO lineage (product_code, source, run_id, changed_at) VALUES
    ('ŘEZ-2', 'erp_stock', 1, '2026-11-29T10:00:05+00:00'),
    ('P-3', 'erp_stock', 1, '2026-11-29T10:00:05+00:00');
INSERT INTO products (code, name) VALUES ('ŘEZ-2', 'Řezák'), ('P-3', NULL);
INSERT INTO changes (product_code, changed_at) VALUES
    ('ŘEZ-2', '2026-11-29T10:00:05+00:00'), ('P-3', '2026-11-29T10:00:05+00:00');
INSERT INTO source_state (source, data_version, row_count, last_success_run_id,
                          last_success_at)
VALUES ('erp_stock', 1, 2, 1, '2026-11-29T10:00:05+00:00');
"""


async def test_a_migrated_store_has_the_schema_of_a_new_one(opener: Opener) -> None:
    """A version-001 store with rows in it, migrated to the latest, has exactly the
    tables, columns, keys, indexes, constraints and triggers of a store made fresh from
    schema.sql, and both record every migration as applied."""
    opener.open()  # new: made from schema.sql
    fresh = opener.describe()

    old = opener.beside("migrated")
    store = old.open(migrated=False)
    assert isinstance(store, SqlStore)
    store.migrate(to=1)
    old.run_script(VERSION_1_ROWS)
    store.migrate()

    assert old.describe() == fresh
    every = [(m.version, m.name) for m in migrations(opener.implementation.dialect)]
    assert fresh["recorded migrations"] == repr(every)
    # The rows came along, and the columns later migrations added were filled in.
    assert store.list_products(search="řezák", limit=10, offset=0) == (["ŘEZ-2"], 1)
    assert store.list_products(search="p-3", limit=10, offset=0) == (["P-3"], 1)
    assert store.get_run(1).status is RunStatus.SUCCEEDED  # type: ignore[union-attr]
    assert store.source_history("erp_stock").record_count == 2
    assert (await store.product_parts("P-3"))["erp_stock"].run_id == 1  # type: ignore[index]
