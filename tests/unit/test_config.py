"""config.load / describe / parse_timespan: the contract of section 3."""

from __future__ import annotations

import dataclasses
import json
from datetime import timedelta
from pathlib import Path
from types import MappingProxyType

import pytest

from catalog_refresher.config import describe, load
from catalog_refresher.config.settings import (
    EndpointType,
    LogFormat,
    RepositoryOptions,
    Secret,
    Settings,
    reveal,
)
from catalog_refresher.config.values import format_timespan, mask_url, parse_timespan
from catalog_refresher.domain.specs import SPECS
from catalog_refresher.errors import ConfigError
from tests.helpers import json_path

ERP = '"Sources": {"ErpStock": {"Url": "http://erp.example/api/stock"}}'


def write(directory: Path, name: str, text: str) -> Path:
    path = directory / name
    path.write_text(text, encoding="utf-8")
    return path


def load_text(
    tmp_path: Path, text: str, environ: dict[str, str] | None = None, **kwargs: str | None
) -> Settings:
    path = write(tmp_path, "appsettings.json", text)
    return load(path, environment=kwargs.get("environment"), environ=environ or {})


def error_of(tmp_path: Path, text: str, environ: dict[str, str] | None = None) -> ConfigError:
    with pytest.raises(ConfigError) as caught:
        load_text(tmp_path, text, environ)
    return caught.value


# --- defaults and layering ----------------------------------------------------------------


def test_defaults_equal_the_seed() -> None:
    """Without a file or variables every option has the seed's default and no source is set."""
    settings = load(None, environment=None, environ={})
    repository = settings.repository
    intervals = [
        repository.intervals["erp_stock"],
        repository.intervals["eshop_stock"],
        repository.intervals["sales_data"],
        repository.intervals["purchase_history"],
        repository.intervals["consumed_materials"],
        repository.intervals["transport_data"],
        repository.intervals["attributes"],
        repository.intervals["lots"],
        repository.intervals["stock_taking"],
        repository.intervals["suppliers"],
    ]
    assert intervals == [timedelta(minutes=m) for m in (5, 10, 30, 60, 30, 15, 60, 15, 10, 120)]
    assert (
        repository.retentions["sales_data"],
        repository.retentions["purchase_history"],
        repository.retentions["consumed_materials"],
    ) == (365, 365, 720)
    assert repository.max_concurrent_refreshes == 3
    assert repository.refresh_timeout == timedelta(minutes=10)
    assert repository.enable_metrics is True
    assert dict(settings.sources) == {}
    assert settings.store.url == "sqlite:///catalog.db"
    assert (settings.api.host, settings.api.port, settings.api.admin_token) == (
        "127.0.0.1",
        8000,
        None,
    )


def test_repository_options_default_each_source_from_its_spec() -> None:
    """A source left out of intervals or retentions gets its spec's default; typos are refused."""
    options = RepositoryOptions(intervals={"lots": timedelta(0)}, retentions={"sales_data": 7})
    assert options.interval(SPECS["lots"]) == timedelta(0)
    assert options.interval(SPECS["erp_stock"]) == SPECS["erp_stock"].default_interval
    assert options.retention_days(SPECS["sales_data"]) == 7
    assert options.retention_days(SPECS["consumed_materials"]) == 720
    assert options.retention_days(SPECS["erp_stock"]) is None
    assert list(options.intervals) == list(SPECS)
    with pytest.raises(TypeError):
        options.intervals["lots"] = timedelta(1)  # type: ignore[index]
    with pytest.raises(ValueError, match="erp_stok"):
        RepositoryOptions(intervals={"erp_stok": timedelta(0)})
    with pytest.raises(ValueError, match="erp_stock"):
        RepositoryOptions(retentions={"erp_stock": 30})  # a snapshot source has no window


def test_a_source_spec_has_a_window_exactly_when_it_is_history() -> None:
    """A history spec without a retention option, or a snapshot spec with one, is refused."""
    with pytest.raises(ValueError, match="needs a retention option"):
        dataclasses.replace(SPECS["sales_data"], retention_option=None, default_retention_days=None)
    with pytest.raises(ValueError, match="has no window"):
        dataclasses.replace(SPECS["erp_stock"], retention_option="X", default_retention_days=1)


