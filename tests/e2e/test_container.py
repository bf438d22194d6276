"""The Dockerfile's image, short of building it (no container engine here): the wheel
its build stage makes, and its command, environment and healthcheck run against it."""

from __future__ import annotations

import signal
import sqlite3
import subprocess
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.deploy import FakeRoot, final_stage, with_sources
from tests.e2e.installed import Installed, wheel_contents, wheel_from_context
from tests.e2e.processes import free_port, poll
from tests.e2e.recipes import image_environment, local_sources, resolve, start_container
from tests.source_server import SourceServer, serve_sources

pytestmark = pytest.mark.e2e


@pytest.fixture
def sources() -> Iterator[SourceServer]:
    with serve_sources(products=150) as server:
        yield server


def test_the_image_gets_the_wheel_python_m_build_makes(
    installed: Installed, tmp_path: Path
) -> None:
    """The build stage's wheel, built from only the files it copies into the build
    context, holds the same files, byte for byte, as the wheel of `python -m build`."""
    from_context = wheel_contents(wheel_from_context(tmp_path))
    print(f"{len(from_context)} files in the image's wheel, as in {installed.wheel.name}")
    assert from_context == wheel_contents(installed.wheel)


def _healthcheck(root: FakeRoot, port: int) -> subprocess.CompletedProcess[str]:
    """The HEALTHCHECK's command, run in the image's environment (with -e Api__Port)."""
    options, command = final_stage().healthcheck()
    environ = image_environment(root, Api__Port=str(port))
    timeout = float(options["timeout"].removesuffix("s"))
    return subprocess.run(
        [resolve(command[0], environ["PATH"]), *command[1:]],
        env=environ,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def test_the_images_command_serves_with_its_environment_and_healthcheck(
    installed: Installed, tmp_path: Path, sources: SourceServer
) -> None:
    """ENTRYPOINT and CMD in WORKDIR with the image's ENV, a configuration mounted where
    CMD reads it: the API listens on all interfaces, the HEALTHCHECK passes, the store
    is written to the volume, and STOPSIGNAL stops it with exit 0 (the check then fails)."""
    root = FakeRoot(tmp_path)
    port = free_port()
    config = with_sources("{}", local_sources(sources.url))
    with (
        start_container(installed, root, config, port) as container,
        httpx.Client(base_url=container.url, timeout=10) as client,
    ):
        container.wait_for("Serving the API on")
        assert f"Serving the API on http://0.0.0.0:{port}" in container.output()
        assert client.get("/health/live").status_code == 200
        check = _healthcheck(root, port)
        print(f"HEALTHCHECK while serving: exit {check.returncode}")
        assert check.returncode == 0, check.stderr
        poll(lambda: client.get("/health/ready").status_code, lambda s: s == 200, 60)

        stop = getattr(signal, final_stage().one("STOPSIGNAL").arguments)
        container.process.send_signal(stop)
        assert container.process.wait(timeout=45) == 0, container.output()
    down = _healthcheck(root, port)
    print(f"HEALTHCHECK once stopped: exit {down.returncode}")
    assert down.returncode != 0
    volume = root.path(final_stage().one("VOLUME").arguments)
    with sqlite3.connect(volume / "catalog.db") as db:
        assert db.execute("SELECT count(*) FROM runs").fetchone()[0] > 0
