"""Skip what a source sent again unchanged: the hashes of the bytes behind its stored rows.

A warm full run of a million records, a few thousand of them changed, spent most of
its CPU on the rest: decoding, validating and fingerprinting records only to find
them equal (2.3 of 5.0 s at 1M rows, docs/benchmarks.md). A ``RawIndex`` keeps, for
every stored row of a source, the hash of the bytes its record was sent as (the JSON
slice msgspec cuts out of the array without decoding it: ``sources/decoding.py``).
A record sent again as the very same bytes, read the same way, is the same valid
record under the same key, and that row is stored: it is counted, and nothing else.
Only the records whose bytes are new are decoded and validated, and diffed against
their stored rows, read by key.

What that relies on, and where it steps aside:

- The same bytes are the same record only under the same reading (records path, field
  rules, filters): an index serves only runs that read their pages as it was made.
- A record's validity and key must not depend on the run: history sources (their
  window moves; their rows are numbered in payload order) never keep one.
- The index must hold exactly the stored rows, as the fingerprint index does: only
  full runs of snapshot sources keep one; an incremental run, a peer's write or a
  purge moves the data version, and the index is dropped.
- Duplicate keys: the contract's "last one wins" needs every record's place, which a
  skipped record has not got. A key sent as known bytes and again as new ones (or the
  same bytes twice) makes the run validate every record (``changes`` says so).
- Hashes are 64 bits (``sent_hashes``): a new record colliding with one of a million
  stored ones is a chance of about 1 in 10^9 for a run of 20,000 changed records, the
  risk the fingerprint index has taken from the start.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from catalog_refresher import progress
from catalog_refresher.config.settings import FieldRule, FilterCondition, JsonPath
from catalog_refresher.domain.rules import normaliser
from catalog_refresher.domain.specs import SourceSpec
from catalog_refresher.refresh.diff import Diff, FingerprintIndex, changed_rows
from catalog_refresher.refresh.validate import Batch, copy_key, take
from catalog_refresher.sources.base import Payload
from catalog_refresher.sources.decoding import (
    bounded_nesting,
    decode_raws,
    read_page,
    records_array,
    sent_hashes,
    split_records,
)
from catalog_refresher.sources.mapping import reader_for
from catalog_refresher.store.base import KeyedRows


@dataclass(frozen=True, slots=True)
class Reading:
    """How a run read its pages' records: the same bytes mean the same record only so."""

    records_path: JsonPath | None
    fields: tuple[FieldRule, ...]
    filters: tuple[FilterCondition, ...]


def reading_of(spec: SourceSpec, payload: Payload) -> Reading | None:
    """The reading a run of ``payload`` would keep a raw index under, or ``None`` where
    it cannot keep one (a history source; pages that are not JSON arrays)."""
    if spec.is_history or payload.not_modified or payload.csv is not None or payload.ndjson:
        return None
    return Reading(payload.records_path, payload.fields, payload.filters)


@dataclass(slots=True, kw_only=True)
class RawIndex:
    """``hash(bytes sent) -> row key`` of every stored row of one source, as of ``version``."""

    version: int
    reading: Reading
    keys: dict[int, str]

    @classmethod
    def of_batch(cls, batch: Batch, version: int, reading: Reading) -> RawIndex | None:
        """The index of a published batch that was validated whole (``hash_sent``);
        ``None`` if two of its rows were sent as bytes of one hash."""
        assert batch.sent is not None
        # Copies of the keys, laid out densely (why: ``FingerprintIndex.update``); a
        # batch that held no rows made its own already (``take``).
        if batch.held:
            keys = {sent: copy_key(key) for key, sent in batch.sent.items()}
        else:
            keys = {sent: key for key, sent in batch.sent.items()}
        if len(keys) != len(batch.sent):
            return None
        return cls(version=version, reading=reading, keys=keys)

    def update(self, batch: Batch, unseen: dict[int, str], version: int) -> None:
        """Bring the index up to date after a run of ``batch`` was applied: the rows
        whose bytes did not come again (``unseen``) are gone or were sent anew."""
        keys = self.keys
        own = {key: key for key in unseen.values()}  # the index's strings, not the run's
        for sent in unseen:
            del keys[sent]
        assert batch.sent is not None
        for key, sent in batch.sent.items():
            if keys.get(sent) != key:
                keys[sent] = own.get(key) or copy_key(key)
        self.version = version


