"""The fault matrix: every fault an operator will meet, against a real `catalog-refresher
run`, and every invariant checked for each (``tests/e2e/fault_matrix.py`` says which).

The cells run side by side (each its own service, sources and store) in one module
fixture, so the matrix takes about as long as its slowest cell; a test per fault then
reads its cell's row. ``docs/reliability.md`` shows the matrix these tests measure;
``FAULT_MATRIX_REPORT=path`` writes the measured rows there as a Markdown table.
"""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from tests.e2e.fault_cells import CELLS
from tests.e2e.fault_matrix import INVARIANTS, Cell

pytestmark = pytest.mark.e2e

#: Cells at once: enough to finish well within two minutes on two shared cores.
PARALLEL = 15


@pytest.fixture(scope="module")
def matrix(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> dict:
    """Every selected cell, run side by side; the cells by fault."""
    wanted = [
        item.callspec.params["fault"]
        for item in request.session.items
        if getattr(item, "originalname", "") == "test_fault" and hasattr(item, "callspec")
    ]
    # The slow ones first, so that they overlap the quick ones.
    slow = ("sigkill_apply", "postgres_restart", "disk_full", "sqlite_locked")
    order = sorted(dict.fromkeys(wanted), key=lambda f: f not in slow)
    with ThreadPoolExecutor(PARALLEL) as pool:
        futures = {f: pool.submit(CELLS[f], tmp_path_factory.mktemp(f)) for f in order}
        cells = {fault: future.result() for fault, future in futures.items()}
    if report := os.environ.get("FAULT_MATRIX_REPORT"):
        Path(report).write_text(table(cells.values()))
        for cell in cells.values():  # beside it, each cell's service log
            Path(f"{report}.{cell.fault}.log").write_text(cell.log)
    return cells


def table(cells: object) -> str:
    header = "| fault | " + " | ".join(INVARIANTS.values()) + " | seconds |"
    lines = [header, "|---" * (len(INVARIANTS) + 2) + "|"]
    for cell in cells:  # type: ignore[attr-defined]
        results = [cell.results.get(name, "not checked") for name in INVARIANTS]
        if cell.error:
            results.append(f"ERROR: {cell.error.strip().splitlines()[-1]}")
        lines.append(f"| {cell.fault} | " + " | ".join(results) + f" | {cell.seconds:.0f} |")
        lines.extend(f"|  | {note} |" + " |" * len(INVARIANTS) for note in cell.notes)
    return "\n".join(lines) + "\n"


#: Cells that fail on a defect found by the matrix and not fixed yet (docs/reliability.md).
KNOWN_DEFECTS: dict[str, str] = {}


def _cells() -> list[object]:
    return [
        pytest.param(f, marks=pytest.mark.xfail(strict=True, reason=KNOWN_DEFECTS[f]))
        if f in KNOWN_DEFECTS
        else f
        for f in CELLS
    ]


@pytest.mark.parametrize("fault", _cells())
def test_fault(matrix: dict[str, Cell], fault: str) -> None:
    """Under this fault every invariant holds: the bystander keeps its schedule, the last
    good data stays served, health/sources/metrics tell the truth, nothing is half-applied,
    no run stays running, and the data converges once the fault is gone."""
    cell = matrix[fault]
    details = "\n".join(cell.notes)
    assert not cell.error, f"{cell.error}\n{details}\n--- service log ---\n{cell.log[-6000:]}"
    assert cell.failures() == {}, f"{details}\n--- service log ---\n{cell.log[-6000:]}"
