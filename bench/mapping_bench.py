"""Field mapping cost: 1,000,000 ERP records through ``validate()``, mapped and not.

``.venv/bin/python bench/mapping_bench.py [--rows N] [--repeats 5] [--write-docs]``

Every case is the same million products (code, name, stock, location) decoded
and validated by ``refresh/validate.validate`` exactly as a refresh does it,
all in one process, one after the other in each repeat; every case reads the
same records as the baseline (checked on a thousand before timing):

- *unmapped*: the contract's field names; the baseline (what every source paid
  before mapping existed, and what a source without ``Fields`` still pays);
- *mapped names*: the same records under Flexi's names (``cenik``, ``nazev``,
  ``stavMJ``, ``regal``) with four ``Fields`` paths, so the two free-text fields
  get the default rules (Trim, EmptyAsNull);
- *mapped names, as sent*: the same four renames with ``"Trim": false,
  "EmptyAsNull": false``: nothing but the renaming;
- *mapped + RemovePrefix x2*: as sent by Flexi, ``code:`` in front of the
  product code and the location, both removed;
- *Flexi stock cards*: whole ``skladova-karta`` records as in the sample
  (``@ref``/``@showAs`` siblings, warehouse, period...: 4x the bytes), mapped
  with the two conversions: what skipping unwanted fields costs;
- *nested paths*: the price-list relation expanded (``"cenik": [{"kod": ...,
  "nazev": ...}]``), read by ``cenik[0].kod`` and ``cenik[0].nazev``;
- *value rules*: the code behind ``code:``, the name after ``": "`` of
  ``cenik@showAs``, the stock with a ``Default``, the location by a ``Pattern``;
- *Filter, flat*: the contract's names and one ``Equals`` condition on a key of
  the record that every record passes (the cost of testing each one);
- *Filter on nested paths*: ``Equals`` on ``doklSklad[0].typPohybuK`` and ``NotIn``
  on ``doklSklad[0].typDokl``, every record passing, with the nested paths;
- *CSV, mapped*: the records as a ``;``-separated windows-1250 CSV export with
  decimal commas (``Csv`` + ``Fields``).

A second table times decoding into record structs alone (no per-record
validation), where mapping is a larger share: the record type decoded
directly; what ``validate()`` decodes for a source without rules (the same
call, through ``reader_for``: it pays nothing); the mapped decodes
(``sources/decoding.py`` with ``sources/mapping.py``: a wire struct of what the
paths read, the filters, the field rules, one ``msgspec.convert``); and the
alternative not chosen, a Python dict per record with its keys renamed, then
converted.
"""

from __future__ import annotations

import argparse
import gc
import platform
import statistics
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import msgspec

from catalog_refresher.config.paths import parse_path
from catalog_refresher.config.settings import CsvFormat, FieldRule, FilterCondition, FilterOperator
from catalog_refresher.domain.records import ErpStock
from catalog_refresher.domain.specs import SPECS
from catalog_refresher.refresh.validate import validate
from catalog_refresher.sources.base import Payload
from catalog_refresher.sources.decoding import decode_records
from catalog_refresher.sources.mapping import reader_for
from docs_section import write_section  # a sibling script

ROOT = Path(__file__).resolve().parent.parent
TITLE = "Field mapping: 1,000,000 ERP records through validate()"
SPEC = SPECS["erp_stock"]
FLEXI_NAMES = {"product_code": "cenik", "product_name": "nazev", "stock": "stavMJ"}
FLEXI_NAMES["location"] = "regal"
NAMES = tuple(FieldRule(field=field, source=name) for field, name in FLEXI_NAMES.items())
AS_SENT = tuple(
    FieldRule(field=field, source=name, trim=False, empty_as_null=False)
    for field, name in FLEXI_NAMES.items()
)
RELATIONS = tuple(
    FieldRule(
        field=field,
        source=name,
        remove_prefix="code:" if field in {"product_code", "location"} else None,
    )
    for field, name in FLEXI_NAMES.items()
)


def rule(field: str, source: str, **options: Any) -> FieldRule:
    """A rule as the configuration makes it, its path parsed."""
    return FieldRule(field=field, source=source, path=parse_path(source, "bench"), **options)


