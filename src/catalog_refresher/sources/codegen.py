"""Functions written out for one endpoint's field rules, as ``dataclasses`` writes ``__init__``.

A field's path and value rules run once per record, a million times for a large
snapshot. Written as one loop with the path's steps and the rules inline, they
cost a fraction of a loop that calls a function per step or per rule (measured in
``bench/mapping_bench.py``). The source holds only names this package makes
(record fields, ``_k<n>`` attributes, the constants' names below), integers and
operators; every configured value (a prefix, a pattern, a map) is passed in the
namespace, never written into the source.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

__all__ = ["compile_function", "indent"]


def indent(lines: Iterable[str], levels: int = 1) -> list[str]:
    """``lines`` indented by ``levels`` of four spaces."""
    return [" " * 4 * levels + line for line in lines]


def compile_function(
    name: str, parameters: str, body: Iterable[str], namespace: dict[str, Any]
) -> Callable[..., Any]:
    """``def name(parameters): body``, its free names taken from ``namespace``."""
    source = "\n".join([f"def {name}({parameters}):", *indent(body)])
    scope = dict(namespace)
    exec(compile(source, f"<{name}>", "exec"), scope)  # the sources above only
    function: Callable[..., Any] = scope[name]
    function.__doc__ = source  # what it is, for whoever debugs it
    return function
