"""config.load of an endpoint's request options, placeholders and new paging kinds:
read, defaulted, refused naming the key, and written back by describe()."""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import trustme

from catalog_refresher.config import describe, load
from catalog_refresher.config.settings import (
    ErrorCondition,
    HttpMethod,
    PagingKind,
    ParametersIn,
    Placeholder,
    RequestSettings,
    Settings,
    Template,
)
from catalog_refresher.config.templates import parse_template
from catalog_refresher.errors import ConfigError
from tests.helpers import json_path


def load_sources(tmp_path: Path, sources: dict[str, Any], **environ: str) -> Settings:
    path = tmp_path / "appsettings.json"
    path.write_text(json.dumps({"Sources": sources}))
    return load(path, environment=None, environ=environ)


def error_of(tmp_path: Path, sources: dict[str, Any], **environ: str) -> ConfigError:
    with pytest.raises(ConfigError) as caught:
        load_sources(tmp_path, sources, **environ)
    return caught.value


def erp(**options: Any) -> dict[str, Any]:
    return {"ErpStock": {"Url": "https://erp.example/x", **options}}


def sales(**options: Any) -> dict[str, Any]:
    return {"SalesData": {"Url": "https://erp.example/sales", **options}}


POST = {"Method": "POST"}


def test_defaults_are_a_plain_get(tmp_path: Path) -> None:
    """An endpoint without request options sends a GET, window parameters on, TLS verified."""
    endpoint = load_sources(tmp_path, sales()).sources["sales_data"].primary
    assert endpoint.request == RequestSettings()
    assert endpoint.request.method is HttpMethod.GET
    assert endpoint.request.window_parameters
    assert endpoint.request.tls.verify


def test_every_request_option_is_read(tmp_path: Path) -> None:
    """Method, Query, Body, timeouts, rate, proxy and error envelope land in RequestSettings."""
    options = {
        "method": "post",
        "Query": {"add-row-count": True, "limit": 0, "datum": "{date_to:%d.%m.%Y}"},
        "Body": {"winstrom": {"datum": "{date_to}"}},
        "ContentType": "application/json; charset=utf-8",
        "WindowParameters": False,
        "ConnectTimeout": "00:00:05",
        "ReadTimeout": "00:00:30",
        "MaxRequestsPerSecond": 2,
        "Proxy": "env:PROXY",
        "ErrorWhen": {"Path": "winstrom.success", "Equals": False},
        "ErrorMessagePath": "winstrom.results[0].errors[0].message",
    }
    settings = load_sources(tmp_path, sales(**options), PROXY="http://u:p@proxy.example:3128")
    request = settings.sources["sales_data"].primary.request
    assert request.method is HttpMethod.POST
    assert request.query == (
        ("add-row-count", "true"),
        ("limit", "0"),
        ("datum", "{date_to:%d.%m.%Y}"),
    )
    assert json.loads(request.body or "") == {"winstrom": {"datum": "{date_to}"}}
    assert request.content_type == "application/json; charset=utf-8"
    assert not request.window_parameters
    assert (request.connect_timeout, request.read_timeout) == (
        timedelta(seconds=5),
        timedelta(seconds=30),
    )
    assert request.max_requests_per_second == 2.0
    assert request.proxy is not None
    assert request.proxy.value == "http://u:p@proxy.example:3128"
    assert request.error_when == ErrorCondition(path=json_path("winstrom.success"), equals="false")
    assert request.error_message_path == json_path("winstrom.results[0].errors[0].message")


def test_templates_parse_into_text_and_placeholders() -> None:
    """Literal braces, ISO and formatted placeholders become the template's parts."""
    template = parse_template("a{{b}}{date_from}-{date_to:%d.%m.%Y}", "K", has_window=True)
    assert template == Template(
        ("a{b}", Placeholder("date_from"), "-", Placeholder("date_to", "%d.%m.%Y"))
    )


