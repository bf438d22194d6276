"""From a payload's pages to its records: every step of decoding, in one place.

A page is bytes, or the file it was spooled to (``read_page``). In a JSON page
the records array sits at the dotted ``RecordsPath``; a paging envelope holds
counts at ``TotalPath`` or ``PageCountPath``. One walk (``_walk``) finds all of
them, for the pager (``record_count``, ``count_at``, in the service process)
and for the pipeline (``records_array``, in a worker). The two word a broken
path differently, as they always have: the pager names the option it was
following, the pipeline the object it was in.

An NDJSON page (a file source's ``Format`` ndjson) is one record per line
(``decode_lines``). A CSV page becomes raw rows first (``sources/csv_payload.py``), and a payload
that is shaped differently (``Fields``, ``Filter``) is decoded under its own names
and filtered (``sources/mapping.py``); both are told by the payload itself, so a
backup endpoint may differ from its primary.

``decode_pages`` gives each page's records. The common case, a page with no
invalid record, is decoded in one msgspec call straight into frozen structs;
only when that call meets a record that does not fit does decoding fall back to
one record at a time, so that each bad record comes as an ``Unfit`` in its
place and the others still count.

A page that is not JSON, or not an array where one is expected, raises
``InvalidPayloadError``, failing the whole run; a record that does not fit is
that record's problem only. What happens to records next (the per-record rules,
duplicate keys, counting) is ``refresh/validate.py``'s.
"""

from __future__ import annotations

import dataclasses
import sys
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from types import GenericAlias
from typing import Any

import msgspec

from catalog_refresher.config.settings import JsonPath
from catalog_refresher.domain import records
from catalog_refresher.errors import InvalidPayloadError
from catalog_refresher.sources.base import Payload
from catalog_refresher.sources.csv_payload import read_rows
from catalog_refresher.sources.mapping import RecordReader, reader_for

__all__ = [
    "PageRecords",
    "Unfit",
    "count_at",
    "decode_lines",
    "decode_pages",
    "decode_raws",
    "decode_records",
    "read_page",
    "record_count",
    "records_array",
    "sent_hashes",
    "split_records",
]


@dataclass(frozen=True, slots=True)
class Unfit:
    """A record that does not fit the record type, in the place of that record."""

    reason: str
    """msgspec's message: which field, and what is wrong with it."""


@dataclass(frozen=True, slots=True)
class PageRecords:
    """The records of one page, in payload order: the ones its ``Filter`` keeps."""

    records: list[Any]
    """Each decoded for the record type (a struct; a raw dict for attributes), or an ``Unfit``."""
    may_hold_unfit: bool
    """False on the fast path: no item is an ``Unfit``, so nobody needs to look."""
    positions: list[int] | None = None
    """Where each record is in the page, when a filter left some out (for messages)."""
    hashes: Sequence[int] | Mapping[int, int] | None = None
    """When asked for: the hash of each record's bytes as sent, by its place in the page
    (``sent_hashes``); a mapping when only some records of the page were decoded."""


def read_page(page: bytes | Path) -> bytes:
    """A page's body: as held, or read from the file it was spooled to."""
    return page.read_bytes() if isinstance(page, Path) else page


def decode_pages(
    payload: Payload, record_type: type[records.Record], *, hash_sent: bool = False
) -> Iterator[PageRecords]:
    """The records of each page of ``payload``, one page read at a time; ``hash_sent``
    (JSON pages only) also gives the hash of each record's bytes (``PageRecords.hashes``)."""
    reader = reader_for(record_type, payload.fields, payload.filters)
    for page_number, page in enumerate(payload.pages, start=1):
        body = read_page(page)
        items: bytes | list[dict[str, str]]
        with bounded_nesting(page_number):
            if payload.ndjson:
                decoded = decode_lines(reader, body)
            elif payload.csv is not None:
                items = read_rows(body, payload.csv, reader.numeric_names, page_number)
                decoded = decode_records(reader, items)
            else:
                array = records_array(body, payload.records_path, page_number)
                hashes = list(sent_hashes(split_records(array))) if hash_sent else None
                decoded = decode_records(reader, array)
                if hashes is not None:
                    decoded = dataclasses.replace(decoded, hashes=hashes)
        yield decoded


def split_records(array: bytes) -> list[msgspec.Raw]:
    """Each record of a JSON array as the bytes it was sent as, none of them decoded
    (msgspec finds where each one ends: a tenth of what decoding them costs)."""
    try:
        return msgspec.json.decode(array, type=list[msgspec.Raw])
    except msgspec.ValidationError as exc:
        raise InvalidPayloadError("expected a JSON array of records") from exc
    except msgspec.DecodeError as exc:
        raise InvalidPayloadError(f"the payload is not valid JSON: {exc}") from exc


