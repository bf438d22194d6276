"""``docs/alerts.yml``: its structure and the metric names it uses (pure Python, PyYAML).

promtool's own checks of the file, and of what each rule's expression does, are in
``tests/integration/test_alert_rules_promtool.py``.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

from prometheus_client.parser import text_string_to_metric_families

from catalog_refresher.catalog import CacheStats
from catalog_refresher.config.settings import FreshnessSettings
from catalog_refresher.domain.runs import Run, RunCounts, RunStatus, Trigger
from catalog_refresher.observe.metrics import Metrics
from catalog_refresher.refresh.events import (
    FailingOver,
    Purged,
    RunFinished,
    RunRetrying,
    RunStarted,
)
from catalog_refresher.refresh.pressure import PressureStats
from catalog_refresher.refresh.resilience import CircuitState
from tests.alert_rules import expressions, rules

REQUIRED = {"CatalogSourceStale", "CatalogCircuitOpen", "CatalogRefreshFailuresRising",
            "CatalogNoRefresh"}  # fmt: skip
#: PromQL words that look like identifiers but name no metric.
KEYWORDS = {"and", "or", "unless", "bool", "offset", "by", "without", "on", "ignoring",
            "group_left", "group_right"}  # fmt: skip
DURATION = re.compile(r"^(\d+(ms|s|m|h|d|w|y))+$")


def metric_names(expr: str) -> set[str]:
    """The metric names an expression selects (not its functions, keywords or labels)."""
    expr = re.sub(r'"(?:[^"\\]|\\.)*"', '""', expr)  # string literals
    expr = re.sub(r"\{[^}]*\}", "", expr)  # label matchers
    expr = re.sub(r"\[[^\]]*\]", "", expr)  # range durations
    expr = re.sub(r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", "", expr)
    names = set()
    for match in re.finditer(r"[A-Za-z_:][A-Za-z0-9_:]*", expr):
        word = match.group()
        if word in KEYWORDS or expr[match.end() :].lstrip().startswith("("):
            continue  # a keyword, or a function's name
        names.add(word)
    return names


def exported_names() -> set[str]:
    """Every sample name a Metrics instance exposes after a run of each kind."""
    at = datetime(2026, 11, 29, 10, 0, tzinfo=UTC)
    metrics = Metrics(
        sources=["erp_stock"],
        intervals={"erp_stock": timedelta(minutes=5)},
        circuit=lambda source: CircuitState.OPEN,
        cache_stats=lambda: CacheStats(size=1, max_size=10, hits=3, misses=1),
        pressure_stats=lambda: PressureStats(limit=2, rss=3, above=True, waiting=1, deferred=1),
        paused=lambda: {"erp_stock"},
        now=lambda: at,
        freshness=lambda: {
            "erp_stock": FreshnessSettings(
                warn_after=timedelta(hours=1), fail_after=timedelta(hours=6)
            )
        },
    )
    run = Run(id=1, source="erp_stock", trigger=Trigger.SCHEDULE, status=RunStatus.RUNNING,
              forced=False, queued_at=at, started_at=at)  # fmt: skip
    metrics.on_event(RunStarted(run=run))
    metrics.on_event(RunRetrying(run=run, attempt=1, attempts=3, error="refused"))
    metrics.on_event(FailingOver(run=run, error="refused"))
    for status in (RunStatus.SUCCEEDED, RunStatus.FAILED):
        done = Run(id=1, source="erp_stock", trigger=Trigger.SCHEDULE, status=status,
                   forced=False, queued_at=at, started_at=at, finished_at=at,
                   counts=RunCounts(fetched=2, inserted=1, updated=1, deleted=1, invalid=1),
                   error_type="connection")  # fmt: skip
        metrics.on_event(RunFinished(run=done, valid=1, duration=0.5))
    metrics.on_event(Purged(source="erp_stock", rows=3))
    text = metrics.render()[0].decode()
    return {
        sample.name for family in text_string_to_metric_families(text) for sample in family.samples
    }


def test_rules_are_well_formed() -> None:
    """Each rule has a unique name, an expr, a severity, a summary and a description."""
    found = rules()
    names = [rule["alert"] for rule in found]
    assert len(names) == len(set(names))
    assert set(names) >= REQUIRED
    for rule in found:
        assert set(rule) <= {"alert", "expr", "for", "labels", "annotations"}, rule["alert"]
        assert rule["expr"].strip(), rule["alert"]
        assert rule["labels"]["severity"] in {"critical", "warning", "info"}, rule["alert"]
        assert rule["annotations"]["summary"].strip(), rule["alert"]
        assert rule["annotations"]["description"].strip(), rule["alert"]
        assert DURATION.match(rule.get("for", "0s")), rule["alert"]
        templates = " ".join(rule["annotations"].values())
        if "$labels.data_type" in templates:
            assert "data_type" in rule["expr"], f"{rule['alert']} drops the data_type label"


def test_rules_use_only_exported_metrics() -> None:
    """Every metric an expression selects is one Metrics really exports (no typo, no rename)."""
    exported = exported_names()
    for alert, expr in expressions().items():
        used = metric_names(expr)
        assert used, alert
        assert used <= exported, f"{alert} uses {sorted(used - exported)}"


def test_metric_name_extraction_skips_functions_and_labels() -> None:
    """The name extractor keeps metrics and drops functions, keywords, labels and ranges."""
    expr = 'sum by (data_type) (increase(a_total{x="y z"}[15m])) > 3 unless on (data_type) b'
    assert metric_names(expr) == {"a_total", "b"}
