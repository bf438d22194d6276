"""Reading a source from files (``"Type": "file"``).

``Path`` names one file or a glob (``**`` included) of files that together form
the snapshot; they are read in name order, each file one page of the payload,
decoded by ``sources/decoding.py`` exactly as an HTTP body would be: ``Format``
csv with the endpoint's ``Csv`` options, json with ``RecordsPath``, ndjson one
record per line (a bad line is an invalid record, not a failed run).

Each file is copied while it is read, into memory or, with worker processes, into
the spool folder: the run decodes that copy, so a file rewritten mid-run cannot
tear the snapshot, and ``Payload.discard`` deletes the copy, never the original.

The set's ``Fingerprint`` (each file's name, size, mtime and a SHA-256 of its
content, hashed while it is copied) is kept by the source after each fetch
(``FileSource.fingerprint``). Until the refresh's own conditional state (the
"incremental" work: ``not_modified`` on the run) can carry it, it lives only in
this object, and an unchanged set is still decoded and diffed (the diff applies
nothing); ``FileSource.unchanged`` says whether the last fetch saw the set as before.

Failures: no file matching ``Path`` is a ``SourceError`` (permanent: a
configuration or a delivery problem an operator must see); a file that vanishes or
cannot be read mid-fetch is a ``SourceConnectionError`` (transient: the next try
may find the new set complete).
"""

from __future__ import annotations

import asyncio
import contextlib
import glob
import hashlib
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from catalog_refresher.config.settings import CsvFormat, EndpointSettings, FileFormat
from catalog_refresher.domain.specs import SPECS
from catalog_refresher.domain.window import Window
from catalog_refresher.errors import ConfigError, SourceConnectionError, SourceError
from catalog_refresher.sources.base import Payload

__all__ = ["FileSource", "Fingerprint", "matching_files"]

#: Bytes read at a time while copying and hashing.
_CHUNK = 1 << 20


@dataclass(frozen=True, slots=True)
class Fingerprint:
    """What a file set was: per file its path, size, mtime (ns) and content hash."""

    files: tuple[tuple[str, int, int, str], ...]


def matching_files(pattern: str) -> list[Path]:
    """The regular files ``pattern`` names, in name order (a plain path names itself)."""
    if not glob.has_magic(pattern):
        return [Path(pattern)] if os.path.isfile(pattern) else []
    return sorted(Path(p) for p in glob.glob(pattern, recursive=True) if os.path.isfile(p))


class FileSource:
    """One external system whose snapshot is a set of files.

    ``spool``, when given, is the folder the copies go to (worker processes read
    them there); without it each page is held as bytes.
    """

    def __init__(
        self, source_id: str, endpoint: EndpointSettings, *, spool: Path | None = None
    ) -> None:
        spec = SPECS[source_id]
        if not endpoint.path or endpoint.format is None:
            raise ConfigError(f"Sources:{spec.config_key}:Path", "is required for a file source")
        self._id = source_id
        self._endpoint = endpoint
        self._spool = spool
        self.fingerprint: Fingerprint | None = None
        """The set the last fetch read; ``None`` before the first."""
        self.unchanged = False
        """Whether the last fetch found the set exactly as the one before."""

    @property
    def source_id(self) -> str:
        return self._id

    async def fetch(self, window: Window | None, state: object | None = None) -> Payload:
        """Every file of the set, copied; ``window`` is not used (files hold what they hold).

        ``state`` is the last good fetch's state, which the runner passes once the
        "incremental" branch lands (its ``FetchState``); accepted and ignored until then.
        """
        return await asyncio.to_thread(self._read)

    async def aclose(self) -> None:
        """Nothing is held between fetches."""

    def _read(self) -> Payload:
        endpoint = self._endpoint
        assert endpoint.path is not None
        files = matching_files(endpoint.path)
        if not files:
            raise SourceError(f"no file matches Path {endpoint.path!r}")
        pages: list[bytes | Path] = []
        seen: list[tuple[str, int, int, str]] = []
        try:
            for file in files:
                page, entry = self._copy(file)
                pages.append(page)
                seen.append(entry)
        except BaseException:
            Payload(pages=pages).discard()
            raise
        fingerprint = Fingerprint(tuple(seen))
        self.unchanged = fingerprint == self.fingerprint
        self.fingerprint = fingerprint
        return Payload(
            pages=pages,
            records_path=endpoint.records_path,
            origin=endpoint.path if len(files) > 1 else str(files[0]),
            fields=endpoint.fields,
            csv=_csv(endpoint),
            filters=endpoint.filters,
            ndjson=endpoint.format is FileFormat.NDJSON,
        )

    def _copy(self, file: Path) -> tuple[bytes | Path, tuple[str, int, int, str]]:
        """The file's copy and its fingerprint entry, the hash taken from the bytes copied."""
        digest = hashlib.sha256()
        try:
            with file.open("rb") as source:
                stat = os.fstat(source.fileno())
                if self._spool is None:
                    body = source.read()
                    digest.update(body)
                    page: bytes | Path = body
                else:
                    page = self._spooled(source, digest)
        except OSError as exc:
            # The set changed under the fetch (a file replaced or removed): try again later.
            raise SourceConnectionError(f"cannot read {file}: {exc.strerror or exc}") from exc
        return page, (str(file), stat.st_size, stat.st_mtime_ns, digest.hexdigest())

    def _spooled(self, source: BinaryIO, digest: hashlib._Hash) -> Path:
        assert self._spool is not None
        handle, name = tempfile.mkstemp(dir=self._spool, prefix=f"{self._id}-", suffix=".page")
        target = Path(name)
        try:
            with os.fdopen(handle, "wb") as out:
                while chunk := source.read(_CHUNK):
                    digest.update(chunk)
                    out.write(chunk)
        except BaseException:
            with contextlib.suppress(FileNotFoundError):
                target.unlink()
            raise
        return target


def _csv(endpoint: EndpointSettings) -> CsvFormat | None:
    """How the pages are CSV: the ``Csv`` options, or their defaults for Format csv."""
    if endpoint.format is not FileFormat.CSV:
        return None
    return endpoint.csv if endpoint.csv is not None else CsvFormat()