def test_file_values_take_effect(tmp_path: Path) -> None:
    """Options written in the file replace the defaults; the others keep theirs."""
    settings = load_text(
        tmp_path,
        """{"CatalogRepository": {"ErpStockRefreshInterval": "00:02:00",
             "SalesHistoryRetentionDays": 180, "EnableMetrics": false, "MaxDeleteShare": 0.25}}""",
    )
    repository = settings.repository
    assert repository.intervals["erp_stock"] == timedelta(minutes=2)
    assert repository.retentions["sales_data"] == 180
    assert repository.enable_metrics is False
    assert repository.max_delete_share == 0.25
    assert repository.intervals["eshop_stock"] == timedelta(minutes=10)


def test_environment_variables_override_the_file(tmp_path: Path) -> None:
    """`Section__Key` variables, in any case, win over the file and are converted from text."""
    environ = {
        "CatalogRepository__ErpStockRefreshInterval": "00:01:00",
        "CATALOGREPOSITORY__SALESHISTORYRETENTIONDAYS": "180",
        "catalogrepository__enablemetrics": "FALSE",
        "CatalogRepository__MaxDeleteShare": "0.3",
        "Api__Port": "9000",
        "Sources__ErpStock__Url": "http://override.example/stock",
        "PATH": "/usr/bin",
        "Unrelated__Thing": "ignored",
    }
    settings = load_text(
        tmp_path,
        '{"CatalogRepository": {"ErpStockRefreshInterval": "00:02:00"}, ' + ERP + "}",
        environ,
    )
    repository = settings.repository
    assert repository.intervals["erp_stock"] == timedelta(minutes=1)
    assert repository.retentions["sales_data"] == 180
    assert repository.enable_metrics is False
    assert repository.max_delete_share == 0.3
    assert settings.api.port == 9000
    assert settings.sources["erp_stock"].primary.url == "http://override.example/stock"


def test_environment_variables_apply_without_a_file() -> None:
    """`path=None` still reads the variables, and they can configure a whole source."""
    environ = {"Sources__Lots__Url": "https://lots.example", "Sources__Lots__Priority": "4"}
    settings = load(None, environment=None, environ=environ)
    assert settings.sources["lots"].primary.url == "https://lots.example"
    assert settings.sources["lots"].priority == 4


@pytest.mark.parametrize("via_variable", [False, True])
def test_environment_file_overrides_the_base_file(tmp_path: Path, via_variable: bool) -> None:
    """`appsettings.<Env>.json` is layered over the base, named by argument or variable."""
    write(
        tmp_path,
        "appsettings.Development.json",
        '{"CatalogRepository": {"LotsRefreshInterval": "00:00:30"}, "Api": {"Port": 8081}}',
    )
    base = '{"CatalogRepository": {"LotsRefreshInterval": "00:20:00", "RetryAttempts": 5}}'
    if via_variable:
        environ = {"CATALOG_REFRESHER_ENVIRONMENT": "Development"}
        settings = load_text(tmp_path, base, environ)
    else:
        settings = load_text(tmp_path, base, environment="Development")
    assert settings.repository.intervals["lots"] == timedelta(seconds=30)
    assert settings.repository.retry_attempts == 5  # untouched by the overlay
    assert settings.api.port == 8081


def test_environment_argument_wins_over_the_variable(tmp_path: Path) -> None:
    """An explicit `environment=` is used even when CATALOG_REFRESHER_ENVIRONMENT names another."""
    write(tmp_path, "appsettings.Staging.json", '{"Api": {"Port": 8082}}')
    write(tmp_path, "appsettings.Production.json", '{"Api": {"Port": 8083}}')
    environ = {"CATALOG_REFRESHER_ENVIRONMENT": "Production"}
    settings = load_text(tmp_path, "{}", environ, environment="Staging")
    assert settings.api.port == 8082


def test_missing_environment_file_is_fine(tmp_path: Path) -> None:
    """Naming an environment whose file does not exist just uses the base file."""
    settings = load_text(tmp_path, '{"Api": {"Port": 8001}}', environment="Nowhere")
    assert settings.api.port == 8001


def test_environment_variables_win_over_the_environment_file(tmp_path: Path) -> None:
    """Variables are the last layer, above the environment file."""
    write(tmp_path, "appsettings.Development.json", '{"Api": {"Port": 8081}}')
    settings = load_text(tmp_path, "{}", {"Api__Port": "8082"}, environment="Development")
    assert settings.api.port == 8082


