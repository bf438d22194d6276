"""If-Modified-Since cannot hide a change: a real ``http.server`` serving a folder (it
compares whole seconds, ``mtime <= If-Modified-Since`` answers 304), whose file is
swapped for a copy with an older mtime; the runs are planned, fetched and applied as
the runner does, on a real SQLite store."""

from __future__ import annotations

import functools
import json
import os
from collections.abc import Iterator
from datetime import timedelta
from email.utils import formatdate
from http.server import SimpleHTTPRequestHandler
from pathlib import Path
from typing import ClassVar

import httpx
import pytest

from catalog_refresher.config.settings import EndpointSettings, EndpointType
from catalog_refresher.domain.runs import Run
from catalog_refresher.refresh.incremental import plan
from catalog_refresher.refresh.pipeline import Job, Pipeline
from catalog_refresher.sources.base import FetchState
from catalog_refresher.sources.chunks import conditional_headers, strong_last_modified
from catalog_refresher.sources.http import HttpSource
from catalog_refresher.store.sqlite import SqliteStore
from tests.helpers import T0, start_run
from tests.local_http import serving

#: The server's "now": its Date header (the test pins it; the file's mtime is real).
SERVED_AT = 1_800_000_000.0
DAY = timedelta(days=1)


class _Folder(SimpleHTTPRequestHandler):
    """python's own file server, its Date pinned to ``SERVED_AT``; records what it is sent."""

    seen: ClassVar[list[str | None]] = []

    def date_time_string(self, timestamp: float | None = None) -> str:
        return super().date_time_string(SERVED_AT if timestamp is None else timestamp)

    def send_head(self):  # type: ignore[no-untyped-def]  # the base class's own signature
        self.seen.append(self.headers.get("If-Modified-Since"))
        return super().send_head()

    def log_message(self, *args: object) -> None:
        pass


def _write(path: Path, stock: int, mtime: float) -> None:
    """The file replaced (a new inode, as a copy moved into place is) with ``mtime``."""
    temporary = path.with_suffix(".tmp")
    temporary.write_text(json.dumps([{"product_code": "P-1", "stock": stock}]))
    os.utime(temporary, (mtime, mtime))
    os.replace(temporary, path)


@pytest.fixture
def folder(tmp_path: Path) -> Iterator[tuple[Path, str]]:
    root = tmp_path / "www"
    root.mkdir()
    _Folder.seen.clear()
    with serving(functools.partial(_Folder, directory=str(root))) as base:  # type: ignore[arg-type]
        yield root / "stock.json", f"{base}/stock.json"


class _Runs:
    """Runs of ``erp_stock`` as the runner makes them: plan from the store, fetch, apply."""

    def __init__(self, tmp_path: Path, url: str, *, conditional: bool = True) -> None:
        self.store = SqliteStore(tmp_path / "c.db")
        self.store.migrate()
        self.endpoint = EndpointSettings(type=EndpointType.HTTP, url=url, conditional=conditional)
        self.now = T0

    async def run(self) -> Run:
        run = start_run(self.store, "erp_stock", at=self.now)
        planned = plan(
            None,
            self.store.sync_state("erp_stock"),
            forced=False,
            now=self.now,
            unconditional_every=DAY,
        )
        async with httpx.AsyncClient() as client:
            payload = await HttpSource("erp_stock", self.endpoint, client).fetch(
                None, planned.state
            )
        job = Job(
            run_id=run.id,
            source="erp_stock",
            forced=False,
            window=None,
            max_delete_share=0.5,
            attempts=1,
            used_backup=False,
            plan=planned,
        )
        Pipeline(self.store, now=lambda: self.now).process(job, payload)
        recorded = self.store.get_run(run.id)
        assert recorded is not None
        return recorded


async def test_a_file_swapped_for_an_older_copy_in_the_same_second_is_seen(
    folder: tuple[Path, str], tmp_path: Path
) -> None:
    """The file was written in the second it was served, so its Last-Modified is not a
    strong validator and is not kept: the next run asks unconditionally and sees the copy
    with an older mtime (before the fix it sent If-Modified-Since and got a 304)."""
    path, url = folder
    _write(path, 1, SERVED_AT)
    runs = _Runs(tmp_path, url)
    first = await runs.run()
    assert first.counts.inserted == 1
    assert runs.store.sync_state("erp_stock").last_modified is None
    _write(path, 2, SERVED_AT - 3600)
    runs.now += timedelta(minutes=5)
    second = await runs.run()
    assert not second.not_modified
    assert second.counts.updated == 1
    assert _Folder.seen == [None, None]
    runs.store.close()


async def test_an_old_last_modified_is_sent_and_the_daily_net_reads_anyway(
    folder: tuple[Path, str], tmp_path: Path
) -> None:
    """A Last-Modified an hour older than Date is kept and sent back; a copy older still
    gets the server's 304 (HTTP cannot tell), but the run after UnconditionalEvery asks
    without it and applies the change; the one after is conditional again."""
    path, url = folder
    _write(path, 1, SERVED_AT - 3600)
    runs = _Runs(tmp_path, url)
    await runs.run()
    kept = runs.store.sync_state("erp_stock").last_modified
    assert kept == formatdate(SERVED_AT - 3600, usegmt=True)
    _write(path, 2, SERVED_AT - 7200)
    runs.now += timedelta(hours=1)
    hidden = await runs.run()
    assert hidden.not_modified
    runs.now += DAY
    seen = await runs.run()
    assert not seen.not_modified
    assert seen.counts.updated == 1
    runs.now += timedelta(hours=1)
    await runs.run()
    assert _Folder.seen == [None, kept, None, formatdate(SERVED_AT - 7200, usegmt=True)]
    runs.store.close()


async def test_conditional_false_never_sends_a_validator(
    folder: tuple[Path, str], tmp_path: Path
) -> None:
    """``"Conditional": false``: neither header goes, so the older copy is read at once."""
    path, url = folder
    _write(path, 1, SERVED_AT - 3600)
    runs = _Runs(tmp_path, url, conditional=False)
    await runs.run()
    _write(path, 2, SERVED_AT - 7200)
    runs.now += timedelta(hours=1)
    second = await runs.run()
    assert second.counts.updated == 1
    assert _Folder.seen == [None, None]
    runs.store.close()


def test_an_etag_goes_alone_and_a_date_only_when_it_is_strong() -> None:
    """If-None-Match when an ETag is stored, never beside If-Modified-Since; a
    Last-Modified is kept only when more than a second older than Date (or no Date)."""
    both = FetchState(etag='"a"', last_modified="Thu, 01 Jan 2026 00:00:00 GMT")
    assert conditional_headers(both) == {"If-None-Match": '"a"'}
    dated = FetchState(last_modified="Thu, 01 Jan 2026 00:00:00 GMT")
    assert conditional_headers(dated) == {"If-Modified-Since": "Thu, 01 Jan 2026 00:00:00 GMT"}
    assert conditional_headers(FetchState()) is None
    modified = "Thu, 01 Jan 2026 00:00:00 GMT"
    assert strong_last_modified({"last-modified": modified, "date": modified}) is None
    later = "Thu, 01 Jan 2026 00:00:01 GMT"
    assert strong_last_modified({"last-modified": modified, "date": later}) is None
    much_later = "Thu, 01 Jan 2026 00:00:02 GMT"
    assert strong_last_modified({"last-modified": modified, "date": much_later}) == modified
    assert strong_last_modified({"last-modified": modified}) is None
    assert strong_last_modified({"last-modified": "garbage", "date": later}) is None
