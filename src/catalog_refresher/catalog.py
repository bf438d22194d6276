"""The read side: product aggregates, assembled from the store and cached.

The cache is a bounded LRU (``max_size`` entries, so memory stays flat however
large the catalog). Under memory pressure (``MemoryPressure``, ``refresh/pressure.py``)
it evicts down to a share of that and keeps to it until the pressure ends. A run
invalidates only the products it changed (its ``DataChanged`` event); the
change feed in the store (``changes_since``) lets a cache in another process
or replica catch up with changes it did not see happen.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from dataclasses import dataclass
from datetime import datetime

import msgspec

from catalog_refresher.domain.aggregate import ProductAggregate, assemble, decode_rows
from catalog_refresher.domain.runs import RunStatus
from catalog_refresher.refresh.events import DataChanged, Event, MemoryPressure, RunFinished
from catalog_refresher.store.base import Store, StoredPart

DEFAULT_CACHE_SIZE = 10_000

_encode = msgspec.json.Encoder().encode
_decode = msgspec.json.Decoder(ProductAggregate).decode

# A cache entry is (JSON of the aggregate, the ``refreshed_at`` stamp it carries).
# Bytes and a tuple of them are invisible to the garbage collector, whose full
# passes over ten thousand cached object graphs showed up as read latency.
_Cached = tuple[bytes, int]


@dataclass(frozen=True, slots=True, kw_only=True)
class CacheStats:
    size: int
    max_size: int
    hits: int
    misses: int
    pressure_evictions: int = 0
    """Aggregates evicted to shrink the cache under memory pressure, since start."""

    @property
    def hit_ratio(self) -> float:
        looked = self.hits + self.misses
        return self.hits / looked if looked else 0.0


class Catalog:
    """Product aggregates by code; safe to call from worker threads."""

    def __init__(self, store: Store, *, max_size: int = DEFAULT_CACHE_SIZE) -> None:
        if max_size < 0:
            raise ValueError("max_size must be >= 0")
        self.store = store
        self.max_size = max_size
        self._capacity = max_size
        """``max_size``, or less while the memory is above its limit."""
        self._pressure_evictions = 0
        self._cache: OrderedDict[str, _Cached] = OrderedDict()
        self._lock = threading.Lock()
        self._hits = 0
        self._misses = 0
        self._refreshed: dict[str, datetime | None] = {}
        self._stamp = 0
        """Moves whenever a ``refreshed_at`` does, so cached JSON knows it is out of date."""
        self._cursor = 0
        self._generation = 0

    # --- reads --------------------------------------------------------------------

    async def get(self, code: str) -> ProductAggregate | None:
        """The product's aggregate, or ``None`` if no source knows the code."""
        body = await self.get_json(code)
        return None if body is None else _decode(body)

    async def get_json(self, code: str) -> bytes | None:
        """The product's aggregate as JSON; a miss awaits ``Store.product_parts``."""
        cached, generation = self._lookup(code)
        if cached is not None:
            return cached
        return self._remember(code, await self.store.product_parts(code), generation)

    def _lookup(self, code: str) -> tuple[bytes | None, int]:
        """The cached JSON (counted a hit) or ``None`` (a miss), and the generation."""
        with self._lock:
            entry = self._cache.get(code)
            if entry is not None:
                self._cache.move_to_end(code)
                self._hits += 1
                return self._current(code, entry), self._generation
            self._misses += 1
            return None, self._generation

    def _remember(
        self, code: str, parts: dict[str, StoredPart] | None, generation: int
    ) -> bytes | None:
        """The aggregate of ``parts`` as JSON, cached unless invalidated since the read."""
        if parts is None:
            return None
        product = assemble(
            code,
            {source: decode_rows(source, part.rows) for source, part in parts.items()},
            {source: (part.run_id, part.changed_at) for source, part in parts.items()},
            {},
        )
        with self._lock:
            body = _encode(self._stamped(product))
            # Cache only if nothing was invalidated while we read: the read may
            # predate a change that the invalidation was about.
            if self.max_size and generation == self._generation:
                self._cache[code] = (body, self._stamp)
                self._cache.move_to_end(code)
                self._trim()
        return body

    def _trim(self) -> int:
        """Evict the least recently read down to the capacity (call with the lock held)."""
        evicted = 0
        while len(self._cache) > self._capacity:
            self._cache.popitem(last=False)
            evicted += 1
        return evicted

    def _current(self, code: str, entry: _Cached) -> bytes:
        """The entry's JSON with current ``refreshed_at`` stamps (call with the lock held)."""
        body, stamp = entry
        if stamp != self._stamp:
            body = _encode(self._stamped(_decode(body)))
            self._cache[code] = (body, self._stamp)
        return body

    def _stamped(self, product: ProductAggregate) -> ProductAggregate:
        """The product with each part's ``refreshed_at``, which moves on every good run."""
        for source, part in product.lineage.items():
            part.refreshed_at = self._refreshed.get(source) or part.refreshed_at
        return product

    # --- invalidation -------------------------------------------------------------

    def invalidate(self, codes: set[str] | frozenset[str]) -> int:
        with self._lock:
            self._generation += 1
            cache = self._cache
            if len(codes) > len(cache):
                # A large run: walk the (bounded) cache rather than every changed code.
                gone = [code for code in cache if code in codes]
            else:
                gone = [code for code in codes if code in cache]
            for code in gone:
                del cache[code]
            return len(gone)

    def invalidate_all(self) -> int:
        with self._lock:
            self._generation += 1
            dropped = len(self._cache)
            self._cache.clear()
            return dropped

    def on_event(self, event: Event) -> None:
        """The ``EventBus`` observer: drop what a run changed, keep ``refreshed_at`` current."""
        match event:
            case DataChanged(products=products):
                if products is None:
                    self.invalidate_all()
                else:
                    self.invalidate(products)
            case MemoryPressure(above=True, cache_share=share):
                self.shrink(share)
            case MemoryPressure(above=False):
                self.restore()
            case RunFinished(run=run) if run.status is RunStatus.SUCCEEDED:
                with self._lock:
                    self._refreshed[run.source] = run.finished_at
                    self._stamp += 1
            case _:
                pass

    def shrink(self, share: float) -> int:
        """Keep at most ``share`` of ``max_size`` until ``restore``; returns how many went."""
        with self._lock:
            self._capacity = int(self.max_size * share)
            evicted = self._trim()
            self._pressure_evictions += evicted
            return evicted

    def restore(self) -> None:
        """Let the cache grow back to ``max_size`` as products are read."""
        with self._lock:
            self._capacity = self.max_size

    def load_refreshed(self, refreshed: dict[str, datetime | None]) -> None:
        """Take these ``refreshed_at`` stamps (a replica reads its peers' every second)."""
        with self._lock:
            if all(self._refreshed.get(source) == at for source, at in refreshed.items()):
                return  # nothing moved: cached JSON stays as it is, not re-encoded
            self._refreshed.update(refreshed)
            self._stamp += 1

    def follow_from(self, cursor: int) -> None:
        """Start following the change feed at ``cursor`` (what came before is known)."""
        self._cursor = cursor

    def follow_changes(self) -> int:
        """Invalidate what other processes changed since the last call; returns how many."""
        self._cursor, codes = self.store.changes_since(self._cursor)
        return self.invalidate(codes) if codes else 0

    def stats(self) -> CacheStats:
        with self._lock:
            return CacheStats(
                size=len(self._cache),
                max_size=self.max_size,
                hits=self._hits,
                misses=self._misses,
                pressure_evictions=self._pressure_evictions,
            )
