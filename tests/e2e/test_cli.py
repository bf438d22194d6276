"""The command line as a user runs it: real processes, a real local HTTP server."""

from __future__ import annotations

import json
import os
import pty
import signal
import socket
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler
from pathlib import Path

import pytest

from tests.e2e.processes import read_terminal
from tests.local_http import serving

pytestmark = pytest.mark.e2e

ERP = [
    {"product_code": "TEST-001", "product_name": "Test Product 1", "stock": 100, "location": "A1"},
    {"product_code": "TEST-002", "product_name": "Test Product 2", "stock": 5, "location": "B2"},
]
TOKEN = "s3cret-erp-token-value"


class _Handler(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        if self.headers.get("Authorization") != f"Bearer {TOKEN}":
            self.send_response(401)
            self.end_headers()
            return
        body = json.dumps({"data": {"items": ERP}}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def erp_server() -> Iterator[str]:
    with serving(_Handler) as url:
        yield f"{url}/api/stock"


def cli(
    *args: str, cwd: Path, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "catalog_refresher", *args],
        cwd=cwd,
        env={**os.environ, **(env or {})},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def write_config(path: Path, url: str, **repository: object) -> Path:
    path.write_text(
        "{\n  // the ERP, with its token from the environment\n"
        + json.dumps(
            {
                "CatalogRepository": repository,
                "Sources": {
                    "ErpStock": {
                        "Url": url,
                        "RecordsPath": "data.items",
                        "Headers": {"Authorization": "env:ERP_AUTH"},
                    }
                },
                "Store": {"Url": f"sqlite:///{path.parent / 'catalog.db'}"},
            }
        )[1:]
    )
    return path


def test_refresh_one_source_exits_zero(tmp_path: Path, erp_server: str) -> None:
    """`refresh erp_stock --config F` fetches over HTTP, stores the rows and exits 0."""
    config = write_config(tmp_path / "appsettings.json", erp_server)
    result = cli(
        "refresh",
        "erp_stock",
        "--config",
        str(config),
        cwd=tmp_path,
        env={"ERP_AUTH": f"Bearer {TOKEN}"},
    )
    assert result.returncode == 0, result.stderr
    assert "erp_stock: succeeded" in result.stdout
    assert "inserted 2" in result.stdout
    assert "Completed ERP stock refresh. Updated 2 products" in result.stderr
    assert "records decoded" not in result.stderr  # piped: no progress line
    assert TOKEN not in result.stdout + result.stderr
    with sqlite3.connect(tmp_path / "catalog.db") as db:
        assert db.execute("SELECT count(*) FROM records").fetchone() == (2,)


def test_refresh_on_a_terminal_shows_its_progress(tmp_path: Path, erp_server: str) -> None:
    """With stderr on a terminal (a pseudo-terminal here), `refresh` draws a progress line:
    its last frame counts the page and bytes fetched, the records decoded and the rows
    applied; the result still goes to stdout."""
    config = write_config(tmp_path / "appsettings.json", erp_server)
    leader, follower = pty.openpty()
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "catalog_refresher",
            "refresh",
            "erp_stock",
            "--config",
            str(config),
        ],
        cwd=tmp_path,
        env={**os.environ, "ERP_AUTH": f"Bearer {TOKEN}", "COLUMNS": "200"},
        stdout=subprocess.PIPE,
        stderr=follower,
        text=True,
    )
    os.close(follower)
    drawn = read_terminal(leader)
    stdout, _ = process.communicate(timeout=120)

    assert process.returncode == 0, drawn
    assert "erp_stock: succeeded" in stdout
    body = len(json.dumps({"data": {"items": ERP}}))
    assert f"1 pages, {body} B fetched · 2 records decoded · 2 rows applied" in drawn, drawn
    assert "erp_stock: applying" in drawn


