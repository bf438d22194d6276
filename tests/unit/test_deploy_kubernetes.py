"""deploy/kubernetes: valid against the Kubernetes schemas (offline), and consistent with
the service, the image and each other. (Three pods actually run: tests/e2e/test_pods.py.)

The schemas are those ``kubernetes-validate`` ships in its package (``--strict``: an
unknown field is an error), for the oldest and the newest Kubernetes it knows that
the manifests claim: 1.29 (every API used is stable there) and 1.37.
"""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest

from catalog_refresher import config
from catalog_refresher.config.settings import ApiSettings, Secret
from catalog_refresher.domain.specs import SPECS
from tests.deploy import (
    FakeRoot,
    configmap_files,
    container,
    container_port,
    final_stage,
    manifests,
    pod_spec,
    version,
)

KUBERNETES_VERSIONS = ["1.29.0", "1.37.0"]
#: uvicorn's own close after the service stopped (server.py, timeout_graceful_shutdown).
API_CLOSE = timedelta(seconds=5)
#: How fast /health/ready answers at worst (its contract in the README and api/health.py).
READY_WITHIN = 0.8


@pytest.mark.parametrize("kubernetes", KUBERNETES_VERSIONS)
@pytest.mark.parametrize("kind", ["ConfigMap", "Deployment", "Service", "PodDisruptionBudget"])
def test_the_manifests_validate_against_the_kubernetes_schemas(kind: str, kubernetes: str) -> None:
    """Each object validates, strictly, against the bundled schemas of that version."""
    document = manifests()[kind]
    kubernetes_validate.validate(document, kubernetes, strict=True)


def test_a_mistake_in_a_manifest_is_caught_offline() -> None:
    """The validation is real: a misspelt probe field and a string replica count fail."""
    deployment = manifests()["Deployment"]
    deployment["spec"]["replicas"] = "3"
    with pytest.raises(kubernetes_validate.ValidationError, match="replicas"):
        kubernetes_validate.validate(deployment, KUBERNETES_VERSIONS[0], strict=True)
    deployment = manifests()["Deployment"]
    probe = deployment["spec"]["template"]["spec"]["containers"][0]["readinessProbe"]
    probe["timeoutSecond"] = probe.pop("timeoutSeconds")
    with pytest.raises(kubernetes_validate.ValidationError, match="timeoutSecond"):
        kubernetes_validate.validate(deployment, KUBERNETES_VERSIONS[0], strict=True)


def test_the_probes_ask_the_service_where_it_listens() -> None:
    """Liveness and startup on /health/live, readiness on /health/ready, all on the port
    the service listens on by default (and the image exposes)."""
    probes = {name: container()[f"{name}Probe"]["httpGet"] for name in ("startup", "liveness")}
    probes["readiness"] = container()["readinessProbe"]["httpGet"]
    assert {name: probe["path"] for name, probe in probes.items()} == {
        "startup": "/health/live",
        "liveness": "/health/live",
        "readiness": "/health/ready",
    }
    default = ApiSettings().port
    assert {container_port(probe["port"]) for probe in probes.values()} == {default}
    assert final_stage().one("EXPOSE").arguments == str(default)


def test_the_probe_timeouts_are_ones_the_endpoints_meet() -> None:
    """Each probe's timeout is above what its endpoint takes at worst; liveness gives a
    stuck process 30 s, a start a minute."""
    for name in ("startup", "liveness", "readiness"):
        assert container()[f"{name}Probe"]["timeoutSeconds"] > READY_WITHIN
    liveness = container()["livenessProbe"]
    assert liveness["periodSeconds"] * liveness["failureThreshold"] == 30
    startup = container()["startupProbe"]
    assert startup["periodSeconds"] * startup["failureThreshold"] == 60


def _labels(selector: dict[str, Any]) -> dict[str, str]:
    labels: dict[str, str] = selector.get("matchLabels", selector)
    return labels


def test_three_replicas_behind_a_service_and_a_disruption_budget() -> None:
    """3 replicas; the Service and the PodDisruptionBudget select exactly its pods; a
    drain may take one pod at a time; the Service's port leads to the API."""
    found = manifests()
    deployment, service, budget = (
        found["Deployment"],
        found["Service"],
        found["PodDisruptionBudget"],
    )
    assert deployment["spec"]["replicas"] == 3
    pods = deployment["spec"]["template"]["metadata"]["labels"]
    for selector in (
        deployment["spec"]["selector"],
        service["spec"]["selector"],
        budget["spec"]["selector"],
    ):
        assert _labels(selector).items() <= pods.items()
    assert budget["spec"]["minAvailable"] == deployment["spec"]["replicas"] - 1
    (port,) = service["spec"]["ports"]
    assert container_port(port["targetPort"]) == ApiSettings().port


