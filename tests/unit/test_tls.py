"""TLS against a real local HTTPS server with a throwaway CA: verification on by default,
a CA bundle, a client certificate, and verification off said at start and in health."""

from __future__ import annotations

import logging
import ssl
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import trustme

from catalog_refresher.domain.runs import RunStatus
from catalog_refresher.errors import ConfigError, SourceConnectionError
from catalog_refresher.refresh.resilience import CircuitState
from catalog_refresher.sources.http_client import tls_context
from catalog_refresher.status import Health, SourceStatus, source_health
from tests.endpoints import fetch, load_endpoint
from tests.http_recorder import Recorder, ok_json, recording

ROWS = [{"product_code": "P-1", "stock": 1}]


@pytest.fixture(scope="module")
def authority() -> trustme.CA:
    return trustme.CA()


def server_context(authority: trustme.CA, *, client_certificates: bool = False) -> ssl.SSLContext:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    authority.issue_cert("127.0.0.1", "localhost").configure_cert(context)
    if client_certificates:
        context.verify_mode = ssl.CERT_REQUIRED
        authority.configure_trust(context)
    return context


@pytest.fixture
def https(authority: trustme.CA) -> Iterator[Recorder]:
    with recording(lambda seen: ok_json(ROWS), tls=server_context(authority)) as server:
        yield server


@pytest.fixture
def ca_file(tmp_path: Path, authority: trustme.CA) -> Path:
    path = tmp_path / "erp-ca.pem"
    authority.cert_pem.write_to_path(str(path))
    return path


def tls(url: str, **options: Any) -> dict[str, Any]:
    return {"Url": f"{url}/stock", "Tls": options}


async def test_verification_is_on_by_default(tmp_path: Path, https: Recorder) -> None:
    """A server whose certificate no trusted CA signed is refused, and never read."""
    endpoint = load_endpoint(tmp_path, "erp_stock", {"Url": f"{https.url}/stock"})
    with pytest.raises(SourceConnectionError, match="CERTIFICATE_VERIFY_FAILED"):
        await fetch("erp_stock", endpoint)
    assert https.seen == []


async def test_a_ca_bundle_makes_the_server_trusted(
    tmp_path: Path, https: Recorder, ca_file: Path
) -> None:
    """With CaBundle naming the CA, the same server is read."""
    endpoint = load_endpoint(tmp_path, "erp_stock", tls(https.url, CaBundle=str(ca_file)))
    payload = await fetch("erp_stock", endpoint)
    assert len(payload.pages) == 1
    assert https.targets == ["/stock"]


async def test_a_relative_ca_bundle_is_found_beside_the_configuration(
    tmp_path: Path, https: Recorder, ca_file: Path
) -> None:
    """A relative CaBundle path is relative to the configuration file's folder."""
    endpoint = load_endpoint(tmp_path, "erp_stock", tls(https.url, CaBundle=ca_file.name))
    assert endpoint.request.tls.ca_bundle == str(ca_file)
    await fetch("erp_stock", endpoint)


async def test_verification_off_reads_the_server_and_warns(
    tmp_path: Path, https: Recorder, caplog: pytest.LogCaptureFixture
) -> None:
    """Verify false reads any server, and the source says so with a warning at start."""
    endpoint = load_endpoint(tmp_path, "erp_stock", tls(https.url, Verify=False))
    with caplog.at_level(logging.WARNING, logger="catalog_refresher.sources"):
        await fetch("erp_stock", endpoint)
    assert https.targets == ["/stock"]
    (record,) = [r for r in caplog.records if "TLS verification is off" in r.getMessage()]
    assert record.levelno == logging.WARNING
    assert getattr(record, "source", None) == "erp_stock"


async def test_a_client_certificate_is_presented(
    tmp_path: Path, authority: trustme.CA, ca_file: Path
) -> None:
    """ClientCertificate and ClientKey (here from an environment variable) prove who we are."""
    client = authority.issue_cert("catalog-refresher", common_name="catalog-refresher")
    certificate = tmp_path / "erp.crt"
    client.cert_chain_pems[0].write_to_path(str(certificate))
    key = client.private_key_pem.bytes().decode()
    context = server_context(authority, client_certificates=True)
    with recording(lambda seen: ok_json(ROWS), tls=context) as server:
        options = tls(
            server.url,
            CaBundle=str(ca_file),
            ClientCertificate=str(certificate),
            ClientKey="env:ERP_KEY",
        )
        await fetch("erp_stock", load_endpoint(tmp_path, "erp_stock", options, ERP_KEY=key))
        without = load_endpoint(tmp_path, "erp_stock", tls(server.url, CaBundle=str(ca_file)))
        with pytest.raises(SourceConnectionError):
            await fetch("erp_stock", without)

    assert [seen.client_subject for seen in server.seen] == ["catalog-refresher"]


def test_a_certificate_that_does_not_match_its_key_is_a_config_error(
    tmp_path: Path, authority: trustme.CA
) -> None:
    """A client key of another certificate fails naming the key, never quoting the key."""
    one, other = authority.issue_cert("one"), authority.issue_cert("other")
    certificate = tmp_path / "one.crt"
    one.cert_chain_pems[0].write_to_path(str(certificate))
    key = other.private_key_pem.bytes().decode()
    options = tls("https://erp.example", ClientCertificate=str(certificate), ClientKey="env:K")
    endpoint = load_endpoint(tmp_path, "erp_stock", options, K=key)
    with pytest.raises(ConfigError) as caught:
        tls_context(endpoint.request.tls, "Sources:ErpStock:Tls")
    assert caught.value.key == "Sources:ErpStock:Tls:ClientCertificate"
    assert "PRIVATE KEY" not in str(caught.value)
    assert key.splitlines()[1] not in str(caught.value)


def status(**changes: Any) -> SourceStatus:
    values: dict[str, Any] = {
        "id": "erp_stock",
        "interval": timedelta(minutes=5),
        "enabled": True,
        "priority": 0,
        "last_success_at": datetime(2026, 11, 29, 10, tzinfo=UTC),
        "last_attempt_at": None,
        "last_status": RunStatus.SUCCEEDED,
        "last_error": None,
        "next_run_at": None,
        "circuit_state": CircuitState.CLOSED,
        "consecutive_failures": 0,
        "record_count": 1,
    }
    return SourceStatus(**(values | changes))


def test_a_health_entry_says_when_tls_verification_is_off() -> None:
    """The source's health entry says "TLS verification is off", healthy or not."""
    healthy = source_health(status(tls_unverified=True))
    assert healthy.status is Health.HEALTHY
    assert healthy.description.endswith("; TLS verification is off")
    degraded = source_health(status(tls_unverified=True, stale=True))
    assert (degraded.status, degraded.description) == (
        Health.DEGRADED,
        "stale; TLS verification is off",
    )
    assert "TLS" not in source_health(status()).description