def condition(path: str, operator: FilterOperator, *values: str) -> FilterCondition:
    return FilterCondition(path=parse_path(path, "bench"), operator=operator, values=values)


NESTED = (
    rule("product_code", "cenik[0].kod"),
    rule("product_name", "cenik[0].nazev"),
    rule("stock", "stavMJ"),
    rule("location", "regal", remove_prefix="code:"),
)
VALUE_RULES = (
    rule("product_code", "cenik", remove_prefix="code:"),
    rule("product_name", "cenik@showAs", after=": "),
    rule("stock", "stavMJ", default=0),
    rule("location", "regal", pattern=r"^code:(\S+)"),
)
FLAT_FILTER = (condition("sklad", FilterOperator.EQUALS, "code:ZBOZI"),)
NESTED_FILTERS = (
    condition("doklSklad[0].typPohybuK", FilterOperator.EQUALS, "typPohybu.vydej"),
    condition("doklSklad[0].typDokl", FilterOperator.NOT_IN, "code:PRODEJ", "code:PRODEJKA"),
)


def product(i: int) -> tuple[str, str, float, str]:
    """Product ``i``: code, a Czech name of about 45 characters, stock, location."""
    nouns = ("Šroub", "Matice", "Podložka", "Hmoždinka", "Vrut", "Nýt", "Kolík", "Pružina")
    name = f"{nouns[i % 8]} pozinkovaný DIN {912 + i % 30} M{4 + i % 9}×{10 + i % 12 * 10} mm"
    stock = (i * 7919) % 10_000 + (i % 4) / 4
    return f"P{i:07d}", name, stock, f"{'ABCDEFGH'[i % 8]}{1 + i // 8 % 40:02d}-R{i % 12:02d}"


def contract(n: int) -> bytes:
    return msgspec.json.encode(
        [
            {"product_code": code, "product_name": name, "stock": stock, "location": where}
            for code, name, stock, where in map(product, range(n))
        ]
    )


def flexi_names(n: int, prefix: str) -> bytes:
    return msgspec.json.encode(
        [
            {"cenik": prefix + code, "nazev": name, "stavMJ": stock, "regal": prefix + where}
            for code, name, stock, where in map(product, range(n))
        ]
    )


def contract_in_store(n: int) -> bytes:
    """The contract's names, each record with the store it is in (what a filter reads)."""
    return msgspec.json.encode(
        [
            {
                "product_code": code,
                "product_name": name,
                "stock": stock,
                "location": where,
                "sklad": "code:ZBOZI",
            }
            for code, name, stock, where in map(product, range(n))
        ]
    )


def expanded(n: int) -> bytes:
    """Flexi with the price list expanded (``includes=``), and the line's document."""
    return msgspec.json.encode(
        [
            {
                "cenik": [{"kod": code, "nazev": name}],
                "stavMJ": stock,
                "regal": f"code:{where}",
                "doklSklad": [{"typPohybuK": "typPohybu.vydej", "typDokl": "code:VYDEJKA"}],
            }
            for code, name, stock, where in map(product, range(n))
        ]
    )


def shown_as(n: int) -> bytes:
    """Flexi's flat relation with its ``@showAs`` sibling, ``code: name``."""
    return msgspec.json.encode(
        [
            {
                "cenik": f"code:{code}",
                "cenik@showAs": f"{code}: {name}",
                "stavMJ": stock,
                "regal": f"code:{where}",
            }
            for code, name, stock, where in map(product, range(n))
        ]
    )


def flexi_cards(n: int) -> bytes:
    """Stock cards shaped like the ABRA Flexi sample, every relation with its siblings."""

    def card(i: int) -> dict[str, Any]:
        code, name, stock, where = product(i)
        return {
            "id": 1000 + i,
            "lastUpdate": "2024-04-30T16:02:11.418+02:00",
            "cenik": f"code:{code}",
            "cenik@ref": f"/v2/c/demo_firma/cenik/{i}",
            "cenik@showAs": f"{code}: {name}",
            "sklad": "code:ZBOZI",
            "sklad@ref": "/v2/c/demo_firma/sklad/4",
            "sklad@showAs": "ZBOZI: Standardní sklad",
            "ucetObdobi": "code:2024",
            "regal": f"code:{where}",
            "regal@ref": f"/v2/c/demo_firma/umisteni-ve-skladu/{i % 500}",
            "regal@showAs": f"{where}: Regál",
            "police": "",
            "stavMJ": stock,
            "rezervMJ": 0.0,
            "dostupMj": stock,
            "datPosl": "2024-04-29",
            "nazev": name,
        }

    return msgspec.json.encode([card(i) for i in range(n)])


