"""`catalog-refresher status` against a running service: a real process, a real socket."""

from __future__ import annotations

import json
import os
import pty
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from catalog_refresher.domain.specs import SPECS
from tests.e2e.processes import ServiceProcess, free_port, read_terminal
from tests.source_server import serve_sources

pytestmark = pytest.mark.e2e

FAILING = "lots"
TOKEN = "status-command-admin-token"


@pytest.fixture(scope="module")
def running(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """A service with reads protected by the admin token; yields its config file."""
    folder = tmp_path_factory.mktemp("status")
    with serve_sources(products=40, failing={FAILING}) as sources:
        config = folder / "appsettings.json"
        config.write_text(
            json.dumps(
                {
                    "CatalogRepository": {"RetryAttempts": 1},
                    "Sources": {
                        spec.config_key: {"Url": f"{sources.url}/{spec.id}"}
                        for spec in SPECS.values()
                    },
                    "Store": {"Url": f"sqlite:///{folder / 'catalog.db'}"},
                    "Api": {"Port": free_port(), "AdminToken": TOKEN, "ProtectReads": True},
                }
            )
        )
        port = json.loads(config.read_text())["Api"]["Port"]
        with ServiceProcess(config, f"http://127.0.0.1:{port}") as service:
            service.wait_for_first_runs()
            yield config
            assert service.stop() == 0, service.output()


def status(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "catalog_refresher", "status", *args],
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_status_piped_prints_one_tab_separated_row_per_source(running: Path) -> None:
    """Piped, the table is plain columns: a header, then one row per source with its health,
    the failing source Degraded with its failed run, ages instead of timestamps; the token
    comes from the configuration (reads are protected)."""
    done = status("--config", str(running))

    assert done.returncode == 0, done.stderr
    header, *rows = [line.split("\t") for line in done.stdout.splitlines()]
    assert header[:5] == ["source", "health", "last status", "last success", "next run"]
    by_source = {row[0]: row for row in rows}
    assert sorted(by_source) == sorted(SPECS)
    assert by_source["erp_stock"][1:3] == ["Healthy", "succeeded"]
    assert by_source["erp_stock"][3].endswith("ago") or by_source["erp_stock"][3] == "just now"
    assert by_source["erp_stock"][4].startswith("in ")
    assert by_source[FAILING][1:4] == ["Degraded", "failed", "–"]
    assert "\x1b[" not in done.stdout  # no colours into a pipe


def test_status_on_a_terminal_draws_a_table(running: Path) -> None:
    """On a terminal (a pseudo-terminal here) the same rows are drawn as a boxed table
    titled with the overall health."""
    leader, follower = pty.openpty()
    process = subprocess.Popen(
        [sys.executable, "-m", "catalog_refresher", "status", "--config", str(running)],
        stdout=follower,
        stderr=subprocess.STDOUT,
        env={**os.environ, "COLUMNS": "160"},
    )
    os.close(follower)
    screen = read_terminal(leader)
    assert process.wait(timeout=60) == 0
    assert "catalog-refresher: Degraded" in screen
    assert screen.count("┏━") == 1, screen  # a boxed table, not plain columns
    assert "│ erp_stock " in screen
    for source in SPECS:
        assert source in screen


def test_status_names_the_address_when_no_service_answers(tmp_path: Path) -> None:
    """With no service listening the command exits 1 with one line naming the address."""
    port = free_port()
    done = status("--url", f"http://127.0.0.1:{port}")

    assert done.returncode == 1
    assert done.stderr.strip().startswith(
        f"status: no answer from the service at http://127.0.0.1:{port}"
    )
    assert len(done.stderr.strip().splitlines()) == 1


def test_status_with_a_wrong_token_says_the_service_refused_it(
    running: Path, tmp_path: Path
) -> None:
    """A configuration whose admin token is not the service's: the 403 is named, exit 1."""
    config = json.loads(running.read_text())
    config["Api"]["AdminToken"] = "not-the-token"
    wrong = tmp_path / "wrong.json"
    wrong.write_text(json.dumps(config))

    done = status("--config", str(wrong))

    assert done.returncode == 1
    assert "HTTP 403" in done.stderr
    assert "not-the-token" not in done.stderr
