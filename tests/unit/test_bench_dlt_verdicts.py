"""bench/dlt_merge.py's verdicts: a dlt phase cut at its budget is a lower bound, never a ratio.

Pure functions on result dictionaries; running dlt itself is the benchmark's job.
"""

from __future__ import annotations

from typing import Any

from bench.dlt_merge import expected_rows, table_rows, versus


def finished(merge: float, rows: int = 1000) -> dict[str, Any]:
    return {"keyed": True, "budget": 180, "first": 2.0, "merge": merge, "rows": rows}


def cut(phase: str, after: float) -> dict[str, Any]:
    got: dict[str, Any] = {"keyed": False, "budget": after, "rows": 1000}
    if phase == "merge":
        got["first"] = 2.0
    return got | {"unfinished": {"phase": phase, "after": after}}


def test_a_finished_merge_is_a_measured_ratio() -> None:
    """dlt's merge over ours, met at 15 times and missed below it, with the ratio shown."""
    cell, verdict = versus(finished(30.0), 2.0)
    assert "= 15.0×" in cell
    assert verdict == "met"
    assert versus(finished(29.0), 2.0)[1] == "**missed** (14.5×)"


def test_a_merge_cut_at_the_budget_is_only_a_lower_bound() -> None:
    """The seconds it ran over ours, said to be a bound; below 15 times it decides nothing."""
    cell, verdict = versus(cut("merge", 180), 4.0)
    assert "did not finish in 180 s" in cell
    assert "ours ≥ 45.0× (lower bound)" in cell
    assert verdict == "met (lower bound)"
    cell, verdict = versus(cut("merge", 59), 4.0)
    assert "ours ≥ 14.8×" in cell  # not rounded up to the target
    assert verdict == "not decided (≥ 14.8×)"


def test_a_first_load_cut_at_the_budget_has_no_merge_to_compare() -> None:
    """dlt's load of A not finishing says so, without a ratio or a bound."""
    cell, verdict = versus(cut("first", 180), 4.0)
    assert cell == "dlt's load of A did not finish in 180 s; merge not run"
    assert verdict == "–"


def test_without_ours_at_the_same_size_nothing_is_compared() -> None:
    """dlt at 1M rows against no measurement of ours at 1M: its time, not compared."""
    cell, verdict = versus(finished(70.0), None)
    assert cell.startswith("dlt 70.0 s")
    assert verdict == "not compared"


def test_a_wrong_row_count_is_a_failure_not_a_time() -> None:
    """A merge that left the wrong rows is reported as failed, whatever it took."""
    cell, verdict = versus(finished(1.0) | {"error": "dlt left 5 rows, not 1,005"}, 0.01)
    assert cell == "dlt failed: dlt left 5 rows, not 1,005"
    assert verdict == "–"
    assert expected_rows(1_000_000) == 1_005_000  # A's rows and B's 5,000 new ones


def test_the_table_gives_each_row_its_own_size_and_the_defaults_growth() -> None:
    """Keyed at the full size, keyed and dlt's defaults at the small size, the growth shown."""
    got = {
        "small_rows": 20_000,
        "ours_small": [0.3, 0.2, 0.1],
        "budget": 180,
        "keyed": finished(70.0, 1_000_000),
        "keyed_small": finished(1.5, 20_000),
        "default_small": finished(20.0, 20_000) | {"keyed": False},
        "default_double": finished(75.0, 40_000) | {"keyed": False},
    }
    rows = table_rows(got, 4.0)
    assert [size for *_, size in rows] == [1_000_000, 20_000, 20_000]
    assert "= 17.5×" in rows[0][1]
    assert "vs ours 0.20 s = 7.5×" in rows[1][1]
    assert "at 40,000 rows 75.0 s, ×3.8 for twice the rows" in rows[2][1]


def test_the_defaults_cut_at_twice_the_size_say_so_instead_of_a_growth() -> None:
    """When dlt's defaults do not finish at twice the small size, the row says that."""
    got = {
        "small_rows": 20_000,
        "ours_small": [0.2],
        "keyed": finished(70.0, 1_000_000),
        "keyed_small": finished(1.5, 20_000),
        "default_small": finished(20.0, 20_000) | {"keyed": False},
        "default_double": cut("merge", 180) | {"rows": 40_000},
    }
    measured = table_rows(got, None)[2][1]
    assert measured.endswith("; at 40,000 rows it did not finish in 180 s")
    assert "×" in measured.split(";")[0]  # the 20,000-row ratio is still there