def csv_export(n: int) -> bytes:
    lines = ["code;name;stock;stockLocation;"]
    for code, name, stock, where in map(product, range(n)):
        lines.append(f'"{code}";"{name}";"{str(stock).replace(".", ",")}";"{where}";')
    return ("\r\n".join(lines) + "\r\n").encode("cp1250")


def dict_rewrite(body: bytes) -> list[ErpStock]:
    """The mapping not chosen: a Python dict per record, keys renamed, then converted."""
    rename = {name: field for field, name in FLEXI_NAMES.items()}
    raws = msgspec.json.decode(body, type=list[dict[str, Any]])
    rows = [{rename.get(key, key): value for key, value in raws.items()} for raws in raws]
    converted: list[ErpStock] = msgspec.convert(rows, list[ErpStock], strict=False)
    return converted


def mapped_decode(
    body: bytes, fields: tuple[FieldRule, ...], filters: tuple[FilterCondition, ...] = ()
) -> list[ErpStock]:
    """What validation does to decode a mapped page, without the per-record rules."""
    page = decode_records(reader_for(ErpStock, fields, filters), body)
    assert not page.may_hold_unfit, "every record fits"
    return page.records


def validated(
    body: str,
    fields: tuple[FieldRule, ...] = (),
    filters: tuple[FilterCondition, ...] = (),
    **options: Any,
) -> Callable[[], int]:
    """A case: ``validate()`` of one body under ``fields`` and ``filters``."""

    def run() -> int:
        payload = Payload(pages=[BODIES[body]], fields=fields, filters=filters, **options)
        return len(validate(SPEC, payload, None).rows)

    return run


#: Each case's page, by name; filled in ``main``.
BODIES: dict[str, bytes] = {}


