"""The package as an operator gets it: the wheel built by ``python -m build``, installed
into a fresh virtual environment at ``/opt/catalog-refresher`` of a temporary root.

Built once per test session (``installed`` in conftest.py, about 15 s, most of it
pip installing the dependencies), then shared: the systemd unit, the container's
command and the Kubernetes pods all run that one installation, as they would on a
machine. ``wheel_from_context`` builds the wheel again from only the files the
Dockerfile copies, to show that the image gets the same one.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import zipfile
from dataclasses import dataclass
from pathlib import Path

from tests.deploy import DOCKERIGNORE, REPO, FakeRoot, dockerfile

#: The install prefix of docs/operations.md, the unit's ExecStart and the image's PATH.
PREFIX = "/opt/catalog-refresher"


@dataclass(frozen=True, slots=True)
class Installed:
    root: FakeRoot
    wheel: Path

    @property
    def venv(self) -> Path:
        return self.root.path(PREFIX)

    def program(self, name: str) -> Path:
        return self.venv / "bin" / name

    def link_into(self, root: FakeRoot) -> None:
        """Make ``root`` hold this installation at its /opt/catalog-refresher."""
        target = root.path(PREFIX)
        target.parent.mkdir(parents=True, exist_ok=True)
        target.symlink_to(self.venv, target_is_directory=True)


def _run(command: list[str], cwd: Path) -> None:
    # Without our virtual environment's variables: the build and pip see a clean machine.
    environ = {k: v for k, v in os.environ.items() if k not in {"VIRTUAL_ENV", "PYTHONPATH"}}
    result = subprocess.run(
        command, cwd=cwd, env=environ, capture_output=True, text=True, timeout=600, check=False
    )
    assert result.returncode == 0, f"{' '.join(command)}:\n{result.stdout}\n{result.stderr}"


def build(source: Path, out: Path, *, wheel_only: bool = False) -> Path:
    """``python -m build`` (an sdist, then the wheel from it) of ``source``; the wheel."""
    _run(
        [sys.executable, "-m", "build", *(["--wheel"] if wheel_only else []), "--outdir", str(out)],
        cwd=source,
    )
    (wheel,) = out.glob("*.whl")
    return wheel


def install(wheel: Path, root: FakeRoot) -> Installed:
    """A fresh virtual environment at the root's /opt/catalog-refresher, the wheel in it."""
    venv = root.path(PREFIX)
    root.base.mkdir(parents=True, exist_ok=True)
    _run([sys.executable, "-m", "venv", str(venv)], cwd=root.base)
    _run([str(venv / "bin" / "pip"), "install", "--quiet", str(wheel)], cwd=root.base)
    return Installed(root=root, wheel=wheel)


def wheel_from_context(out: Path) -> Path:
    """The wheel the Dockerfile's build stage makes: from a build context of only what it
    copies (what .dockerignore lets in), built by its ``python -m build --wheel``."""
    context = out / "context"
    context.mkdir()
    excluded = [
        line.strip().removeprefix("**/")
        for line in DOCKERIGNORE.read_text().splitlines()
        if line.strip().startswith("**/")
    ]
    for copy in dockerfile()[0].all("COPY"):
        *sources, _ = copy.arguments.split()
        for name in sources:
            source = REPO / name
            if source.is_dir():
                shutil.copytree(source, context / name, ignore=shutil.ignore_patterns(*excluded))
            else:
                shutil.copy(source, context / name)
    return build(context, out / "dist", wheel_only=True)


def wheel_contents(wheel: Path) -> dict[str, bytes]:
    with zipfile.ZipFile(wheel) as archive:
        return {name: archive.read(name) for name in archive.namelist()}
