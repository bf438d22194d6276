"""deploy/systemd/catalog-refresher.service checked by systemd's own tools.

``systemd-analyze verify`` loads the unit as the service manager would and checks its
settings, specifiers and the program it starts; ``systemd-analyze security --offline``
rates its sandbox. Both run with ``--root`` on a temporary root: the host's unit
folder copied in (so ``multi-user.target`` and friends resolve), the unit installed
in its /etc/systemd/system, and stand-ins for the programs it runs (the one in
/opt/catalog-refresher/bin, /bin/kill; the real program is installed and run by
tests/e2e/test_systemd_unit.py). Skipped, saying so, where systemd-analyze is missing;
never where it exists, CI or not.
"""

from __future__ import annotations

import shlex
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.deploy import UNIT, FakeRoot, setting

SYSTEMD_ANALYZE = shutil.which("systemd-analyze")
pytestmark = pytest.mark.skipif(
    SYSTEMD_ANALYZE is None, reason="systemd-analyze not on PATH (Debian: the systemd package)"
)
#: systemd's exposure scale is 0.0 (locked down) to 10.0; up to 2.0 it says "OK".
EXPOSURE_AT_MOST = "2.0"


@pytest.fixture
def root(tmp_path: Path) -> Path:
    """A root the unit is installed in, with the host's units and a stand-in program."""
    fake = FakeRoot(tmp_path)
    host_units = next(
        p for p in (Path("/usr/lib/systemd/system"), Path("/lib/systemd/system")) if p.is_dir()
    )
    shutil.copytree(host_units, fake.path("/usr/lib/systemd/system"), symlinks=True)
    installed = fake.path("/etc/systemd/system")
    installed.mkdir(parents=True)
    shutil.copy(UNIT, installed / UNIT.name)
    for option in ("ExecStart", "ExecReload"):  # the programs the unit runs, stood in for
        program = fake.path(shlex.split(setting(option))[0])
        program.parent.mkdir(parents=True, exist_ok=True)
        program.write_text("#!/bin/sh\n")
        program.chmod(0o755)
    return tmp_path


def _analyze(*arguments: str) -> subprocess.CompletedProcess[str]:
    assert SYSTEMD_ANALYZE is not None
    return subprocess.run(
        [SYSTEMD_ANALYZE, *arguments], capture_output=True, text=True, timeout=60, check=False
    )


def test_systemd_analyze_verify_passes(root: Path) -> None:
    """`systemd-analyze verify` accepts the unit: exit 0 and not one warning (an unknown
    or misspelt setting is only a warning to it, and a failure here)."""
    result = _analyze("verify", "--man=no", f"--root={root}", UNIT.name)
    print(f"$ systemd-analyze verify {UNIT.name}: exit {result.returncode}", result.stderr)
    assert (result.returncode, result.stdout + result.stderr) == (0, "")


def test_systemd_analyze_verify_would_catch_a_mistake(root: Path) -> None:
    """The check is real: a misspelt setting in the installed copy is reported."""
    installed = root / "etc/systemd/system" / UNIT.name
    installed.write_text(installed.read_text().replace("ProtectHome=", "ProtectHom="))
    result = _analyze("verify", "--man=no", f"--root={root}", UNIT.name)
    assert "Unknown key 'ProtectHom'" in result.stderr


def test_systemd_analyze_security_rates_the_sandbox_ok(root: Path) -> None:
    """`systemd-analyze security --offline` rates the unit's exposure at most 2.0 ("OK")."""
    threshold = str(int(float(EXPOSURE_AT_MOST) * 10))  # the option counts in tenths
    result = _analyze(
        "security", "--offline=yes", f"--root={root}", f"--threshold={threshold}", UNIT.name
    )
    (overall,) = [line for line in result.stdout.splitlines() if "Overall exposure" in line]
    print(overall)
    assert result.returncode == 0, result.stdout + result.stderr
