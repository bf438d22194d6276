"""A small client of the running service's API for the command line.

It finds the service where the configuration says it listens (``Api:Host``,
``Api:Port``) unless told a URL, and sends the admin token from the configuration
when one is set, so that a command works with ``Api:ProtectReads`` too.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import httpx

from catalog_refresher.config.settings import ApiSettings
from catalog_refresher.errors import ServiceCallError

#: The commands answer a person: a service that does not answer in this long is down.
TIMEOUT_SECONDS = 30.0


def service_url(api: ApiSettings) -> str:
    # A service bound to every interface is reached on loopback from its own machine.
    host = {"0.0.0.0": "127.0.0.1", "::": "::1"}.get(api.host, api.host)
    if ":" in host:
        host = f"[{host}]"
    return f"http://{host}:{api.port}"


class ServiceClient:
    def __init__(self, base_url: str, token: str | None = None) -> None:
        headers = {"Accept": "application/json"}
        if token:
            headers["Authorization"] = f"Bearer {token}"
        self._base_url = base_url.rstrip("/")
        self._http = httpx.Client(base_url=self._base_url, headers=headers, timeout=TIMEOUT_SECONDS)

    def __enter__(self) -> ServiceClient:
        return self

    def __exit__(self, *_: object) -> None:
        self._http.close()

    def get(
        self, path: str, params: Mapping[str, Any] | None = None, *, ok: tuple[int, ...] = ()
    ) -> Any:
        return self._answer(self._send("GET", path, params), ok)

    def post(self, path: str, params: Mapping[str, Any] | None = None) -> Any:
        return self._answer(self._send("POST", path, params), ())

    def _send(self, method: str, path: str, params: Mapping[str, Any] | None) -> httpx.Response:
        try:
            return self._http.request(method, path, params=params)
        except httpx.HTTPError as exc:
            raise ServiceCallError(
                f"no answer from the service at {self._base_url} ({type(exc).__name__}: {exc});"
                " is it running? (--url names another address)"
            ) from None

    @staticmethod
    def _answer(response: httpx.Response, ok: tuple[int, ...]) -> Any:
        if response.is_success or response.status_code in ok:
            return response.json()
        try:
            problem = response.json()
            detail = problem.get("detail") or problem.get("title")
        except ValueError:
            detail = response.reason_phrase
        raise ServiceCallError(
            f"{response.request.url.path}: HTTP {response.status_code}: {detail}"
        )
