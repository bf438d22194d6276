"""Planted secrets, echoing upstreams, HTML in error text and foreign URLs, end to end.

`catalog-refresher run` gets an admin token and source credentials of every kind the
configuration has: an ``Authorization`` header from ``env:``, a password in a URL, a
header from a ``file:`` secret, a query secret, a literal header. Its upstreams answer
HTTP 500 with every header, the path and the query of the request ECHOED back in the
body and in response headers. None of the secret values may then appear in the service's
log, in any API answer (sources, runs, products, problem details), ``/metrics``,
``/health*``, the dashboard's files, or ``check-config``'s output.

One upstream answers with HTML (``<script>``, an ``onerror`` image) as its error message: a
real browser (Debian's Chromium via Playwright) shows it on the dashboard as text, and no
script of it runs. Two upstreams try to send the service elsewhere: a ``Location:``
redirect and a paging ``next`` link to another origin; the service fetches neither.
"""

from __future__ import annotations

import contextlib
import json
import subprocess
import sys
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.e2e.processes import ServiceProcess, free_port
from tests.e2e.test_dashboard_browser import browser  # noqa: F401  (the fixture)
from tests.local_http import serving

with contextlib.suppress(ImportError):  # the browser fixture skips (or fails under CI)
    from playwright.sync_api import Browser, expect

pytestmark = pytest.mark.e2e

ADMIN = "adm-PLANTED-1a2b3c"
SECRETS = {
    "admin": ADMIN,
    "env_header": "env-PLANTED-4d5e6f",
    "url_password": "url-PLANTED-7a8b9c",
    "file_header": "file-PLANTED-0d1e2f",
    "query": "qry-PLANTED-3a4b5c",
    "literal_header": "lit-PLANTED-6d7e8f",
}
#: Sources that answer with an error envelope (``ErrorWhen``/``ErrorMessagePath``).
ENVELOPED = {"erp_stock", "lots", "attributes"}
ENVELOPE = {
    "ErrorWhen": {"Path": "winstrom.success", "Equals": "false"},
    "ErrorMessagePath": "winstrom.message",
}
HTML = '<script>window.__xss = 1</script><img src=x onerror="window.__xss = 2">'


class _Upstreams:
    def __init__(self) -> None:
        self.url = ""
        self.foreign_url = ""
        self.foreign_requests: list[str] = []
        self.lock = threading.Lock()


def _echo_handler(state: _Upstreams) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            path = self.path.split("?")[0].strip("/")
            if path == "transport_data":  # a redirect to another origin
                self.send_response(302)
                self.send_header("Location", f"{state.foreign_url}/stolen?{self.path}")
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            if path == "suppliers":  # a next link to another origin
                page = {
                    "items": [{"product_code": "P-1", "supplier_code": "S1", "name": "S"}],
                    "next": f"{state.foreign_url}/next-page",
                }
                self._answer(200, json.dumps(page).encode(), "application/json")
                return
            echoed = {"path": self.path, "headers": dict(self.headers.items())}
            if path in ENVELOPED:  # an error envelope whose message the run's error quotes
                message = HTML if path == "attributes" else json.dumps(echoed)
                envelope = {"winstrom": {"success": "false", "message": message}}
                self._answer(200, json.dumps(envelope).encode(), "application/json")
                return
            body = json.dumps({"error": "upstream failed", "request": echoed}).encode()
            self._answer(500, body, "application/json", echo=json.dumps(echoed))

        def _answer(self, status: int, body: bytes, kind: str, echo: str = "") -> None:
            self.send_response(status)
            self.send_header("Content-Type", kind)
            self.send_header("Content-Length", str(len(body)))
            if echo:
                self.send_header("X-Echo", echo.replace("\n", " "))
                self.send_header("WWW-Authenticate", f"Bearer realm={echo[:200]!r}")
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    return Handler


def _foreign_handler(state: _Upstreams) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            with state.lock:
                state.foreign_requests.append(self.path)
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", "2")
            self.end_headers()
            self.wfile.write(b"[]")

        def log_message(self, *args: object) -> None:
            pass

    return Handler


def _config(folder: Path, upstream: str, port: int) -> Path:
    secret_file = folder / "sales.secret"
    secret_file.write_text(SECRETS["file_header"] + "\n")
    secret_file.chmod(0o600)
    host = upstream.removeprefix("http://")
    sources: dict[str, Any] = {
        "ErpStock": {
            "Url": f"{upstream}/erp_stock",
            "Headers": {"Authorization": "env:PLANT_ERP_TOKEN"},
        },
        "EshopStock": {"Url": f"http://shop:{SECRETS['url_password']}@{host}/eshop_stock"},
        "SalesData": {
            "Url": f"{upstream}/sales_data",
            "Headers": {"X-Api-Key": f"file:{secret_file}"},
        },
        "Lots": {"Url": f"{upstream}/lots", "Query": {"token": SECRETS["query"]}},
        "StockTaking": {
            "Url": f"{upstream}/stock_taking",
            "Headers": {"Authorization": f"Bearer {SECRETS['literal_header']}"},
        },
        "Attributes": {"Url": f"{upstream}/attributes"},
        "TransportData": {"Url": f"{upstream}/transport_data"},
        "Suppliers": {
            "Url": f"{upstream}/suppliers",
            "RecordsPath": "items",
            "Paging": {"Kind": "next", "NextPath": "next"},
        },
    }
    config = folder / "appsettings.json"
    config.write_text(
        json.dumps(
            {
                "CatalogRepository": {"RetryAttempts": 1},
                "Sources": {
                    key: {
                        "Type": "http",
                        **value,
                        **(ENVELOPE if value["Url"].rsplit("/", 1)[1] in ENVELOPED else {}),
                    }
                    for key, value in sources.items()
                },
                "Store": {"Url": f"sqlite:///{folder / 'catalog.db'}"},
                "Api": {"Port": port, "AdminToken": "env:PLANT_ADMIN"},
                "Logging": {"Level": "Debug"},
            }
        )
    )
    return config