def sent_hashes(raws: Iterable[msgspec.Raw]) -> Iterator[int]:
    """The hash of each record's bytes: Python's own (SipHash, 64 bits, in C), which is
    what the fingerprint index takes too; it differs between processes, so it is only
    ever compared within the process that made it (``refresh/raw_index.py``)."""
    return map(hash, map(bytes, raws))


def decode_raws(reader: RecordReader, raws: list[msgspec.Raw]) -> PageRecords:
    """Some records of a page, from their bytes (``split_records``), as a page of them."""
    return decode_records(reader, b"[" + b",".join(raws) + b"]")


@contextmanager
def bounded_nesting(page_number: int) -> Iterator[None]:
    """A page nested deeper than the decoder can follow is an invalid payload, said so.

    msgspec decodes nested values recursively and gives up with ``RecursionError``
    past the interpreter's recursion limit; left alone, that reached the run as an
    "unexpected" error, the label of a bug.
    """
    try:
        yield
    except RecursionError:
        levels = sys.getrecursionlimit()
        raise InvalidPayloadError(
            f"page {page_number}: the payload nests deeper than {levels} levels"
        ) from None


def decode_records(reader: RecordReader, items: bytes | list[dict[str, str]]) -> PageRecords:
    """The records of a JSON array, or of CSV rows, as ``reader`` decodes them."""
    many = GenericAlias(list, reader.wire_type)
    try:
        if isinstance(items, bytes):
            decoded = msgspec.json.decode(items, type=many, strict=False)
        else:
            decoded = msgspec.convert(items, many, strict=False)
        positions = None
        if reader.mapped:
            decoded, positions = reader.keep(decoded)
            decoded = reader.finish(decoded)
        return PageRecords(records=decoded, may_hold_unfit=False, positions=positions)
    except msgspec.ValidationError:
        pass  # at least one record does not fit: find which, one by one
    except msgspec.DecodeError as exc:
        raise InvalidPayloadError(f"the payload is not valid JSON: {exc}") from exc
    return _one_by_one(reader, items)


def decode_lines(reader: RecordReader, body: bytes) -> PageRecords:
    """The records of an NDJSON page: one JSON record per line, blank lines skipped.

    The common case, every line JSON, is decoded as one array (the lines joined
    with commas: the fast path of a JSON page); when a line is not JSON, each line
    is decoded alone, and that line's record is an ``Unfit``, not a failed page.
    (A line ``{...},{...}`` passes the fast path as two records; no NDJSON writer
    writes one, and checking each line would cost the fast path its speed.)
    """
    lines = [line for line in body.removeprefix(b"\xef\xbb\xbf").splitlines() if line.strip()]
    try:
        return decode_records(reader, b"[" + b",".join(lines) + b"]")
    except InvalidPayloadError:
        pass  # some line is not JSON: find which, line by line
    return _one_by_one(reader, [msgspec.Raw(line) for line in lines])


def _one_by_one(
    reader: RecordReader, items: bytes | list[dict[str, str]] | list[msgspec.Raw]
) -> PageRecords:
    """Each record decoded alone: the record, or an ``Unfit`` in its place.

    A record the filters drop is left out; one that cannot be read far enough to
    tell (not an object) is an ``Unfit``.
    """
    one: Any = reader.wire_type
    raws: list[Any]
    raws = split_records(items) if isinstance(items, bytes) else items
    decoded: list[Any] = []
    positions: list[int] = []
    for position, raw in enumerate(raws):
        try:
            if isinstance(raw, msgspec.Raw):
                record = msgspec.json.decode(raw, type=one, strict=False)
            else:
                record = msgspec.convert(raw, one, strict=False)
            if reader.filters and not reader.keeps(record):
                continue
            if reader.mapped:
                record = reader.finish_one(record)
            decoded.append(record)
        except msgspec.ValidationError as exc:
            decoded.append(Unfit(str(exc)))
        except msgspec.DecodeError as exc:  # an NDJSON line that is not JSON
            decoded.append(Unfit(f"not valid JSON: {exc}"))
        positions.append(position)
    filtered = len(positions) < len(raws)
    return PageRecords(
        records=decoded, may_hold_unfit=True, positions=positions if filtered else None
    )


# --- dotted paths ---------------------------------------------------------------


