"""From a run's payload to its batch of valid records (contract sections 1 and 4).

Two halves meet here: ``sources/decoding.py`` turns each page into records,
``domain/rules.py`` says whether each record is valid and what its row key is.
A payload that cannot be decoded fails the whole run (``InvalidPayloadError``).
Inside a good payload each record stands alone: an invalid one is counted with
its reason and left out, and of two records with one key the last wins, the
earlier counted as invalid. A record the endpoint's ``Filter`` drops is not this
source's: it is not fetched, nor invalid, in the counts.
"""

from __future__ import annotations

from collections.abc import Sequence, Set, Sized
from dataclasses import dataclass, field

from catalog_refresher import progress
from catalog_refresher.domain import records
from catalog_refresher.domain.rules import Normaliser, normaliser, show_key
from catalog_refresher.domain.specs import SourceSpec
from catalog_refresher.domain.window import Window
from catalog_refresher.errors import InvalidRecord
from catalog_refresher.sources.base import Payload
from catalog_refresher.sources.decoding import PageRecords, Unfit, decode_pages

#: How many invalid-record reasons a run keeps for its audit entry.
MAX_REASONS = 10


@dataclass(slots=True, kw_only=True)
class Batch:
    """The valid records of one fetch, by row key, and what was refused."""

    rows: dict[str, records.Record] = field(default_factory=dict)
    fetched: int = 0
    invalid: int = 0
    duplicates: int = 0
    """Records whose key an earlier record had (each also counted invalid)."""
    reasons: list[str] = field(default_factory=list)
    unchanged: int = 0
    """Valid records not in ``rows``: sent as the very bytes of a stored row, so neither
    decoded nor diffed (``refresh/raw_index.py``)."""
    sent: dict[str, int] | None = None
    """When asked for: the hash of the bytes each row's record was sent as, by row key."""
    held: bool = True
    """False: the valid records are counted and hashed in ``sent``, not kept in ``rows``
    (a first load's, written as they are read again: ``refresh/first_load.py``)."""

    @property
    def valid(self) -> int:
        kept = len(self.rows) if self.held else len(self.sent or ())
        return kept + self.unchanged

    def refuse(self, where: str, reason: str) -> None:
        self.invalid += 1
        if len(self.reasons) < MAX_REASONS:
            self.reasons.append(f"{where}: {reason}")


def copy_key(key: str) -> str:
    """A new string equal to ``key`` (slicing and ``str()`` hand back the same object)."""
    return key.encode().decode()


def validate(
    spec: SourceSpec,
    payload: Payload,
    window: Window | None,
    skip: Sequence[Set[int]] = (),
    *,
    hash_sent: bool = False,
) -> Batch:
    """Decode and validate every page of ``payload`` for ``spec``'s source; ``skip`` holds,
    per page, the positions of records that are not records (an incremental answer's
    tombstones: ``refresh/incremental.py``), neither counted nor validated. ``hash_sent``
    fills ``Batch.sent`` (JSON pages)."""
    batch = Batch(sent={} if hash_sent else None)
    normalise = normaliser(spec, window)
    several = len(payload.pages) > 1
    pages = decode_pages(payload, spec.record_type, hash_sent=hash_sent)
    for page_number, page in enumerate(pages, start=1):
        batch.fetched += len(page.records)
        progress.advance(progress.RECORDS, len(page.records))
        skipped = skip[page_number - 1] if len(skip) >= page_number else None
        if skipped:
            batch.fetched -= len(skipped)
        take(batch, normalise, page, f"page {page_number} record" if several else "record", skipped)
    return batch


def take(
    batch: Batch,
    normalise: Normaliser,
    page: PageRecords,
    where: str,
    skipped: Set[int] | None = None,
) -> None:
    """Validate ``page``'s records into ``batch`` (not counting them as fetched)."""
    rows, held = batch.rows, batch.held
    sent, hashes = batch.sent, page.hashes
    # Where a key is found again: the rows, or only the hashes when no row is kept.
    seen: Sized = rows if held or sent is None else sent
    may_hold_unfit = page.may_hold_unfit
    # Messages name a record by its place in the page, filtered-out records included.
    at = page.positions
    # The inner loop runs once per record (a million for a large snapshot): it is
    # kept to one dict store and one call on the common path.
    for index, record in enumerate(page.records):
        if skipped and (index if at is None else at[index]) in skipped:
            continue
        if may_hold_unfit and isinstance(record, Unfit):
            batch.refuse(f"{where} {index if at is None else at[index]}", record.reason)
            continue
        try:
            key, clean = normalise(record)
        except InvalidRecord as exc:
            batch.refuse(f"{where} {index if at is None else at[index]}", str(exc))
            continue
        size = len(seen)
        if held:
            rows[key] = clean
        else:
            # A string of its own, not the record's (which goes with the chunk): kept
            # among the record's other strings it would pin their memory (60 MB at 1M).
            key = copy_key(key)
        if sent is not None and hashes is not None:
            sent[key] = hashes[index if at is None else at[index]]
        if len(seen) == size:
            # Contract: the last occurrence wins, the earlier one counts as invalid.
            batch.duplicates += 1
            batch.refuse(
                f"{where} {index if at is None else at[index]}",
                f"duplicate key {show_key(key)}, replaces earlier",
            )
