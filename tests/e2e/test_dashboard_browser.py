"""The status dashboard in a real browser: Debian's Chromium driven by Playwright,
on `catalog-refresher run` as a real process whose ten sources are a real local
HTTP server, one of them answering HTTP 500.

Without Chromium or Playwright the tests skip, except under ``CI=true``, where
they fail: CI installs both (``.ci/run`` and the ``dev`` extra).
"""

from __future__ import annotations

import json
import os
import re
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from catalog_refresher.domain.specs import SPECS
from tests.e2e.processes import ServiceProcess, free_port
from tests.source_server import SourceServer, serve_sources

try:
    from playwright.sync_api import Browser, ConsoleMessage, Page, expect, sync_playwright
except ImportError:  # the browser fixture skips (or fails under CI) with the reason
    sync_playwright = None

pytestmark = pytest.mark.e2e

CHROMIUM = Path("/usr/bin/chromium")
ADMIN_TOKEN = "admin-token-for-the-dashboard-test"
TOKEN_KEY = "catalog-refresher.admin-token"  # the page's sessionStorage key
FAILING = "lots"
#: Generous for a loaded CI machine; each expectation normally passes in well under a second.
EXPECT_TIMEOUT_MS = 10_000

Service = Callable[..., ServiceProcess]


def unavailable(reason: str) -> None:
    """Skip for lack of a browser, but never under CI, where a skip would hide a broken setup."""
    if os.environ.get("CI") == "true":
        pytest.fail(f"{reason}, and CI=true needs the browser test to run")
    pytest.skip(reason)


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    if sync_playwright is None:
        unavailable("playwright is not installed (pip install -e '.[dev]')")
    if not CHROMIUM.exists():
        unavailable(f"{CHROMIUM} is missing (apt-get install chromium)")
    expect.set_options(timeout=EXPECT_TIMEOUT_MS)
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), headless=True)
        yield browser
        browser.close()


@pytest.fixture
def page(browser: Browser) -> Iterator[Page]:
    """A fresh browser context (so an empty sessionStorage) that must raise no script error
    and see no Content-Security-Policy violation."""
    context = browser.new_context()
    page = context.new_page()
    problems: list[str] = []
    page.on("pageerror", lambda error: problems.append(f"uncaught: {error}"))

    def on_console(message: ConsoleMessage) -> None:
        if "Content Security Policy" in message.text:
            problems.append(f"CSP: {message.text}")

    page.on("console", on_console)
    yield page
    context.close()
    assert problems == []


@pytest.fixture
def sources() -> Iterator[SourceServer]:
    with serve_sources(products=150, failing={FAILING}) as server:
        yield server


@pytest.fixture
def service(tmp_path: Path, sources: SourceServer) -> Iterator[Service]:
    """Starts the service (``Api`` options as keywords, more ``CatalogRepository`` options in
    ``repository``) and returns it once every source has finished its first run; stops it
    at the end of the test (if the test did not), expecting exit 0."""
    started: list[ServiceProcess] = []

    def start(repository: dict[str, Any] | None = None, **api: Any) -> ServiceProcess:
        port = free_port()
        config = tmp_path / "appsettings.json"
        config.write_text(
            json.dumps(
                {
                    # One attempt: the failing source fails at once, not after the backoff.
                    "CatalogRepository": {"RetryAttempts": 1, **(repository or {})},
                    "Sources": {
                        spec.config_key: {"Url": f"{sources.url}/{spec.id}"}
                        for spec in SPECS.values()
                    },
                    "Store": {"Url": f"sqlite:///{tmp_path / 'catalog.db'}"},
                    "Api": {"Port": port, "AdminToken": "env:ADMIN_TOKEN", **api},
                }
            )
        )
        process = ServiceProcess(
            config, f"http://127.0.0.1:{port}", env={"ADMIN_TOKEN": ADMIN_TOKEN}
        )
        started.append(process)
        process.wait_for_first_runs()
        return process

    yield start
    for process in started:
        with process:
            assert process.stop() == 0, process.output()