@dataclass(slots=True, kw_only=True)
class Known:
    """A run validated against a raw index: its new records, and what it did not send."""

    batch: Batch
    """The records whose bytes were new (``rows``); the others counted ``unchanged``."""
    unseen: dict[int, str]
    """The stored rows whose bytes did not come: each updated, gone or now invalid."""


def validate_known(spec: SourceSpec, payload: Payload, index: RawIndex) -> Known:
    """Validate only the records of ``payload`` whose bytes ``index`` does not hold."""
    batch = Batch(sent={})
    normalise = normaliser(spec, None)
    reader = reader_for(spec.record_type, payload.fields, payload.filters)
    unseen = index.keys.copy()  # (``dict(...)`` rebuilds a dict that had deletions: 5x slower)
    forget = unseen.pop
    several = len(payload.pages) > 1
    for page_number, page in enumerate(payload.pages, start=1):
        with bounded_nesting(page_number):
            raws = split_records(records_array(read_page(page), payload.records_path, page_number))
            # Once per record: its hash and one dict pop. A record found is stored unchanged.
            sent = enumerate(sent_hashes(raws))
            new = [place for place, hashed in sent if forget(hashed, None) is None]
            batch.fetched += len(raws)
            batch.unchanged += len(raws) - len(new)
            progress.advance(progress.RECORDS, len(raws))
            if not new:
                continue
            fresh = [raws[place] for place in new]
            decoded = decode_raws(reader, fresh)
        # Name each decoded record by its place in the page, as a whole decode would.
        places = new if decoded.positions is None else [new[at] for at in decoded.positions]
        decoded = dataclasses.replace(
            decoded, positions=places, hashes=dict(zip(new, sent_hashes(fresh), strict=True))
        )
        take(batch, normalise, decoded, f"page {page_number} record" if several else "record")
    return Known(batch=batch, unseen=unseen)


def unseen_in(index: RawIndex, batch: Batch) -> dict[int, str]:
    """The stored rows whose bytes a batch validated whole (``hash_sent``) did not send
    for their key: what ``validate_known`` would have left."""
    assert batch.sent is not None
    sent = batch.sent
    return {hashed: key for hashed, key in index.keys.items() if sent.get(key) != hashed}


def candidates(index: RawIndex, batch: Batch) -> list[str]:
    """The keys of ``batch`` not sent as their stored row's bytes: to be read and diffed."""
    assert batch.sent is not None
    stored = index.keys
    return [key for key, sent in batch.sent.items() if stored.get(sent) != key]


def changes(
    spec: SourceSpec, index: RawIndex, known: Known, stored: KeyedRows, keys: list[str]
) -> Diff | None:
    """The run's delta: ``keys`` (its candidates) diffed against their ``stored`` rows,
    the unseen rows not sent again deleted. ``None`` when the run must be validated
    whole: a key came both as known bytes and as new ones, or the index no longer
    holds exactly the stored rows."""
    if stored.version != index.version or stored.row_count != len(index.keys):
        return None
    rows, left = known.batch.rows, set(known.unseen.values())
    if any(key in stored.rows and key not in left for key in keys):
        return None  # a duplicate of a record that was skipped: the order decides
    fingerprints = FingerprintIndex.build(spec, stored.version, stored.rows.items())
    candidate_rows = {key: rows[key] for key in keys}
    result = changed_rows(fingerprints.fingerprints, candidate_rows, Diff(scope=stored.row_count))
    result.deletes = [key for key in left if key not in rows]
    return result
