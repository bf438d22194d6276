"""An endpoint's request options: how it is asked (``Method``, ``Query``, ``Body``...),
how it is connected to (timeouts, ``Tls``, ``Proxy``, a rate limit), and how its
error envelope looks (``ErrorWhen``, ``ErrorMessagePath``).

Read from the file's tree into one ``RequestSettings`` and checked, each problem
a ``ConfigError`` naming its key. What the options do is told where they are
used: ``sources/requests.py`` (the request of each page), ``sources/http_client.py``
(clients, TLS, proxy, rate limit) and ``sources/responses.py`` (error envelopes).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from catalog_refresher.config.paths import parse_path
from catalog_refresher.config.settings import (
    ErrorCondition,
    HttpMethod,
    RequestSettings,
    Secret,
    TlsSettings,
)
from catalog_refresher.config.templates import body_template, parse_template
from catalog_refresher.config.tree import Tree, as_object, get, reject_unknown
from catalog_refresher.config.values import (
    as_bool,
    as_duration,
    as_number,
    as_text,
    check_url,
    json_kind,
)
from catalog_refresher.errors import ConfigError

__all__ = ["REQUEST_OPTIONS", "check_url_template", "request_settings"]

#: The endpoint keys read here.
REQUEST_OPTIONS = (
    "Method",
    "Query",
    "Body",
    "ContentType",
    "WindowParameters",
    "ConnectTimeout",
    "ReadTimeout",
    "MaxRequestsPerSecond",
    "Tls",
    "Proxy",
    "ErrorWhen",
    "ErrorMessagePath",
)
_TLS_OPTIONS = ("Verify", "CaBundle", "ClientCertificate", "ClientKey")
_MAX_RATE = 1000.0
SecretReader = Callable[[Any, str], Secret]


def check_url_template(url: Secret, key: str, *, has_window: bool) -> None:
    """The ``Url``'s placeholders: known, with a window to fill them, in its path or query.

    A URL read from a secret store is not quoted: its problem is named, not its text.
    """
    try:
        template = parse_template(url.value, key, has_window=has_window)
    except ConfigError:
        if url.reference is None:
            raise
        problem = (
            f"the value of {url.reference} has a placeholder that cannot be filled here, or a"
            " lone brace (write {{ and }} for literal braces)"
        )
        raise ConfigError(key, problem) from None
    if template.has_placeholders and "{" in urlsplit(url.value).netloc:
        raise ConfigError(key, "a placeholder may stand in the path or the query, not the host")


def request_settings(
    tree: Tree,
    key: str,
    *,
    url: Secret | None,
    headers: Mapping[str, object],
    has_window: bool,
    secret: SecretReader,
    base_dir: Path | None,
) -> RequestSettings:
    """The ``RequestSettings`` of one endpoint; ``key`` is the endpoint's key."""
    values: dict[str, Any] = {}
    if (method := get(tree, "Method")) is not None:
        text = as_text(method, f"{key}:Method").strip().upper()
        if text not in HttpMethod.__members__:
            raise ConfigError(f"{key}:Method", f"expected GET or POST, got {method!r}")
        values["method"] = HttpMethod(text)
    post = values.get("method") is HttpMethod.POST
    if (window := get(tree, "WindowParameters")) is not None:
        if not has_window:
            problem = "only for history sources: a snapshot source sends no window"
            raise ConfigError(f"{key}:WindowParameters", problem)
        values["window_parameters"] = as_bool(window, f"{key}:WindowParameters")
    window_parameters = has_window and values.get("window_parameters", True)
    if (query := get(tree, "Query")) is not None:
        values["query"] = _query(query, f"{key}:Query", has_window, window_parameters, secret)
    if (body := get(tree, "Body")) is not None:
        if not post:
            raise ConfigError(f"{key}:Body", "a GET sends no body: set Method to POST")
        values["body"] = body_template(body, f"{key}:Body", has_window=has_window)
    if (content_type := get(tree, "ContentType")) is not None:
        values["content_type"] = _content_type(content_type, f"{key}:ContentType", post, headers)
    for option, name in (("ConnectTimeout", "connect_timeout"), ("ReadTimeout", "read_timeout")):
        if (timeout := get(tree, option)) is not None:
            values[name] = as_duration(timeout, f"{key}:{option}", positive=True)
    if (rate := get(tree, "MaxRequestsPerSecond")) is not None:
        values["max_requests_per_second"] = _rate(rate, f"{key}:MaxRequestsPerSecond")
    if (tls := get(tree, "Tls")) is not None:
        https = url is not None and url.value.lower().startswith("https://")
        values["tls"] = _tls(tls, f"{key}:Tls", https, secret, base_dir)
    if (proxy := get(tree, "Proxy")) is not None:
        values["proxy"] = proxy_url = secret(proxy, f"{key}:Proxy")
        check_url(proxy_url, f"{key}:Proxy", ("http://", "https://"), "an http(s) proxy URL")
    if (when := get(tree, "ErrorWhen")) is not None:
        values["error_when"] = _error_condition(when, f"{key}:ErrorWhen")
    if (message := get(tree, "ErrorMessagePath")) is not None:
        values["error_message_path"] = parse_path(message, f"{key}:ErrorMessagePath")
    return RequestSettings(**values)


