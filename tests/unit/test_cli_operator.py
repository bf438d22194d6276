"""The operator commands of the CLI (contract 8): pause, resume, refresh --dry-run."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner

from catalog_refresher.cli import app
from catalog_refresher.store.sqlite import SqliteStore


@pytest.fixture(autouse=True)
def _logging_as_it_was() -> Iterator[None]:
    """The commands set up the package's logging on CliRunner's captured stream; put the
    handlers back, or later tests would keep writing into that stream."""
    logger = logging.getLogger("catalog_refresher")
    handlers, level, propagate = logger.handlers[:], logger.level, logger.propagate
    yield
    logger.handlers[:] = handlers
    logger.setLevel(level)
    logger.propagate = propagate


ERP = [
    {"product_code": f"P-{n}", "product_name": f"Product {n}", "stock": n, "location": "A1"}
    for n in range(3)
]


def config(tmp_path: Path) -> Path:
    """ErpStock read from a JSON file of three records, into a SQLite store in tmp_path."""
    (tmp_path / "erp.json").write_text(json.dumps(ERP))
    erp = {"Type": "file", "Path": str(tmp_path / "erp.json"), "Format": "json"}
    path = tmp_path / "appsettings.json"
    store = tmp_path / "catalog.db"
    path.write_text(
        json.dumps({"Store": {"Url": f"sqlite:///{store}"}, "Sources": {"ErpStock": erp}})
    )
    return path


def test_pause_and_resume_write_the_store_every_replica_reads(tmp_path: Path) -> None:
    """`pause ErpStock --reason` stores the pause (what every scheduler reads); `resume`
    removes it, and says so when there was none."""
    path = config(tmp_path)
    runner = CliRunner()
    paused = runner.invoke(app, ["pause", "ErpStock", "-c", str(path), "--reason", "audit"])
    assert paused.exit_code == 0, paused.output
    assert paused.output.startswith("erp_stock: paused since ")
    assert "(audit)" in paused.output
    store = SqliteStore(tmp_path / "catalog.db")
    assert store.pauses()["erp_stock"].reason == "audit"
    resumed = runner.invoke(app, ["resume", "erp_stock", "-c", str(path)])
    assert resumed.output.strip() == "erp_stock: resumed"
    assert store.pauses() == {}
    again = runner.invoke(app, ["resume", "erp_stock", "-c", str(path)])
    assert again.output.strip() == "erp_stock: was not paused"
    store.close()


def test_refresh_dry_run_prints_what_would_change_and_writes_nothing(tmp_path: Path) -> None:
    """On an empty store the source would insert its three records; the dry run prints
    the counts, the first keys and the guard's verdict, and records no run."""
    path = config(tmp_path)
    result = CliRunner().invoke(app, ["refresh", "erp_stock", "--dry-run", "-c", str(path)])
    assert result.exit_code == 0, result.output
    assert (
        "erp_stock: dry run, nothing published: fetched 3, would insert 3, update 0,"
        " delete 0; invalid 0"
    ) in result.output
    assert "  first inserted: P-0, P-1, P-2" in result.output
    assert "  guard: pass (would publish)" in result.output
    store = SqliteStore(tmp_path / "catalog.db")
    assert store.source_history("erp_stock").record_count == 0
    assert store.source_history("erp_stock").last_started_at is None
    store.close()


def test_pause_of_an_unknown_source_is_exit_2_naming_it(tmp_path: Path) -> None:
    """A source that does not exist is refused before the store is touched."""
    result = CliRunner().invoke(app, ["pause", "ErpStok", "-c", str(config(tmp_path))])
    assert result.exit_code == 2
    assert "unknown source 'ErpStok'" in result.output
