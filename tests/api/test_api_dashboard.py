"""``/dashboard``: the page and its files, their security headers, and what the page may do."""

from __future__ import annotations

import re
from html.parser import HTMLParser
from importlib import resources
from urllib.parse import urljoin

import pytest

from tests.api.support import TOKEN, Api, ApiFactory, assert_problem

SCRIPT = (resources.files("catalog_refresher.api") / "static" / "dashboard.js").read_text()


class Page(HTMLParser):
    """What the page references and whatever it carries inline."""

    def __init__(self) -> None:
        super().__init__()
        self.links: list[str] = []
        self.inline: list[str] = []
        self._in_script = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = dict(attrs)
        for name in ("src", "href"):
            if values.get(name):
                self.links.append(str(values[name]))
        self.inline += [f"{tag} {name}" for name, _ in attrs if name == "style"]
        self.inline += [f"{tag} {name}" for name, _ in attrs if name.startswith("on")]
        if tag == "style":
            self.inline.append("style element")
        self._in_script = tag == "script"

    def handle_endtag(self, tag: str) -> None:
        self._in_script = False

    def handle_data(self, data: str) -> None:
        if self._in_script and data.strip():
            self.inline.append("script body")


async def parsed(api: Api) -> Page:
    page = Page()
    page.feed((await api.client.get("/dashboard")).text)
    return page


async def test_the_page_is_html_under_a_strict_policy(api: Api) -> None:
    """/dashboard is 200 HTML with a CSP that allows this origin only and nothing inline."""
    response = await api.client.get("/dashboard")
    assert response.status_code == 200
    assert response.headers["content-type"] == "text/html; charset=utf-8"
    assert '<table id="sources">' in response.text
    policy = dict(
        directive.strip().split(" ", 1)
        for directive in response.headers["content-security-policy"].split(";")
    )
    assert policy["default-src"] == "'none'"
    for directive in ("script-src", "style-src", "connect-src", "img-src"):
        assert policy[directive] == "'self'"
    assert policy["frame-ancestors"] == "'none'"
    assert policy["form-action"] == "'none'"
    assert response.headers["x-content-type-options"] == "nosniff"


async def test_the_page_carries_nothing_inline(api: Api) -> None:
    """No inline script, style or event handler: the policy would block them."""
    page = await parsed(api)
    assert page.inline == []
    assert page.links, "the page loads its script and stylesheet"


async def test_every_file_the_page_loads_is_served(api: Api) -> None:
    """Each src/href of the page, resolved as a browser would, answers 200 with its type and
    the same policy."""
    expected = {".js": "text/javascript", ".css": "text/css", ".svg": "image/svg+xml"}
    for link in (await parsed(api)).links:
        path = urljoin("http://test/dashboard", link).removeprefix("http://test")
        response = await api.client.get(path)
        assert response.status_code == 200, path
        suffix = path[path.rindex(".") :]
        assert response.headers["content-type"].split(";")[0] == expected[suffix]
        assert response.headers["content-security-policy"].startswith("default-src 'none'")
        assert response.content


@pytest.mark.parametrize(
    "path",
    [
        "/dashboard/nope.js",
        "/dashboard/dashboard.html",  # the page's own file is served at /dashboard only
        "/dashboard/dashboard.js",  # package file names are not URLs
        "/dashboard/..%2F__init__.py",
    ],
)
async def test_an_unknown_file_is_a_404_problem(api: Api, path: str) -> None:
    """Anything but the listed files is a 404 problem, never a file of the package."""
    assert_problem(await api.client.get(path), 404)


async def test_the_page_is_open_when_reads_are_protected(make_api: ApiFactory) -> None:
    """With ProtectReads the page and its files load without a token (the data does not)."""
    api = make_api(token=TOKEN, protect_reads=True)
    for path in ["/dashboard", "/dashboard/app.js", "/dashboard/style.css"]:
        assert (await api.client.get(path)).status_code == 200, path
    assert_problem(await api.client.get("/api/sources"), 401)


async def test_the_page_is_not_in_the_openapi_document(api: Api) -> None:
    """The dashboard is for people: no /dashboard path in /openapi.json."""
    paths = (await api.client.get("/openapi.json")).json()["paths"]
    assert not [path for path in paths if path.startswith("/dashboard")]
    assert "/api/sources" in paths


def test_the_script_never_parses_server_text_as_html_nor_logs() -> None:
    """The script builds the page with textContent (no innerHTML, outerHTML,
    insertAdjacentHTML, document.write or eval) and writes nothing to the console,
    where a token could end up."""
    sinks = re.findall(r"innerHTML|outerHTML|insertAdjacentHTML|document\.write|eval\(", SCRIPT)
    assert sinks == []
    assert "textContent" in SCRIPT
    assert "console." not in SCRIPT
