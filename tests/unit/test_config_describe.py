"""check-config's whole output for one sample configuration, key order included."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from catalog_refresher.config import describe, load

SAMPLE: dict[str, Any] = {
    "CatalogRepository": {
        "ErpStockRefreshInterval": "00:02:00",
        "SuppliersRefreshInterval": "00:00:00",
        "SalesHistoryRetentionDays": 180,
        "RetryBaseDelay": "00:00:00.250",
        "MaxDeleteShare": 0.25,
    },
    "Sources": {
        "ErpStock": {
            "Url": "https://user:pw@erp.example/stock.json?api_key=k&x=1",
            "Headers": {"Authorization": "env:ERP_TOKEN"},
            "RecordsPath": "winstrom.karta",
            "Paging": {"Kind": "offset", "PageSize": 500, "TotalPath": "winstrom.@rowCount"},
            "Fields": {
                "product_code": {"From": "cenik", "RemovePrefix": "code:"},
                "stock": "stavMJ",
            },
            "Priority": 3,
            "MaxDeleteShare": 0.1,
            "Backup": {"Url": "http://replica.example/stock", "RequestTimeout": "00:00:30"},
        },
        "EshopStock": {
            "Url": "https://eshop.example/stocks",
            "RecordsPath": "data.supplies",
            "Paging": {
                "Kind": "page",
                "PageSize": 100,
                "PageCountPath": "data.paginator.pageCount",
            },
        },
        "Attributes": {
            "Url": "https://files.example/attributes.csv",
            "Csv": {"Delimiter": ";", "HasHeader": False, "Columns": ["product_code", "stock_min"]},
        },
        "Lots": {"Type": "demo"},
    },
    "Store": {"Url": "postgresql://app:pw@db.example/catalog", "Lease": "00:00:10"},
    "Api": {"Port": 9000, "AdminToken": "env:ADMIN_TOKEN"},
    "Alerts": {"WebhookUrl": "https://hooks.example/x?token=t", "Headers": {"X-Key": "k"}},
    "Logging": {"Level": "Warning", "Format": "json"},
}

#: The request options of a snapshot source's GET endpoint, all defaults.
GET_REQUEST = {
    "Method": "GET",
    "Query": {},
    "Body": None,
    "ContentType": None,
    "WindowParameters": None,
    "ConnectTimeout": None,
    "ReadTimeout": None,
    "MaxRequestsPerSecond": None,
    "Tls": None,
    "Proxy": None,
    "ErrorWhen": None,
    "ErrorMessagePath": None,
}

EXPECTED: dict[str, Any] = {
    "CatalogRepository": {
        "ErpStockRefreshInterval": "00:02:00",
        "EshopStockRefreshInterval": "00:10:00",
        "SalesDataRefreshInterval": "00:30:00",
        "PurchaseHistoryRefreshInterval": "01:00:00",
        "ConsumedMaterialsRefreshInterval": "00:30:00",
        "TransportDataRefreshInterval": "00:15:00",
        "AttributesRefreshInterval": "01:00:00",
        "LotsRefreshInterval": "00:15:00",
        "StockTakingRefreshInterval": "00:10:00",
        "SuppliersRefreshInterval": "00:00:00",
        "SalesHistoryRetentionDays": 180,
        "PurchaseHistoryRetentionDays": 365,
        "ConsumedMaterialsRetentionDays": 720,
        "MaxConcurrentRefreshes": 3,
        "RefreshTimeout": "00:10:00",
        "EnableMetrics": True,
        "RetryAttempts": 3,
        "RetryBaseDelay": "00:00:00.250",
        "CircuitBreakerFailureThreshold": 5,
        "CircuitBreakerOpenDuration": "00:01:00",
        "MaxDeleteShare": 0.25,
        "StaleAfterIntervals": 3,
        "HealthDegradedAfter": "00:30:00",
        "ShutdownGracePeriod": "00:00:30",
        "VersionsKept": 10,
        "VersionsRetention": "30.00:00:00",
        "MemoryLimitMb": None,
        "UnconditionalEvery": "1.00:00:00",
        "AutoPauseAfterFailures": 0,
    },
    "Sources": {
        "ErpStock": {
            "Type": "http",
            "Url": "https://user:***@erp.example/stock.json?api_key=***&x=1",
            "Headers": {"Authorization": "***(env:ERP_TOKEN)"},
            "RecordsPath": "winstrom.karta",
            "RequestTimeout": "00:01:00",
            "Paging": {
                "Kind": "offset",
                "PageSize": 500,
                "OffsetParameter": "offset",
                "SizeParameter": "limit",
                "TotalPath": "winstrom.@rowCount",
                "MaxPages": 10000,
                "In": "query",
            },
            "Fields": {
                "product_code": {"From": "cenik", "RemovePrefix": "code:"},
                "stock": "stavMJ",
            },
            "Csv": None,
            "Filter": None,
            "Conditional": True,
            **GET_REQUEST,
            "Priority": 3,
            "MaxDeleteShare": 0.1,
            "Incremental": None,
            "Validators": {
                "MinRecords": None,
                "MaxCountChange": None,
                "MaxChangedShare": None,
                "DuplicateKeys": "LastWins",
            },
            "Freshness": None,
            "Backup": {
                "Type": "http",
                "Url": "http://replica.example/stock",
                "Headers": {},
                "RecordsPath": None,
                "RequestTimeout": "00:00:30",
                "Paging": None,
                "Fields": None,
                "Csv": None,
                "Filter": None,
                "Conditional": True,
                **GET_REQUEST,
            },
        },
        "EshopStock": {
            "Type": "http",
            "Url": "https://eshop.example/stocks",
            "Headers": {},
            "RecordsPath": "data.supplies",
            "RequestTimeout": "00:01:00",
            "Paging": {
                "Kind": "page",
                "PageSize": 100,
                "PageParameter": "page",
                "SizeParameter": "pageSize",
                "PageCountPath": "data.paginator.pageCount",
                "MaxPages": 10000,
                "FirstPage": 1,
                "In": "query",
            },
            "Fields": None,
            "Csv": None,
            "Filter": None,
            "Conditional": True,
            **GET_REQUEST,
            "Priority": 0,
            "MaxDeleteShare": None,
            "Incremental": None,
            "Validators": {
                "MinRecords": None,
                "MaxCountChange": None,
                "MaxChangedShare": None,
                "DuplicateKeys": "LastWins",
            },
            "Freshness": None,
            "Backup": None,
        },
        "Attributes": {
            "Type": "http",
            "Url": "https://files.example/attributes.csv",
            "Headers": {},
            "RecordsPath": None,
            "RequestTimeout": "00:01:00",
            "Paging": None,
            "Fields": None,
            "Csv": {
                "Delimiter": ";",
                "Encoding": "utf-8",
                "DecimalComma": False,
                "HasHeader": False,
                "Columns": ["product_code", "stock_min"],
            },
            "Filter": None,
            "Conditional": True,
            **GET_REQUEST,
            "Priority": 0,
            "MaxDeleteShare": None,
            "Incremental": None,
            "Validators": {
                "MinRecords": None,
                "MaxCountChange": None,
                "MaxChangedShare": None,
                "DuplicateKeys": "LastWins",
            },
            "Freshness": None,
            "Backup": None,
        },
        "Lots": {
            "Type": "demo",
            "Url": None,
            "Headers": {},
            "RecordsPath": None,
            "RequestTimeout": "00:01:00",
            "Paging": None,
            "Fields": None,
            "Csv": None,
            "Filter": None,
            "Conditional": None,
            **dict.fromkeys(GET_REQUEST),  # not set: a demo endpoint makes no requests
            "Priority": 0,
            "MaxDeleteShare": None,
            "Incremental": None,
            "Validators": {
                "MinRecords": None,
                "MaxCountChange": None,
                "MaxChangedShare": None,
                "DuplicateKeys": "LastWins",
            },
            "Freshness": None,
            "Backup": None,
        },
    },
    "Store": {"Url": "postgresql://app:***@db.example/catalog", "Lease": "00:00:10"},
    "Api": {
        "Host": "127.0.0.1",
        "Port": 9000,
        "AdminToken": "***(env:ADMIN_TOKEN)",
        "ProtectReads": False,
    },
    "Cache": {"MaxSize": 10000},
    "Refresh": {"WorkerProcesses": 1},
    "Alerts": {
        "WebhookUrl": "https://hooks.example/x?token=***",
        "Headers": {"X-Key": "***"},
        "Timeout": "00:00:10",
    },
    "Logging": {"Level": "WARNING", "Format": "json"},
}


def test_describe_writes_every_key_in_order_with_secrets_masked(tmp_path: Path) -> None:
    """describe() of the sample equals the literal, in the same key order (defaults included)."""
    path = tmp_path / "appsettings.json"
    path.write_text(json.dumps(SAMPLE), encoding="utf-8")
    settings = load(path, environment=None, environ={"ERP_TOKEN": "t0k", "ADMIN_TOKEN": "adm1n"})
    described = describe(settings)
    assert described == EXPECTED
    # Equal dicts may still differ in order; the JSON text, as check-config prints it, may not.
    assert json.dumps(described, indent=2) == json.dumps(EXPECTED, indent=2)


def test_a_url_read_from_a_secret_store_is_shown_by_its_name_only(tmp_path: Path) -> None:
    """A source URL, a webhook URL and a store URL given as env:/file: never print their text:
    an export's ?hash= or a webhook's path is the credential itself."""
    secret_file = tmp_path / "webhook"
    secret_file.write_text("https://hooks.example/T000/B000/s3cr3tpath\n")
    config = tmp_path / "appsettings.json"
    config.write_text(
        '{"Sources": {"EshopStock": {"Url": "https://shop/x", "Backup": {"Url": "env:SHOP_URL"}}},'
        ' "Store": {"Url": "env:STORE_URL"}, "Alerts": {"WebhookUrl": "file:webhook"}}'
    )
    environ = {
        "SHOP_URL": "https://www.shop.example/export/products.csv?hash=5e4d3c9a",
        "STORE_URL": "postgresql://catalog@db.example/catalog",
    }
    described = describe(load(config, environment=None, environ=environ))
    text = json.dumps(described)
    assert described["Sources"]["EshopStock"]["Backup"]["Url"] == "***(env:SHOP_URL)"
    assert described["Sources"]["EshopStock"]["Url"] == "https://shop/x"
    assert described["Store"]["Url"] == "***(env:STORE_URL)"
    assert described["Alerts"]["WebhookUrl"] == "***(file:webhook)"
    for secret in ("5e4d3c9a", "s3cr3tpath", "db.example"):
        assert secret not in text
