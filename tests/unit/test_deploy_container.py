"""The Dockerfile, read: what can be checked of an image that cannot be built here (no
container engine, no registry for base images). Its wheel and its command actually run:
tests/e2e/test_container.py."""

from __future__ import annotations

import fnmatch
from http.server import BaseHTTPRequestHandler

import pytest

from catalog_refresher import config
from catalog_refresher.config.settings import ApiSettings, StoreSettings
from tests.deploy import (
    BASE_IMAGE_PATH,
    DOCKERIGNORE,
    dockerfile,
    final_stage,
    image_command,
)
from tests.local_http import serving


def test_both_stages_start_from_the_slim_python_the_package_supports() -> None:
    """A build stage and a final stage, both on python:3.11-slim (requires-python >= 3.11)."""
    build, final = dockerfile()
    assert build.name == "build"
    assert build.base == final.base
    assert final.base.startswith("python:3.11-slim")


def test_the_image_installs_the_wheel_the_build_stage_built() -> None:
    """The build stage makes a wheel with `python -m build`; the final stage copies it from
    there and installs it into the virtual environment on PATH, as the systemd layout has it."""
    build, final = dockerfile()
    assert any("python -m build --wheel --outdir /dist" in r.arguments for r in build.all("RUN"))
    copies = [c.arguments for c in final.all("COPY")]
    assert copies == ["--from=build /dist/ /tmp/dist/"]
    (install,) = [r.arguments for r in final.all("RUN") if "pip install" in r.arguments]
    assert "python -m venv /opt/catalog-refresher" in install
    assert "/opt/catalog-refresher/bin/pip install --no-cache-dir /tmp/dist/*.whl" in install
    path = final.environment({"PATH": BASE_IMAGE_PATH})["PATH"]
    assert path.split(":")[0] == "/opt/catalog-refresher/bin"


def test_the_build_context_is_exactly_what_the_build_stage_copies() -> None:
    """.dockerignore lets in only the COPY sources of the build stage (no .venv, no
    .git, no catalog.db), and keeps compiled files out."""
    build = dockerfile()[0]
    copied = {name for c in build.all("COPY") for name in c.arguments.split()[:-1]}
    lines = [
        line.strip()
        for line in DOCKERIGNORE.read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]
    assert lines[0] == "*"
    allowed = {line[1:] for line in lines if line.startswith("!")}
    assert allowed == copied == {"pyproject.toml", "README.md", "src"}
    excluded = [line for line in lines[1:] if not line.startswith("!")]
    assert any(fnmatch.fnmatch("src/catalog_refresher/__pycache__", e) for e in excluded)


def test_the_image_serves_on_all_interfaces_at_the_default_port() -> None:
    """ENV makes the API listen on 0.0.0.0 (a container must), on the port it exposes,
    which is the service's default port."""
    final = final_stage()
    environment = final.environment({"PATH": BASE_IMAGE_PATH})
    settings = config.load(None, environment=None, environ=environment)
    assert settings.api.host == "0.0.0.0"
    assert settings.api.port == ApiSettings().port
    assert final.one("EXPOSE").arguments == str(ApiSettings().port)


def test_the_store_is_on_the_volume() -> None:
    """The default store is relative, and the working directory is the volume."""
    final = final_stage()
    assert StoreSettings().url == "sqlite:///catalog.db"
    assert final.one("WORKDIR").arguments == final.one("VOLUME").arguments
    assert final.one("VOLUME").arguments == "/var/lib/catalog-refresher"


def test_the_image_runs_as_a_non_root_user_and_stops_on_sigterm() -> None:
    """USER is a numeric non-root id (Kubernetes' runAsNonRoot can check it); SIGTERM
    is what the service shuts down gracefully on."""
    final = final_stage()
    user, _, group = final.one("USER").arguments.partition(":")
    assert user.isdigit(), "numeric, so that runAsNonRoot can check it"
    assert group.isdigit()
    assert int(user) != 0
    assert int(group) != 0
    assert final.one("STOPSIGNAL").arguments == "SIGTERM"
    assert image_command() == [
        "catalog-refresher",
        "run",
        "--config",
        "/etc/catalog-refresher/appsettings.json",
    ]


def _health(status: int, paths: list[str]) -> type[BaseHTTPRequestHandler]:
    """Answers every GET with ``status``, noting its path in ``paths``."""

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            paths.append(self.path)
            self.send_response(status)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *args: object) -> None:
            pass

    return Handler


@pytest.fixture
def healthcheck_code() -> str:
    """The Python code the HEALTHCHECK runs (``python -c CODE``)."""
    options, command = final_stage().healthcheck()
    assert command[:2] == ["python", "-c"]
    assert options["timeout"] == "5s"
    return command[2]


@pytest.mark.parametrize(("status", "healthy"), [(200, True), (503, False)])
def test_the_healthcheck_asks_for_liveness_on_the_configured_port(
    healthcheck_code: str, monkeypatch: pytest.MonkeyPatch, status: int, healthy: bool
) -> None:
    """The HEALTHCHECK's code GETs /health/live on $Api__Port and exits 0 only on a 200."""
    paths: list[str] = []
    with serving(_health(status, paths)) as url:
        monkeypatch.setenv("Api__Port", url.rsplit(":", 1)[1])
        with pytest.raises(SystemExit) as exited:
            exec(healthcheck_code, {})
    assert paths == ["/health/live"]
    assert (not exited.value.code) is healthy


def test_the_healthcheck_fails_when_nothing_listens(
    healthcheck_code: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With no service on the port the check fails (an exception: a non-zero exit)."""
    with serving(_health(200, [])) as url:
        port = url.rsplit(":", 1)[1]
    monkeypatch.setenv("Api__Port", port)
    with pytest.raises(ConnectionRefusedError):
        exec(healthcheck_code, {})