def test_null_in_a_later_layer_removes_a_source(tmp_path: Path) -> None:
    """A source set to null by the environment file is not configured."""
    write(tmp_path, "appsettings.Dev.json", '{"Sources": {"ErpStock": null}}')
    assert "erp_stock" not in load_text(tmp_path, "{" + ERP + "}", environment="Dev").sources


def test_missing_file_is_an_error_naming_it(tmp_path: Path) -> None:
    """A configuration path that does not exist is refused, naming the path."""
    missing = tmp_path / "nope.json"
    with pytest.raises(ConfigError) as caught:
        load(missing, environment=None, environ={})
    assert str(missing) in str(caught.value)


# --- syntax --------------------------------------------------------------------------------


def test_comments_are_allowed(tmp_path: Path) -> None:
    """`//` and `/* */` comments, as ASP.NET allows them, are ignored."""
    settings = load_text(
        tmp_path,
        """// the seed's options
        {
          /* five minutes is too slow here */
          "CatalogRepository": { "ErpStockRefreshInterval": "00:03:00" } // trailing
        }""",
    )
    assert settings.repository.intervals["erp_stock"] == timedelta(minutes=3)


def test_keys_match_case_insensitively(tmp_path: Path) -> None:
    """Section, option, source and endpoint keys match in any case; header names keep theirs."""
    settings = load_text(
        tmp_path,
        """{"catalogrepository": {"ERPSTOCKREFRESHINTERVAL": "00:04:00"},
            "SOURCES": {"erpstock": {"url": "http://erp.example", "TYPE": "HTTP",
                        "headers": {"X-Api-Key": "k"}, "priority": 2,
                        "BACKUP": {"URL": "http://replica.example"}}},
            "api": {"PORT": 8500}, "logging": {"level": "debug", "FORMAT": "Json"}}""",
    )
    assert settings.repository.intervals["erp_stock"] == timedelta(minutes=4)
    source = settings.sources["erp_stock"]
    assert source.primary.type is EndpointType.HTTP
    assert list(source.primary.headers) == ["X-Api-Key"]
    assert source.priority == 2
    assert source.backup is not None
    assert source.backup.url == "http://replica.example"
    assert settings.api.port == 8500
    assert (settings.logging.level, settings.logging.format) == ("DEBUG", LogFormat.JSON)


def test_duplicate_keys_differing_in_case_are_refused(tmp_path: Path) -> None:
    """Two spellings of one key in one object are an error, not a silent pick."""
    error = error_of(tmp_path, '{"Api": {"Port": 1, "port": 2}}')
    assert "port" in str(error)


def test_unknown_top_level_sections_are_ignored(tmp_path: Path) -> None:
    """ASP.NET leftovers such as AllowedHosts and Logging:LogLevel do not stop loading."""
    settings = load_text(
        tmp_path,
        """{"AllowedHosts": "*", "Kestrel": {"Endpoints": {}},
            "Logging": {"LogLevel": {"Default": "Information"}}}""",
    )
    assert settings.logging.level == "INFO"


# --- time spans ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("00:05:00", timedelta(minutes=5)),
        ("1.00:00:00", timedelta(days=1)),
        ("2.03:04:05", timedelta(days=2, hours=3, minutes=4, seconds=5)),
        ("00:00:00.500", timedelta(milliseconds=500)),
        ("00:00:01.1234567", timedelta(seconds=1, microseconds=123456)),
        ("23:59:59", timedelta(hours=23, minutes=59, seconds=59)),
        ("-00:00:01", timedelta(seconds=-1)),
        (" 00:00:00 ", timedelta(0)),
    ],
)
def test_parse_timespan_accepts_dotnet_forms(text: str, expected: timedelta) -> None:
    """Days, hours, minutes, seconds and up to seven fraction digits are read as .NET does."""
    assert parse_timespan(text) == expected


@pytest.mark.parametrize(
    "text", ["abc", "", "5", "05:00", "24:00:00", "00:60:00", "00:00:60", "1.2.3", "00:05:00x"]
)
def test_parse_timespan_refuses_other_text(text: str) -> None:
    """Anything but `[d.]hh:mm:ss[.fff]` is refused, with the expected format in the message."""
    with pytest.raises(ValueError, match=r"\[d\.\]hh:mm:ss\[\.fff\]"):
        parse_timespan(text)