def test_dashboard_shows_the_service_and_refreshes_with_the_token(
    page: Page, service: Service
) -> None:
    """Ten source rows with the failing one marked failing and its error shown, the runs
    listed; "Refresh now" asks for the token, and with it a manual run appears and ends."""
    page.goto(service().url + "/dashboard")
    page.select_option("#poll-seconds", "2")  # the new run's end shows up sooner

    expect(page.locator("#sources tbody tr")).to_have_count(len(SPECS))
    expect(page.locator("#overall")).to_have_text("Degraded")
    failing = page.locator(f'#sources tr[data-source="{FAILING}"]')
    expect(failing).to_have_attribute("data-state", "failing")
    expect(failing.locator(".status")).to_have_text("failed")
    expect(failing.locator(".error")).to_contain_text("HTTP 500")
    expect(page.locator('#sources tr[data-source="erp_stock"]')).to_have_attribute(
        "data-state", "ok"
    )
    expect(page.locator("#runs tbody tr")).to_have_count(len(SPECS))
    failed_run = page.locator(f'#runs tr[data-source="{FAILING}"]')
    expect(failed_run).to_have_attribute("data-status", "failed")
    expect(failed_run.locator(".error")).to_contain_text("HTTP 500")
    expect(page.locator('#cache [data-field="max_size"]')).not_to_have_text("–")

    page.locator('#sources tr[data-source="erp_stock"]').get_by_role(
        "button", name="Refresh now"
    ).click()
    expect(page.locator("#token-form")).to_be_visible()
    expect(page.locator("#token-reason")).to_contain_text("admin token")
    page.locator("#token").fill(ADMIN_TOKEN)
    page.get_by_role("button", name="Use token").click()

    expect(page.locator("#token-form")).to_be_hidden()
    manual = page.locator('#runs tr[data-source="erp_stock"][data-trigger="manual"]')
    expect(manual).to_have_count(1)
    expect(manual).to_have_attribute("data-status", "succeeded")
    assert ADMIN_TOKEN not in page.url
    assert page.evaluate(f"sessionStorage.getItem({TOKEN_KEY!r})") == ADMIN_TOKEN


def test_dashboard_asks_for_the_token_when_reads_are_protected(
    page: Page, service: Service
) -> None:
    """With ProtectReads the page asks for the token before it shows anything, says so when
    the token is wrong, and shows the sources once it is right."""
    page.goto(service(ProtectReads=True).url + "/dashboard")

    expect(page.locator("#token-form")).to_be_visible()
    expect(page.locator("#sources tbody tr")).to_have_count(0)
    page.locator("#token").fill("not-the-token")
    page.get_by_role("button", name="Use token").click()
    expect(page.locator("#token-reason")).to_contain_text("refused")

    page.locator("#token").fill(ADMIN_TOKEN)
    page.get_by_role("button", name="Use token").click()
    expect(page.locator("#sources tbody tr")).to_have_count(len(SPECS))
    expect(page.locator("#token-form")).to_be_hidden()


def test_dashboard_says_when_the_api_cannot_be_reached(page: Page, service: Service) -> None:
    """When the service goes away the page keeps the last data and says that the API could
    not be reached, and since when its data is."""
    running = service()
    page.goto(running.url + "/dashboard")
    page.select_option("#poll-seconds", "2")
    expect(page.locator("#sources tbody tr")).to_have_count(len(SPECS))
    expect(page.locator("#updated")).to_contain_text("updated")
    expect(page.locator("#connection")).to_be_hidden()

    assert running.stop() == 0
    expect(page.locator("#connection")).to_contain_text("Could not reach the API")
    expect(page.locator("#connection")).to_contain_text("showing data from")
    expect(page.locator("#updated")).to_have_class(re.compile(r"\bstale\b"))
    expect(page.locator("#sources tbody tr")).to_have_count(len(SPECS))


