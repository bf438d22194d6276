"""Where an incremental source's cursor goes, as the configuration is read: a query
parameter, a ``{cursor}`` placeholder of the request templates (sent, on a real local
server), a sql query's ``:cursor``; and what is refused, naming the key."""

from __future__ import annotations

import json
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any, ClassVar

import httpx
import pytest

from catalog_refresher.config import load
from catalog_refresher.config.settings import Settings
from catalog_refresher.errors import ConfigError
from catalog_refresher.refresh.pipeline import Pipeline
from catalog_refresher.sources.http import HttpSource
from catalog_refresher.store.sqlite import SqliteStore
from tests.helpers import T0
from tests.incremental_world import ErpWorld, refresh_from
from tests.local_http import serving

INCREMENTAL = {"CursorField": "changed_at", "Tombstone": {"Path": "deleted", "Equals": True}}


def _load(tmp_path: Path, source: dict[str, Any]) -> Settings:
    path = tmp_path / "appsettings.json"
    path.write_text(json.dumps({"Sources": {"ErpStock": source}}), encoding="utf-8")
    return load(path, environment=None, environ={})


class _World(BaseHTTPRequestHandler):
    """An ERP that reads its cursor from the POST body's ``filter.since``; keeps requests."""

    world: ClassVar[ErpWorld] = ErpWorld()
    seen: ClassVar[list[tuple[str, Any]]] = []

    def do_POST(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        self.seen.append((self.path, body))
        answer = json.dumps(self.world.answer(body["filter"]["since"] or None)).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(answer)))
        self.end_headers()
        self.wfile.write(answer)

    def log_message(self, *args: object) -> None:
        pass


async def test_the_cursor_fills_its_placeholder_in_the_body_and_url(tmp_path: Path) -> None:
    """``{cursor}`` in a Body string and the Url: empty on the full run, the stored cursor
    (percent-encoded in the Url) on the incremental one, whose changes are applied."""
    _World.world = world = ErpWorld()
    _World.seen.clear()
    for n in range(3):
        world.put(f"P-{n}", n)
    with serving(_World) as base:
        settings = _load(
            tmp_path,
            {
                "Url": f"{base}/stock?since={{cursor}}",
                "Method": "POST",
                "Body": {"filter": {"since": "{cursor}"}},
                "Incremental": INCREMENTAL,
            },
        )
        source_settings = settings.sources["erp_stock"]
        assert source_settings.incremental is not None
        assert source_settings.incremental.cursor_parameter is None
        store = SqliteStore(tmp_path / "c.db")
        store.migrate()
        pipeline = Pipeline(store, now=lambda: T0)
        async with httpx.AsyncClient() as client:
            source = HttpSource("erp_stock", source_settings.primary, client)
            await refresh_from(store, pipeline, source, source_settings.incremental)
            world.put("P-1", 10)
            world.remove("P-2")
            _, processed = await refresh_from(store, pipeline, source, source_settings.incremental)
    counts = processed.outcome.counts
    assert (counts.fetched, counts.updated, counts.deleted) == (1, 1, 1)
    cursor = world.stamp(3)
    assert _World.seen[0] == ("/stock?since=", {"filter": {"since": ""}})
    assert _World.seen[1] == (
        f"/stock?since={cursor.replace('+', '%2B')}",
        {"filter": {"since": cursor}},
    )
    assert sorted(dict(store.iter_rows("erp_stock"))) == ["P-0", "P-1"]
    store.close()


@pytest.mark.parametrize(
    ("source", "key", "problem"),
    [
        (
            {"Url": "http://erp.example/stock", "Incremental": INCREMENTAL},
            "Sources:ErpStock:Incremental:CursorParameter",
            "unless Url, Query or Body holds {cursor}",
        ),
        (
            {"Url": "http://erp.example/stock?since={cursor}"},
            "Sources:ErpStock",
            "only for a source with Incremental",
        ),
        (
            {"Url": "http://erp.example/stock?since={cursor:%Y}", "Incremental": INCREMENTAL},
            "Sources:ErpStock:Url",
            "takes no format",
        ),
        (
            {
                "Type": "sql",
                "Url": "sqlite:///x.db",
                "Query": "SELECT * FROM stock",
                "Incremental": INCREMENTAL,
            },
            "Sources:ErpStock:Query",
            "needs :cursor",
        ),
        (
            {
                "Type": "sql",
                "Url": "sqlite:///x.db",
                "Query": "SELECT * FROM stock WHERE changed_at > :cursor",
                "Incremental": {**INCREMENTAL, "CursorParameter": "since"},
            },
            "Sources:ErpStock:Incremental:CursorParameter",
            "bound to :cursor",
        ),
        (
            {"Type": "file", "Path": "/data/*.json", "Format": "json", "Incremental": INCREMENTAL},
            "Sources:ErpStock:Incremental",
            "read whole",
        ),
        (
            {"Url": "http://erp.example/stock", "Conditional": "sometimes"},
            "Sources:ErpStock:Conditional",
            "",
        ),
        (
            {"Type": "file", "Path": "/data/*.json", "Format": "json", "Conditional": False},
            "Sources:ErpStock:Conditional",
            "not for Type file",
        ),
    ],
)
def test_a_cursor_that_would_not_be_sent_is_refused_naming_the_key(
    tmp_path: Path, source: dict[str, Any], key: str, problem: str
) -> None:
    """No CursorParameter nor {cursor}; {cursor} without Incremental or with a format; a sql
    query without :cursor or with a CursorParameter; a file set; a bad Conditional."""
    with pytest.raises(ConfigError) as caught:
        _load(tmp_path, source)
    assert caught.value.key == key
    assert problem in str(caught.value)


def test_a_sql_source_binds_its_cursor_and_conditional_false_is_read(tmp_path: Path) -> None:
    """A sql query with :cursor needs no CursorParameter; ``"Conditional": false`` is kept."""
    sql = _load(
        tmp_path,
        {
            "Type": "sql",
            "Url": "sqlite:///x.db",
            "Query": "SELECT * FROM stock WHERE :cursor IS NULL OR changed_at > :cursor",
            "Incremental": INCREMENTAL,
        },
    )
    incremental = sql.sources["erp_stock"].incremental
    assert incremental is not None
    assert incremental.cursor_parameter is None
    http = _load(tmp_path, {"Url": "http://erp.example/stock", "Conditional": False})
    assert http.sources["erp_stock"].primary.conditional is False
    assert _load(tmp_path, {"Url": "http://erp.example/s"}).sources["erp_stock"].primary.conditional
