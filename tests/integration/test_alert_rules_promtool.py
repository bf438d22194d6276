"""``docs/alerts.yml`` checked by promtool, and its expressions' behaviour over made-up series.

``promtool`` comes from Debian's ``prometheus`` package (``.ci/run`` installs it);
without it these tests are skipped, saying so.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

from tests.alert_rules import RULES, expressions, rules, yaml

PROMTOOL = shutil.which("promtool")
needs_promtool = pytest.mark.skipif(
    PROMTOOL is None, reason="promtool not on PATH (Debian: apt-get install prometheus)"
)


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
    # Replica "a" goes above its memory limit at 5m and stays; "b" never does.
    above = "catalog_memory_above_limit"
    rule = next(r for r in rules() if r["alert"] == "CatalogMemoryAboveLimit")
    annotations = {key: text.replace("{{ $labels.instance }}", "a")
                   for key, text in rule["annotations"].items()}  # fmt: skip
    memory = {
        "interval": "1m",
        "input_series": [
            {"series": f'{above}{{job="catalog", instance="a"}}', "values": "0x4 1x56"},
            {"series": f'{above}{{job="catalog", instance="b"}}', "values": "0x60"},
        ],
        "alert_rule_test": [
            {"alertname": "CatalogMemoryAboveLimit", "eval_time": "12m", "exp_alerts": []},
            {"alertname": "CatalogMemoryAboveLimit", "eval_time": "20m",
             "exp_alerts": [{"exp_labels": {"severity": "warning", "job": "catalog",
                                            "instance": "a"},
                             "exp_annotations": annotations}]},
        ],
    }  # fmt: skip
    tests = tmp_path / "alerts_test.yml"
    tests.write_text(
        yaml.safe_dump(
            {
                "rule_files": [str(RULES)],
                "evaluation_interval": "1m",
                "tests": [per_source, replicas, memory],
            }
        )
    )
    result = subprocess.run(
        [PROMTOOL, "test", "rules", str(tests)], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stdout + result.stderr