def test_refresh_failure_exits_nonzero_with_a_reason(tmp_path: Path, erp_server: str) -> None:
    """A refresh refused by the source (wrong token) exits 1 with one line naming why."""
    config = write_config(tmp_path / "appsettings.json", erp_server)
    result = cli(
        "refresh",
        "ErpStock",
        "--config",
        str(config),
        cwd=tmp_path,
        env={"ERP_AUTH": "Bearer wrong-token"},
    )
    assert result.returncode == 1
    assert "erp_stock: failed" in result.stderr
    assert "HTTP 401" in result.stderr
    assert "wrong-token" not in result.stdout + result.stderr


def test_check_config_names_the_bad_key_and_hides_secrets(tmp_path: Path) -> None:
    """A bad interval is refused naming the key; a good config prints with secrets masked."""
    good = write_config(tmp_path / "appsettings.json", "http://erp.example/api")
    env = {"ERP_AUTH": f"Bearer {TOKEN}"}
    ok = cli("check-config", "--config", str(good), cwd=tmp_path, env=env)
    assert ok.returncode == 0, ok.stderr
    assert TOKEN not in ok.stdout + ok.stderr
    assert json.loads(ok.stdout)["Sources"]["ErpStock"]["Url"] == "http://erp.example/api"

    bad = write_config(
        tmp_path / "bad.json", "http://erp.example/api", ErpStockRefreshInterval="5 minutes"
    )
    refused = cli("check-config", "--config", str(bad), cwd=tmp_path, env=env)
    assert refused.returncode != 0
    assert "CatalogRepository:ErpStockRefreshInterval" in refused.stderr
    assert TOKEN not in refused.stdout + refused.stderr


def test_demo_refreshes_all_ten_sources(tmp_path: Path) -> None:
    """`demo --once` refreshes each of the ten simulated sources successfully."""
    result = cli("demo", "--once", "--failure-rate", "0", "--products", "300", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    with sqlite3.connect(tmp_path / "catalog.db") as db:
        done = db.execute("SELECT DISTINCT source FROM runs WHERE status = 'succeeded'").fetchall()
    assert len(done) == 10
    assert result.stderr.count("Completed ") >= 10


def test_run_without_its_store_is_one_line_and_exit_1(tmp_path: Path) -> None:
    """An unreachable PostgreSQL store: a one-line reason, exit 1, no traceback, and
    the password in the URL never printed."""
    with socket.socket() as sock:  # a port nobody listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    config = tmp_path / "appsettings.json"
    config.write_text(
        json.dumps(
            {
                "Sources": {"ErpStock": {"Type": "demo"}},
                "Store": {"Url": f"postgresql://app:pw-s3cret@127.0.0.1:{port}/catalog"},
            }
        )
    )
    result = cli("run", "--config", str(config), cwd=tmp_path)
    assert result.returncode == 1, result.stderr
    assert "Traceback" not in result.stderr
    assert "pw-s3cret" not in result.stderr + result.stdout
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith("cannot run: cannot connect to the PostgreSQL store:"), last
    assert "refused" in last


def test_run_stops_gracefully_on_sigterm(tmp_path: Path, erp_server: str) -> None:
    """`run` refreshes at start and exits 0 on SIGTERM, leaving no run unfinished."""
    config = write_config(tmp_path / "appsettings.json", erp_server)
    lines: list[str] = []
    with subprocess.Popen(
        [sys.executable, "-m", "catalog_refresher", "run", "--config", str(config)],
        cwd=tmp_path,
        env={**os.environ, "ERP_AUTH": f"Bearer {TOKEN}"},
        stderr=subprocess.PIPE,
        text=True,
    ) as process:
        assert process.stderr is not None
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            line = process.stderr.readline()
            lines.append(line)
            if "Completed ERP stock refresh" in line:
                break
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=60) == 0
    with sqlite3.connect(tmp_path / "catalog.db") as db:
        statuses = db.execute("SELECT status FROM runs").fetchall()
    assert statuses == [("succeeded",)], "".join(lines)
