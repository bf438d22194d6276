"""The configuration's layers, read and merged into one ``Tree``; later layers win.

1. the file (JSON with ``//`` and ``/* */`` comments);
2. ``<file stem>.<Environment>.json`` beside it, when an environment is named
   (argument, else ``CATALOG_REFRESHER_ENVIRONMENT``); a missing one is fine;
3. environment variables ``Section__Key=value`` for the known ``SECTIONS``.

Objects merge key by key; anything else replaces what an earlier layer had, so a
``null`` un-sets a value (or un-configures a source). What the keys mean is
``sections.py``'s business.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import json5

from catalog_refresher.config.tree import Tree
from catalog_refresher.config.values import EnvText
from catalog_refresher.errors import ConfigError

__all__ = ["ENVIRONMENT_VARIABLE", "SECTIONS", "read_layers"]

ENVIRONMENT_VARIABLE = "CATALOG_REFRESHER_ENVIRONMENT"
SECTIONS = (
    "CatalogRepository",
    "Sources",
    "Store",
    "Api",
    "Cache",
    "Refresh",
    "Alerts",
    "Logging",
)


def read_layers(path: Path | None, environment: str | None, environ: Mapping[str, str]) -> Tree:
    """The merged tree of every layer; ``path=None`` means the environment variables only."""
    tree: Tree = {}
    if path is not None:
        tree = _read_file(path, required=True)
        name = environment or environ.get(ENVIRONMENT_VARIABLE) or None
        if name is not None:
            if name in {".", ".."} or "/" in name or "\\" in name:
                raise ConfigError("Environment", f"{name!r} is not a valid environment name")
            overlay = path.with_name(f"{path.stem}.{name}{path.suffix or '.json'}")
            tree = _merge(tree, _read_file(overlay, required=False))
    return _merge(tree, _environment_layer(environ))


def _read_file(path: Path, *, required: bool) -> Tree:
    def as_tree(pairs: Iterable[tuple[str, Any]]) -> Tree:
        tree: Tree = {}
        for key, value in pairs:
            if key.lower() in tree:
                # ASP.NET refuses duplicates too; silently picking one would hide a mistake.
                problem = f"key {key!r} appears twice in one object (keys are case-insensitive)"
                raise ConfigError(str(path), problem)
            tree[key.lower()] = (key, value)
        return tree

    try:
        # utf-8-sig: files saved by Visual Studio start with a byte order mark.
        text = path.read_text(encoding="utf-8-sig")
    except FileNotFoundError:
        if not required:
            return {}
        raise ConfigError(str(path), "configuration file not found") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(str(path), f"cannot read the configuration file: {exc}") from exc
    try:
        document = json5.loads(text, object_pairs_hook=as_tree)
    except ValueError as exc:
        raise ConfigError(str(path), f"not valid JSON: {exc}") from exc
    if not isinstance(document, dict):
        raise ConfigError(str(path), "must hold a JSON object")
    return document


def _environment_layer(environ: Mapping[str, str]) -> Tree:
    """``Section__Key__Sub=value`` variables of the known sections, as a tree of ``EnvText``."""
    sections = {name.lower() for name in SECTIONS}
    tree: Tree = {}
    seen: dict[tuple[str, ...], str] = {}
    for variable in sorted(environ):
        parts = variable.split("__")
        if len(parts) < 2 or parts[0].lower() not in sections:
            continue
        key = ":".join(parts)
        if not all(parts):
            raise ConfigError(key, f"environment variable {variable} has an empty key segment")
        lowered = tuple(part.lower() for part in parts)
        if lowered in seen:
            raise ConfigError(key, f"set by both {seen[lowered]} and {variable}")
        seen[lowered] = variable
        node = tree
        for part in parts[:-1]:
            entry = node.get(part.lower())
            if entry is None or not isinstance(entry[1], dict):
                entry = node[part.lower()] = (part, {})
            node = entry[1]
        node[parts[-1].lower()] = (parts[-1], EnvText(environ[variable]))
    return tree


def _merge(base: Tree, overlay: Tree) -> Tree:
    """Objects merge key by key; anything else in ``overlay`` replaces what ``base`` had."""
    merged = dict(base)
    for key, (name, value) in overlay.items():
        old = merged.get(key)
        if old is not None and isinstance(old[1], dict) and isinstance(value, dict):
            merged[key] = (old[0], _merge(old[1], value))
        else:
            merged[key] = (name, value)
    return merged
