"""Read the configuration once, at the edge (contract section 3).

``load(path, environment=, environ=)`` turns an ASP.NET-style ``appsettings.json``
into immutable ``Settings``; ``describe(settings)`` writes them back, secrets masked,
for ``check-config``. Layers, later wins: the defaults of ``settings.py``, the file,
``<file stem>.<Environment>.json`` beside it, and ``Section__Key`` environment
variables.

One module per step:

- ``layers.py``: reading the file and its environment overlay, the environment
  variables, merging them into one tree;
- ``tree.py``: that tree (keys match case-insensitively) and its lookups;
- ``values.py``: typed values (time spans, numbers, secrets ``env:``/``file:``, URLs);
- ``sections.py``: each section read into its settings;
- ``payload.py``: an endpoint's ``Paging``, ``Fields`` and ``Csv``;
- ``describe.py``: the settings written back in the file's shape, secrets masked;
- ``settings.py``: the immutable settings themselves.

Nothing here imports the parts that use the settings: only ``domain``, ``errors``
and libraries.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from catalog_refresher.config.describe import describe
from catalog_refresher.config.layers import ENVIRONMENT_VARIABLE, read_layers
from catalog_refresher.config.sections import read_settings
from catalog_refresher.config.settings import Settings

__all__ = ["ENVIRONMENT_VARIABLE", "Settings", "describe", "load"]


def load(path: Path | None, *, environment: str | None, environ: Mapping[str, str]) -> Settings:
    """Build the effective ``Settings`` from the layers described in ``layers.py``.

    ``path=None`` means defaults and environment variables only. A ``path`` that does
    not exist, or any invalid value, raises ``ConfigError`` naming the key.
    """
    tree = read_layers(path, environment, environ)
    return read_settings(tree, environ=environ, base_dir=None if path is None else path.parent)