def test_dashboard_reads_times_as_ages_and_charts_each_sources_runs(
    page: Page, service: Service
) -> None:
    """A healthy source's health says how long ago it refreshed ("… ago"), with the full
    time on hover; its last success reads as an age too; and its row draws a chart with
    one bar per finished run."""
    page.goto(service().url + "/dashboard")

    erp = page.locator('#sources tr[data-source="erp_stock"]')
    expect(erp.locator(".description")).to_contain_text(
        re.compile(r"refreshed (just now|\d+ s ago)")
    )
    expect(erp.locator(".description")).not_to_contain_text(re.compile(r"\d{4}-\d\d-\d\dT"))
    expect(erp.locator(".description time")).to_have_attribute("title", re.compile(r"UTC\)$"))
    last_success = erp.locator("td").nth(2).locator("time")
    expect(last_success).to_have_text(re.compile(r"^(just now|\d+ s ago)$"))
    expect(erp.locator("svg.run-chart")).to_have_attribute("data-runs", "1")
    expect(erp.locator("svg.run-chart rect.bar.succeeded")).to_have_count(1)
    failing = page.locator(f'#sources tr[data-source="{FAILING}"]')
    expect(failing.locator("svg.run-chart rect.bar.failed")).to_have_count(1)


def test_dashboard_finds_a_product_and_shows_its_aggregate_and_lineage(
    page: Page, service: Service
) -> None:
    """Searching by a product's code lists it; opening it shows its name, its stock and a
    lineage row per source that holds it, naming the run that last changed that part."""
    running = service()
    first = json.loads(
        urllib.request.urlopen(running.url + "/api/products?limit=1", timeout=10).read()
    )["items"][0]
    code = first["product_code"]
    page.goto(running.url + "/dashboard")

    page.locator("#product-search").fill(code)
    page.get_by_role("button", name="Search").click()
    listed = page.locator(f'#products tr[data-product="{code}"]')
    expect(listed).to_have_count(1)
    expect(page.locator("#product-message")).to_contain_text("of")
    listed.get_by_role("button", name=code).click()

    expect(page.locator("#product")).to_be_visible()
    expect(page.locator("#product-title")).to_have_text(f"{code} · {first['product_name']}")
    erp_lineage = page.locator('#lineage tr[data-source="erp_stock"]')
    expect(erp_lineage.locator("td").first).to_have_text(
        str(first["lineage"]["erp_stock"]["run_id"])
    )
    expect(page.locator("#lineage tbody tr")).to_have_count(len(first["lineage"]))
    expect(page.locator("#product-json")).to_contain_text(f'"product_code": "{code}"')


def test_dashboard_says_when_the_memory_is_above_its_limit(page: Page, service: Service) -> None:
    """Above MemoryLimitMb (1 MB: always) the overall line carries the memory entry's reason
    beside the refresh's; with equal priorities no source waits, so all ten rows fill."""
    page.goto(service(repository={"MemoryLimitMb": 1}).url + "/dashboard")
    expect(page.locator("#sources tbody tr")).to_have_count(len(SPECS))
    expect(page.locator("#overall")).to_have_text("Degraded")
    expect(page.locator("#overall-description")).to_have_text(
        re.compile(
            r"^Catalog refresh is running normally; "
            r"memory \d+ MB above the 1 MB limit; cache shrunk, 0 runs deferred$"
        )
    )


def _post(url: str, token: str) -> dict[str, Any]:
    request = urllib.request.Request(
        url, method="POST", headers={"Authorization": f"Bearer {token}"}
    )
    with urllib.request.urlopen(request, timeout=60) as answer:
        body: dict[str, Any] = json.loads(answer.read())
        return body


def _get(url: str) -> Any:
    with urllib.request.urlopen(url, timeout=30) as answer:
        return json.loads(answer.read())


def test_dashboard_pauses_and_resumes_a_source(page: Page, service: Service) -> None:
    """ "Pause" marks the row paused and the API agrees; "Resume" takes the mark away."""
    running = service()
    page.goto(running.url + "/dashboard")
    page.evaluate(f"sessionStorage.setItem({TOKEN_KEY!r}, {ADMIN_TOKEN!r})")
    erp = page.locator('#sources tr[data-source="erp_stock"]')

    erp.get_by_role("button", name="Pause").click()
    expect(erp.locator(".mark.paused")).to_have_text("paused")
    expect(page.locator("#notice")).to_contain_text("erp_stock paused")
    assert {s["id"]: s for s in _get(running.url + "/api/sources")}["erp_stock"]["paused"]

    erp.get_by_role("button", name="Resume").click()
    expect(erp.locator(".mark.paused")).to_have_count(0)
    expect(erp.get_by_role("button", name="Pause")).to_be_visible()
    assert not {s["id"]: s for s in _get(running.url + "/api/sources")}["erp_stock"]["paused"]