def timed(fn: Callable[[], int]) -> float:
    gc.collect()
    start = time.perf_counter()
    count = fn()
    elapsed = time.perf_counter() - start
    assert count, "nothing was read"
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--write-docs", action="store_true")
    args = parser.parse_args()
    n = args.rows

    bodies = BODIES
    bodies.update(
        {
            "unmapped": contract(n),
            "names": flexi_names(n, ""),
            "relations": flexi_names(n, "code:"),
            "cards": flexi_cards(n),
            "expanded": expanded(n),
            "shown": shown_as(n),
            "in store": contract_in_store(n),
            "csv": csv_export(n),
        }
    )
    csv = CsvFormat(delimiter=";", encoding="windows-1250", decimal_comma=True)
    csv_fields = (
        FieldRule(field="product_code", source="code"),
        FieldRule(field="product_name", source="name"),
        FieldRule(field="location", source="stockLocation"),
    )
    cases: dict[str, tuple[str, Callable[[], int]]] = {
        "unmapped (contract names): baseline": ("unmapped", validated("unmapped")),
        "mapped names (4 Fields paths, default Trim/EmptyAsNull)": (
            "names",
            validated("names", NAMES),
        ),
        "mapped names, as sent (Trim, EmptyAsNull off)": ("names", validated("names", AS_SENT)),
        "mapped + RemovePrefix x2": ("relations", validated("relations", RELATIONS)),
        "Flexi stock cards, mapped + RemovePrefix x2": ("cards", validated("cards", RELATIONS)),
        "nested paths: cenik[0].kod, cenik[0].nazev (+ RemovePrefix)": (
            "expanded",
            validated("expanded", NESTED),
        ),
        "value rules: RemovePrefix, After, Default, Pattern": (
            "shown",
            validated("shown", VALUE_RULES),
        ),
        "Filter, flat: Equals on a key, all kept": (
            "in store",
            validated("in store", filters=FLAT_FILTER),
        ),
        "Filter on nested paths (Equals + NotIn) + nested paths": (
            "expanded",
            validated("expanded", NESTED, NESTED_FILTERS),
        ),
        "CSV export, windows-1250, decimal commas, mapped": (
            "csv",
            validated("csv", csv_fields, csv=csv),
        ),
    }
    decoding: dict[str, tuple[str, Callable[[], int]]] = {
        "record type decoded directly: baseline": (
            "unmapped",
            lambda: len(msgspec.json.decode(bodies["unmapped"], type=list[ErpStock], strict=False)),
        ),
        "no Fields, through reader_for (what validate() decodes)": (
            "unmapped",
            lambda: len(mapped_decode(bodies["unmapped"], ())),
        ),
        "mapped decode, names": ("names", lambda: len(mapped_decode(bodies["names"], NAMES))),
        "mapped decode, names as sent": (
            "names",
            lambda: len(mapped_decode(bodies["names"], AS_SENT)),
        ),
        "mapped decode, + RemovePrefix x2": (
            "relations",
            lambda: len(mapped_decode(bodies["relations"], RELATIONS)),
        ),
        "mapped decode, nested paths": (
            "expanded",
            lambda: len(mapped_decode(bodies["expanded"], NESTED)),
        ),
        "mapped decode, value rules": (
            "shown",
            lambda: len(mapped_decode(bodies["shown"], VALUE_RULES)),
        ),
        "mapped decode, nested paths + 2 filters": (
            "expanded",
            lambda: len(mapped_decode(bodies["expanded"], NESTED, NESTED_FILTERS)),
        ),
        "dict per record, keys renamed, converted (not used)": (
            "names",
            lambda: len(dict_rewrite(bodies["names"])),
        ),
    }
    # Every case must read the same records the baseline does.
    expected = validate(SPEC, Payload(pages=[contract(1000)]), None).rows
    for body, fields, filters in (
        (flexi_names(1000, ""), NAMES, ()),
        (flexi_names(1000, ""), AS_SENT, ()),
        (flexi_names(1000, "code:"), RELATIONS, ()),
        (flexi_cards(1000), RELATIONS, ()),
        (expanded(1000), NESTED, ()),
        (shown_as(1000), VALUE_RULES, ()),
        (contract_in_store(1000), (), FLAT_FILTER),
        (expanded(1000), NESTED, NESTED_FILTERS),
    ):
        payload = Payload(pages=[body], fields=fields, filters=filters)
        assert validate(SPEC, payload, None).rows == expected
    assert (
        validate(SPEC, Payload(pages=[csv_export(1000)], csv=csv, fields=csv_fields), None).rows
        == expected
    )

    every = {**cases, **decoding}
    samples: dict[str, list[float]] = {label: [] for label in every}
    for repeat in range(args.repeats):
        for label, (_, fn) in every.items():
            samples[label].append(timed(fn))
        print(f"# repeat {repeat + 1}/{args.repeats} done", flush=True)

    def table(group: dict[str, tuple[str, Callable[[], int]]]) -> str:
        base = statistics.median(samples[next(iter(group))])
        lines = [
            "| case | MB | median s | min s | max s | median vs baseline s |",
            "|---|--:|--:|--:|--:|--:|",
        ]
        for label, (body, _) in group.items():
            times = samples[label]
            median = statistics.median(times)
            lines.append(
                f"| {label} | {len(bodies[body]) / 1e6:,.0f} | {median:.2f} | {min(times):.2f}"
                f" | {max(times):.2f} | {median - base:+.2f} |"
            )
        return "\n".join(lines)

    commit = subprocess.run(
        ["git", "describe", "--always", "--dirty"], capture_output=True, text=True, cwd=ROOT
    ).stdout.strip()
    command = f"bench/mapping_bench.py --rows {n} --repeats {args.repeats}"
    when = time.strftime("%Y-%m-%d")
    versions = f"Python {platform.python_version()}, msgspec {msgspec.__version__}"
    section = f"""## {TITLE}

`.venv/bin/python {command}`, {when}: {versions}, code {commit}.
Decode and validate only (no fetch, diff or store), every case in one process, interleaved,
median / min / max of {args.repeats}. What each case is: the script's docstring.

{table(cases)}

Decoding into record structs alone (no per-record validation):

{table(decoding)}
"""
    print(section)
    if args.write_docs:
        print(f"# wrote {write_section(section)}")


if __name__ == "__main__":
    main()
