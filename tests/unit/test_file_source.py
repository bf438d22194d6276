"""File sources on real files: formats, globs, the copy, the set's token (an unchanged
set is ``not_modified``), a run over 10 files."""

from __future__ import annotations

import json
import os
from datetime import date
from pathlib import Path

import pytest

from catalog_refresher.config import load
from catalog_refresher.config.settings import EndpointSettings, EndpointType, FileFormat
from catalog_refresher.domain.runs import RunStatus
from catalog_refresher.domain.specs import SPECS
from catalog_refresher.domain.window import Window
from catalog_refresher.errors import SourceError
from catalog_refresher.refresh.validate import validate
from catalog_refresher.sources.base import FetchState
from catalog_refresher.sources.files import FileSource, matching_files
from catalog_refresher.sources.http import build_client, open_source
from catalog_refresher.sources.sql import SqlSource
from catalog_refresher.testing import FakeClock
from tests.service_harness import build

ERP = SPECS["erp_stock"]


def _endpoint(path: Path | str, format_: FileFormat) -> EndpointSettings:
    return EndpointSettings(type=EndpointType.FILE, path=str(path), format=format_)


def _write_json(path: Path, rows: list[dict[str, object]]) -> None:
    path.write_text(json.dumps(rows), encoding="utf-8")


def _config(tmp_path: Path, source: dict[str, object]) -> EndpointSettings:
    config = tmp_path / "conf" / "appsettings.json"
    config.parent.mkdir(exist_ok=True)
    config.write_text(json.dumps({"Sources": {"ErpStock": source}}), encoding="utf-8")
    return load(config, environment=None, environ={}).sources["erp_stock"].primary


async def test_a_csv_file_is_read_with_the_csv_options_and_fields(tmp_path: Path) -> None:
    """Format csv with Csv options and Fields: the file's own names and decimal commas."""
    (tmp_path / "stock.csv").write_text(
        "kod;mnozstvi;sklad\r\nA1;1,5;X\r\nB2;3;Y\r\n", encoding="cp1250"
    )
    endpoint = _config(
        tmp_path,
        {
            "Type": "file",
            "Path": "../stock.csv",  # relative to the configuration file's folder
            "Format": "csv",
            "Csv": {"Delimiter": ";", "Encoding": "windows-1250", "DecimalComma": True},
            "Fields": {"product_code": "kod", "stock": "mnozstvi", "location": "sklad"},
        },
    )
    payload = await FileSource("erp_stock", endpoint).fetch(None)
    batch = validate(ERP, payload, None)
    assert (batch.fetched, batch.invalid) == (2, 0)
    assert batch.rows["A1"].stock == 1.5
    assert batch.rows["B2"].location == "Y"


async def test_a_json_file_is_read_at_its_records_path(tmp_path: Path) -> None:
    """Format json with RecordsPath: the records array inside an envelope."""
    path = tmp_path / "stock.json"
    path.write_text(json.dumps({"data": {"items": [{"product_code": "A", "stock": 2}]}}))
    endpoint = _config(
        tmp_path,
        {"Type": "file", "Path": str(path), "Format": "json", "RecordsPath": "data.items"},
    )
    batch = validate(ERP, await FileSource("erp_stock", endpoint).fetch(None), None)
    assert list(batch.rows) == ["A"]


async def test_an_ndjson_line_that_is_not_json_is_one_invalid_record(tmp_path: Path) -> None:
    """NDJSON: one record per line, blank lines skipped, a broken line refused alone."""
    path = tmp_path / "stock.ndjson"
    path.write_bytes(
        b'{"product_code": "A", "stock": 1}\n\n{"product_code": "B", "stock": \n'
        b'{"product_code": "C", "stock": 3}\r\n'
    )
    payload = await FileSource("erp_stock", _endpoint(path, FileFormat.NDJSON)).fetch(None)
    batch = validate(ERP, payload, None)
    assert sorted(batch.rows) == ["A", "C"]
    assert batch.invalid == 1
    assert "not valid JSON" in batch.reasons[0]


async def test_an_ndjson_file_of_good_lines_takes_the_fast_path(tmp_path: Path) -> None:
    """Every line JSON: all records decoded, none invalid, a wrong-typed line still alone."""
    path = tmp_path / "stock.ndjson"
    lines = [json.dumps({"product_code": f"P{i}", "stock": i}) for i in range(100)]
    lines[7] = json.dumps({"product_code": "P7", "stock": "many"})
    path.write_text("\n".join(lines) + "\n")
    batch = validate(
        ERP, await FileSource("erp_stock", _endpoint(path, FileFormat.NDJSON)).fetch(None), None
    )
    assert (batch.fetched, batch.invalid, len(batch.rows)) == (100, 1, 99)