@pytest.mark.parametrize(
    "value",
    [
        timedelta(minutes=5),
        timedelta(days=1, seconds=1),
        timedelta(milliseconds=500),
        timedelta(microseconds=7),
    ],
)
def test_format_timespan_round_trips(value: timedelta) -> None:
    """Formatting and parsing again gives the same duration."""
    assert parse_timespan(format_timespan(value)) == value


def test_format_timespan_writes_milliseconds() -> None:
    """Whole milliseconds are written with three fraction digits, as in the file."""
    assert format_timespan(timedelta(days=1, milliseconds=500)) == "1.00:00:00.500"


# --- validation errors name the key --------------------------------------------------------


def test_unparsable_interval_names_the_key(tmp_path: Path) -> None:
    """A bad interval fails with ASP.NET's colon key path and the text that was refused."""
    error = error_of(tmp_path, '{"CatalogRepository": {"ErpStockRefreshInterval": "abc"}}')
    assert str(error) == (
        "CatalogRepository:ErpStockRefreshInterval: "
        "cannot parse 'abc' as a time span [d.]hh:mm:ss[.fff]"
    )


def test_unparsable_interval_from_environment_names_the_key() -> None:
    """The same check applies to a value from an environment variable."""
    environ = {"CatalogRepository__LotsRefreshInterval": "5m"}
    with pytest.raises(ConfigError, match="CatalogRepository:LotsRefreshInterval"):
        load(None, environment=None, environ=environ)


def test_interval_under_one_second_is_refused(tmp_path: Path) -> None:
    """A positive interval below one second is an error naming the key."""
    error = error_of(tmp_path, '{"CatalogRepository": {"LotsRefreshInterval": "00:00:00.500"}}')
    assert error.key == "CatalogRepository:LotsRefreshInterval"


def test_negative_interval_is_refused(tmp_path: Path) -> None:
    """A negative interval is an error naming the key."""
    error = error_of(tmp_path, '{"CatalogRepository": {"LotsRefreshInterval": "-00:05:00"}}')
    assert error.key == "CatalogRepository:LotsRefreshInterval"
    assert "negative" in error.problem


def test_zero_interval_disables_the_source(tmp_path: Path) -> None:
    """`00:00:00` is accepted and leaves a configured source disabled."""
    settings = load_text(
        tmp_path, '{"CatalogRepository": {"ErpStockRefreshInterval": "00:00:00"}, ' + ERP + "}"
    )
    assert "erp_stock" in settings.sources
    assert not settings.enabled("erp_stock")


def test_negative_retention_is_refused(tmp_path: Path) -> None:
    """Retention days below zero are an error naming the key."""
    error = error_of(tmp_path, '{"CatalogRepository": {"SalesHistoryRetentionDays": -1}}')
    assert error.key == "CatalogRepository:SalesHistoryRetentionDays"


@pytest.mark.parametrize(
    ("section", "key", "value"),
    [
        ("CatalogRepository", "MaxConcurrentRefreshes", "0"),
        ("CatalogRepository", "RetryAttempts", "0"),
        ("CatalogRepository", "CircuitBreakerFailureThreshold", "0"),
        ("CatalogRepository", "StaleAfterIntervals", "0"),
        ("CatalogRepository", "MaxDeleteShare", "1.5"),
        ("CatalogRepository", "MaxDeleteShare", "NaN"),
        ("CatalogRepository", "RefreshTimeout", '"00:00:00"'),
        ("CatalogRepository", "RetryBaseDelay", '"-00:00:01"'),
        ("CatalogRepository", "MaxConcurrentRefreshes", '"3"'),
        ("CatalogRepository", "MaxConcurrentRefreshes", "3.5"),
        ("CatalogRepository", "EnableMetrics", '"true"'),
        ("CatalogRepository", "EnableMetrics", "1"),
        ("CatalogRepository", "RetryAttempts", "true"),
        ("Api", "Port", "0"),
        ("Api", "Port", "65536"),
        ("Api", "Host", '""'),
        ("Logging", "Level", '"loud"'),
        ("Logging", "Format", '"xml"'),
    ],
)
def test_out_of_range_or_mistyped_values_name_the_key(
    tmp_path: Path, section: str, key: str, value: str
) -> None:
    """Each bound and JSON type check fails with the option's colon path."""
    error = error_of(tmp_path, f'{{"{section}": {{"{key}": {value}}}}}')
    assert error.key == f"{section}:{key}"


