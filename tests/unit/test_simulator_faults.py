"""The simulator's fault plan and conditional-request rules, without a socket."""

from __future__ import annotations

import math
from collections import Counter
from datetime import UTC, datetime, timedelta

import pytest

from catalog_refresher.domain.specs import SOURCE_IDS
from catalog_refresher.simulator import Fault, FaultPlan, Faults
from catalog_refresher.simulator.versions import (
    Versions,
    entity_tag,
    http_date,
    not_modified,
)

NOW = datetime(2026, 11, 29, 10, 0, 0, 250_000, tzinfo=UTC)


def faults_of(plan: FaultPlan, source_id: str, n: int) -> list[Fault]:
    return [plan.draw(source_id).fault for _ in range(n)]


def test_the_schedule_follows_the_seed() -> None:
    """Two plans with one seed fault the same requests; another seed faults others."""
    knobs = Faults(error_rate=0.2, malformed_rate=0.1, empty_rate=0.1, trickle_rate=0.1)
    lots = faults_of(FaultPlan(knobs, seed=3), "lots", 40)

    assert faults_of(FaultPlan(knobs, seed=3), "lots", 40) == lots
    assert faults_of(FaultPlan(knobs, seed=4), "lots", 40) != lots
    assert len(set(lots)) > 2  # the stream does mix faults


def test_an_interleaved_schedule_matches_a_sequential_one() -> None:
    """The n-th request of a source gets the same fault however requests of sources interleave."""
    knobs = Faults(error_rate=0.3, empty_rate=0.2)
    sequential = {s: faults_of(FaultPlan(knobs, seed=9), s, 12) for s in SOURCE_IDS}
    interleaved = FaultPlan(knobs, seed=9)
    seen: dict[str, list[Fault]] = {s: [] for s in SOURCE_IDS}
    for n in range(12):
        for source_id in SOURCE_IDS[n % 3 :] + SOURCE_IDS[: n % 3]:
            seen[source_id].append(interleaved.draw(source_id).fault)

    assert seen == sequential


def test_the_first_request_of_one_source_fails_on_purpose() -> None:
    """With an error rate, one source chosen by the seed gets a 503 with Retry-After first."""
    plan = FaultPlan(Faults(), seed=7)
    assert plan.scheduled in SOURCE_IDS

    first = plan.draw(plan.scheduled)
    assert (first.fault, first.retry_after, first.scheduled) == (Fault.UNAVAILABLE, True, True)
    assert not plan.draw(plan.scheduled).scheduled  # only the first
    assert {FaultPlan(Faults(), seed=s).scheduled for s in range(100)} == set(SOURCE_IDS)


def test_the_default_seed_lets_the_scheduled_failure_be_retried_successfully() -> None:
    """With the defaults (seed 7) the retry after the planned 503 succeeds: `make run` shows it."""
    plan = FaultPlan(Faults(), seed=7)
    assert plan.scheduled is not None

    assert faults_of(plan, plan.scheduled, 2) == [Fault.UNAVAILABLE, Fault.NONE]


def test_no_error_rate_means_no_planned_failure() -> None:
    """With --error-rate 0 nothing fails, not even the planned first request."""
    plan = FaultPlan(Faults(error_rate=0.0), seed=7)

    assert plan.scheduled is None
    assert {f for s in SOURCE_IDS for f in faults_of(plan, s, 50)} == {Fault.NONE}


def test_each_fault_comes_at_about_its_rate() -> None:
    """Over many requests each fault's share is close to its knob, and 503s carry Retry-After
    about half of the time."""
    knobs = Faults(error_rate=0.1, malformed_rate=0.05, empty_rate=0.15, trickle_rate=0.2)
    plan = FaultPlan(knobs, seed=1)
    draws = [plan.draw(s) for _ in range(400) for s in SOURCE_IDS]
    counts = Counter(d.fault for d in draws)

    shares = {fault: counts[fault] / len(draws) for fault in Fault}
    assert shares[Fault.UNAVAILABLE] == pytest.approx(0.1, abs=0.02)
    assert shares[Fault.MALFORMED] == pytest.approx(0.05, abs=0.02)
    assert shares[Fault.EMPTY] == pytest.approx(0.15, abs=0.02)
    assert shares[Fault.TRICKLE] == pytest.approx(0.2, abs=0.02)
    outages = [d for d in draws if d.fault is Fault.UNAVAILABLE and not d.scheduled]
    assert sum(d.retry_after for d in outages) / len(outages) == pytest.approx(0.5, abs=0.1)
    assert not any(d.retry_after for d in draws if d.fault is not Fault.UNAVAILABLE)