def test_new_paging_kinds_are_read(tmp_path: Path) -> None:
    """next, link and cursor kinds, and paging in the body, land in PagingSettings."""
    settings = load_sources(
        tmp_path,
        {
            "ErpStock": {
                "Url": "https://erp.example/x",
                "RecordsPath": "data",
                "Paging": {"Kind": "next", "NextPath": "links.next", "MaxPages": 50},
            },
            "EshopStock": {"Url": "https://e.example/x", "Paging": {"Kind": "LINK"}},
            "Lots": {
                "Url": "https://erp.example/lots",
                "Method": "POST",
                "RecordsPath": "items",
                "Paging": {
                    "Kind": "cursor",
                    "In": "body",
                    "CursorPath": "meta.cursor",
                    "CursorParameter": "page.after",
                },
            },
        },
    )
    erp_paging = settings.sources["erp_stock"].primary.paging
    assert erp_paging is not None
    assert (erp_paging.kind, erp_paging.next_path, erp_paging.max_pages) == (
        PagingKind.NEXT,
        json_path("links.next"),
        50,
    )
    eshop_paging = settings.sources["eshop_stock"].primary.paging
    assert eshop_paging is not None
    assert eshop_paging.kind is PagingKind.LINK
    lots = settings.sources["lots"].primary.paging
    assert lots is not None
    assert (lots.kind, lots.parameters_in, lots.position_parameter, lots.page_size) == (
        PagingKind.CURSOR,
        ParametersIn.BODY,
        "page.after",
        None,
    )


BAD_OPTIONS: list[tuple[dict[str, Any], str, str]] = [
    (sales(Url="https://e.example/{date_until}"), "SalesData:Url", "unknown placeholder"),
    (erp(Url="https://e.example/x?d={date_to}"), "ErpStock:Url", "needs a window"),
    (sales(Url="https://{date_to}.example/x"), "SalesData:Url", "not the host"),
    (sales(Url="https://e.example/x?a={"), "SalesData:Url", "literal braces"),
    (sales(Query={"d": "{date_to:%H:%M}"}), "SalesData:Query:d", "%H is not a date directive"),
    (sales(Query={"d": "{date_to:dd.mm}"}), "SalesData:Query:d", "not a strftime date format"),
    (sales(Query={"d": "{date_to!r}"}), "SalesData:Query:d", "no conversion"),
    (sales(Query={"d": "{}"}), "SalesData:Query:d", "unknown placeholder {}"),
    (sales(Query={"date_from": "x"}), "SalesData:Query:date_from", "carry the window"),
    (sales(Query={"d": ["x"]}), "SalesData:Query:d", "expected text"),
    (erp(Query={"d": "{date_from}"}), "ErpStock:Query:d", "needs a window"),
    (sales(**POST, Body={"a": {"b": ["{nope}"]}}), "SalesData:Body:a:b:0", "unknown placeholder"),
    (erp(Body={"a": 1}), "ErpStock:Body", "set Method to POST"),
    (erp(**POST, Body="text"), "ErpStock:Body", "object or array"),
    (erp(Method="PUT"), "ErpStock:Method", "GET or POST"),
    (erp(ContentType="text/plain"), "ErpStock:ContentType", "only with Method POST"),
    (
        erp(**POST, ContentType="a/b", Headers={"content-type": "c/d"}),
        "ErpStock:ContentType",
        "given twice",
    ),
    (erp(WindowParameters=False), "ErpStock:WindowParameters", "only for history sources"),
    (erp(ConnectTimeout="00:00:00"), "ErpStock:ConnectTimeout", "greater than zero"),
    (erp(MaxRequestsPerSecond=0), "ErpStock:MaxRequestsPerSecond", "above 0"),
    (erp(MaxRequestsPerSecond="2"), "ErpStock:MaxRequestsPerSecond", "expected a number"),
    (erp(Url="http://e.example/x", Tls={"Verify": False}), "ErpStock:Tls", "https"),
    (erp(Tls={"Verify": "no"}), "ErpStock:Tls:Verify", "true or false"),
    (erp(Tls={"CaBundle": "/nonexistent/ca.pem"}), "ErpStock:Tls:CaBundle", "cannot read"),
    (erp(Tls={"ClientKey": "env:KEY"}), "ErpStock:Tls:ClientKey", "needs ClientCertificate"),
    (erp(Tls={"Verity": True}), "ErpStock:Tls:Verity", "did you mean Verify?"),
    (erp(Proxy="socks9://p"), "ErpStock:Proxy", "http(s) proxy URL"),
    (erp(ErrorWhen={"Path": "ok"}), "ErpStock:ErrorWhen", "exactly one of"),
    (erp(ErrorWhen={"Equals": "false"}), "ErpStock:ErrorWhen:Path", "required"),
    (erp(ErrorWhen={"Path": "a..b", "Equals": 1}), "ErpStock:ErrorWhen:Path", "empty step"),
    (erp(ErrorMessagePath="a["), "ErpStock:ErrorMessagePath", "not closed"),
    (erp(Csv={}, ErrorMessagePath="m"), "ErpStock:ErrorMessagePath", "not for a Csv payload"),
    (erp(Paging={"Kind": "next"}), "ErpStock:Paging:NextPath", "required"),
    (erp(Paging={"Kind": "next", "NextPath": "n"}), "ErpStock:Paging:NextPath", "RecordsPath"),
    (erp(Paging={"Kind": "link", "PageSize": 5}), "ErpStock:Paging:PageSize", "only for Kind"),
    (erp(Paging={"Kind": "link", "In": "body"}), "ErpStock:Paging:In", "only for Kind"),
    (
        erp(RecordsPath="d", Paging={"Kind": "cursor", "CursorPath": "c", "SizeParameter": "n"}),
        "ErpStock:Paging:SizeParameter",
        "needs PageSize",
    ),
    (
        erp(Paging={"Kind": "offset", "PageSize": 5, "In": "body"}),
        "ErpStock:Paging:In",
        "needs Method POST",
    ),
    (
        erp(**POST, Paging={"Kind": "offset", "PageSize": 5, "In": "sideways"}),
        "ErpStock:Paging:In",
        "one of query, body",
    ),
    (
        erp(**POST, Body={"w": {"start": 0}}, Paging={"Kind": "offset", "PageSize": 5, "In": "body",
                                                      "OffsetParameter": "w.start"}),
        "ErpStock:Paging:OffsetParameter",
        "the Body has w.start already",
    ),
    (
        erp(**POST, Body={"w": 1}, Paging={"Kind": "offset", "PageSize": 5, "In": "body",
                                           "OffsetParameter": "w.start"}),
        "ErpStock:Paging:OffsetParameter",
        "not an object",
    ),
    (
        erp(**POST, Body=[1], Paging={"Kind": "offset", "PageSize": 5, "In": "body"}),
        "ErpStock:Paging:OffsetParameter",
        "Body that is an object",
    ),
    (
        erp(**POST, Paging={"Kind": "offset", "PageSize": 5, "In": "body",
                            "OffsetParameter": "a[0]"}),
        "ErpStock:Paging:OffsetParameter",
        "no array index",
    ),
    (
        erp(Query={"limit": 5}, Paging={"Kind": "offset", "PageSize": 5}),
        "ErpStock:Paging:SizeParameter",
        "Query has limit already",
    ),
]  # fmt: skip


