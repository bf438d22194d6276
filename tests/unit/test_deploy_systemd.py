"""deploy/systemd: the unit's settings agree with what the service does, and the example
configuration it reads loads. (``systemd-analyze verify``: tests/integration; the unit's
command actually run: tests/e2e/test_systemd_unit.py.)"""

from __future__ import annotations

import shlex
from datetime import timedelta
from pathlib import Path

from typer.testing import CliRunner

from catalog_refresher import config
from catalog_refresher.cli import app
from catalog_refresher.config.settings import RepositoryOptions, Secret
from catalog_refresher.domain.specs import SPECS
from tests.deploy import (
    UNIT_CONFIG,
    FakeRoot,
    Specifiers,
    credentials,
    service,
    setting,
    timespan,
    unit,
    unit_environment,
)

#: uvicorn's own close after the service stopped (server.py, timeout_graceful_shutdown).
API_CLOSE = timedelta(seconds=5)


def test_the_unit_stops_the_service_the_way_its_shutdown_needs() -> None:
    """SIGTERM to the main process only, and SIGKILL later than the grace period and the
    API's close (the workers ignore SIGTERM: the service ends them)."""
    assert setting("KillMode") == "mixed"
    assert setting("KillSignal") == "SIGTERM"
    grace = RepositoryOptions().shutdown_grace_period
    assert timespan(setting("TimeoutStopSec")) > grace + API_CLOSE


def test_the_unit_runs_hardened_under_a_system_account() -> None:
    """A dynamic system user, a read-only system, a private /tmp, no privilege gain and
    no capabilities; the store in the state directory, which is the working directory."""
    expected = {
        "DynamicUser": "yes",
        "ProtectSystem": "strict",
        "ProtectHome": "yes",
        "PrivateTmp": "yes",
        "PrivateDevices": "yes",
        "NoNewPrivileges": "yes",
        "CapabilityBoundingSet": "",
        "StateDirectory": "catalog-refresher",
    }
    assert {key: setting(key) for key in expected} == expected
    assert setting("WorkingDirectory") == "%S/" + setting("StateDirectory")
    assert "User" not in service()  # DynamicUser= allocates it


def test_every_credential_is_read_as_a_file_value_and_reaches_the_settings(
    tmp_path: Path,
) -> None:
    """Each LoadCredential= is named by a `file:%d/<id>` value of Environment=, and the
    configuration read with that environment holds the credential's content."""
    specifiers = Specifiers(FakeRoot(tmp_path))
    loaded = credentials()
    assert set(loaded) == {"admin-token"}
    environment = unit_environment(specifiers)
    referenced = {
        value.removeprefix(f"file:{specifiers.credentials}/")
        for value in environment.values()
        if value.startswith("file:")
    }
    assert referenced == set(loaded)
    for path in loaded.values():
        assert path.startswith("/etc/credstore/"), "credentials stay in root's credstore"

    specifiers.credentials.mkdir(parents=True)
    (specifiers.credentials / "admin-token").write_text("token-from-systemd\n")
    settings = config.load(UNIT_CONFIG, environment=None, environ=environment)
    assert isinstance(settings.api.admin_token, Secret)
    assert settings.api.admin_token.value == "token-from-systemd"


def test_the_unit_starts_the_installed_service_on_its_configuration() -> None:
    """ExecStart runs `run` of the package installed at /opt/catalog-refresher, on the
    configuration in the configuration directory."""
    program, *arguments = shlex.split(setting("ExecStart"))
    assert program == "/opt/catalog-refresher/bin/catalog-refresher"
    assert arguments == ["run", "--config", "%E/catalog-refresher/appsettings.json"]
    assert setting("ConfigurationDirectory") == "catalog-refresher"
    assert setting("Type") == "exec"
    assert unit()["Install"] == {"WantedBy": ["multi-user.target"]}


def test_a_bad_configuration_is_not_restarted_over_and_over(tmp_path: Path) -> None:
    """The exit code of a bad configuration is one that Restart=on-failure skips."""
    bad = tmp_path / "appsettings.json"
    bad.write_text('{"CatalogRepository": {"ErpStockRefreshInterval": "soon"}}')
    result = CliRunner().invoke(app, ["run", "--config", str(bad)])
    assert "CatalogRepository:ErpStockRefreshInterval" in result.output
    assert setting("Restart") == "on-failure"
    assert str(result.exit_code) in setting("RestartPreventExitStatus").split()


def test_reload_sends_sighup_which_reloads() -> None:
    """ExecReload= sends SIGHUP, which reloads the configuration (the service lives on:
    tests/e2e/test_systemd_unit.py), so `systemctl reload` does a live reload."""
    assert service()["ExecReload"] == ["/bin/kill -HUP $MAINPID"]


def test_the_example_configuration_configures_every_source_on_the_state_directory(
    tmp_path: Path,
) -> None:
    """deploy/systemd/appsettings.json loads; every source is configured; its store is
    relative (so in the state directory) and its grace period fits the stop timeout."""
    specifiers = Specifiers(FakeRoot(tmp_path))
    specifiers.credentials.mkdir(parents=True)
    (specifiers.credentials / "admin-token").write_text("t")
    settings = config.load(UNIT_CONFIG, environment=None, environ=unit_environment(specifiers))
    assert set(settings.sources) == set(SPECS)
    assert settings.store.url == "sqlite:///catalog.db"
    assert settings.api.host == "127.0.0.1"
    grace = settings.repository.shutdown_grace_period
    assert timespan(setting("TimeoutStopSec")) > grace + API_CLOSE
