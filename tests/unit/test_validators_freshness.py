"""Publish validators, freshness windows and their configuration (issue 12 points 7, 8)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from catalog_refresher.config import describe, load
from catalog_refresher.config.policy_settings import (
    DuplicateKeys,
    FreshnessSettings,
    ValidatorSettings,
)
from catalog_refresher.config.settings import RepositoryOptions
from catalog_refresher.domain.specs import SPECS
from catalog_refresher.errors import ConfigError, PublishRejected
from catalog_refresher.refresh.diff import Diff
from catalog_refresher.refresh.resilience import CircuitState
from catalog_refresher.refresh.validate import Batch
from catalog_refresher.refresh.validators import check_validators, verdicts
from catalog_refresher.status import Freshness, Health, source_health, source_status
from catalog_refresher.store.base import SourceHistory

NOW = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)


def day(*, stored: int = 1000, inserts: int = 0, updates: int = 0, deletes: int = 0) -> Diff:
    """A diff over ``stored`` rows with that many keys of each kind."""
    return Diff(
        inserts=[f"i{n}" for n in range(inserts)],
        updates=[f"u{n}" for n in range(updates)],
        deletes=[f"d{n}" for n in range(deletes)],
        scope=stored,
    )


NORMAL_DAY = day(inserts=12, updates=30, deletes=8)  # 1000 -> 1004 rows, 5 % changed
STRICT = ValidatorSettings(
    min_records=900,
    max_count_change=0.2,
    max_changed_share=0.5,
    duplicate_keys=DuplicateKeys.REJECT,
)


def rejection(settings: ValidatorSettings, diff: Diff, batch: Batch | None = None) -> str:
    with pytest.raises(PublishRejected) as caught:
        check_validators(settings, batch=batch or Batch(), diff=diff, force=False)
    return str(caught.value)


def test_every_validator_accepts_a_normal_days_change() -> None:
    """1000 rows, 12 new, 30 changed, 8 gone: every validator passes, nothing raises."""
    check_validators(STRICT, batch=Batch(), diff=NORMAL_DAY, force=False)
    assert all(v.passed for v in verdicts(STRICT, batch=Batch(), diff=NORMAL_DAY))
    assert [v.name for v in verdicts(STRICT, batch=Batch(), diff=NORMAL_DAY)] == [
        "MinRecords",
        "MaxCountChange",
        "MaxChangedShare",
        "DuplicateKeys",
    ]


def test_min_records_rejects_a_shrunken_source() -> None:
    """150 of 1000 rows gone leaves 850, under MinRecords 900."""
    reason = rejection(ValidatorSettings(min_records=900), day(deletes=150))
    assert reason == "validator MinRecords failed: 850 records, at least 900 wanted"


def test_max_count_change_rejects_a_jump_in_the_count() -> None:
    """1000 -> 1300 records is a 30 % move, over MaxCountChange 20 %."""
    reason = rejection(ValidatorSettings(max_count_change=0.2), day(inserts=300))
    assert "MaxCountChange failed: record count 1000 -> 1300 (30.0%)" in reason


def test_max_changed_share_rejects_a_rewrite_of_most_rows() -> None:
    """600 of 1000 rows updated (same count) is over MaxChangedShare 50 %."""
    reason = rejection(ValidatorSettings(max_changed_share=0.5), day(updates=600))
    assert "MaxChangedShare failed: 600 of 1000 rows changed (60.0%)" in reason


def test_duplicate_keys_reject_refuses_a_payload_with_a_key_twice() -> None:
    """DuplicateKeys reject: one duplicate rejects; by default the last one wins (passes)."""
    batch = Batch(duplicates=1)
    assert "DuplicateKeys failed: 1 duplicate keys" in rejection(STRICT, NORMAL_DAY, batch)
    check_validators(ValidatorSettings(), batch=batch, diff=NORMAL_DAY, force=False)


def test_a_forced_run_skips_the_validators() -> None:
    """force overrides validators as it overrides the guard."""
    check_validators(ValidatorSettings(min_records=10**6), batch=Batch(), diff=day(), force=True)


def test_the_first_run_passes_the_share_validators() -> None:
    """Nothing stored yet: there is no previous count to compare, so only MinRecords counts."""
    found = verdicts(STRICT, batch=Batch(), diff=day(stored=0, inserts=1000))
    assert [v.name for v in found] == ["MinRecords", "DuplicateKeys"]
    assert all(v.passed for v in found)


def status_at(age: timedelta, window: FreshnessSettings | None) -> Any:
    history = SourceHistory(last_success_at=NOW - age, record_count=5)
    return source_status(
        source="erp_stock",
        interval=timedelta(minutes=5),
        enabled=True,
        priority=0,
        history=history,
        circuit_state=CircuitState.CLOSED,
        next_run_at=None,
        service_started_at=NOW - timedelta(days=1),
        options=RepositoryOptions(stale_after_intervals=10**6),
        now=NOW,
        freshness=window,
    )


WINDOW = FreshnessSettings(warn_after=timedelta(hours=1), fail_after=timedelta(hours=6))


def test_freshness_is_fresh_then_warn_then_fail_with_the_age() -> None:
    """30 min: fresh and Healthy; 2 h: warn and Degraded; 7 h: fail, a distinct state."""
    fresh, warn, fail = (status_at(timedelta(hours=h), WINDOW) for h in (0.5, 2, 7))
    assert (fresh.freshness, warn.freshness, fail.freshness) == (
        Freshness.FRESH,
        Freshness.WARN,
        Freshness.FAIL,
    )
    assert fail.age == timedelta(hours=7)
    assert source_health(fresh).status is Health.HEALTHY
    assert source_health(warn).status is Health.DEGRADED
    assert "freshness warn: data older than WarnAfter 01:00:00" in source_health(warn).description
    assert "freshness fail: data older than FailAfter 06:00:00" in source_health(fail).description
    assert status_at(timedelta(hours=7), None).freshness is None


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "appsettings.json"
    path.write_text(text, encoding="utf-8")
    return path


def source_config(tmp_path: Path, extra: str) -> Any:
    text = f'{{"Sources": {{"ErpStock": {{"Type": "demo", {extra}}}}}}}'
    return load(write(tmp_path, text), environment=None, environ={})


def test_validators_and_freshness_are_read_and_printed_by_check_config(tmp_path: Path) -> None:
    """The issue's example is read into settings and printed back in the file's shape."""
    settings = source_config(
        tmp_path,
        '"Validators": {"MinRecords": 100, "MaxCountChange": 0.2, "MaxChangedShare": 0.5,'
        ' "DuplicateKeys": "reject"}, "Freshness": {"WarnAfter": "01:00:00",'
        ' "FailAfter": "06:00:00"}',
    )
    source = settings.sources["erp_stock"]
    assert source.validators == ValidatorSettings(
        min_records=100,
        max_count_change=0.2,
        max_changed_share=0.5,
        duplicate_keys=DuplicateKeys.REJECT,
    )
    assert source.freshness == WINDOW
    shown = describe(settings)["Sources"][SPECS["erp_stock"].config_key]
    assert shown["Validators"]["DuplicateKeys"] == "Reject"
    assert shown["Freshness"] == {"WarnAfter": "01:00:00", "FailAfter": "06:00:00"}


@pytest.mark.parametrize(
    ("extra", "key"),
    [
        ('"Validators": {"MinRecord": 1}', "Sources:ErpStock:Validators:MinRecord"),
        ('"Validators": {"MaxChangedShare": 2}', "Sources:ErpStock:Validators:MaxChangedShare"),
        ('"Validators": {"MaxCountChange": -1}', "Sources:ErpStock:Validators:MaxCountChange"),
        ('"Validators": {"DuplicateKeys": "first"}', "Sources:ErpStock:Validators:DuplicateKeys"),
        ('"Freshness": {"WarnAfter": "soon"}', "Sources:ErpStock:Freshness:WarnAfter"),
        (
            '"Freshness": {"WarnAfter": "02:00:00", "FailAfter": "01:00:00"}',
            "Sources:ErpStock:Freshness:FailAfter",
        ),
        ('"Freshness": {}', "Sources:ErpStock:Freshness"),
    ],
)
def test_bad_validators_and_freshness_name_their_key(tmp_path: Path, extra: str, key: str) -> None:
    """Each mistake is a ConfigError naming the exact key."""
    with pytest.raises(ConfigError) as caught:
        source_config(tmp_path, extra)
    assert caught.value.key == key


def test_auto_pause_after_failures_is_off_by_default_and_zero_is_allowed(tmp_path: Path) -> None:
    """Default 0 (off); 0 may be written; a negative count names its key."""
    assert RepositoryOptions().auto_pause_after_failures == 0
    path = write(tmp_path, '{"CatalogRepository": {"AutoPauseAfterFailures": 0}}')
    assert load(path, environment=None, environ={}).repository.auto_pause_after_failures == 0
    path = write(tmp_path, '{"CatalogRepository": {"AutoPauseAfterFailures": -1}}')
    with pytest.raises(ConfigError) as caught:
        load(path, environment=None, environ={})
    assert caught.value.key == "CatalogRepository:AutoPauseAfterFailures"


def test_metrics_export_paused_age_and_the_freshness_bounds() -> None:
    """catalog_source_paused is 1 for a paused source and 0 for the others; the age is
    now minus the last success; each configured bound is exported in seconds."""
    from prometheus_client.parser import text_string_to_metric_families

    from catalog_refresher.observe.metrics import Metrics

    metrics = Metrics(
        sources=["erp_stock", "eshop_stock"],
        paused=lambda: {"erp_stock"},
        now=lambda: NOW,
        freshness=lambda: {"erp_stock": WINDOW},
    )
    metrics.load_last_success({"erp_stock": NOW - timedelta(minutes=90), "eshop_stock": None})
    text = metrics.render()[0].decode()
    samples = {
        (s.name, s.labels.get("data_type")): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }
    assert samples[("catalog_source_paused", "erp_stock")] == 1
    assert samples[("catalog_source_paused", "eshop_stock")] == 0
    assert samples[("catalog_source_age_seconds", "erp_stock")] == 90 * 60
    assert ("catalog_source_age_seconds", "eshop_stock") not in samples
    assert samples[("catalog_source_freshness_warn_after_seconds", "erp_stock")] == 3600
    assert samples[("catalog_source_freshness_fail_after_seconds", "erp_stock")] == 6 * 3600
