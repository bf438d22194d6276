"""`catalog-refresher check-config` accepts every shipped example, as a user would run it."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.e2e

EXAMPLES = sorted((Path(__file__).parents[2] / "examples").glob("*.json"))
#: Stand-ins for every env: secret the examples name.
SECRETS = {
    "FLEXI_AUTHORIZATION": "Basic YXBpOmZsZXhpLWUyZS0xOQ==",
    "SHOPTET_PRIVATE_API_TOKEN": "shoptet-e2e-9d8c7b6a",
    "SHOPTET_EXPORT_HASH": "5e4d3c2b",
    "CATALOG_ADMIN_TOKEN": "admin-e2e-1a2b3c",
}


def test_examples_are_found() -> None:
    """The Flexi and Shoptet examples the issue asks for are shipped, and the demo one."""
    assert [path.name for path in EXAMPLES] == ["abraflexi.json", "demo.json", "shoptet.json"]


@pytest.mark.parametrize("example", EXAMPLES, ids=lambda path: path.name)
def test_example_passes_check_config(example: Path) -> None:
    """check-config exits 0 on the example and prints it with every secret masked."""
    done = subprocess.run(
        [sys.executable, "-m", "catalog_refresher", "check-config", "--config", str(example)],
        env={**os.environ, **SECRETS},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    described = json.loads(done.stdout)
    assert described["Sources"]
    for secret in SECRETS.values():
        assert secret not in done.stdout
