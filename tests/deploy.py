"""The deployment recipes under ``deploy/`` and the ``Dockerfile``, read for the tests.

Each reader understands only what the recipes use, and refuses the rest (a
continuation it does not know, a specifier it cannot expand), so that a test never
passes on a line it misread. ``FakeRoot`` stands a temporary folder for ``/``: the
tests run the service "as systemd, Docker or the kubelet would", with every absolute
path of a recipe (``/etc/...``, ``/var/...``, ``/run/...``, ``/opt/...``) under it.
"""

from __future__ import annotations

import json
import re
import shlex
import tomllib
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

import json5
import yaml

REPO = Path(__file__).resolve().parents[1]
UNIT = REPO / "deploy" / "systemd" / "catalog-refresher.service"
UNIT_CONFIG = REPO / "deploy" / "systemd" / "appsettings.json"
DOCKERFILE = REPO / "Dockerfile"
DOCKERIGNORE = REPO / ".dockerignore"
KUBERNETES = REPO / "deploy" / "kubernetes"


def version() -> str:
    """The package's version, from pyproject.toml."""
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    return str(project["version"])


# --- systemd -------------------------------------------------------------------------------


def unit() -> dict[str, dict[str, list[str]]]:
    """The unit file: per section, per key, its values in order (keys repeat in systemd)."""
    sections: dict[str, dict[str, list[str]]] = {}
    current: dict[str, list[str]] | None = None
    for number, line in enumerate(UNIT.read_text().splitlines(), 1):
        line = line.strip()
        if not line or line.startswith(("#", ";")):
            continue
        assert not line.endswith("\\"), f"line {number}: continuation lines are not read here"
        if line.startswith("["):
            current = sections.setdefault(line.strip("[]"), {})
            continue
        assert current is not None, f"line {number}: a setting before any section"
        key, _, value = line.partition("=")
        current.setdefault(key.strip(), []).append(value.strip())
    return sections


def service() -> dict[str, list[str]]:
    return unit()["Service"]


def setting(key: str) -> str:
    """The one value of a ``[Service]`` setting."""
    (value,) = service()[key]
    return value


def timespan(text: str) -> timedelta:
    """A systemd time span as the unit writes them: ``60s``, ``5min``, ``1min 30s``."""
    units = {"ms": 0.001, "s": 1, "sec": 1, "min": 60, "m": 60, "h": 3600}
    seconds = 0.0
    for amount, unit_name in re.findall(r"(\d+)\s*([a-z]*)", text):
        seconds += int(amount) * units[unit_name or "s"]
    return timedelta(seconds=seconds)


@dataclass(frozen=True, slots=True)
class Specifiers:
    """What systemd puts for the unit's ``%`` specifiers, on a system manager."""

    root: FakeRoot

    @property
    def credentials(self) -> Path:
        return self.root.path("/run/credentials/catalog-refresher.service")

    def expand(self, text: str) -> str:
        values = {
            "%%": "%",
            "%n": "catalog-refresher.service",
            "%E": str(self.root.path("/etc")),
            "%S": str(self.root.path("/var/lib")),
            "%d": str(self.credentials),
        }

        def one(match: re.Match[str]) -> str:
            assert match[0] in values, f"specifier {match[0]} is not known to the tests"
            return values[match[0]]

        return re.sub(r"%.", one, text)


def unit_environment(specifiers: Specifiers) -> dict[str, str]:
    """The unit's ``Environment=`` assignments, specifiers expanded."""
    environment: dict[str, str] = {}
    for line in service().get("Environment", []):
        for assignment in shlex.split(specifiers.expand(line)):
            name, _, value = assignment.partition("=")
            environment[name] = value
    return environment


def credentials() -> dict[str, str]:
    """``LoadCredential=ID:PATH`` of the unit: credential id -> the file systemd reads."""
    loaded = {}
    for line in service().get("LoadCredential", []):
        name, _, path = line.partition(":")
        assert path.startswith("/"), f"LoadCredential={line}: the tests expect an absolute path"
        loaded[name] = path
    return loaded


# --- the Dockerfile ------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Instruction:
    keyword: str
    arguments: str

    def exec_form(self) -> list[str]:
        """A JSON array argument (``ENTRYPOINT ["x"]``), which the tests need in that form."""
        value = json.loads(self.arguments)
        assert isinstance(value, list), f"{self.keyword} must be in exec form (a JSON array)"
        return [str(item) for item in value]