@pytest.mark.parametrize(("sources", "key", "problem"), BAD_OPTIONS)
def test_bad_request_options_are_refused_naming_the_key(
    tmp_path: Path, sources: dict[str, Any], key: str, problem: str
) -> None:
    """Every wrong request, placeholder or paging option fails at load with its key."""
    error = error_of(tmp_path, sources, KEY="-----BEGIN PRIVATE KEY-----")
    assert error.key == f"Sources:{key}"
    assert problem in error.problem


def test_a_client_key_that_is_not_pem_is_refused_without_showing_it(tmp_path: Path) -> None:
    """A ClientKey whose text is not a PEM key is refused; the message never quotes it."""
    certificate = tmp_path / "client.crt"
    certificate.write_text("cert")
    error = error_of(
        tmp_path,
        erp(Tls={"ClientCertificate": "client.crt", "ClientKey": "env:KEY"}),
        KEY="hunter2-secret-key",
    )
    assert error.key == "Sources:ErpStock:Tls:ClientKey"
    assert "hunter2" not in str(error)


@pytest.mark.parametrize("option", ["Method", "Query", "Tls", "Proxy", "ErrorMessagePath"])
def test_request_options_on_a_demo_endpoint_are_refused(tmp_path: Path, option: str) -> None:
    """A demo endpoint makes no requests: request options on it are refused."""
    value: Any = {"Verify": True} if option == "Tls" else {} if option == "Query" else "GET"
    error = error_of(tmp_path, {"ErpStock": {"Type": "demo", option: value}})
    assert error.key == f"Sources:ErpStock:{option}"
    assert "only for Type http" in error.problem


