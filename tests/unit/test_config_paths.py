"""Paths into JSON documents as the configuration writes them (``config/paths.py``)."""

from __future__ import annotations

from pathlib import Path

import pytest

from catalog_refresher.config import load
from catalog_refresher.config.paths import parse_path
from catalog_refresher.errors import ConfigError


@pytest.mark.parametrize(
    ("text", "steps"),
    [
        ("data.items", ("data", "items")),
        ("winstrom.@rowCount", ("winstrom", "@rowCount")),
        ("cenik[0].kod", ("cenik", 0, "kod")),
        ("doklSklad[0].typDokl", ("doklSklad", 0, "typDokl")),
        ("a.b.c", ("a", "b", "c")),
        ("rows[-1]", ("rows", -1)),
        ("[0].x", (0, "x")),
        ("x[1][2]", ("x", 1, 2)),
        ("cenik@showAs", ("cenik@showAs",)),
    ],
)
def test_a_path_is_keys_and_indexes(text: str, steps: tuple[str | int, ...]) -> None:
    """Keys between dots, indexes in brackets; the text is kept as written."""
    path = parse_path(text, "K")
    assert (path.text, path.steps) == (text, steps)
    assert path.is_flat == (len(steps) == 1 and isinstance(steps[0], str))


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("", "'' has an empty step"),
        ("a..b", "'a..b' has an empty step at character 3 ('.')"),
        ("a.", "'a.' ends with an empty step"),
        (".a", "'.a' has an empty step at character 1 ('.')"),
        ("a[x]", "'a[x]': [x] is not an array index like [0]"),
        ("a[]", "'a[]': [] is not an array index like [0]"),
        ("a[0", "'a[0': the [ at character 2 is not closed"),
        ("a]b", "'a]b' has an empty step at character 2 (']')"),
    ],
)
def test_a_path_that_cannot_match_is_refused_naming_the_key(text: str, problem: str) -> None:
    """Empty steps, a bracket that is not an index, an unclosed bracket: each said plainly."""
    with pytest.raises(ConfigError) as caught:
        parse_path(text, "Sources:ErpStock:RecordsPath")
    assert caught.value.key == "Sources:ErpStock:RecordsPath"
    assert caught.value.problem == problem


def test_check_config_refuses_a_bad_records_path(tmp_path: Path) -> None:
    """A source whose RecordsPath cannot match is refused at start, its key named."""
    file = tmp_path / "appsettings.json"
    file.write_text(
        '{"Sources": {"ErpStock": {"Url": "http://erp/x", "RecordsPath": "winstrom..karta"}}}'
    )
    with pytest.raises(ConfigError) as caught:
        load(file, environment=None, environ={})
    assert caught.value.key == "Sources:ErpStock:RecordsPath"


def test_a_path_must_be_text() -> None:
    """A number where a path belongs is refused by its JSON type, not its value."""
    with pytest.raises(ConfigError) as caught:
        parse_path(3, "Sources:ErpStock:RecordsPath")
    assert caught.value.problem == "expected a string, got a number"