@dataclass(frozen=True, slots=True)
class Stage:
    base: str
    name: str | None
    instructions: list[Instruction] = field(default_factory=list)

    def all(self, keyword: str) -> list[Instruction]:
        return [i for i in self.instructions if i.keyword == keyword]

    def one(self, keyword: str) -> Instruction:
        (instruction,) = self.all(keyword)
        return instruction

    def environment(self, base: dict[str, str]) -> dict[str, str]:
        """``base`` (the base image's environment) with this stage's ``ENV`` applied."""
        environment = dict(base)
        for instruction in self.all("ENV"):
            name, _, value = instruction.arguments.partition("=")
            assert " " not in name, f"ENV {instruction.arguments}: one NAME=value a line"
            assert name, f"ENV {instruction.arguments}: NAME=value"
            environment[name] = re.sub(r"\$\{?(\w+)\}?", lambda m: environment.get(m[1], ""), value)
        return environment

    def healthcheck(self) -> tuple[dict[str, str], list[str]]:
        """``HEALTHCHECK`` options (``--timeout`` ...) and its command in exec form."""
        options_text, _, command = self.one("HEALTHCHECK").arguments.partition("CMD ")
        options = dict(option.removeprefix("--").split("=") for option in options_text.split())
        return options, Instruction("CMD", command).exec_form()


#: The environment of ``python:3.11-slim-bookworm`` that the final stage's ``ENV`` extends.
BASE_IMAGE_PATH = "/usr/local/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


def dockerfile() -> list[Stage]:
    """The Dockerfile's stages, in order, continuation lines joined."""
    text = re.sub(r"\\\n\s*", " ", DOCKERFILE.read_text())
    stages: list[Stage] = []
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        keyword, _, arguments = line.partition(" ")
        keyword = keyword.upper()
        if keyword == "FROM":
            base, _, name = arguments.partition(" AS ")
            stages.append(Stage(base=base.strip(), name=name.strip() or None))
            continue
        assert stages, f"{keyword} before FROM"
        stages[-1].instructions.append(Instruction(keyword, arguments.strip()))
    return stages


def final_stage() -> Stage:
    return dockerfile()[-1]


def image_command() -> list[str]:
    """What the image runs: ENTRYPOINT then CMD."""
    stage = final_stage()
    return stage.one("ENTRYPOINT").exec_form() + stage.one("CMD").exec_form()


# --- Kubernetes ----------------------------------------------------------------------------


def manifests() -> dict[str, dict[str, Any]]:
    """Every object under deploy/kubernetes, by kind (one object of each kind)."""
    found: dict[str, dict[str, Any]] = {}
    for path in sorted(KUBERNETES.glob("*.yaml")):
        for document in yaml.safe_load_all(path.read_text()):
            assert document["kind"] not in found, f"a second {document['kind']} in {path.name}"
            found[document["kind"]] = document
    return found


def pod_spec() -> dict[str, Any]:
    spec: dict[str, Any] = manifests()["Deployment"]["spec"]["template"]["spec"]
    return spec


def container() -> dict[str, Any]:
    (only,) = pod_spec()["containers"]
    found: dict[str, Any] = only
    return found


def container_port(port: int | str) -> int:
    """A port of the container, by number or by name."""
    if isinstance(port, int):
        return port
    (number,) = [p["containerPort"] for p in container()["ports"] if p["name"] == port]
    return int(number)


def configmap_files() -> dict[str, str]:
    data: dict[str, str] = manifests()["ConfigMap"]["data"]
    return data


# --- a temporary root ----------------------------------------------------------------------

#: The top folders of the absolute paths the recipes use; each is put under the root.
_ABSOLUTE = re.compile(r"(?<![\w.])/(?=(?:etc|var|run|opt|nonexistent)(?:/|\b))")


@dataclass(frozen=True, slots=True)
class FakeRoot:
    """A folder that stands for ``/`` when a test runs a recipe's command."""

    base: Path

    def path(self, absolute: str) -> Path:
        assert absolute.startswith("/"), absolute
        return self.base / absolute.lstrip("/")

    def rewrite(self, text: str) -> str:
        """``text`` with each absolute path of the recipes moved under the root."""
        return _ABSOLUTE.sub(f"{self.base}/", text)


def with_sources(config_text: str, sources: dict[str, Any], **sections: Any) -> str:
    """A configuration (JSON with comments) with its ``Sources`` replaced and ``sections``
    merged in: the recipe's own settings, its example URLs swapped for local servers."""
    document = json5.loads(config_text)
    document["Sources"] = sources
    for name, values in sections.items():
        document[name] = {**document.get(name, {}), **values}
    return json.dumps(document, indent=2)
