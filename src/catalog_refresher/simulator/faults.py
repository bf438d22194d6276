"""The simulator's fault knobs, and the seeded plan of which request misbehaves how.

Each source draws from a random stream of its own, seeded by ``(seed, source)``,
and each request takes the same number of draws whatever it gets. So which
request of a source fails depends only on the seed and on how many requests
that source has had: the service asks for several sources at once, in an order
that varies from run to run, and a fault schedule shared by all of them would
vary with it.

With a non-zero error rate the plan also fails the first request of one source
(chosen by the seed) on purpose, with a 503 and ``Retry-After: 1``: a run of
``make run`` shows a retried failure within its first minute every time, not
only when the dice say so.
"""

from __future__ import annotations

import enum
import random
from dataclasses import dataclass

from catalog_refresher.domain.specs import SOURCE_IDS

__all__ = ["Draw", "Fault", "FaultPlan", "Faults"]


class Fault(enum.Enum):
    """How one answer misbehaves."""

    NONE = "none"
    UNAVAILABLE = "unavailable"
    """HTTP 503, sometimes with ``Retry-After: 1``; the system's data is not read."""
    TRICKLE = "trickle"
    """The answer is right, but its body is dribbled out over ``trickle_seconds``."""
    MALFORMED = "malformed"
    """HTTP 200 with the JSON cut in half."""
    EMPTY = "empty"
    """HTTP 200 with ``[]``: a system that lost its data, or answers before it has loaded it."""


@dataclass(frozen=True, slots=True, kw_only=True)
class Faults:
    """The knobs of ``catalog-refresher simulate``; the rates are chances per request.

    A request gets at most one of the drawn faults, so the four rates may add up
    to 1 at most. ``latency`` delays every answer, faulty or not.
    """

    error_rate: float = 0.05
    latency: float = 0.0
    trickle_rate: float = 0.0
    trickle_seconds: float = 5.0
    malformed_rate: float = 0.0
    empty_rate: float = 0.0

    def __post_init__(self) -> None:
        rates = {
            "--error-rate": self.error_rate,
            "--trickle-rate": self.trickle_rate,
            "--malformed-rate": self.malformed_rate,
            "--empty-rate": self.empty_rate,
        }
        for option, rate in rates.items():
            if not 0.0 <= rate <= 1.0:
                raise ValueError(f"{option} must be within [0, 1], not {rate:g}")
        if sum(rates.values()) > 1.0:
            raise ValueError("the rates of the four faults add up to more than 1")
        for option, seconds in (
            ("--latency", self.latency),
            ("--trickle-seconds", self.trickle_seconds),
        ):
            if not seconds >= 0.0:  # written so that NaN is refused too
                raise ValueError(f"{option} must be zero or more seconds, not {seconds:g}")


@dataclass(frozen=True, slots=True)
class Draw:
    """The fault of one request; ``scheduled`` when the plan chose it rather than the dice."""

    fault: Fault
    retry_after: bool = False
    scheduled: bool = False


_CLEAN = Draw(Fault.NONE)


class FaultPlan:
    """Which request of which source misbehaves, reproducibly from ``seed``.

    Not thread-safe: the simulator draws under its lock.
    """

    def __init__(self, faults: Faults, seed: int) -> None:
        self._faults = faults
        self._streams = {s: random.Random(f"{seed}:faults:{s}") for s in SOURCE_IDS}
        self._requests = dict.fromkeys(SOURCE_IDS, 0)
        self.scheduled: str | None = None
        """The source whose first request fails on purpose (none without an error rate)."""
        if faults.error_rate > 0:
            self.scheduled = random.Random(f"{seed}:scheduled").choice(SOURCE_IDS)

    def draw(self, source_id: str) -> Draw:
        """The fault of ``source_id``'s next request."""
        stream = self._streams[source_id]
        roll, coin = stream.random(), stream.random()  # always two: the stream stays aligned
        self._requests[source_id] += 1
        if source_id == self.scheduled and self._requests[source_id] == 1:
            return Draw(Fault.UNAVAILABLE, retry_after=True, scheduled=True)
        f = self._faults
        for fault, rate in (
            (Fault.UNAVAILABLE, f.error_rate),
            (Fault.MALFORMED, f.malformed_rate),
            (Fault.EMPTY, f.empty_rate),
            (Fault.TRICKLE, f.trickle_rate),
        ):
            if roll < rate:
                return Draw(fault, retry_after=fault is Fault.UNAVAILABLE and coin < 0.5)
            roll -= rate
        return _CLEAN