def records_array(body: bytes, records_path: JsonPath | None, page_number: int) -> bytes:
    """The JSON text of the records array inside one page (the pipeline's reading)."""
    try:
        found = _walk(body, records_path)
    except msgspec.DecodeError as exc:
        raise InvalidPayloadError(f"page {page_number}: not the expected JSON: {exc}") from exc
    if isinstance(found, _Missing):
        assert records_path is not None  # the whole body is found whole
        raise InvalidPayloadError(
            f"page {page_number}: no {found.shown} in the {found.container} at RecordsPath"
            f" {records_path.text!r}{found.around}"
        )
    return found


def record_count(body: bytes, records_path: JsonPath | None, page_number: int) -> int:
    """How many records one page holds (the pager's reading)."""
    array = _envelope_at(body, records_path, page_number, "RecordsPath")
    try:
        with bounded_nesting(page_number):
            return len(msgspec.json.decode(array, type=list[msgspec.Raw]))
    except msgspec.DecodeError as exc:  # ValidationError included
        where = f"at RecordsPath {records_path.text!r}" if records_path else "(no RecordsPath)"
        raise InvalidPayloadError(
            f"page {page_number}: expected an array of records {where}: {exc}"
        ) from exc


def count_at(body: bytes, path: JsonPath, page_number: int, option: str) -> int:
    """A whole number at ``path``: a JSON number, or a string of digits (Flexi ``"5"``)."""
    raw = _envelope_at(body, path, page_number, option)
    with bounded_nesting(page_number):
        value = msgspec.json.decode(raw)
    if isinstance(value, str) and value.strip().isdecimal():
        value = int(value.strip())
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        shown = raw[:40].decode(errors="replace")
        raise InvalidPayloadError(
            f"page {page_number}: {option} {path.text!r} holds {shown}, not a count"
        )
    return value


def value_at(body: bytes, path: JsonPath) -> bytes | None:
    """The JSON text at ``path``, or ``None`` where the document has nothing there."""
    try:
        found = _walk(body, path)
    except (msgspec.DecodeError, RecursionError):
        return None
    return None if isinstance(found, _Missing) else found


def _envelope_at(body: bytes, path: JsonPath | None, page_number: int, option: str) -> bytes:
    """The JSON text at ``path``, which the pager follows for ``option``."""
    try:
        with bounded_nesting(page_number):
            found = _walk(body, path)
    except msgspec.DecodeError as exc:
        assert path is not None  # the whole body is not walked, so it cannot fail to decode
        raise InvalidPayloadError(
            f"page {page_number}: not the expected JSON object on the way to {option}"
            f" {path.text!r}: {exc}"
        ) from exc
    if isinstance(found, _Missing):
        assert path is not None
        raise InvalidPayloadError(
            f"page {page_number}: no {found.shown} on the way to {option} {path.text!r}"
            f"{found.around}"
        )
    return found


#: How many of an object's keys a message lists.
_KEYS_SHOWN = 12


@dataclass(frozen=True, slots=True)
class _Missing:
    """Where a path ends early: the step that is not there, and what is."""

    step: str | int
    container: str
    """``object`` or ``array``: what the step was looked for in."""
    present: tuple[str, ...] = ()
    """The object's keys; for an array, its length."""

    @property
    def shown(self) -> str:
        return repr(self.step) if isinstance(self.step, str) else f"element [{self.step}]"

    @property
    def around(self) -> str:
        """What there is instead, for the message: an operator fixes a path from it."""
        if self.container == "array":
            return f" (it has {self.present[0]} elements)"
        if not self.present:
            return " (the object is empty)"
        listed = ", ".join(self.present[:_KEYS_SHOWN])
        more = len(self.present) - _KEYS_SHOWN
        return f" (it has {listed}{f' and {more} more' if more > 0 else ''})"


def _walk(body: bytes, path: JsonPath | None) -> bytes | _Missing:
    """The JSON text at ``path`` inside ``body`` (all of it for ``None``).

    Raises ``msgspec.DecodeError`` where the way is not what the step needs (an
    object for a key, an array for an index); says what is missing where it ends
    early. Each step decodes only the level it walks: the rest stays raw bytes.
    """
    node: bytes | msgspec.Raw = body
    for step in path.steps if path else ():
        if isinstance(step, str):
            obj = msgspec.json.decode(node, type=dict[str, msgspec.Raw])
            if step not in obj:
                return _Missing(step, "object", tuple(obj))
            node = obj[step]
        else:
            array = msgspec.json.decode(node, type=list[msgspec.Raw])
            if not -len(array) <= step < len(array):
                return _Missing(step, "array", (str(len(array)),))
            node = array[step]
    return bytes(node)
