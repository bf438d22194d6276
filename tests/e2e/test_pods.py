"""The Deployment's three pods, short of a cluster: the installed wheel run as the kubelet
runs the container (tests/e2e/recipes.py ``start_pod``), on one PostgreSQL database
given by the Secret, probed as the Deployment's probes say."""

from __future__ import annotations

import signal
import time
from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import httpx
import pytest

from catalog_refresher.domain.specs import SPECS
from tests.deploy import FakeRoot, container, container_port, manifests, pod_spec
from tests.e2e.installed import Installed
from tests.e2e.processes import ServiceProcess, free_port, poll
from tests.e2e.recipes import start_pod
from tests.postgres import fresh_schema
from tests.source_server import SourceServer, serve_sources

pytestmark = [pytest.mark.e2e, pytest.mark.postgres]

TOKEN = "admin-token-from-the-secret"


@pytest.fixture
def sources() -> Iterator[SourceServer]:
    with serve_sources(products=150) as server:
        yield server


@pytest.fixture
def store_url() -> Iterator[str]:
    with fresh_schema("t_pods") as url:
        yield url


def _probe(client: httpx.Client, pod: ServiceProcess, name: str) -> httpx.Response:
    """One probe of the container, as the kubelet sends it: its path, within its timeout."""
    probe = container()[f"{name}Probe"]
    get = probe["httpGet"]
    assert container_port(get["port"]) == 8000  # the pod's port; here the test's own
    return client.get(f"{pod.url}{get['path']}", timeout=probe["timeoutSeconds"])


def _until_ok(client: httpx.Client, pod: ServiceProcess, name: str) -> float:
    """Probe every periodSeconds until it passes; within failureThreshold probes."""
    probe = container()[f"{name}Probe"]
    budget = probe["periodSeconds"] * probe["failureThreshold"]

    def status() -> int:
        try:
            return _probe(client, pod, name).status_code
        except httpx.TransportError:
            return 0  # not listening yet: a failed probe

    return poll(status, lambda code: code == 200, budget)


def test_three_pods_serve_one_catalog_and_stop_within_the_grace_period(
    installed: Installed,
    tmp_path: Path,
    sources: SourceServer,
    store_url: str,
) -> None:
    """Each of the Deployment's replicas starts, passes its startup, liveness and
    readiness probes within their timeouts, serves its metrics where the annotations
    say and the same catalog as its peers; each source is refreshed once across them;
    each stops on SIGTERM with exit 0 within terminationGracePeriodSeconds."""
    replicas = manifests()["Deployment"]["spec"]["replicas"]
    annotations = manifests()["Deployment"]["spec"]["template"]["metadata"]["annotations"]
    secrets = {"store-url": store_url + "\n", "admin-token": TOKEN}
    with ExitStack() as stack:
        client = stack.enter_context(httpx.Client(timeout=10))
        pods = [
            stack.enter_context(
                start_pod(
                    installed, FakeRoot(tmp_path / f"pod-{n}"), sources.url, free_port(), secrets
                )
            )
            for n in range(replicas)
        ]
        for n, pod in enumerate(pods):
            started = _until_ok(client, pod, "startup")
            ready = _until_ok(client, pod, "readiness")
            assert _probe(client, pod, "liveness").status_code == 200
            print(f"pod {n}: startup probe passed after {started:.1f} s, ready {ready:.1f} s later")
        poll(lambda: _runs(client, pods[0]), lambda runs: len(runs) == len(SPECS), 60)
        runs = _runs(client, pods[0])
        print(f"{len(runs)} runs across {replicas} pods: one per source")
        assert sorted(r["source"] for r in runs) == sorted(SPECS)

        assert annotations["prometheus.io/path"] == "/metrics"
        for pod in pods:
            metrics = client.get(f"{pod.url}{annotations['prometheus.io/path']}")
            assert metrics.status_code == 200
        code = client.get(f"{pods[0].url}/api/products", params={"limit": 1}).json()["items"][0][
            "product_code"
        ]

        def everywhere() -> list[dict[str, Any]]:
            return [client.get(f"{pod.url}/api/products/{code}").json() for pod in pods]

        # A change reaches every replica's API through the change feed within seconds.
        poll(everywhere, lambda products: all(p == products[0] for p in products), 10)

        grace = pod_spec()["terminationGracePeriodSeconds"]
        for n, pod in enumerate(pods):
            started = time.monotonic()
            pod.process.send_signal(signal.SIGTERM)
            assert pod.process.wait(timeout=grace) == 0, pod.output()
            print(f"pod {n}: SIGTERM -> exit 0 after {time.monotonic() - started:.1f} s")
        assert not any("Traceback" in pod.output() for pod in pods)


def _runs(client: httpx.Client, pod: ServiceProcess) -> list[dict[str, Any]]:
    """Every finished run in the shared audit log."""
    body = client.get(f"{pod.url}/api/runs", params={"limit": 100}).json()
    return [r for r in body["items"] if r["status"] not in {"queued", "running"}]
