"""Fields paths, value rules and Filter from configuration to records, over a real local server.

A local HTTP server answers in ABRA Flexi's shapes (built from the facts in
``../shared/samples/README.md``): relations expanded with ``includes=``, every value
a string, dates with offsets, stock-movement lines of several kinds on one endpoint.
Each test loads a configuration, fetches with ``HttpSource``, and validates.
"""

from __future__ import annotations

import json
from datetime import date
from pathlib import Path
from typing import Any

import pytest

from catalog_refresher.config import load
from catalog_refresher.domain.records import Consumption, ErpStock, Lot, Purchase
from catalog_refresher.domain.specs import SPECS
from catalog_refresher.domain.window import Window
from catalog_refresher.errors import PublishRejected
from catalog_refresher.refresh.diff import FingerprintIndex, diff
from catalog_refresher.refresh.guard import check_publish
from catalog_refresher.refresh.validate import Batch, validate
from catalog_refresher.sources.http import HttpSource, build_client
from tests.paged_server import Reply, Server, serve

WINDOW = Window(date_from=date(2025, 11, 29), date_to=date(2026, 11, 29))


def winstrom(collection: str, records: list[dict[str, Any]]) -> bytes:
    """A Flexi answer: the records in ``winstrom.<collection>``, the count a string."""
    body = {"winstrom": {"@version": "1.0", "@rowCount": str(len(records)), collection: records}}
    return json.dumps(body, ensure_ascii=False).encode()


#: Stock to date with the price list expanded: `cenik` is an array of one object.
STOCK = [
    {
        "cenik": [{"kod": "KRM001", "nazev": "Pleťový krém levandule "}],
        "cenik@ref": "/c/firma/cenik/1",
        "cenik@showAs": "KRM001: Pleťový krém levandule",
        "sklad": "code:ZBOZI",
        "stavMJ": "128.000",
    },
    {
        "cenik": [{"kod": " SER010-30", "nazev": "Sérum 30 ml"}],
        "cenik@showAs": "SER010-30: Sérum 30 ml",
        "sklad": "code:ZBOZI",
        "stavMJ": None,
    },
    {"cenik": [{"kod": "OBAL1", "nazev": "Krabice"}], "sklad": "code:OBALY", "stavMJ": "5"},
]


def line(code: str, direction: str, kind: str, day: str, amount: str) -> dict[str, Any]:
    """A stock-movement line; its document (`doklSklad`, expanded) says what kind it is."""
    return {
        "cenik": f"code:{code}",
        "cenik@showAs": f"{code}: zboží",
        "mnozMj": amount,
        "cenaMj": "87.500000",
        "doklSklad": [
            {
                "kod": f"{kind}-0001",
                "typPohybuK": f"typPohybu.{direction}",
                "typDokl": f"code:{kind}",
                "datVyst": day,
                "firma": "code:DOD1",
                "firma@showAs": "DOD1: Dodavatel s.r.o.",
            }
        ],
    }


LINES = [
    line("KRM001", "prijem", "PRIJEMKA", "2026-05-02+02:00", "10.000"),
    line("KRM001", "vydej", "PRODEJ", "2026-05-03T09:14:03.120+02:00", "2.000"),
    line("KRM002", "vydej", "VYDEJKA", "2026-05-04+02:00", "1.500"),
    line("KRM002", "prijem", "PRIJEMKA", "2026-05-05+02:00", "4.000"),
]
LOTS = [
    {"cenik": "code:KRM001", "sarze": "L-2025-09 ", "expirace": "2025-09-30+02:00", "stav": "5"},
    {"cenik": "code:KRM001", "sarze": "L-bez", "expirace": "", "stav": "1.000"},
]

#: The configuration each source is read with (the paths of the answers above).
MOVEMENT_FIELDS = {
    "product_code": {"From": "cenik", "RemovePrefix": "code:"},
    "date": "doklSklad[0].datVyst",
    "quantity": "mnozMj",
}
SOURCES: dict[str, dict[str, Any]] = {
    "ErpStock": {
        "Url": "{url}/c/firma/stav-skladu-k-datu.json?includes=/stav-skladu-k-datu/cenik",
        "RecordsPath": "winstrom.stav-skladu-k-datu",
        "Fields": {
            "product_code": "cenik[0].kod",
            "product_name": "cenik[0].nazev",
            "stock": {"From": "stavMJ", "Default": 0},
        },
        "Filter": [{"Path": "sklad", "Equals": "code:ZBOZI"}],
    },
    "PurchaseHistory": {
        "Url": "{url}/c/firma/skladovy-pohyb-polozka.json",
        "RecordsPath": "winstrom.skladovy-pohyb-polozka",
        "Fields": {
            **MOVEMENT_FIELDS,
            "purchase_price": "cenaMj",
            "supplier_code": {"From": "doklSklad[0].firma", "RemovePrefix": "code:"},
            "supplier_name": {"From": "doklSklad[0].firma@showAs", "After": ": "},
            "document_number": "doklSklad[0].kod",
        },
        "Filter": [{"Path": "doklSklad[0].typPohybuK", "Equals": "typPohybu.prijem"}],
    },
    "ConsumedMaterials": {
        "Url": "{url}/c/firma/skladovy-pohyb-polozka.json",
        "RecordsPath": "winstrom.skladovy-pohyb-polozka",
        "Fields": MOVEMENT_FIELDS,
        "Filter": [
            {"Path": "doklSklad[0].typPohybuK", "Equals": "typPohybu.vydej"},
            {"Path": "doklSklad[0].typDokl", "NotIn": ["code:PRODEJ", "code:PRODEJKA"]},
        ],
    },
    "Lots": {
        "Url": "{url}/c/firma/sarze-expirace.json",
        "RecordsPath": "winstrom.sarze-expirace",
        "Fields": {
            "product_code": {"From": "cenik", "RemovePrefix": "code:"},
            "lot": "sarze",
            "amount": "stav",
            "expiration": "expirace",
        },
    },
}


