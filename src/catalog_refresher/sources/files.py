"""Reading a source from files (``"Type": "file"``).

``Path`` names one file or a glob (``**`` included) of files that together form
the snapshot; they are read in name order, each file one page of the payload,
decoded by ``sources/decoding.py`` exactly as an HTTP body would be: ``Format``
csv with the endpoint's ``Csv`` options, json with ``RecordsPath``, ndjson one
record per line (a bad line is an invalid record, not a failed run).

Each file is copied while it is read, into memory or, with worker processes, into
the spool folder: the run decodes that copy, so a file rewritten mid-run cannot
tear the snapshot, and ``Payload.discard`` deletes the copy, never the original.

A set unchanged since the last good run costs nothing: the payload's ``body_hash``
is the set's token, ``<stat digest>.<content digest>``, stored with the run's data in
``source_state`` (``SyncState.body_hash``) and handed back as ``FetchState.body_hash``,
so it survives a restart and is shared by replicas. The stat digest covers each
file's path, size, mtime, ctime and inode (a file swapped for a copy with an older
mtime still has a new ctime and inode), the content digest each file's path and a
SHA-256 of the bytes copied; both also cover how the files are read (``Format``,
``Csv``, ``RecordsPath``, ``Fields``, ``Filter``). A fetch first stats the set: the
same stat digest answers ``not_modified`` without opening a file. Otherwise the set is
copied and hashed; the same content digest (the files were only touched) answers
``not_modified`` too, with the new token, and the copies are dropped undecoded.
A forced run (``FetchState()`` without a token) always reads the set.

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
from catalog_refresher.sources.base import FetchState, Payload
from catalog_refresher.sources.chunks import HASH_SIZE

__all__ = ["FileSource", "Fingerprint", "matching_files"]

#: Bytes read at a time while copying and hashing.
_CHUNK = 1 << 20


@dataclass(frozen=True, slots=True)
class Fingerprint:
    """What a file set was: per file its path, size, mtime (ns) and content hash."""

    files: tuple[tuple[str, int, int, str], ...]

    def content_digest(self, instructions: bytes) -> str:
        """The set's content (paths and hashes) with how it is read, as hex."""
        digest = hashlib.blake2b(instructions, digest_size=HASH_SIZE)
        digest.update(repr([(path, sha) for path, _, _, sha in self.files]).encode())
        return digest.hexdigest()


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
        # What turns these bytes into records: an identical set read otherwise is not the same.
        self._instructions = hashlib.blake2b(
            repr(
                (
                    endpoint.format,
                    endpoint.csv,
                    endpoint.records_path,
                    endpoint.fields,
                    endpoint.filters,
                )
            ).encode()
        ).digest()
        self.fingerprint: Fingerprint | None = None
        """The set the last fetch copied; ``None`` before the first (or after a cheap one)."""

    @property
    def source_id(self) -> str:
        return self._id

    async def fetch(self, window: Window | None, state: FetchState | None = None) -> Payload:
        """Every file of the set, copied, or ``not_modified`` when the set is the one whose
        token is ``state.body_hash``; ``window`` is not used (files hold what they hold)."""
        known = None if state is None else state.body_hash
        return await asyncio.to_thread(self._read, known)

    async def aclose(self) -> None:
        """Nothing is held between fetches."""

    def _read(self, known: str | None) -> Payload:
        endpoint = self._endpoint
        assert endpoint.path is not None
        files = matching_files(endpoint.path)
        if not files:
            raise SourceError(f"no file matches Path {endpoint.path!r}")
        known_stat, _, known_content = (known or "").partition(".")
        if known and self._stat_digest(files) == known_stat:
            return self._payload([], files, not_modified=True, body_hash=known)
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
        self.fingerprint = fingerprint = Fingerprint(tuple(seen))
        content = fingerprint.content_digest(self._instructions)
        # Stat after the copy: a file rewritten meanwhile makes the next fetch copy again.
        token = f"{self._stat_digest(files)}.{content}"
        if known and content == known_content:
            Payload(pages=pages).discard()
            return self._payload([], files, not_modified=True, body_hash=token)
        return self._payload(pages, files, body_hash=token)

    def _payload(
        self,
        pages: list[bytes | Path],
        files: list[Path],
        *,
        body_hash: str,
        not_modified: bool = False,
    ) -> Payload:
        endpoint = self._endpoint
        assert endpoint.path is not None
        return Payload(
            pages=pages,
            records_path=endpoint.records_path,
            origin=endpoint.path if len(files) > 1 else str(files[0]),
            fields=endpoint.fields,
            csv=_csv(endpoint),
            filters=endpoint.filters,
            ndjson=endpoint.format is FileFormat.NDJSON,
            not_modified=not_modified,
            body_hash=body_hash,
        )

    def _stat_digest(self, files: list[Path]) -> str:
        """The set's paths, sizes, mtimes, ctimes and inodes with how it is read, as hex;
        a file that cannot be stat-ed is one that changed (the copy then tells)."""
        digest = hashlib.blake2b(self._instructions, digest_size=HASH_SIZE)
        for file in files:
            try:
                stat = file.stat()
            except OSError:
                return ""
            entry = (str(file), stat.st_size, stat.st_mtime_ns, stat.st_ctime_ns, stat.st_ino)
            digest.update(repr(entry).encode())
        return digest.hexdigest()

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
