"""Starting the installed service the way each recipe says, minus the machinery.

- ``start_unit``: what systemd does for deploy/systemd/catalog-refresher.service (the
  state, configuration and credentials directories, the environment it builds, the
  specifiers, ExecStart in WorkingDirectory), without systemd's sandbox;
- ``start_container``: what ``docker run`` does with the Dockerfile's final stage (its
  ENV, WORKDIR, ENTRYPOINT and CMD, a mounted configuration), without a container;
- ``start_pod``: what the kubelet does with deploy/kubernetes/deployment.yaml (the
  image's ENV, the container's args, the ConfigMap and Secret mounted at their paths,
  /tmp a volume), without a cluster.

Everything is under a ``FakeRoot``; the API listens on a free port instead of 8000
(a pod or a container has the port to itself, a test does not): the one change made
to what the recipe says, and it goes through the recipe's own port setting.
"""

from __future__ import annotations

import shlex
import shutil
from pathlib import Path
from typing import Any

from catalog_refresher.domain.specs import SPECS
from tests.deploy import (
    BASE_IMAGE_PATH,
    UNIT_CONFIG,
    FakeRoot,
    Specifiers,
    configmap_files,
    container,
    credentials,
    final_stage,
    image_command,
    pod_spec,
    setting,
    unit_environment,
    with_sources,
)
from tests.e2e.installed import Installed
from tests.e2e.processes import ServiceProcess

#: The PATH systemd 252 gives a system service.
SYSTEMD_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


def local_sources(base_url: str) -> dict[str, Any]:
    """A ``Sources`` section with every source on the tests' local source server."""
    return {spec.config_key: {"Url": f"{base_url}/{spec.id}"} for spec in SPECS.values()}


def resolve(program: str, path: str) -> str:
    """``program`` looked up on ``path``, as the image's runtime finds it."""
    found = shutil.which(program, path=path)
    assert found is not None, f"{program} is not on PATH={path}"
    return found


def start_unit(
    installed: Installed, root: FakeRoot, sources_url: str, port: int, secrets: dict[str, str]
) -> ServiceProcess:
    """ExecStart= of the unit, started as systemd would, on the example configuration
    (its Sources on the local server, its port ``port``); ``secrets`` are the files
    LoadCredential= reads, by credential id."""
    installed.link_into(root)
    specifiers = Specifiers(root)
    state = Path(specifiers.expand(f"%S/{setting('StateDirectory')}"))
    state.mkdir(parents=True, mode=0o700)
    configuration = Path(specifiers.expand(f"%E/{setting('ConfigurationDirectory')}"))
    configuration.mkdir(parents=True)
    (configuration / "appsettings.json").write_text(
        with_sources(UNIT_CONFIG.read_text(), local_sources(sources_url), Api={"Port": port})
    )
    # LoadCredential=: systemd reads each file and puts a copy in the credentials folder.
    specifiers.credentials.mkdir(parents=True)
    for name, path in credentials().items():
        source = root.path(path)
        source.parent.mkdir(parents=True, exist_ok=True)
        source.write_text(secrets[name])
        shutil.copy(source, specifiers.credentials / name)
    private_tmp = root.path("/tmp")
    private_tmp.mkdir()
    environ = {
        "PATH": SYSTEMD_PATH,
        "LANG": "C.UTF-8",
        "HOME": str(root.base),  # DynamicUser=: HOME=/
        "STATE_DIRECTORY": str(state),
        "CONFIGURATION_DIRECTORY": str(configuration),
        "CREDENTIALS_DIRECTORY": str(specifiers.credentials),
        "TMPDIR": str(private_tmp),  # stands for PrivateTmp='s /tmp
        **unit_environment(specifiers),
    }
    program, *arguments = shlex.split(specifiers.expand(setting("ExecStart")))
    return ServiceProcess(
        None,
        f"http://127.0.0.1:{port}",
        command=[str(root.path(program)), *arguments],
        environ=environ,
        cwd=Path(specifiers.expand(setting("WorkingDirectory"))),
    )


def image_environment(root: FakeRoot, **overrides: str) -> dict[str, str]:
    """The final stage's environment (its ENV over the base image's), paths under ``root``,
    with ``overrides`` (``docker run -e``) on top."""
    environment = final_stage().environment({"PATH": BASE_IMAGE_PATH})
    environ = {name: root.rewrite(value) for name, value in environment.items()}
    environ["HOME"] = str(root.path("/nonexistent"))  # the image user's home
    return {**environ, **overrides}


def _container(
    root: FakeRoot, command: list[str], environ: dict[str, str], port: int
) -> ServiceProcess:
    program = resolve(command[0], environ["PATH"])
    workdir = root.path(final_stage().one("WORKDIR").arguments)
    workdir.mkdir(parents=True, exist_ok=True)
    return ServiceProcess(
        None,
        f"http://127.0.0.1:{port}",
        command=[program, *(root.rewrite(a) for a in command[1:])],
        environ=environ,
        cwd=workdir,
    )


def start_container(
    installed: Installed, root: FakeRoot, config_text: str, port: int
) -> ServiceProcess:
    """``docker run -e Api__Port=<port> -v <config>:/etc/catalog-refresher/appsettings.json``."""
    installed.link_into(root)
    config = root.path(image_command()[-1])
    config.parent.mkdir(parents=True)
    config.write_text(config_text)
    environ = image_environment(root, Api__Port=str(port), TMPDIR=str(_tmp(root)))
    return _container(root, image_command(), environ, port)


def _tmp(root: FakeRoot) -> Path:
    folder = root.path("/tmp")
    folder.mkdir(exist_ok=True)
    return folder


def start_pod(
    installed: Installed, root: FakeRoot, sources_url: str, port: int, secrets: dict[str, str]
) -> ServiceProcess:
    """The Deployment's container, as the kubelet starts it: the ConfigMap (its Sources on
    the local server) and ``secrets`` (the Secret's files) mounted at their paths."""
    installed.link_into(root)
    mounts = {m["name"]: m["mountPath"] for m in container()["volumeMounts"]}
    for volume in pod_spec()["volumes"]:
        folder = root.path(mounts[volume["name"]])
        folder.mkdir(parents=True)
        if "configMap" in volume:
            for name, text in configmap_files().items():
                (folder / name).write_text(
                    with_sources(root.rewrite(text), local_sources(sources_url))
                )
        if "secret" in volume:
            for name, text in secrets.items():
                (folder / name).write_text(text)
    environ = image_environment(
        root,
        **{e["name"]: e["value"] for e in container().get("env", [])},
        Api__Port=str(port),
        TMPDIR=str(root.path(mounts["tmp"])),
    )
    # The container's args replace the image's CMD; the ENTRYPOINT stays.
    command = final_stage().one("ENTRYPOINT").exec_form() + container()["args"]
    return _container(root, command, environ, port)
