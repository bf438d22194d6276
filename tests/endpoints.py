"""An endpoint as ``config.load`` makes it, and one fetch from it, for the HTTP tests."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import httpx

from catalog_refresher.clock import Clock
from catalog_refresher.config import load
from catalog_refresher.config.settings import EndpointSettings, Settings
from catalog_refresher.domain.specs import SPECS
from catalog_refresher.domain.window import Window
from catalog_refresher.sources.base import Payload
from catalog_refresher.sources.http import HttpSource, build_client
from catalog_refresher.sources.http_client import HttpClients


def load_settings(
    tmp_path: Path, source_id: str, options: dict[str, Any], **environ: str
) -> Settings:
    path = tmp_path / "appsettings.json"
    path.write_text(json.dumps({"Sources": {SPECS[source_id].config_key: options}}))
    return load(path, environment=None, environ=environ)


def load_endpoint(
    tmp_path: Path, source_id: str, options: dict[str, Any], **environ: str
) -> EndpointSettings:
    """The primary endpoint ``config.load`` makes of ``options`` for ``source_id``."""
    return load_settings(tmp_path, source_id, options, **environ).sources[source_id].primary


async def fetch(
    source_id: str,
    endpoint: EndpointSettings,
    *,
    window: Window | None = None,
    spool: Path | None = None,
    clock: Clock | None = None,
    transport: httpx.AsyncBaseTransport | None = None,
) -> Payload:
    """One fetch through the client ``app.py`` would give the endpoint."""
    async with build_client(transport=transport) as default:
        clients = HttpClients(default)
        try:
            client = clients.for_endpoint(endpoint, f"Sources:{SPECS[source_id].config_key}")
            source = HttpSource(source_id, endpoint, client, spool=spool, clock=clock)
            return await source.fetch(window)
        finally:
            await clients.aclose()