def test_describe_writes_every_request_option_masked_and_loads_again(tmp_path: Path) -> None:
    """describe() shows every new option, secrets masked, and its output loads to the same."""
    authority = trustme.CA()
    authority.cert_pem.write_to_path(str(tmp_path / "ca.pem"))
    client = authority.issue_cert("catalog-refresher")
    client.cert_chain_pems[0].write_to_path(str(tmp_path / "client.crt"))
    key_text = client.private_key_pem.bytes().decode()
    sources = {
        "SalesData": {
            "Url": "https://erp.example/c/f/(datVyst >= '{date_from}').json?detail=custom:kod",
            "Method": "POST",
            "Query": {"api_key": "k-123456", "token": "env:TOKEN", "datum": "{date_to:%d.%m.%Y}"},
            "Body": {"winstrom": {"datum": "{date_to}"}},
            "WindowParameters": False,
            "ConnectTimeout": "00:00:05",
            "ReadTimeout": "00:00:30",
            "MaxRequestsPerSecond": 0.5,
            "Tls": {
                "CaBundle": str(tmp_path / "ca.pem"),
                "ClientCertificate": str(tmp_path / "client.crt"),
                "ClientKey": "env:CLIENT_KEY",
            },
            "Proxy": "http://proxy-user:proxy-pass@proxy.example:3128",
            "RecordsPath": "winstrom.items",
            "ErrorWhen": {"Path": "winstrom.success", "Equals": "false"},
            "ErrorMessagePath": "winstrom.message",
            "Paging": {
                "Kind": "offset",
                "In": "body",
                "PageSize": 100,
                "OffsetParameter": "winstrom.start",
                "SizeParameter": "winstrom.limit",
            },
        },
        "ErpStock": {
            "Url": "https://erp.example/x",
            "RecordsPath": "data",
            "Tls": {"Verify": False},
            "Paging": {"Kind": "cursor", "CursorPath": "meta.next", "PageSize": 5},
        },
    }
    environ = {"TOKEN": "tok-secret-99", "CLIENT_KEY": key_text}
    settings = load_sources(tmp_path, sources, **environ)
    described = describe(settings)["Sources"]
    text = json.dumps(described)
    for secret in ("k-123456", "tok-secret-99", "proxy-pass", "PRIVATE KEY"):
        assert secret not in text
    sales_data = described["SalesData"]
    assert sales_data["Query"] == {
        "api_key": "***",
        "token": "***(env:TOKEN)",
        "datum": "{date_to:%d.%m.%Y}",
    }
    assert sales_data["Tls"]["ClientKey"] == "***(env:CLIENT_KEY)"
    assert sales_data["Proxy"] == "http://proxy-user:***@proxy.example:3128"
    assert sales_data["Paging"]["In"] == "body"
    assert sales_data["ErrorWhen"] == {"Path": "winstrom.success", "Equals": "false"}
    assert described["ErpStock"]["Tls"] == {
        "Verify": False,
        "CaBundle": None,
        "ClientCertificate": None,
        "ClientKey": None,
    }
    assert described["ErpStock"]["Paging"]["CursorParameter"] == "cursor"
    # With the secrets given back, what describe wrote loads to the same settings.
    sales_data["Query"] = sources["SalesData"]["Query"]
    sales_data["Tls"]["ClientKey"] = "env:CLIENT_KEY"
    sales_data["Proxy"] = sources["SalesData"]["Proxy"]
    again = load_sources(tmp_path, described, **environ)
    assert again.sources == settings.sources


def test_a_secret_url_with_a_bad_placeholder_is_refused_without_quoting_it(
    tmp_path: Path,
) -> None:
    """A Url from env: whose template is wrong names its reference, not its text."""
    error = error_of(tmp_path, erp(Url="env:ERP_URL"), ERP_URL="https://e.example/x?k={s3cr3t}")
    assert error.key == "Sources:ErpStock:Url"
    assert "env:ERP_URL" in error.problem
    assert "s3cr3t" not in str(error)


def test_a_secret_query_value_is_taken_as_it_is(tmp_path: Path) -> None:
    """A Query value from env: is never parsed as a template, so braces in it are fine."""
    settings = load_sources(tmp_path, erp(Query={"key": "env:KEY"}), KEY="a{b}c")
    ((name, value),) = settings.sources["erp_stock"].primary.request.query
    assert name == "key"
    assert not isinstance(value, str)
    assert value.value == "a{b}c"