@pytest.mark.parametrize(
    ("variable", "value"),
    [("Api__Port", "eighty"), ("CatalogRepository__EnableMetrics", "yes")],
)
def test_unconvertible_environment_values_name_the_key(variable: str, value: str) -> None:
    """Text from a variable that is not a valid int or bool is an error naming the key."""
    with pytest.raises(ConfigError) as caught:
        load(None, environment=None, environ={variable: value})
    assert caught.value.key == variable.replace("__", ":")


def test_unknown_key_in_a_known_section_suggests_the_right_one(tmp_path: Path) -> None:
    """A misspelt option is refused by name, with a did-you-mean suggestion."""
    error = error_of(tmp_path, '{"CatalogRepository": {"ErpStokRefreshInterval": "00:05:00"}}')
    assert error.key == "CatalogRepository:ErpStokRefreshInterval"
    assert "did you mean ErpStockRefreshInterval?" in error.problem


def test_unknown_key_inside_a_source_is_refused(tmp_path: Path) -> None:
    """Endpoint and backup keys are checked too."""
    text = '{"Sources": {"ErpStock": {"Url": "http://e.example", "Backup": {"Uri": "x"}}}}'
    assert error_of(tmp_path, text).key == "Sources:ErpStock:Backup:Uri"


def test_unknown_source_lists_the_known_ones(tmp_path: Path) -> None:
    """An unknown source key is named, followed by the ten valid keys."""
    error = error_of(tmp_path, '{"Sources": {"ErpStok": {"Url": "http://e.example"}}}')
    assert str(error).startswith("Sources:ErpStok: unknown source; known: ErpStock, EshopStock, ")
    assert "Suppliers" in str(error)


def test_missing_url_is_refused(tmp_path: Path) -> None:
    """An http source without Url is an error naming `Sources:<Key>:Url`."""
    error = error_of(tmp_path, '{"Sources": {"ErpStock": {"Priority": 1}}}')
    assert str(error) == "Sources:ErpStock:Url: required for Type http"


@pytest.mark.parametrize("url", ["ftp://erp.example", "erp.example/stock", "http://"])
def test_non_http_url_is_refused(tmp_path: Path, url: str) -> None:
    """A source Url must be an http(s) URL with a host."""
    error = error_of(tmp_path, f'{{"Sources": {{"ErpStock": {{"Url": "{url}"}}}}}}')
    assert error.key == "Sources:ErpStock:Url"


def test_store_url_scheme_is_checked(tmp_path: Path) -> None:
    """Store:Url must be a sqlite:/// or postgresql:// URL."""
    assert error_of(tmp_path, '{"Store": {"Url": "mysql://db/x"}}').key == "Store:Url"


def test_store_lease_is_read_and_checked(tmp_path: Path) -> None:
    """Store:Lease (how long a silent replica keeps its sources) is a time span >= 3 s."""
    assert load_text(tmp_path, "{}").store.lease == timedelta(seconds=30)
    settings = load_text(tmp_path, '{"Store": {"Url": "postgresql://db/x", "Lease": "00:00:10"}}')
    assert settings.store.lease == timedelta(seconds=10)
    assert describe(settings)["Store"]["Lease"] == "00:00:10"
    assert error_of(tmp_path, '{"Store": {"Lease": "00:00:01"}}').key == "Store:Lease"
    assert error_of(tmp_path, '{"Store": {"Lease": "soon"}}').key == "Store:Lease"


def test_wrong_section_type_is_refused(tmp_path: Path) -> None:
    """A known section that is not an object is an error naming it."""
    assert error_of(tmp_path, '{"CatalogRepository": 5}').key == "CatalogRepository"


# --- sources -------------------------------------------------------------------------------