def _query(
    value: Any, key: str, has_window: bool, window_parameters: bool, secret: SecretReader
) -> tuple[tuple[str, str | Secret], ...]:
    """``{"name": "value"}``: values are text (numbers and booleans as JSON writes them) and
    templates, or ``env:``/``file:`` references (an API key in the query), sent as they are."""
    pairs: list[tuple[str, str | Secret]] = []
    for _, (name, raw) in as_object(value, key).items():
        item_key = f"{key}:{name}"
        if not name.strip():
            raise ConfigError(item_key, "a parameter needs a name")
        if window_parameters and name in {"date_from", "date_to"}:
            problem = "date_from and date_to carry the window (set WindowParameters to false)"
            raise ConfigError(item_key, problem)
        text: str | Secret
        if isinstance(raw, bool):
            text = "true" if raw else "false"
        elif isinstance(raw, int | float):
            text = str(raw)
        elif isinstance(raw, str) and raw.startswith(("env:", "file:")):
            text = secret(raw, item_key)
        elif isinstance(raw, str):
            text = str(raw)
        else:
            problem = f"expected text, a number or a boolean, got {json_kind(raw)}"
            raise ConfigError(item_key, problem)
        if not isinstance(text, Secret):  # a secret is sent as it is: never parsed, never quoted
            parse_template(text, item_key, has_window=has_window)
        pairs.append((name, text))
    return tuple(pairs)


def _content_type(value: Any, key: str, post: bool, headers: Mapping[str, object]) -> str:
    if not post:
        raise ConfigError(key, "the type of a body: only with Method POST")
    if any(name.lower() == "content-type" for name in headers):
        raise ConfigError(key, "given twice: here and in Headers (keep one)")
    text = as_text(value, key).strip()
    if not text or any(c in text for c in "\r\n\0"):
        raise ConfigError(key, "expected a media type such as application/json")
    return text


def _rate(value: Any, key: str) -> float:
    value = as_number(value, key)
    if not 0 < value <= _MAX_RATE:  # also refuses NaN
        raise ConfigError(key, f"must be above 0 and at most {_MAX_RATE:g}, got {value}")
    return float(value)


def _tls(
    value: Any, key: str, https: bool, secret: SecretReader, base_dir: Path | None
) -> TlsSettings:
    tree = as_object(value, key)
    reject_unknown(tree, key, _TLS_OPTIONS)
    if tree and not https:
        raise ConfigError(key, "only for an https:// Url")
    values: dict[str, Any] = {}
    if (verify := get(tree, "Verify")) is not None:
        values["verify"] = as_bool(verify, f"{key}:Verify")
    for option, name in (("CaBundle", "ca_bundle"), ("ClientCertificate", "client_certificate")):
        if (path := get(tree, option)) is not None:
            values[name] = _readable_file(path, f"{key}:{option}", base_dir)
    if values.get("ca_bundle") and not values.get("verify", True):
        raise ConfigError(f"{key}:CaBundle", "has no use while Verify is false")
    if (client_key := get(tree, "ClientKey")) is not None:
        if "client_certificate" not in values:
            raise ConfigError(f"{key}:ClientKey", "needs ClientCertificate")
        values["client_key"] = pem = secret(client_key, f"{key}:ClientKey")
        if "PRIVATE KEY-----" not in pem.value:
            # Only say what it is not: the text is the key.
            raise ConfigError(f"{key}:ClientKey", "is not a PEM private key")
    return TlsSettings(**values)


def _readable_file(value: Any, key: str, base_dir: Path | None) -> str:
    """A path to a readable file; a relative one is relative to the configuration's folder."""
    path = Path(as_text(value, key).strip())
    if base_dir is not None and not path.is_absolute():
        path = base_dir / path
    try:
        with path.open("rb"):
            pass
    except OSError as exc:
        reason = exc.strerror or type(exc).__name__
        raise ConfigError(key, f"cannot read {path}: {reason}") from None
    return str(path)


def _error_condition(value: Any, key: str) -> ErrorCondition:
    tree = as_object(value, key)
    reject_unknown(tree, key, ("Path", "Equals", "NotEquals"))
    path = get(tree, "Path")
    if path is None:
        raise ConfigError(f"{key}:Path", "required: where the page says it is an error")
    given = [option for option in ("Equals", "NotEquals") if get(tree, option) is not None]
    if len(given) != 1:
        raise ConfigError(key, "needs exactly one of Equals and NotEquals")
    (option,) = given
    return ErrorCondition(
        path=parse_path(path, f"{key}:Path"),
        **{"equals" if option == "Equals" else "not_equals": _text(get(tree, option), key, option)},
    )


def _text(value: Any, key: str, option: str) -> str:
    """A value compared as trimmed text: ``false`` and ``"false"`` are the same."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float | str):
        return str(value).strip()
    problem = f"expected text, a number or a boolean, got {json_kind(value)}"
    raise ConfigError(f"{key}:{option}", problem)
