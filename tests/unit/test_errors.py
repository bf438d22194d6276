"""The one-line descriptions of errors and their causes (``errors.describe``)."""

from __future__ import annotations

import importlib
import pickle
import pkgutil
import re
from concurrent.futures.process import _ExceptionWithTraceback
from types import ModuleType

import msgspec
import pytest

import catalog_refresher
from catalog_refresher import errors
from catalog_refresher.errors import InvalidPayloadError, StoreError, describe


def _chained(error: Exception, cause: BaseException) -> Exception:
    try:
        raise error from cause
    except Exception as exc:
        return exc


def test_a_cause_the_message_quotes_is_said_once() -> None:
    """``f"not valid JSON: {exc}"`` from ``exc`` reads the cause's text once, not twice."""
    with pytest.raises(msgspec.DecodeError) as decoding:
        msgspec.json.decode(b'[{"product_code": "A"')
    cause = decoding.value
    error = _chained(InvalidPayloadError(f"the payload is not valid JSON: {cause}"), cause)
    assert describe(error) == f"the payload is not valid JSON: {cause}"
    assert describe(error).count(str(cause)) == 1


def test_a_cause_the_message_does_not_quote_follows_it() -> None:
    """A cause that adds something is appended after a colon."""
    error = _chained(StoreError("SQLite write failed"), OSError("database or disk is full"))
    assert describe(error) == "SQLite write failed: database or disk is full"


def test_a_worker_process_traceback_is_left_out() -> None:
    """The traceback chained to an error re-raised from a worker process stays out of the line."""
    try:
        raise StoreError("SQLite write failed: database or disk is full")
    except StoreError as exc:
        # What concurrent.futures does to an error on its way back from a worker process.
        received = pickle.loads(pickle.dumps(_ExceptionWithTraceback(exc, exc.__traceback__)))
    assert received.__cause__ is not None
    assert "Traceback" in str(received.__cause__)
    assert describe(received) == "SQLite write failed: database or disk is full"


def test_line_breaks_in_a_message_become_one_line() -> None:
    """An audit entry is one line whatever the message held."""
    assert describe(StoreError("first line\n  second line")) == "first line second line"


def test_an_error_without_text_is_named_by_its_type() -> None:
    """An error with an empty message is described by its class name."""
    assert describe(_chained(StoreError("apply failed"), TimeoutError())) == (
        "apply failed: TimeoutError"
    )


def _modules() -> list[ModuleType]:
    return [
        importlib.import_module(info.name)
        for info in pkgutil.walk_packages(catalog_refresher.__path__, "catalog_refresher.")
        if info.name != "catalog_refresher.__main__"  # importing it runs the CLI
    ]


def test_every_exception_class_lives_in_errors() -> None:
    """No module but ``errors.py`` defines an exception class: the tree is in one place."""
    elsewhere = [
        f"{module.__name__}.{name}"
        for module in _modules()
        for name, value in vars(module).items()
        if isinstance(value, type)
        and issubclass(value, BaseException)
        and value.__module__ == module.__name__
        and module.__name__ != "catalog_refresher.errors"
    ]
    assert elsewhere == []


def test_the_tree_in_the_docstring_names_every_class() -> None:
    """``errors.py``'s drawing of the tree lists exactly the classes it defines, each under
    its parent."""
    defined = {
        name: value
        for name, value in vars(errors).items()
        if isinstance(value, type) and issubclass(value, errors.CatalogRefresherError)
    }
    assert errors.__doc__ is not None
    drawn: dict[str, str] = {}
    parents: list[str] = []
    for line in errors.__doc__.splitlines():
        # "    ├── ConfigError  ...": four columns of tree drawing per level below the root.
        match = re.match(r"(    [│├└─ ]*)([A-Z][A-Za-z]+)\b", line)
        if match is None:
            continue
        depth = (len(match.group(1)) - 4) // 4
        del parents[depth:]
        if parents:
            drawn[match.group(2)] = parents[-1]
        parents.append(match.group(2))
    assert set(drawn) | {"CatalogRefresherError"} == set(defined)
    for name, parent in drawn.items():
        assert defined[name].__bases__ == (defined[parent],), name