def test_a_full_source_is_read(tmp_path: Path) -> None:
    """Every source and endpoint option lands in SourceSettings, keyed by source id."""
    settings = load_text(
        tmp_path,
        """{"Sources": {
             "SalesData": {"Type": "demo"},
             "ErpStock": {"Type": "http", "Url": "http://erp.example/api/stock",
                          "Headers": {"Accept": "application/json"}, "RecordsPath": "data.items",
                          "RequestTimeout": "00:00:20", "Priority": 10, "MaxDeleteShare": 0.9,
                          "Backup": {"Url": "https://replica.example/api/stock",
                                     "RequestTimeout": "00:02:00"}}}}""",
    )
    assert isinstance(settings.sources, MappingProxyType)
    assert list(settings.sources) == ["erp_stock", "sales_data"]  # in SPECS order
    erp = settings.sources["erp_stock"]
    assert erp.primary.url == "http://erp.example/api/stock"
    assert erp.primary.records_path == json_path("data.items")
    assert erp.primary.request_timeout == timedelta(seconds=20)
    assert reveal(erp.primary.headers["Accept"]) == "application/json"
    assert (erp.priority, erp.max_delete_share) == (10, 0.9)
    assert erp.backup is not None
    assert erp.backup.type is EndpointType.HTTP
    assert erp.backup.request_timeout == timedelta(minutes=2)
    assert dict(erp.backup.headers) == {}  # headers are not inherited by the backup
    sales = settings.sources["sales_data"]
    assert (sales.primary.type, sales.primary.url, sales.backup) == (EndpointType.DEMO, None, None)
    assert sales.primary.request_timeout == timedelta(minutes=1)


# --- secrets -------------------------------------------------------------------------------

SECRET = "s3cr3t-value-123"


def test_env_secrets_are_resolved_and_masked(tmp_path: Path) -> None:
    """`env:NAME` values resolve from `environ` and describe() shows only the reference."""
    settings = load_text(
        tmp_path,
        """{"Sources": {"ErpStock": {"Url": "http://erp.example",
                                     "Headers": {"Authorization": "env:ERP_TOKEN"}}},
            "Api": {"AdminToken": "env:ADMIN"}}""",
        {"ERP_TOKEN": SECRET, "ADMIN": SECRET + "-admin"},
    )
    header = settings.sources["erp_stock"].primary.headers["Authorization"]
    assert header == Secret(SECRET, "env:ERP_TOKEN")
    assert settings.api.admin_token == Secret(SECRET + "-admin", "env:ADMIN")
    described = json.dumps(describe(settings))
    assert SECRET not in described
    assert "***(env:ERP_TOKEN)" in described
    assert SECRET not in repr(settings)


def test_file_secrets_are_resolved_relative_to_the_config(tmp_path: Path) -> None:
    """`file:` reads the file (relative to the config's folder) without its trailing newline."""
    write(tmp_path, "token.txt", SECRET + "\n")
    settings = load_text(tmp_path, '{"Api": {"AdminToken": "file:token.txt"}}')
    assert settings.api.admin_token == Secret(SECRET, "file:token.txt")
    assert SECRET not in json.dumps(describe(settings))


def test_literal_header_values_are_masked_too(tmp_path: Path) -> None:
    """A header written literally is still a Secret and never shown by describe()."""
    settings = load_text(
        tmp_path,
        '{"Sources": {"Lots": {"Url": "http://l.example", "Headers": {"X-Key": "'
        + SECRET
        + '"}}}}',
    )
    assert settings.sources["lots"].primary.headers["X-Key"] == Secret(SECRET)
    assert SECRET not in json.dumps(describe(settings))


def test_missing_secret_variable_names_key_and_variable(tmp_path: Path) -> None:
    """An `env:` reference to an unset variable fails naming the key and the variable."""
    error = error_of(tmp_path, '{"Api": {"AdminToken": "env:NOT_SET"}}')
    assert error.key == "Api:AdminToken"
    assert "NOT_SET" in error.problem


def test_missing_secret_file_is_an_error(tmp_path: Path) -> None:
    """A `file:` reference to a missing file fails naming the key."""
    assert error_of(tmp_path, '{"Api": {"AdminToken": "file:/no/such/file"}}').key == (
        "Api:AdminToken"
    )


@pytest.mark.parametrize(
    "text",
    [
        '{"Sources": {"ErpStock": {"Url": "env:ERP_URL"}}}',
        '{"Store": {"Url": "env:ERP_URL"}}',
        '{"Sources": {"ErpStock": {"Url": "http://e.example", "Headers": {"A": "env:BAD"}}}}',
    ],
)
def test_secrets_never_appear_in_errors(tmp_path: Path, text: str) -> None:
    """A secret value that fails validation is not quoted in the error; its reference is."""
    environ = {"ERP_URL": "ftp://user:" + SECRET + "@host", "BAD": SECRET + "\r\nX: y"}
    error = error_of(tmp_path, text, environ)
    assert SECRET not in str(error)
    assert "env:" in str(error) or "line break" in str(error)


