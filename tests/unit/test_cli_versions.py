"""``versions``, ``diff``, ``pin`` and ``unpin`` on the command line, over a SQLite store."""

from __future__ import annotations

import json
from pathlib import Path

from typer.testing import CliRunner

from catalog_refresher import progress
from catalog_refresher.cli import app
from catalog_refresher.console.progress import ProgressLine
from catalog_refresher.store.sqlite import SqliteStore
from tests.helpers import T0
from tests.store_helpers import apply, erp


def _config(tmp_path: Path) -> tuple[Path, list[int]]:
    """A configuration on a store where erp_stock published three versions."""
    db = tmp_path / "catalog.db"
    store = SqliteStore(db)
    store.migrate()
    runs = [apply(store, "erp_stock", [erp("A", float(n))], at=T0, updated=n)[0] for n in range(3)]
    store.close()
    config = tmp_path / "appsettings.json"
    config.write_text(json.dumps({"Store": {"Url": f"sqlite:///{db}"}}))
    return config, runs


def _json(args: list[str]) -> object:
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    return json.loads(result.output)


def test_versions_diff_pin_and_unpin_print_json(tmp_path: Path) -> None:
    """Each command prints what the API answers; pin serves the old version, unpin the newest."""
    config, runs = _config(tmp_path)
    listed = _json(["versions", "ErpStock", "--config", str(config)])
    assert isinstance(listed, dict)
    assert [v["run_id"] for v in listed["items"]] == runs[::-1]
    diff = _json(["diff", "erp_stock", "--from", str(runs[0]), "--config", str(config)])
    assert isinstance(diff, dict)
    assert [(i["key"], i["old"]["stock"], i["new"]["stock"]) for i in diff["items"]] == [
        ("A", 0.0, 2.0)
    ]
    pinned = _json(["pin", "erp_stock", "--run", str(runs[0]), "--config", str(config)])
    assert isinstance(pinned, dict)
    assert (pinned["pinned"], pinned["served_run_id"]) == (True, runs[0])
    unpinned = _json(["unpin", "erp_stock", "--config", str(config)])
    assert isinstance(unpinned, dict)
    assert (unpinned["pinned"], unpinned["served_run_id"]) == (False, runs[2])


def test_an_unknown_version_is_one_line_and_exit_1(tmp_path: Path) -> None:
    """A run that is no kept version fails with a line naming it."""
    config, _ = _config(tmp_path)
    result = CliRunner().invoke(app, ["pin", "erp_stock", "--run", "999", "--config", str(config)])
    assert result.exit_code == 1
    assert "version 999 of erp_stock is unknown" in result.output


def test_a_diff_reports_its_progress_to_whoever_listens(tmp_path: Path) -> None:
    """Under a progress sink (what `diff` sets on a terminal) a diff between versions says
    its phases and how many changed keys it read; the piped command above printed only JSON."""
    _, runs = _config(tmp_path)
    store = SqliteStore(tmp_path / "catalog.db")
    line = ProgressLine("erp_stock diff")
    try:
        with progress.reporting(line):
            store.diff_versions("erp_stock", runs[0], None, limit=10, offset=0)
    finally:
        store.close()
    assert line.text().startswith("erp_stock diff: comparing · 2 changed keys read · ")