def test_prometheus_scrapes_every_pod_where_the_metrics_are() -> None:
    """The pod template's scrape annotations name the API's port and /metrics."""
    annotations = manifests()["Deployment"]["spec"]["template"]["metadata"]["annotations"]
    assert annotations["prometheus.io/scrape"] == "true"
    assert int(annotations["prometheus.io/port"]) == ApiSettings().port
    assert annotations["prometheus.io/path"] == "/metrics"


def _mounts() -> dict[str, str]:
    """Volume name -> mount path in the container."""
    return {m["name"]: m["mountPath"] for m in container()["volumeMounts"]}


def _pod_files(root: FakeRoot, secrets: dict[str, str]) -> Path:
    """The ConfigMap and a Secret with ``secrets`` where the pod mounts them; the config path."""
    volumes = {v["name"]: v for v in pod_spec()["volumes"]}
    mounts = _mounts()
    for name, volume in volumes.items():
        folder = root.path(mounts[name])
        folder.mkdir(parents=True)
        if "configMap" in volume:
            assert volume["configMap"]["name"] == manifests()["ConfigMap"]["metadata"]["name"]
            for file, text in configmap_files().items():
                (folder / file).write_text(root.rewrite(text))
        if "secret" in volume:
            for file, text in secrets.items():
                (folder / file).write_text(text)
    arguments = container()["args"]
    assert arguments[:2] == ["run", "--config"]
    return root.path(arguments[2])


def test_the_configuration_is_the_contracts_format_on_postgresql_from_the_secret(
    tmp_path: Path,
) -> None:
    """The ConfigMap's appsettings.json, mounted where the command reads it, loads with the
    Secret's files: every source configured, the store on PostgreSQL from store-url, the
    admin token from admin-token, JSON logs."""
    root = FakeRoot(tmp_path)
    url = "postgresql://catalog:pw@postgres.example:5432/catalog"
    path = _pod_files(root, {"store-url": url + "\n", "admin-token": "k8s-token"})
    environment = final_stage().environment({})
    settings = config.load(path, environment=None, environ=environment)
    assert set(settings.sources) == set(SPECS)
    assert isinstance(settings.store.url, Secret)
    assert settings.store.url.value == url
    assert isinstance(settings.api.admin_token, Secret)
    assert settings.api.admin_token.value == "k8s-token"
    assert (settings.api.host, settings.api.port) == ("0.0.0.0", ApiSettings().port)
    assert settings.logging.format == "json"
    secret = next(v for v in pod_spec()["volumes"] if "secret" in v)["secret"]
    assert secret["secretName"] == "catalog-refresher"


def test_a_pod_gets_longer_to_stop_than_the_service_needs(tmp_path: Path) -> None:
    """terminationGracePeriodSeconds is above the preStop pause, the configured
    ShutdownGracePeriod and the API's close: the kubelet's SIGKILL never cuts a commit."""
    root = FakeRoot(tmp_path)
    path = _pod_files(root, {"store-url": "postgresql://h/db", "admin-token": "t"})
    settings = config.load(path, environment=None, environ={})
    command = container()["lifecycle"]["preStop"]["exec"]["command"]
    assert command[0] == "sleep"
    needed = timedelta(seconds=int(command[1])) + settings.repository.shutdown_grace_period
    allowed = timedelta(seconds=pod_spec()["terminationGracePeriodSeconds"])
    assert allowed > needed + API_CLOSE


def test_the_pod_runs_the_images_user_read_only_and_with_a_writable_tmp() -> None:
    """The pod's user is the image's USER; the root file system is read-only, with /tmp
    (where payloads are spooled) a volume of its own; the image tag is this version."""
    user, _, group = final_stage().one("USER").arguments.partition(":")
    context = pod_spec()["securityContext"]
    assert (context["runAsUser"], context["runAsGroup"]) == (int(user), int(group))
    assert context["runAsNonRoot"] is True
    assert container()["securityContext"]["readOnlyRootFilesystem"] is True
    assert container()["securityContext"]["allowPrivilegeEscalation"] is False
    assert _mounts()["tmp"] == "/tmp"
    assert container()["image"].endswith(f"/catalog-refresher:{version()}")