async def test_a_glob_reads_every_matching_file_in_name_order(tmp_path: Path) -> None:
    """A glob's files are the pages, in name order; a later file's record wins a key."""
    (tmp_path / "sub").mkdir()
    _write_json(tmp_path / "b.json", [{"product_code": "X", "stock": 2}])
    _write_json(tmp_path / "a.json", [{"product_code": "X", "stock": 1}])
    _write_json(tmp_path / "sub" / "c.json", [{"product_code": "Y", "stock": 3}])
    (tmp_path / "notes.txt").write_text("not a page")
    assert [p.name for p in matching_files(str(tmp_path / "*.json"))] == ["a.json", "b.json"]
    source = FileSource("erp_stock", _endpoint(tmp_path / "**" / "*.json", FileFormat.JSON))
    payload = await source.fetch(None)
    assert len(payload.pages) == 3
    batch = validate(ERP, payload, None)
    assert batch.rows["X"].stock == 2
    assert "Y" in batch.rows


async def test_no_matching_file_fails_the_fetch_naming_the_path(tmp_path: Path) -> None:
    """An empty set is an error naming Path, not an empty snapshot that deletes everything."""
    source = FileSource("erp_stock", _endpoint(tmp_path / "*.json", FileFormat.JSON))
    with pytest.raises(SourceError, match=r"no file matches Path .*\*\.json"):
        await source.fetch(None)


async def test_spooled_copies_are_discarded_and_the_originals_stay(tmp_path: Path) -> None:
    """With a spool, pages are copies there; discard deletes the copies, not the files."""
    spool = tmp_path / "spool"
    spool.mkdir()
    original = tmp_path / "stock.json"
    _write_json(original, [{"product_code": "A", "stock": 1}])
    source = FileSource("erp_stock", _endpoint(original, FileFormat.JSON), spool=spool)
    payload = await source.fetch(None)
    (copy,) = payload.pages
    assert isinstance(copy, Path)
    assert copy.parent == spool
    assert copy.read_bytes() == original.read_bytes()
    payload.discard()
    assert not copy.exists()
    assert original.exists()


async def test_the_token_follows_stat_and_content(tmp_path: Path) -> None:
    """An untouched set, handed its token back, is ``not_modified`` without a page; a
    touched file (same bytes) is copied, found identical and answers a new token; a
    rewritten file is read; a fetch without a token always reads."""
    path = tmp_path / "stock.json"
    _write_json(path, [{"product_code": "A", "stock": 1}])
    source = FileSource("erp_stock", _endpoint(path, FileFormat.JSON))
    first = await source.fetch(None)
    assert first.body_hash is not None
    assert not first.not_modified
    assert len(first.pages) == 1
    again = await source.fetch(None, FetchState(body_hash=first.body_hash))
    assert (again.not_modified, again.pages, again.body_hash) == (True, [], first.body_hash)
    stat = path.stat()
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000))
    touched = await source.fetch(None, FetchState(body_hash=first.body_hash))
    assert touched.not_modified
    assert touched.pages == []
    assert touched.body_hash is not None
    assert touched.body_hash != first.body_hash
    assert touched.body_hash.split(".")[1] == first.body_hash.split(".")[1]  # same content
    _write_json(path, [{"product_code": "A", "stock": 2}])
    rewritten = await source.fetch(None, FetchState(body_hash=touched.body_hash))
    assert not rewritten.not_modified
    assert len(rewritten.pages) == 1
    assert not (await source.fetch(None, FetchState())).not_modified