def test_url_passwords_are_masked_in_describe(tmp_path: Path) -> None:
    """A URL with a password is shown as `user:***@host`, and a store URL with one is a Secret."""
    settings = load_text(
        tmp_path,
        '{"Sources": {"ErpStock": {"Url": "http://erp:' + SECRET + '@erp.example/stock"}},'
        ' "Store": {"Url": "postgresql://app:' + SECRET + '@db.example/catalog"}}',
    )
    assert isinstance(settings.store.url, Secret)
    described = describe(settings)
    assert described["Sources"]["ErpStock"]["Url"] == "http://erp:***@erp.example/stock"
    assert described["Store"]["Url"] == "postgresql://app:***@db.example/catalog"
    assert SECRET not in json.dumps(described)


def test_mask_url_hides_credential_query_values() -> None:
    """Query parameters named like credentials are masked; others are kept."""
    assert mask_url("https://h/x?api_key=k1&page=2") == "https://h/x?api_key=***&page=2"
    assert mask_url("sqlite:///catalog.db") == "sqlite:///catalog.db"


# --- describe and immutability -------------------------------------------------------------


def test_describe_mirrors_the_file_shape(tmp_path: Path) -> None:
    """describe() is JSON-ready, uses the file's names and writes time spans back as text."""
    settings = load_text(tmp_path, '{"CatalogRepository": {"RetryBaseDelay": "00:00:00.250"}}')
    described = describe(settings)
    assert json.loads(json.dumps(described)) == described
    repository = described["CatalogRepository"]
    assert repository["ErpStockRefreshInterval"] == "00:05:00"
    assert repository["SuppliersRefreshInterval"] == "02:00:00"
    assert repository["RetryBaseDelay"] == "00:00:00.250"
    assert repository["EnableMetrics"] is True
    assert set(described) == {
        "CatalogRepository",
        "Sources",
        "Store",
        "Api",
        "Cache",
        "Refresh",
        "Alerts",
        "Logging",
    }
    assert described["Logging"] == {"Level": "INFO", "Format": "text"}


def test_describe_output_loads_back_to_the_same_settings(tmp_path: Path) -> None:
    """Feeding describe()'s repository section back in gives equal options."""
    original = load_text(tmp_path, '{"CatalogRepository": {"LotsRefreshInterval": "1.00:00:00"}}')
    again = load_text(
        tmp_path, json.dumps({"CatalogRepository": describe(original)["CatalogRepository"]})
    )
    assert again.repository == original.repository


def test_settings_are_immutable(tmp_path: Path) -> None:
    """Settings, their sections, the sources mapping and headers cannot be changed."""
    text = '{"Sources": {"ErpStock": {"Url": "http://e.example", "Headers": {"A": "b"}}}}'
    settings = load_text(tmp_path, text)
    with pytest.raises(dataclasses.FrozenInstanceError):
        settings.repository.enable_metrics = False  # type: ignore[misc]
    with pytest.raises(dataclasses.FrozenInstanceError):
        settings.api = settings.api  # type: ignore[misc]
    with pytest.raises(TypeError):
        settings.sources["lots"] = settings.sources["erp_stock"]  # type: ignore[index]
    with pytest.raises(TypeError):
        settings.sources["erp_stock"].primary.headers["A"] = "c"  # type: ignore[index]


def test_cache_alerts_and_protect_reads_sections(tmp_path: Path) -> None:
    """Cache:MaxSize, Api:ProtectReads and Alerts (secret headers masked) are read."""
    path = tmp_path / "appsettings.json"
    path.write_text(
        json.dumps(
            {
                "Cache": {"MaxSize": 5},
                "Api": {"ProtectReads": True, "AdminToken": "tok-en-1234"},
                "Alerts": {
                    "WebhookUrl": "http://hooks.example/x",
                    "Headers": {"X-Key": "env:HOOK_KEY"},
                    "Timeout": "00:00:05",
                },
            }
        )
    )
    settings = load(path, environment=None, environ={"HOOK_KEY": "hook-secret-value"})
    assert settings.cache.max_size == 5
    assert settings.api.protect_reads is True
    assert settings.alerts.timeout.total_seconds() == 5
    described = json.dumps(describe(settings))
    assert "hook-secret-value" not in described
    assert "tok-en-1234" not in described
    with pytest.raises(ConfigError, match="Cache:MaxSize"):
        load(path, environment=None, environ={"HOOK_KEY": "x", "Cache__MaxSize": "-1"})