ENV = {"PLANT_ADMIN": ADMIN, "PLANT_ERP_TOKEN": f"Bearer {SECRETS['env_header']}"}


@pytest.fixture(scope="module")
def planted(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[ServiceProcess, Path]]:
    folder = tmp_path_factory.mktemp("planted")
    state = _Upstreams()
    port = free_port()
    with serving(_echo_handler(state)) as state.url, serving(_foreign_handler(state)) as foreign:
        state.foreign_url = foreign
        config = _config(folder, state.url, port)
        with ServiceProcess(config, f"http://127.0.0.1:{port}", env=ENV) as service:
            service.wait_for("Serving the API on", seconds=60)
            service._wait(  # every configured source has finished its first run
                lambda: len(
                    {
                        line.split()[2]
                        for line in list(service.log)
                        if " Completed " in line or " Error refreshing " in line
                    }
                ),
                8,
                "finish the first run of all eight sources",
                90,
            )
            service.state = state  # type: ignore[attr-defined]
            yield service, config


def _leaks(text: str) -> list[str]:
    return [name for name, value in SECRETS.items() if value in text]


def test_no_planted_secret_appears_in_logs_api_metrics_health_dashboard_or_check_config(
    planted: tuple[ServiceProcess, Path],
) -> None:
    """Six secrets (admin token, env:/file:/literal headers, URL password, query value)
    sent to upstreams that echo them in error bodies and headers: none of them is in the
    log (debug level), any API answer or problem, /metrics, /health*, the dashboard's
    files or check-config's output; the echoed errors do reach the runs (so the test
    looks where a leak would be)."""
    service, config = planted
    api = service.url
    auth = {"Authorization": f"Bearer {ADMIN}"}
    answers: dict[str, str] = {}
    with httpx.Client(base_url=api, timeout=30) as client:
        for path in (
            "/api/sources",
            "/api/runs?limit=1000",
            "/api/runs?format=csv",
            "/api/products",
            "/api/products/P-1",
            "/api/sources/erp_stock",
            "/api/sources/no_such_source",
            "/api/runs/999999",
            "/metrics",
            "/health",
            "/health/live",
            "/health/ready",
            "/dashboard",
            "/dashboard/dashboard.js",
            "/openapi.json",
        ):
            answer = client.get(path)
            answers[path] = f"{answer.status_code} {answer.headers} {answer.text}"
        runs = client.get("/api/runs", params={"limit": 1000}).json()["items"]
        for run in runs:
            answer = client.get(f"/api/runs/{run['id']}")
            answers[f"run {run['id']}"] = answer.text
        for headers in ({}, {"Authorization": "Bearer wrong"}, auth):
            answer = client.post("/api/sources/erp_stock/refresh?wait=true", headers=headers)
            answers[f"POST {headers}"] = f"{answer.status_code} {answer.headers} {answer.text}"
    check = subprocess.run(
        [sys.executable, "-m", "catalog_refresher", "check-config", "--config", str(config)],
        capture_output=True,
        text=True,
        env={**ENV, "PATH": "/usr/bin:/bin"},
        timeout=60,
    )
    answers["check-config"] = check.stdout + check.stderr
    answers["log"] = service.output()
    # The upstreams' errors did reach the audit log: a leak would have shown there.
    assert any(run["error"] and "500" in run["error"] for run in runs), runs
    assert any(run["error"] and "X-Api-Key" not in run["error"] for run in runs), runs
    assert check.returncode == 0, answers["check-config"]
    leaks = {where: _leaks(text) for where, text in answers.items() if _leaks(text)}
    assert leaks == {}, leaks


def test_the_service_fetches_no_url_that_is_not_configured(
    planted: tuple[ServiceProcess, Path],
) -> None:
    """A 302 to another origin and a paging next link to another origin: the foreign
    server gets no request, and both runs fail naming why."""
    service, _ = planted
    state: _Upstreams = service.state  # type: ignore[attr-defined]
    sources = httpx.get(f"{service.url}/api/sources", timeout=30).json()
    errors = {s["id"]: s.get("last_error") or "" for s in sources}
    assert state.foreign_requests == []
    assert "302" in errors["transport_data"] or "redirect" in errors["transport_data"].lower()
    assert errors["suppliers"], sources


def test_an_html_error_body_is_shown_as_text_in_the_dashboard(
    planted: tuple[ServiceProcess, Path],
    browser: Browser,  # noqa: F811
) -> None:
    """Attributes' upstream answers with an error envelope whose message is a <script> and
    an onerror image: in a real browser the dashboard shows that text literally (the run's
    error quotes the message) and runs none of it."""
    service, _ = planted
    context = browser.new_context()
    page = context.new_page()
    dialogs: list[str] = []
    page.on("dialog", lambda dialog: dialogs.append(dialog.message))
    try:
        page.goto(f"{service.url}/dashboard")
        shown = page.locator("#sources .error").filter(has_text="<script>").first
        expect(shown).to_be_visible()
        expect(shown).to_contain_text(HTML)
        assert page.evaluate("window.__xss === undefined")
        assert page.locator("body script:not([src])").count() == 0
        assert page.locator("img[src='x']").count() == 0
        assert dialogs == []
    finally:
        context.close()