def flexi(path: str, query: dict[str, str]) -> Reply:
    """The Flexi endpoints above, by path."""
    answers = {
        "/c/firma/stav-skladu-k-datu.json": winstrom("stav-skladu-k-datu", STOCK),
        "/c/firma/skladovy-pohyb-polozka.json": winstrom("skladovy-pohyb-polozka", LINES),
        "/c/firma/sarze-expirace.json": winstrom("sarze-expirace", LOTS),
    }
    return Reply(body=answers[path]) if path in answers else Reply(status=404)


async def read(
    tmp_path: Path, server: Server, source: str, options: dict[str, Any] | None = None
) -> Batch:
    """Load ``source``'s configuration, fetch it from ``server`` and validate what came."""
    spec = next(spec for spec in SPECS.values() if spec.config_key == source)
    options = dict(SOURCES[source] if options is None else options)
    options["Url"] = options["Url"].replace("{url}", server.url)
    config = tmp_path / "appsettings.json"
    config.write_text(json.dumps({"Sources": {source: options}}))
    endpoint = load(config, environment=None, environ={}).sources[spec.id].primary
    window = WINDOW if spec.is_history else None
    async with build_client() as client:
        payload = await HttpSource(spec.id, endpoint, client).fetch(window)
    return validate(spec, payload, window)


async def test_stock_with_an_expanded_relation(tmp_path: Path) -> None:
    """Codes and names from `cenik[0]`, trimmed; a null stock defaults; another store dropped."""
    with serve(flexi) as server:
        batch = await read(tmp_path, server, "ErpStock")
    assert batch.rows == {
        "KRM001": ErpStock(
            product_code="KRM001", stock=128.0, product_name="Pleťový krém levandule"
        ),
        "SER010-30": ErpStock(product_code="SER010-30", stock=0.0, product_name="Sérum 30 ml"),
    }
    assert (batch.fetched, batch.invalid) == (2, 0)  # OBAL1 is in another store: not fetched


async def test_one_endpoint_is_split_into_purchases_and_consumption(tmp_path: Path) -> None:
    """Receipts are purchases; issues that are not sales are consumption; sales are neither."""
    with serve(flexi) as server:
        purchases = await read(tmp_path, server, "PurchaseHistory")
        consumption = await read(tmp_path, server, "ConsumedMaterials")
    assert list(purchases.rows.values()) == [
        Purchase(
            product_code=code,
            date=day,
            quantity=quantity,
            purchase_price=87.5,
            supplier_code="DOD1",
            supplier_name="Dodavatel s.r.o.",
            document_number="PRIJEMKA-0001",
        )
        for code, day, quantity in [("KRM001", "2026-05-02", 10.0), ("KRM002", "2026-05-05", 4.0)]
    ]
    assert list(consumption.rows.values()) == [
        Consumption(product_code="KRM002", date="2026-05-04", quantity=1.5)
    ]
    assert (purchases.fetched, consumption.fetched, consumption.invalid) == (2, 1, 0)
    assert server.requests[0] == {"date_from": "2025-11-29", "date_to": "2026-11-29"}


async def test_lots_with_expirations_as_flexi_writes_them(tmp_path: Path) -> None:
    """`2025-09-30+02:00` is stored as the day; `""` (no expiry) as null; the lot code trimmed."""
    with serve(flexi) as server:
        batch = await read(tmp_path, server, "Lots")
    assert list(batch.rows.values()) == [
        Lot(product_code="KRM001", lot="L-2025-09", amount=5.0, expiration="2025-09-30"),
        Lot(product_code="KRM001", lot="L-bez", amount=1.0, expiration=None),
    ]


@pytest.mark.parametrize(
    ("path", "shown"),
    [
        ("cenik.kod", "cenik is an array (index it: [0]), not an object"),
        ("cenik[0].code", "cenik[0] has no code"),
    ],
)
async def test_a_wrong_path_is_rejected_with_the_first_reasons(
    tmp_path: Path, path: str, shown: str
) -> None:
    """A path that never matches fails every record; the rejection says where it stopped."""
    options = {**SOURCES["ErpStock"], "Fields": {"product_code": path, "stock": "stavMJ"}}
    with serve(flexi) as server:
        batch = await read(tmp_path, server, "ErpStock", options)
    spec = SPECS["erp_stock"]
    found = diff(spec, FingerprintIndex(version=0), batch, None)
    with pytest.raises(PublishRejected) as caught:
        check_publish(spec=spec, batch=batch, diff=found, max_delete_share=0.5, force=False)
    missing = f"Object missing required field `{path}` ({shown})"
    assert str(caught.value) == (
        f"every record (2) was invalid: record 0: {missing}; record 1: {missing}"
    )
