"""What the operator commands print, as pure functions of the API's answers."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from catalog_refresher.config.settings import ApiSettings
from catalog_refresher.console.client import service_url
from catalog_refresher.console.tables import STATUS_COLUMNS, age, plain, status_rows

NOW = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("iso", "expected"),
    [
        (None, "–"),
        ("2026-12-01T12:00:00.5+00:00", "just now"),
        ("2026-12-01T11:59:15+00:00", "45 s ago"),
        ("2026-12-01T11:57:30+00:00", "2 min ago"),
        ("2026-12-01T09:00:00+00:00", "3 h ago"),
        ("2026-11-28T12:00:00+00:00", "3 d ago"),
        ("2026-12-01T12:04:00+00:00", "in 4 min"),
    ],
)
def test_ages_read_as_a_person_says_them(iso: str | None, expected: str) -> None:
    """Past times are "… ago", future ones "in …", in the largest whole unit."""
    assert age(iso, NOW) == expected


def test_a_row_says_paused_with_its_reason_and_the_pinned_run() -> None:
    """Paused shows its reason; a pinned source names the run it serves; a disabled source
    shows neither health nor a next run."""
    sources = [
        {
            "id": "erp_stock",
            "enabled": True,
            "last_status": "succeeded",
            "last_success_at": "2026-12-01T11:58:00+00:00",
            "next_run_at": "2026-12-01T12:03:00+00:00",
            "circuit_state": "half_open",
            "consecutive_failures": 0,
            "record_count": 1234567,
            "paused": True,
            "pause_reason": "ERP migration",
            "pinned": True,
            "pinned_run_id": 41,
        },
        {
            "id": "lots",
            "enabled": False,
            "last_status": None,
            "last_success_at": None,
            "next_run_at": None,
            "circuit_state": "closed",
            "consecutive_failures": 0,
            "record_count": 0,
        },
    ]
    health = {"status": "Degraded", "entries": {"erp_stock": {"status": "Degraded"}}}

    erp, lots = status_rows(sources, health, NOW)

    assert dict(zip(STATUS_COLUMNS, erp, strict=True)) == {
        "source": "erp_stock",
        "health": "Degraded",
        "last status": "succeeded",
        "last success": "2 min ago",
        "next run": "in 3 min",
        "circuit": "half-open",
        "failures": "0",
        "records": "1,234,567",
        "paused": "yes: ERP migration",
        "pinned": "run 41",
    }
    assert lots[1:5] == ("disabled", "never run", "–", "–")
    assert lots[-2:] == ("no", "no")
    assert plain([erp], STATUS_COLUMNS).splitlines()[1].split("\t")[0] == "erp_stock"


@pytest.mark.parametrize(
    ("host", "url"),
    [
        ("127.0.0.1", "http://127.0.0.1:8000"),
        ("0.0.0.0", "http://127.0.0.1:8000"),
        ("::", "http://[::1]:8000"),
        ("catalog.internal", "http://catalog.internal:8000"),
    ],
)
def test_the_service_is_found_where_it_listens(host: str, url: str) -> None:
    """A service bound to every interface is reached on loopback; IPv6 gets brackets."""
    assert service_url(ApiSettings(host=host, port=8000)) == url
