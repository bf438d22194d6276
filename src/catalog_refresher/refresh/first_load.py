"""A source's first load, never held whole: read twice, the second time as it is written.

A first load of a million records used to hold them all decoded (357 B each with
their strings, by tracemalloc) from validation until the apply's commit, with the
payload beside them: the worker peaked at 800 MB for a 128 MB payload (issue 11).
Yet its diff needs no record (every valid one is an insert, the store holding none
of the source), and the guard and the validators need only counts. So the run reads
its pages twice, a chunk of ``CHUNK`` records at a time, each chunk let go before
the next is decoded:

1. ``sift`` decodes and validates every record as a full run does (``take``), and
   keeps only the counts, the reasons, and the hash of the bytes of each valid key's
   record (``Batch.sent``: what the next run's raw index is made of);
2. ``FirstLoadWrites`` decodes and validates them again as the store takes them
   (``StreamedWrites``), and gives each valid key once, as the record ``sift``
   kept for it: the last one sent, as the contract's duplicate rule says.

Decoding and validating twice costs about a second per million records; the store
writing the touched products from its rows (``SqlStore._apply_streamed``) instead of
from a million codes staged from Python gives it back. Only a full run of a snapshot
read as JSON (where a raw index can be kept) loads so, and not a dry run.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from datetime import date
from typing import overload

from catalog_refresher import progress
from catalog_refresher.domain.rules import normaliser
from catalog_refresher.domain.specs import SourceSpec
from catalog_refresher.domain.window import Window
from catalog_refresher.errors import InvalidRecord
from catalog_refresher.refresh.diff import encode_record
from catalog_refresher.refresh.validate import Batch, take
from catalog_refresher.sources.base import Payload
from catalog_refresher.sources.decoding import (
    PageRecords,
    Unfit,
    bounded_nesting,
    decode_raws,
    read_page,
    records_array,
    sent_hashes,
    split_records,
)
from catalog_refresher.sources.mapping import reader_for
from catalog_refresher.store.base import RowWrite, StreamedWrites

#: Records decoded at a time: small beside a million, large enough that a chunk's fixed
#: costs (joining its bytes, one decode call) stay out of sight.
CHUNK = 20_000


def _chunks(spec: SourceSpec, payload: Payload) -> Iterator[tuple[str, PageRecords]]:
    """Each chunk of each page decoded, its records named by their place in the page
    (``positions``) and with the hash of their bytes by that place (``hashes``); and
    how a message names a record of its page."""
    reader = reader_for(spec.record_type, payload.fields, payload.filters)
    several = len(payload.pages) > 1
    for page_number, page in enumerate(payload.pages, start=1):
        where = f"page {page_number} record" if several else "record"
        with bounded_nesting(page_number):
            array = records_array(read_page(page), payload.records_path, page_number)
            raws = split_records(array)
            del array
            for start in range(0, len(raws), CHUNK):
                chunk = raws[start : start + CHUNK]
                # Hashed before the chunk is decoded: the hashes outlive its records (the
                # raw index keeps them), and made among them they would pin the heap's
                # pools the records leave, which the worker could not give back.
                hashes = dict(
                    zip(range(start, start + len(chunk)), sent_hashes(chunk), strict=True)
                )
                decoded = decode_raws(reader, chunk)
                kept = range(len(chunk)) if decoded.positions is None else decoded.positions
                places = [start + at for at in kept]
                yield where, dataclasses.replace(decoded, positions=places, hashes=hashes)


def sift(spec: SourceSpec, payload: Payload, window: Window | None) -> Batch:
    """``payload`` validated as ``validate`` would, its valid records counted and hashed
    by key (``Batch.sent``), none of them kept."""
    batch = Batch(sent={}, held=False)
    normalise = normaliser(spec, window)
    for where, chunk in _chunks(spec, payload):
        batch.fetched += len(chunk.records)
        progress.advance(progress.RECORDS, len(chunk.records))
        take(batch, normalise, chunk, where)
    return batch


class FirstLoadWrites(StreamedWrites):
    """The rows of a first load ``sift`` counted, made as the store takes them."""

    def __init__(
        self, spec: SourceSpec, payload: Payload, window: Window | None, batch: Batch
    ) -> None:
        assert batch.sent is not None
        assert not batch.held
        # A history source keeps no raw index, so it never loads so: no row has a day.
        assert not spec.is_history
        self._spec, self._payload, self._window = spec, payload, window
        self._sent = batch.sent
        # A key sent twice as the very same bytes matches its hash twice: give it once.
        self._repeats = batch.duplicates > 0

    def __len__(self) -> int:
        return len(self._sent)

    def __iter__(self) -> Iterator[RowWrite]:
        spec, sent = self._spec, self._sent
        normalise = normaliser(spec, self._window)
        given: set[str] | None = set() if self._repeats else None
        for _, chunk in _chunks(spec, self._payload):
            assert chunk.positions is not None
            assert chunk.hashes is not None
            places, hashes = chunk.positions, chunk.hashes
            for index, record in enumerate(chunk.records):
                if chunk.may_hold_unfit and isinstance(record, Unfit):
                    continue
                try:
                    key, clean = normalise(record)
                except InvalidRecord:
                    continue  # counted by ``sift``
                if sent.get(key) != hashes[places[index]]:
                    continue  # an earlier record of a key sent again: the last one wins
                if given is not None:
                    if key in given:
                        continue
                    given.add(key)
                name = getattr(clean, "product_name", None)
                yield RowWrite(key, clean.product_code, None, encode_record(clean), name)

    @overload
    def __getitem__(self, index: int) -> RowWrite: ...

    @overload
    def __getitem__(self, index: slice) -> list[RowWrite]: ...

    def __getitem__(self, index: int | slice) -> RowWrite | list[RowWrite]:
        return list(self)[index]  # rare: tests and previews

    def heads(self) -> Iterator[tuple[str, str, date | None]]:
        return ((w.key, w.product_code, w.day) for w in self)

    def names(self) -> Iterator[tuple[str, str | None]]:
        return ((w.product_code, w.name) for w in self)
