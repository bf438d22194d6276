"""The HTTP clients the sources share, their TLS and proxy settings, and rate limits.

Endpoints with the default connection settings share one client (the caller's,
which also posts alerts); an endpoint with its own ``Tls`` or ``Proxy`` gets a
client of its own, shared with every endpoint configured the same, because
httpx fixes both per client. ``HttpClients`` keeps them and closes the ones it
made; ``app.py`` owns its life cycle.

Compressed answers are decoded by httpx: gzip and deflate always, br and zstd
because ``brotli`` and ``zstandard`` are installed (httpx asks for what it can
decode in ``Accept-Encoding``).

A client key (``Tls:ClientKey``) is held as text, since it may come from an
environment variable; Python's ``ssl`` loads keys from files only, so it is
written for that moment to a file only this process may read, then deleted.
"""

from __future__ import annotations

import asyncio
import os
import ssl
import tempfile
from importlib import metadata
from pathlib import Path

import httpx

from catalog_refresher.clock import Clock
from catalog_refresher.config.settings import EndpointSettings, TlsSettings
from catalog_refresher.errors import ConfigError

__all__ = ["USER_AGENT", "HttpClients", "RateLimiter", "build_client", "tls_context"]


def _version() -> str:
    try:
        return metadata.version("catalog-refresher")
    except metadata.PackageNotFoundError:  # running from a source tree that is not installed
        return "0+unknown"


USER_AGENT = f"catalog-refresher/{_version()}"


def build_client(
    *,
    transport: httpx.AsyncBaseTransport | None = None,
    verify: ssl.SSLContext | bool = True,
    proxy: str | None = None,
) -> httpx.AsyncClient:
    """An HTTP client for the sources (and alerts); the caller closes it.

    ``transport`` is for tests (``httpx.MockTransport``); production passes nothing.
    """
    return httpx.AsyncClient(
        # A redirect usually means a login page or a moved API: fail loudly as a
        # status error instead of parsing HTML, and never carry our
        # Authorization header to another host.
        follow_redirects=False,
        headers={"User-Agent": USER_AGENT},
        # Ten sources with MaxConcurrentRefreshes around 3 need few connections;
        # the cap protects the external systems if many endpoints share a host.
        limits=httpx.Limits(max_connections=20, max_keepalive_connections=10, keepalive_expiry=30),
        # Each request passes its endpoint's own timeout; this is only the fallback.
        timeout=httpx.Timeout(60.0, connect=10.0),
        transport=transport,
        verify=verify,
        proxy=proxy,
    )


def tls_context(tls: TlsSettings, key: str) -> ssl.SSLContext | bool:
    """What httpx's ``verify`` takes for ``tls``; ``key`` (``...:Tls``) names it in errors."""
    if tls == TlsSettings():
        return True
    if tls.ca_bundle is not None:
        try:
            context = ssl.create_default_context(cafile=tls.ca_bundle)
        except (OSError, ssl.SSLError) as exc:
            raise ConfigError(f"{key}:CaBundle", f"cannot load {tls.ca_bundle}: {exc}") from None
    else:
        context = httpx.create_ssl_context()  # httpx's own trust store, as by default
    if not tls.verify:
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    if tls.client_certificate is not None:
        _load_client_certificate(context, tls, key)
    return context


def _load_client_certificate(context: ssl.SSLContext, tls: TlsSettings, key: str) -> None:
    assert tls.client_certificate is not None
    with tempfile.TemporaryDirectory(prefix="catalog-refresher-tls-") as folder:
        key_file = None
        if tls.client_key is not None:
            key_file = Path(folder) / "client.key"
            fd = os.open(key_file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "w", encoding="utf-8") as file:
                file.write(tls.client_key.value)
        try:
            context.load_cert_chain(tls.client_certificate, key_file)
        except (OSError, ssl.SSLError) as exc:
            # ssl's reasons name the failing step, never the key's text.
            reason = getattr(exc, "reason", None) or type(exc).__name__
            problem = f"cannot load the client certificate {tls.client_certificate}"
            raise ConfigError(f"{key}:ClientCertificate", f"{problem}: {reason}") from None


class HttpClients:
    """The client of each endpoint: ``default`` unless its TLS or proxy settings differ."""

    def __init__(self, default: httpx.AsyncClient) -> None:
        self._default = default
        self._own: dict[tuple[TlsSettings, str | None], httpx.AsyncClient] = {}

    def for_endpoint(self, endpoint: EndpointSettings, key: str) -> httpx.AsyncClient:
        """The client for ``endpoint``, whose configuration key is ``key``."""
        request = endpoint.request
        proxy = None if request.proxy is None else request.proxy.value
        if request.tls == TlsSettings() and proxy is None:
            return self._default
        setting = (request.tls, proxy)
        if setting not in self._own:
            verify = tls_context(request.tls, f"{key}:Tls")
            self._own[setting] = build_client(verify=verify, proxy=proxy)
        return self._own[setting]

    async def aclose(self) -> None:
        """Close the clients made here; the default one is its owner's to close."""
        for client in self._own.values():
            await client.aclose()
        self._own.clear()


class RateLimiter:
    """At most ``rate`` requests a second, evenly spaced: a token bucket that holds one
    token, on the injected clock. Shared by every page and attempt of one endpoint."""

    def __init__(self, rate: float, clock: Clock) -> None:
        self._interval = 1.0 / rate
        self._clock = clock
        self._next: float | None = None
        self._lock = asyncio.Lock()

    async def wait(self) -> None:
        """Return when the next request may go."""
        async with self._lock:
            now = self._clock.monotonic()
            if self._next is not None and now < self._next:
                await self._clock.sleep(self._next - now)
                now = self._next
            self._next = now + self._interval
