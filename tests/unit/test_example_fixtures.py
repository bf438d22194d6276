"""The example fixtures keep the systems' own layout (docs/systems.md), page sets included.

What the tests of ``examples/`` rely on is checked here, once: Flexi's ``winstrom``
envelope with ``@rowCount`` as a string that counts every page of a set, relations
flat (``"code:X"``, ``""`` for none) or expanded (an array of objects) with their
``@showAs`` beside them; Shoptet's ``data.paginator`` agreeing with its pages; the
product export in windows-1250 with CRLF and a ``;`` ending every line.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest

from tests.examples_server import FLEXI, SHOPTET, flexi_records

#: Each Flexi page set: its evidence and its pages, in order.
FLEXI_SETS = {
    "stav-skladu-k-datu": ["page1", "page2"],
    "sarze-expirace": ["page1", "page2"],
    "skladovy-pohyb-polozka": ["page1", "page2", "page3"],
    "faktura-vydana-polozka": ["page1", "page2"],
}
#: One-page variants: their evidence.
FLEXI_SINGLE = {
    "stav-skladu-k-datu_strings.json": "stav-skladu-k-datu",
    "sarze-expirace_full.json": "sarze-expirace",
    "skladovy-pohyb-polozka_cenik-included.json": "skladovy-pohyb-polozka",
    "faktura-vydana-polozka_includes.json": "faktura-vydana-polozka",
}


def _envelope(path: Path, evidence: str) -> dict[str, Any]:
    document = json.loads(path.read_bytes())
    assert list(document) == ["winstrom"]
    envelope: dict[str, Any] = document["winstrom"]
    assert envelope["@version"] == "1.0"
    assert isinstance(envelope["@rowCount"], str)  # a string, as Flexi sends it
    assert isinstance(envelope[evidence], list)
    return envelope


@pytest.mark.parametrize("evidence", sorted(FLEXI_SETS))
def test_flexi_page_sets_count_their_records_in_every_page(evidence: str) -> None:
    """Every page of a set carries the set's total as @rowCount, a string."""
    pages = [FLEXI / f"{evidence}_{page}.json" for page in FLEXI_SETS[evidence]]
    total = sum(len(flexi_records(page)) for page in pages)
    assert total > len(flexi_records(pages[0]))  # more than one page
    for page in pages:
        assert _envelope(page, evidence)["@rowCount"] == str(total)


@pytest.mark.parametrize("name", sorted(FLEXI_SINGLE))
def test_flexi_single_pages_count_their_records(name: str) -> None:
    """A one-page variant's @rowCount is its own number of records."""
    envelope = _envelope(FLEXI / name, FLEXI_SINGLE[name])
    assert envelope["@rowCount"] == str(len(envelope[FLEXI_SINGLE[name]]))


def _relations(record: dict[str, Any]) -> dict[str, Any]:
    """The relations of a record: the fields with an @ref beside them (enums have only @showAs)."""
    return {k[: -len("@ref")]: record[k[: -len("@ref")]] for k in record if k.endswith("@ref")}


def test_flexi_relations_are_flat_codes_or_expanded_arrays() -> None:
    """A relation (with @ref) is "code:X" (flat) or a one-object array (includes=), never both."""
    forms = set()
    for path in sorted(FLEXI.glob("*.json")):
        if path.name.startswith("error_"):
            continue
        for record in flexi_records(path):
            nested = [d for v in record.values() if isinstance(v, list) for d in v]
            for item in [record, *nested]:
                for name, value in _relations(item).items():
                    if isinstance(value, list):
                        assert len(value) == 1
                        assert isinstance(value[0], dict)
                        forms.add("expanded")
                    else:
                        assert re.fullmatch(r"\s*code:\S.*", value), (path.name, name, value)
                        forms.add("flat")
    assert forms == {"flat", "expanded"}


def test_flexi_error_envelope_has_success_false_and_a_message() -> None:
    """Flexi's error envelope: success "false" (a string) and a message."""
    envelope = json.loads((FLEXI / "error_bad-filter.json").read_bytes())["winstrom"]
    assert envelope["success"] == "false"
    assert envelope["message"]


def test_shoptet_paginator_agrees_with_its_pages() -> None:
    """data.paginator: page numbers from 1, one pageCount and totalCount, itemsOnPage per page."""
    pages = [
        json.loads((SHOPTET / f"stocks-supplies_page{n}.json").read_bytes()) for n in (1, 2, 3)
    ]
    total = sum(len(p["data"]["supplies"]) for p in pages)
    for number, page in enumerate(pages, start=1):
        paginator = page["data"]["paginator"]
        assert paginator["page"] == number
        assert (paginator["pageCount"], paginator["totalCount"]) == (len(pages), total)
        assert paginator["itemsOnPage"] == len(page["data"]["supplies"])
        assert page["errors"] is None
        # Quantities are strings with three decimals, or null.
        for supply in page["data"]["supplies"]:
            assert supply["amount"] is None or re.fullmatch(r"-?\d+\.\d{3}", supply["amount"])


def test_shoptet_export_is_windows_1250_with_crlf_and_a_trailing_delimiter() -> None:
    """The export: windows-1250 (not UTF-8), CRLF line ends, every line ending in ";"."""
    raw = (SHOPTET / "products_export.csv").read_bytes()
    with pytest.raises(UnicodeDecodeError):
        raw.decode("utf-8")
    lines = raw.decode("windows-1250").split("\r\n")
    assert lines[-1] == ""
    assert all(line.endswith(";") for line in lines[:-1])
    assert lines[0].split(";")[0] == "code"
    assert all(line.startswith('"$') for line in lines[1:-1])