async def test_a_file_swapped_for_an_older_copy_of_the_same_size_is_read(tmp_path: Path) -> None:
    """A copy moved into place with the old file's size and mtime still has a new inode
    and ctime: the set is copied and, its content differing, read."""
    path = tmp_path / "stock.json"
    _write_json(path, [{"product_code": "A", "stock": 1}])
    source = FileSource("erp_stock", _endpoint(path, FileFormat.JSON))
    first = await source.fetch(None)
    stat = path.stat()
    copy = tmp_path / "copy.json"
    _write_json(copy, [{"product_code": "A", "stock": 9}])
    os.utime(copy, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    os.replace(copy, path)
    swapped = await source.fetch(None, FetchState(body_hash=first.body_hash))
    assert not swapped.not_modified
    assert len(swapped.pages) == 1


async def test_a_glob_of_ten_files_with_one_changed_applies_only_its_rows(
    tmp_path: Path,
) -> None:
    """Ten files form the snapshot; after one file changes the run re-reads the set and
    applies only its rows; then an unchanged set is a ``not_modified`` run with nothing
    decoded, even after a restart (a new source and service on the same store)."""
    folder = tmp_path / "drop"
    folder.mkdir()
    for n in range(10):
        _write_json(
            folder / f"part-{n:02}.json",
            [{"product_code": f"F{n}-{i}", "stock": i} for i in range(50)],
        )
    clock = FakeClock()
    endpoint = _endpoint(folder / "part-*.json", FileFormat.JSON)
    source = FileSource("erp_stock", endpoint)
    h = build(tmp_path / "c.db", clock, {"erp_stock": source})
    await h.service.prepare()
    first = await h.service.refresh("erp_stock")
    assert first.status is RunStatus.SUCCEEDED
    assert (first.counts.fetched, first.counts.inserted) == (500, 500)
    changed = [{"product_code": f"F3-{i}", "stock": i + (100 if i < 5 else 0)} for i in range(50)]
    changed.append({"product_code": "F3-new", "stock": 1})
    _write_json(folder / "part-03.json", changed)
    second = await h.service.refresh("erp_stock")
    assert second.status is RunStatus.SUCCEEDED
    assert not second.not_modified
    counts = second.counts
    assert (counts.fetched, counts.inserted, counts.updated, counts.deleted) == (501, 1, 5, 0)
    assert source.fingerprint is not None  # the set was copied
    h.store.close()
    restarted = FileSource("erp_stock", endpoint)
    h = build(tmp_path / "c.db", clock, {"erp_stock": restarted})
    await h.service.prepare()
    third = await h.service.refresh("erp_stock")
    assert third.status is RunStatus.SUCCEEDED
    assert third.not_modified
    assert (third.counts.fetched, third.counts.inserted, third.counts.updated) == (0, 0, 0)
    assert restarted.fingerprint is None  # not one file was opened, let alone decoded
    assert len(dict(h.store.iter_rows("erp_stock"))) == 501
    h.store.close()


async def test_a_history_file_keeps_only_the_windows_rows(tmp_path: Path) -> None:
    """A history source from a file: rows outside the run's window are refused, not stored."""
    path = tmp_path / "sales.ndjson"
    days = ["2024-03-01", "2024-03-10", "2024-04-01"]
    path.write_text(
        "".join(json.dumps({"product_code": "P", "date": d, "b2c_sold": 1}) + "\n" for d in days)
    )
    window = Window(date_from=date(2024, 3, 5), date_to=date(2024, 3, 31))
    source = FileSource("sales_data", _endpoint(path, FileFormat.NDJSON))
    batch = validate(SPECS["sales_data"], await source.fetch(window), window)
    assert (batch.fetched, len(batch.rows), batch.invalid) == (3, 1, 2)


def test_open_source_builds_file_and_sql_sources(tmp_path: Path) -> None:
    """The application's factory gives a FileSource and a SqlSource for their types."""
    client = build_client()
    assert isinstance(
        open_source("erp_stock", _endpoint(tmp_path / "x.json", FileFormat.JSON), client),
        FileSource,
    )
    sql = EndpointSettings(type=EndpointType.SQL, url="sqlite:///x.db", sql="SELECT 1")
    assert isinstance(open_source("erp_stock", sql, client), SqlSource)


async def test_a_token_of_other_read_instructions_reads_the_set(tmp_path: Path) -> None:
    """The token covers how the files are read: the same files under other Fields are
    a different set, read whole."""
    path = tmp_path / "stock.json"
    _write_json(path, [{"product_code": "A", "qty": 1}])
    plain = await FileSource("erp_stock", _endpoint(path, FileFormat.JSON)).fetch(None)
    mapped = _config(
        tmp_path,
        {"Type": "file", "Path": str(path), "Format": "json", "Fields": {"stock": "qty"}},
    )
    payload = await FileSource("erp_stock", mapped).fetch(
        None, FetchState(body_hash=plain.body_hash)
    )
    assert not payload.not_modified
    assert len(payload.pages) == 1
