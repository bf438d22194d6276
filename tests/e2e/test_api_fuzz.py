"""Schemathesis over the service's own OpenAPI schema, against a live `catalog-refresher run`.

The service reads the ten sources from a local demo server (one run each at start), has
an admin token, and serves its schema at ``/openapi.json``. Every operation of the schema
is called with generated parameters and bodies, valid and invalid: no answer is a 5xx,
every answer matches the schema (status, content type, body, headers), and every write
operation is 401 without the token and 403 with a wrong one.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis import Case
from schemathesis.checks import CheckFunction
from schemathesis.schemas import APIOperation
from schemathesis.specs.openapi.checks import positive_data_acceptance

from catalog_refresher.domain.specs import SPECS
from tests.e2e.processes import ServiceProcess, free_port
from tests.source_server import serve_sources

pytestmark = pytest.mark.e2e

TOKEN = "fuzz-admin-token-7c1d"
WRITES = {"POST", "PUT", "PATCH", "DELETE"}
FUZZ = settings(
    max_examples=12,
    deadline=None,
    suppress_health_check=list(HealthCheck),
    derandomize=True,
)


@pytest.fixture(scope="module")
def live_api(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The service on the demo sources, its first runs done; its URL."""
    folder = tmp_path_factory.mktemp("fuzz")
    port = free_port()
    with serve_sources(products=40) as server:
        config = folder / "appsettings.json"
        config.write_text(
            json.dumps(
                {
                    "CatalogRepository": {
                        "ErpStockRefreshInterval": "1.00:00:00",
                        "RetryAttempts": 1,
                    },
                    "Sources": {
                        spec: {"Type": "http", "Url": f"{server.url}/{source}"}
                        for spec, source in _SOURCES.items()
                    },
                    "Store": {"Url": f"sqlite:///{Path(folder) / 'catalog.db'}"},
                    "Api": {"Host": "127.0.0.1", "Port": port, "AdminToken": "env:FUZZ_TOKEN"},
                }
            )
        )
        url = f"http://127.0.0.1:{port}"
        with ServiceProcess(config, url, env={"FUZZ_TOKEN": TOKEN}) as service:
            service.wait_for_first_runs()
            yield url
            assert " 500 " not in service.output()


_SOURCES = {spec.config_key: spec.id for spec in SPECS.values()}


@pytest.fixture(scope="module")
def operations(live_api: str) -> list[APIOperation]:
    """Every operation of the live service's schema (its own ``/openapi.json``)."""
    schema = schemathesis.openapi.from_url(f"{live_api}/openapi.json")
    schema.config.update(base_url=live_api)
    found = [result.ok() for result in schema.get_all_operations()]
    assert len(found) >= 10, [op.label for op in found]
    return found


def _fuzz(operation: APIOperation, check: Callable[[Case], None]) -> int:
    """Run ``check`` on generated cases of ``operation``; how many ran."""
    ran = 0

    @FUZZ
    @given(operation.as_strategy())
    def each(case: Case) -> None:
        nonlocal ran
        ran += 1
        check(case)

    each()
    return ran


def _excluded(case: Case) -> list[CheckFunction]:
    """Checks that cannot hold for ``case``, and why."""
    if case.path == "/api/runs" and (case.query or {}).get("format") != "csv":
        # `limit` is 1..1000, or up to 100000 with format=csv: one schema cannot say so, and
        # its maximum is the CSV one; a JSON page over 1000 is a documented 422.
        return [positive_data_acceptance]
    return []


def _with_token(case: Case) -> None:
    headers = {"Authorization": f"Bearer {TOKEN}"}
    case.call_and_validate(headers=headers, excluded_checks=_excluded(case))


def _without_token(case: Case) -> None:
    # The generated case may carry an Authorization header of its own (the scheme is
    # declared): the bare call has none at all.
    case.headers = {k: v for k, v in (case.headers or {}).items() if k.lower() != "authorization"}
    bare = case.call()
    wrong = case.call(headers={"Authorization": "Bearer not-the-token"})
    for response in (bare, wrong):
        assert response.status_code < 500, response.text
        if response.status_code not in (401, 403):
            case.validate_response(response, excluded_checks=_excluded(case))
    if case.method.upper() in WRITES:
        assert bare.status_code == 401, bare.text
        assert "Bearer" in str(bare.headers.get("www-authenticate", ""))
        assert wrong.status_code == 403, wrong.text
        assert "not-the-token" not in wrong.text


def test_every_operation_conforms_to_the_schema_with_the_token(
    operations: list[APIOperation],
) -> None:
    """Generated requests to every operation, with the admin token: no 5xx, and every
    answer (status, content type, body, headers) as the schema says."""
    counts = {op.label: _fuzz(op, _with_token) for op in operations}
    print(f"schemathesis with the token: {sum(counts.values())} requests: {counts}")
    assert all(counts.values()), counts


def test_writes_need_the_token_and_reads_do_not(operations: list[APIOperation]) -> None:
    """The same operations without the token and with a wrong one: a write is 401 (with
    a challenge) and 403, never carried out, and the wrong token is not echoed; a read
    answers as with the token (not a 5xx, as the schema says)."""
    counts = {op.label: _fuzz(op, _without_token) for op in operations}
    print(f"schemathesis without/with a wrong token: {2 * sum(counts.values())} requests")
    assert any(op.method.upper() in WRITES for op in operations)