def test_a_rate_of_one_always_gives_that_fault() -> None:
    """--malformed-rate 1 cuts every answer (and no planned 503 without an error rate)."""
    plan = FaultPlan(Faults(error_rate=0.0, malformed_rate=1.0), seed=2)

    assert {f for s in SOURCE_IDS for f in faults_of(plan, s, 5)} == {Fault.MALFORMED}


@pytest.mark.parametrize(
    ("knobs", "message"),
    [
        ({"error_rate": 1.5}, "--error-rate must be within"),
        ({"trickle_rate": -0.1}, "--trickle-rate must be within"),
        ({"malformed_rate": 0.6, "empty_rate": 0.6}, "add up to more than 1"),
        ({"latency": -1.0}, "--latency must be zero or more"),
        ({"trickle_seconds": math.nan}, "--trickle-seconds must be zero or more"),
    ],
)
def test_bad_knobs_are_refused_naming_the_option(knobs: dict[str, float], message: str) -> None:
    """A rate outside [0, 1], rates adding up past 1, or a negative wait is refused."""
    with pytest.raises(ValueError, match=message):
        Faults(**knobs)


def test_the_same_body_keeps_its_version() -> None:
    """An unchanged body keeps its ETag and Last-Modified however much later it is answered."""
    versions = Versions()
    first = versions.observe(("suppliers",), b"[1]", NOW)
    again = versions.observe(("suppliers",), b"[1]", NOW + timedelta(hours=1))

    assert again == first
    assert first.etag == entity_tag(b"[1]")
    assert first.etag.startswith('"')
    assert first.last_modified == NOW.replace(microsecond=0)


def test_a_changed_body_gets_a_new_version_strictly_later() -> None:
    """A change moves Last-Modified to now, or a second past the last one within one second."""
    versions = Versions()
    first = versions.observe(("erp_stock",), b"[1]", NOW)
    quick = versions.observe(("erp_stock",), b"[2]", NOW + timedelta(milliseconds=10))
    later = versions.observe(("erp_stock",), b"[3]", NOW + timedelta(seconds=30))

    assert quick.etag != first.etag
    assert quick.last_modified == first.last_modified + timedelta(seconds=1)
    assert later.last_modified == (NOW + timedelta(seconds=30)).replace(microsecond=0)


def test_versions_are_kept_per_representation_and_old_ones_forgotten() -> None:
    """Two windows of one source have versions of their own; the table keeps the newest few."""
    versions = Versions(capacity=2)
    a = versions.observe(("sales_data", "2026-01-01", "2026-01-31"), b"[1]", NOW)
    versions.observe(("sales_data", "2026-02-01", "2026-02-28"), b"[2]", NOW)
    assert versions.observe(("sales_data", "2026-01-01", "2026-01-31"), b"[1]", NOW) == a

    versions.observe(("lots",), b"[]", NOW)  # pushes out the February window
    later = NOW + timedelta(minutes=5)
    again = versions.observe(("sales_data", "2026-02-01", "2026-02-28"), b"[2]", later)
    assert again.last_modified == later.replace(microsecond=0)


@pytest.mark.parametrize(
    ("if_none_match", "if_modified_since", "expected"),
    [
        ('"tag"', None, True),
        ('"other", W/"tag"', None, True),
        ("*", None, True),
        ('"other"', None, False),
        ('"other"', "Sun, 29 Nov 2026 10:00:00 GMT", False),  # If-None-Match decides
        (None, "Sun, 29 Nov 2026 10:00:00 GMT", True),
        (None, "Sun, 29 Nov 2026 11:00:00 GMT", True),
        (None, "Sun, 29 Nov 2026 09:59:59 GMT", False),
        (None, "not a date", False),
        (None, None, False),
    ],
)
def test_conditional_headers_decide_304_as_rfc_9110_says(
    if_none_match: str | None, if_modified_since: str | None, expected: bool
) -> None:
    """If-None-Match (weak comparison, lists, *) wins; else If-Modified-Since, if valid."""
    version = Versions().observe(("x",), b"[]", NOW)
    version = type(version)(etag='"tag"', last_modified=version.last_modified)

    assert not_modified(version, if_none_match, if_modified_since) is expected
    assert http_date(version.last_modified) == "Sun, 29 Nov 2026 10:00:00 GMT"
