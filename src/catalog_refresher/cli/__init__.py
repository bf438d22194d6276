"""The command line (contract sections 2 and 8), one module per kind of command.

- ``serve``: run, demo, simulate
- ``refresh``: refresh (with ``--dry-run``, ``--full``), check-config
- ``operator``: status (from the running service's API), pause, resume
- ``versions``: versions, diff, pin, unpin

Exit codes: 0 success; 1 a refresh that did not succeed (or an operator command the
service or the store refused); 2 a bad configuration or argument, with a message naming
what is wrong.
"""

from __future__ import annotations

# Each module registers its commands on ``app`` when imported.
from catalog_refresher.cli import operator, refresh, serve, versions
from catalog_refresher.cli.common import app

__all__ = ["app", "main", "operator", "refresh", "serve", "versions"]


def main() -> None:
    app(prog_name="catalog-refresher")