def test_dashboard_dry_run_shows_what_would_change_and_the_verdicts(
    page: Page, service: Service
) -> None:
    """ "Dry run" shows the counts the API's dry run answered (fetched, inserted, updated,
    deleted: the demo world moves on every fetch, so the answer itself is the truth), the
    guard's and each validator's verdict; nothing is published (the source's run list stays
    as it was)."""
    running = service()
    runs_before = _get(running.url + "/api/runs?source=erp_stock")["total"]
    page.goto(running.url + "/dashboard")
    page.evaluate(f"sessionStorage.setItem({TOKEN_KEY!r}, {ADMIN_TOKEN!r})")

    with page.expect_response(lambda answer: "dry_run=true" in answer.url) as dry_run:
        page.locator('#sources tr[data-source="erp_stock"]').get_by_role(
            "button", name="Dry run"
        ).click()
    answered = dry_run.value.json()
    assert answered["fetched"] > 0

    panel = page.locator("#source-panel")
    expect(panel).to_be_visible()
    expect(page.locator("#source-panel-title")).to_have_text("erp_stock: dry run")
    expect(page.locator("#dry-run-verdict")).to_contain_text("would publish")
    for count in ("fetched", "inserted", "updated", "deleted"):
        expect(page.locator(f'#dry-run-counts [data-count="{count}"] dd')).to_have_text(
            f"{answered[count]:,}"
        )
    expect(page.locator("#dry-run-verdicts tbody tr").first).to_have_attribute(
        "data-verdict", "pass"
    )
    assert _get(running.url + "/api/runs?source=erp_stock")["total"] == runs_before


def test_dashboard_lists_versions_diffs_and_pins_one(page: Page, service: Service) -> None:
    """After a second ERP run the panel lists two versions, the newest served; "Diff to
    served" lists the changed keys with old and new values; "Pin" serves the older one
    (the row says pinned, the API serves the old stock); "Unpin" serves the newest."""
    running = service()
    second = _post(running.url + "/api/sources/erp_stock/refresh?wait=true", ADMIN_TOKEN)
    assert second["status"] == "succeeded"
    assert second["updated"] + second["inserted"] + second["deleted"] > 0, second
    page.goto(running.url + "/dashboard")
    page.evaluate(f"sessionStorage.setItem({TOKEN_KEY!r}, {ADMIN_TOKEN!r})")
    erp = page.locator('#sources tr[data-source="erp_stock"]')

    erp.get_by_role("button", name="Versions").click()
    versions = page.locator("#versions tbody tr")
    expect(versions).to_have_count(2)
    expect(versions.first).to_have_attribute("data-served", "true")
    older = versions.nth(1)
    first_run = older.get_attribute("data-run")
    assert first_run is not None
    assert int(first_run) < second["id"]

    older.get_by_role("button", name="Diff to served").click()
    changed = page.locator("#diff-items tbody tr")
    expect(changed.first).to_be_visible()
    diff = _get(f"{running.url}/api/sources/erp_stock/diff?from={first_run}")
    expect(changed).to_have_count(min(len(diff["items"]), 50))
    first = diff["items"][0]
    row = page.locator(f'#diff-items tr[data-key="{first["key"]}"]')
    expect(row.locator("td").nth(1)).to_have_text(first["change"])

    older.get_by_role("button", name="Pin").click()
    expect(page.locator(f'#versions tr[data-run="{first_run}"]')).to_have_attribute(
        "data-served", "true"
    )
    expect(erp.locator(".mark.pinned")).to_have_text(f"pinned to run {first_run}")
    assert {s["id"]: s for s in _get(running.url + "/api/sources")}["erp_stock"]["pinned"]

    page.get_by_role("button", name="Unpin").click()
    expect(page.locator(f'#versions tr[data-run="{second["id"]}"]')).to_have_attribute(
        "data-served", "true"
    )
    expect(erp.locator(".mark.pinned")).to_have_count(0)
