"""The wheel `python -m build` makes, installed into a clean virtual environment, serves
from a folder outside the checkout, with nothing of the checkout on its path."""

from __future__ import annotations

import subprocess
from pathlib import Path

import httpx
import pytest

from tests.deploy import REPO
from tests.e2e.installed import Installed
from tests.e2e.processes import ServiceProcess, free_port
from tests.e2e.recipes import SYSTEMD_PATH

pytestmark = pytest.mark.e2e


def test_the_installed_wheel_serves_health_live_from_outside_the_checkout(
    installed: Installed, tmp_path: Path
) -> None:
    """`catalog-refresher demo` of the installed wheel, in a folder of its own and a bare
    environment: the package is imported from the virtual environment, the API serves
    /health/live, and the files shipped in the package (dashboard, Swagger UI) are there."""
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    assert not elsewhere.is_relative_to(REPO)
    environ = {"PATH": SYSTEMD_PATH, "HOME": str(elsewhere), "LANG": "C.UTF-8"}
    where = subprocess.run(
        [
            str(installed.program("python")),
            "-c",
            "import catalog_refresher; print(catalog_refresher.__file__)",
        ],
        cwd=elsewhere,
        env=environ,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    print(f"installed {installed.wheel.name}; imported from {where}")
    assert Path(where).is_relative_to(installed.venv)

    port = free_port()
    with (
        ServiceProcess(
            None,
            f"http://127.0.0.1:{port}",
            command=[str(installed.program("catalog-refresher")), "demo", "--products", "200"],
            environ={**environ, "Api__Port": str(port)},
            cwd=elsewhere,
        ) as service,
        httpx.Client(base_url=service.url, timeout=10) as client,
    ):
        service.wait_for("Serving the API on")
        live = client.get("/health/live")
        print(f"GET {service.url}/health/live -> {live.status_code} {live.text}")
        assert live.status_code == 200
        assert client.get("/dashboard").status_code == 200
        assert client.get("/docs").status_code == 200
        assert "swagger-ui" in client.get("/docs").text
        assert service.stop() == 0, service.output()
    assert (elsewhere / "catalog.db").exists()
