"""``catalog-refresher simulate``: the ten external systems over HTTP, on loopback.

The data is the demo world's (``sources/demo.py``): a small shop whose systems
move a little on every read. What ``make run`` runs the service against, and
what ``examples/demo.json`` points at.

The protocol
------------
``GET /<source id>`` (``/erp_stock``, ... ``/suppliers``): a JSON array of
records in the shapes of contract section 4, ``Content-Type: application/json``.
``GET /`` lists the ten paths and the parameters each reads.

- History sources (``sales_data``, ``purchase_history``, ``consumed_materials``)
  need ``date_from`` and ``date_to`` (ISO dates, both inclusive) and answer the
  rows inside that window, up to today; missing or bad dates are a 400.
- Conditional requests, on every source: each 200 carries ``ETag`` (a strong
  hash of the body: the same bytes, the same tag) and ``Last-Modified`` (when
  this URL's answer last changed; strictly growing). A matching
  ``If-None-Match`` (``*``, a list, weak tags allowed), or when that header is
  absent an ``If-Modified-Since`` no older than ``Last-Modified``, gets
  ``304 Not Modified`` with those two headers and no body. Suppliers,
  attributes, stock taking, purchases and consumption are often unchanged
  between reads, and windows of past months always are; ERP and e-shop stock,
  transport boxes, lots and this month's sales move on every read.
- An incremental cursor on ``erp_stock``: every record carries ``changed_at``
  (ISO-8601 UTC with microseconds, ``2026-11-29T10:00:00.000123Z``, later for
  every change than for any change before it). ``GET
  /erp_stock?changed_since=<ISO time>`` answers only the records changed after
  that time, plus ``{"product_code": "X", "deleted": true, "changed_at": ...}``
  for each product discontinued since, oldest change first; a client keeps the
  greatest ``changed_at`` it has seen as its next cursor. Without
  ``changed_since``, the full snapshot (no tombstones). A time without a zone
  is UTC; ``changed_since`` on another source is a 400.
- Other query parameters are ignored, as real systems ignore what they do not
  know. Unknown paths are a 404.

Faults (``faults.py``), drawn per request from a stream seeded by ``--seed``
and the source, so a run's faults are the same every time: an outage (503,
half of them with ``Retry-After: 1``; the system's data is not read) at
``--error-rate``, a body dribbled out in 20 pieces over ``--trickle-seconds``
at ``--trickle-rate``, JSON cut short at ``--malformed-rate``, ``[]`` at
``--empty-rate``; ``--latency`` seconds before every answer. With an error rate
the first request of one source (chosen by the seed) is a 503 on purpose.

Modules: ``answers.py`` (the protocol as a function of the request),
``versions.py`` (tags, dates, 304s), ``faults.py`` (the knobs and their plan),
``http.py`` (the socket). Below this layer it imports only ``sources``,
``domain``, ``clock`` (``pyproject.toml`` says so to ``lint-imports``).
"""

from __future__ import annotations

from catalog_refresher.simulator.answers import CURSOR_SOURCES, Reply, Simulator
from catalog_refresher.simulator.faults import Fault, FaultPlan, Faults
from catalog_refresher.simulator.http import TRICKLE_CHUNKS, serving

__all__ = [
    "CURSOR_SOURCES",
    "TRICKLE_CHUNKS",
    "Fault",
    "FaultPlan",
    "Faults",
    "Reply",
    "Simulator",
    "serving",
]
