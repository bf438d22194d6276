"""CSV pages turned into raw records (a source's ``Csv`` option).

Shoptet's product export is the model: ``;``-separated, every value quoted,
every line ending in a ``;`` (an empty last column), windows-1250, CRLF line
ends, decimal commas. ``read_rows`` gives one dict per line, keyed by column
name, which ``sources/decoding.py`` then decodes exactly like a JSON record,
field mapping included.

- Quoting, CRLF and delimiters are the ``csv`` module's; decoding is the codec's.
- A column without a name (what a trailing delimiter makes) is dropped.
- An empty cell is left out of its record, so an optional field is null and a
  missing required one is refused with the record, not the run.
- In the columns that hold numbers, a decimal comma becomes a point when the
  format says so; elsewhere text is untouched (``Šroub 4,5 mm`` stays as it is).
  Thousands separators are not understood.
- A line with more cells than there are columns keeps only the named ones.

Undecodable bytes, broken quoting or a missing header fail the page
(``InvalidPayloadError``), and so the run.
"""

from __future__ import annotations

import codecs
import csv
import io
from collections.abc import Iterator

from catalog_refresher.config.settings import CsvFormat
from catalog_refresher.errors import InvalidPayloadError

__all__ = ["read_rows"]


def read_rows(
    body: bytes, fmt: CsvFormat, numeric: frozenset[str], page_number: int
) -> list[dict[str, str]]:
    """The records of one CSV page's ``body``; ``numeric`` names the columns that hold numbers."""
    where = f"page {page_number}"
    try:
        with _text(body, fmt.encoding) as text:
            reader = csv.reader(text, delimiter=fmt.delimiter, strict=True)
            names = _column_names(reader, fmt, where)
            decimal_comma = fmt.decimal_comma
            rows: list[dict[str, str]] = []
            for cells in reader:
                row: dict[str, str] = {}
                for name, cell in zip(names, cells, strict=False):
                    if not cell or not name:
                        continue
                    if name in numeric:
                        cell = cell.strip()
                        if decimal_comma:
                            cell = cell.replace(",", ".")
                    row[name] = cell
                if row:  # a blank line is no record
                    rows.append(row)
            return rows
    except UnicodeDecodeError as exc:
        # The offending bytes are data, not secrets; the position helps find them.
        raise InvalidPayloadError(
            f"{where}: not {fmt.encoding} text at byte {exc.start}: {exc.reason}"
        ) from exc
    except csv.Error as exc:
        raise InvalidPayloadError(f"{where}: not valid CSV: {exc}") from exc


def _column_names(reader: Iterator[list[str]], fmt: CsvFormat, where: str) -> list[str]:
    if fmt.has_header:
        header = next(reader, None)
        if header is None:
            raise InvalidPayloadError(f"{where}: the CSV document has no header row")
        if not fmt.columns:
            names = [name.strip() for name in header]
            named = [name for name in names if name]
            if len(set(named)) != len(named):
                twice = next(name for name in named if named.count(name) > 1)
                raise InvalidPayloadError(f"{where}: column {twice!r} appears twice")
            return names
    return list(fmt.columns)


def _text(body: bytes, encoding: str) -> io.StringIO:
    """The page as text, decoded whole like a JSON page, so that errors give the byte offset.

    ``newline=""`` leaves CRLF and line breaks inside quotes to ``csv``.
    """
    # A UTF-8 file saved by Excel starts with a byte order mark that would
    # otherwise stick to the first column's name.
    if codecs.lookup(encoding).name == "utf-8":
        encoding = "utf-8-sig"
    return io.StringIO(body.decode(encoding), newline="")
