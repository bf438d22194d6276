"""``docs/alerts.yml`` read for the tests of its rules (unit and promtool)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

RULES = Path(__file__).resolve().parents[1] / "docs" / "alerts.yml"


def rules() -> list[dict[str, Any]]:
    document = yaml.safe_load(RULES.read_text())
    (group,) = document["groups"]
    assert group["name"] == "catalog-refresher"
    found: list[dict[str, Any]] = group["rules"]
    return found


def expressions() -> dict[str, str]:
    return {rule["alert"]: rule["expr"] for rule in rules()}
