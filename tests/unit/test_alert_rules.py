"""``docs/alerts.yml``: its structure, the metric names it uses, and its expressions' behaviour.

The structural checks are pure Python (PyYAML). When ``promtool`` is on PATH
(Debian: ``apt-get install prometheus``) the file is also checked by it, and
each rule's expression is evaluated by promtool's unit tester over made-up
series; without promtool those tests are skipped, saying so.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families

from catalog_refresher.catalog import CacheStats
from catalog_refresher.domain.runs import Run, RunCounts, RunStatus, Trigger
from catalog_refresher.observe.metrics import Metrics
from catalog_refresher.refresh.events import (
    FailingOver,
    Purged,
    RunFinished,
    RunRetrying,
    RunStarted,
)
from catalog_refresher.refresh.resilience import CircuitState

yaml = pytest.importorskip("yaml", reason="PyYAML is needed to read docs/alerts.yml (dev extra)")

RULES = Path(__file__).resolve().parents[2] / "docs" / "alerts.yml"
PROMTOOL = shutil.which("promtool")
needs_promtool = pytest.mark.skipif(
    PROMTOOL is None, reason="promtool not on PATH (Debian: apt-get install prometheus)"
)
REQUIRED = {"CatalogSourceStale", "CatalogCircuitOpen", "CatalogRefreshFailuresRising",
            "CatalogNoRefresh"}  # fmt: skip
#: PromQL words that look like identifiers but name no metric.
KEYWORDS = {"and", "or", "unless", "bool", "offset", "by", "without", "on", "ignoring",
            "group_left", "group_right"}  # fmt: skip
DURATION = re.compile(r"^(\d+(ms|s|m|h|d|w|y))+$")


def rules() -> list[dict[str, Any]]:
    document = yaml.safe_load(RULES.read_text())
    (group,) = document["groups"]
    assert group["name"] == "catalog-refresher"
    found: list[dict[str, Any]] = group["rules"]
    return found


def expressions() -> dict[str, str]:
    return {rule["alert"]: rule["expr"] for rule in rules()}


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


@needs_promtool
def test_promtool_accepts_the_rules() -> None:
    """promtool check rules passes on docs/alerts.yml."""
    assert PROMTOOL is not None
    result = subprocess.run(
        [PROMTOOL, "check", "rules", str(RULES)], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"SUCCESS: {len(rules())} rules found" in result.stdout


def _series(name: str, data_type: str, values: str, **labels: str) -> dict[str, str]:
    merged = {"job": "catalog", "instance": "a", "data_type": data_type, **labels}
    matchers = ", ".join(f'{key}="{value}"' for key, value in merged.items())
    return {"series": f"{name}{{{matchers}}}", "values": values}


def _fires(expr: str, at: str, *data_types: str) -> dict[str, Any]:
    """A promtool expression test: at ``at``, ``expr`` returns exactly ``data_types``."""
    if not data_types:
        return {"expr": expr, "eval_time": at, "exp_samples": []}
    return {
        "expr": f"count by (data_type) ({expr})",
        "eval_time": at,
        "exp_samples": [{"labels": f'{{data_type="{d}"}}', "value": 1} for d in data_types],
    }


@needs_promtool
def test_rule_expressions_fire_when_they_should(tmp_path: Path) -> None:
    """Over made-up series, each expression selects the sources it should, and only then."""
    assert PROMTOOL is not None
    e = expressions()
    interval = "catalog_refresh_interval_seconds"
    last = "catalog_refresh_last_success_timestamp_seconds"
    # Times are minutes from 0: erp_stock (5 min) last succeeded at 0, lots (15 min)
    # succeeds every minute, suppliers never; lots' circuit opens at 5m; erp fails
    # once a minute throughout.
    per_source = {
        "interval": "1m",
        "input_series": [
            _series(interval, "erp_stock", "300x60"),
            _series(interval, "lots", "900x60"),
            _series(interval, "suppliers", "7200x60"),
            _series(last, "erp_stock", "0x60"),
            _series(last, "lots", "0+60x60"),
            _series("catalog_refresh_circuit_state", "erp_stock", "0x60"),
            _series("catalog_refresh_circuit_state", "lots", "0x4 2x56"),
            _series("catalog_refresh_failure_total", "erp_stock", "0+1x60", error_type="timeout"),
            _series("catalog_refresh_failure_total", "lots", "0x60", error_type="timeout"),
        ],
        "promql_expr_test": [
            _fires(e["CatalogSourceStale"], "10m"),
            _fires(e["CatalogSourceStale"], "20m", "erp_stock"),
            _fires(e["CatalogSourceNeverRefreshed"], "20m", "suppliers"),
            _fires(e["CatalogCircuitOpen"], "2m"),
            _fires(e["CatalogCircuitOpen"], "10m", "lots"),
            _fires(e["CatalogRefreshFailuresRising"], "2m"),
            _fires(e["CatalogRefreshFailuresRising"], "20m", "erp_stock"),
            _fires(e["CatalogNoRefresh"], "40m"),
        ],
    }
    # Two replicas: only "b" refreshes erp_stock, and it did at 30m; nothing after.
    replicas = {
        "interval": "1m",
        "input_series": [
            _series(interval, "erp_stock", "300x60"),
            _series(interval, "erp_stock", "300x60", instance="b"),
            _series(last, "erp_stock", "1800x60", instance="b"),
        ],
        "promql_expr_test": [
            _fires(e["CatalogSourceStale"], "40m"),
            _fires(e["CatalogSourceStale"], "50m", "erp_stock"),
            _fires(e["CatalogNoRefresh"], "55m"),
            {"expr": f"{e['CatalogNoRefresh']}", "eval_time": "61m",
             "exp_samples": [{"labels": "{}", "value": 1860}]},
        ],
    }  # fmt: skip
    tests = tmp_path / "alerts_test.yml"
    tests.write_text(
        yaml.safe_dump(
            {
                "rule_files": [str(RULES)],
                "evaluation_interval": "1m",
                "tests": [per_source, replicas],
            }
        )
    )
    result = subprocess.run(
        [PROMTOOL, "test", "rules", str(tests)], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stdout + result.stderr
