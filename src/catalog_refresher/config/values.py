"""The typed values of the configuration file, and how to print them safely.

``parse_timespan``/``format_timespan`` read and write .NET TimeSpan text and
``mask_url`` hides credentials in a URL; the API and the logs need these too.
The ``as_*`` converters turn one raw JSON value (or ``EnvText`` from an environment
variable) into its setting, raising ``ConfigError`` with the given key. JSON values
must have the right JSON type; only ``EnvText`` is converted from text, because
environment variables have no other type.

No message shows a value of a type that may hold a secret (strings): wrong values
are described by their JSON type.
"""

from __future__ import annotations

import enum
import re
from collections.abc import Mapping
from datetime import timedelta
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import urlsplit, urlunsplit

from catalog_refresher.config.settings import Secret
from catalog_refresher.errors import ConfigError

TIMESPAN_FORMAT = "[d.]hh:mm:ss[.fff]"
_E = TypeVar("_E", bound=enum.StrEnum)

# Deliberately stricter than .NET: ``05:00`` (which .NET reads as five *hours*) and a bare
# ``1`` (one *day*) are refused, because operators read them as minutes and seconds.
# ASCII digits only: ``\d`` would also accept digits of other scripts.
_TIMESPAN = re.compile(
    r"(?P<sign>-)?(?:(?P<days>[0-9]+)\.)?"
    r"(?P<hours>[0-9]{1,2}):(?P<minutes>[0-9]{2}):(?P<seconds>[0-9]{2})"
    r"(?:\.(?P<fraction>[0-9]{1,7}))?"
)

# Query parameters whose values are credentials (``?api_key=...``, ``?password=...``).
_SENSITIVE_PARAMETER = re.compile(r"token|key|secret|passw|pwd|sig|auth|credential", re.IGNORECASE)


def parse_timespan(text: str) -> timedelta:
    """Parse a .NET TimeSpan ``[-][d.]hh:mm:ss[.fffffff]``: ``00:05:00``, ``1.00:00:00``.

    Hours must be below 24 and minutes and seconds below 60, as in .NET; the fraction
    has up to seven digits (.NET ticks), truncated to microseconds. A leading ``-`` is
    parsed so that callers can say "must not be negative" rather than "cannot parse".
    Raises ``ValueError`` with the text and the expected format.
    """
    match = _TIMESPAN.fullmatch(text.strip())
    problem = f"cannot parse {text!r} as a time span {TIMESPAN_FORMAT}"
    if match is None:
        raise ValueError(problem)
    hours, minutes, seconds = (int(match[name]) for name in ("hours", "minutes", "seconds"))
    if hours > 23 or minutes > 59 or seconds > 59:
        raise ValueError(problem)
    # Ticks are 100 ns: the seventh digit is below timedelta's resolution.
    microseconds = int((match["fraction"] or "").ljust(7, "0")) // 10
    try:
        value = timedelta(
            days=int(match["days"] or 0),
            hours=hours,
            minutes=minutes,
            seconds=seconds,
            microseconds=microseconds,
        )
    except OverflowError:
        raise ValueError(problem) from None
    return -value if match["sign"] else value


def format_timespan(value: timedelta) -> str:
    """Format as ``[-][d.]hh:mm:ss[.fff]``, the inverse of ``parse_timespan``.

    The fraction has three digits when the value is whole milliseconds, six otherwise.
    """
    sign = "-" if value < timedelta(0) else ""
    value = abs(value)
    hours, rest = divmod(value.seconds, 3600)
    minutes, seconds = divmod(rest, 60)
    text = f"{hours:02}:{minutes:02}:{seconds:02}"
    if value.days:
        text = f"{value.days}.{text}"
    if micros := value.microseconds:
        text += f".{micros // 1000:03}" if micros % 1000 == 0 else f".{micros:06}"
    return sign + text


def is_sensitive_parameter(name: str) -> bool:
    """A query parameter whose value is a credential by its name (``api_key``, ``token``)."""
    return _SENSITIVE_PARAMETER.search(name) is not None


def mask_url(url: str) -> str:
    """The URL with its password and credential-like query values replaced by ``***``.

    ``http://user:pw@host/x?api_key=k&page=2`` -> ``http://user:***@host/x?api_key=***&page=2``.
    A URL that cannot be parsed is masked whole: printing part of it could print a secret.
    """
    try:
        parts = urlsplit(url)
    except ValueError:
        return "***"
    netloc = parts.netloc
    userinfo, at, hostport = netloc.rpartition("@")
    if at and ":" in userinfo:
        netloc = f"{userinfo.split(':', 1)[0]}:***@{hostport}"
    query = "&".join(
        f"{pair.split('=', 1)[0]}=***"
        if "=" in pair and _SENSITIVE_PARAMETER.search(pair.split("=", 1)[0])
        else pair
        for pair in parts.query.split("&")
    )
    if (netloc, query) == (parts.netloc, parts.query):
        return url  # nothing to hide: keep the text exactly as written
    return urlunsplit(parts._replace(netloc=netloc, query=query))


class EnvText(str):
    """Text from an environment variable: unlike JSON, it may become a number or a boolean."""

    __slots__ = ()


def as_interval(value: Any, key: str) -> timedelta:
    """A refresh interval: ``00:00:00`` (disabled) or at least one second."""
    interval = as_duration(value, key, positive=False)
    if timedelta(0) < interval < timedelta(seconds=1):
        raise ConfigError(key, "must be at least 00:00:01, or 00:00:00 to disable the source")
    return interval


def as_duration(value: Any, key: str, *, positive: bool) -> timedelta:
    """A time span string, never negative; with ``positive`` also never zero."""
    if not isinstance(value, str):
        raise ConfigError(key, f"expected a time span {TIMESPAN_FORMAT}, got {json_kind(value)}")
    try:
        duration = parse_timespan(value)
    except ValueError as exc:
        raise ConfigError(key, str(exc)) from None
    if duration < timedelta(0) or (positive and not duration):
        raise ConfigError(key, "must be greater than zero" if positive else "must not be negative")
    return duration


def as_int(value: Any, key: str, low: int | None = None, high: int | None = None) -> int:
    """An integer (a JSON boolean is not one) within the optional bounds."""
    if isinstance(value, EnvText):
        try:
            value = int(value.strip())
        except ValueError:
            raise ConfigError(key, f"cannot parse {str(value)!r} as an integer") from None
    if isinstance(value, bool) or not isinstance(value, int):
        raise ConfigError(key, f"expected an integer, got {json_kind(value)}")
    if (low is not None and value < low) or (high is not None and value > high):
        bound = f"between {low} and {high}" if high is not None else f"at least {low}"
        raise ConfigError(key, f"must be {bound}, got {value}")
    return value


def as_number(value: Any, key: str) -> float:
    """A JSON number (a boolean is not one), or text of one from an environment variable."""
    if isinstance(value, EnvText):
        try:
            value = float(value.strip())
        except ValueError:
            raise ConfigError(key, f"cannot parse {str(value)!r} as a number") from None
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ConfigError(key, f"expected a number, got {json_kind(value)}")
    return float(value)


def as_share(value: Any, key: str) -> float:
    """A fraction in [0, 1] (``MaxDeleteShare``)."""
    value = as_number(value, key)
    if not 0 <= value <= 1:  # also refuses NaN, which json5 accepts
        raise ConfigError(key, f"must be between 0 and 1, got {value}")
    return float(value)


def as_bool(value: Any, key: str) -> bool:
    """A JSON boolean, or ``true``/``false`` in any case from an environment variable."""
    if isinstance(value, EnvText) and value.strip().lower() in {"true", "false"}:
        return value.strip().lower() == "true"
    if not isinstance(value, bool):
        raise ConfigError(key, f"expected true or false, got {json_kind(value)}")
    return value


def as_text(value: Any, key: str) -> str:
    if not isinstance(value, str):
        raise ConfigError(key, f"expected a string, got {json_kind(value)}")
    return str(value)


def as_choice(value: Any, key: str, choices: type[_E], default: _E) -> _E:
    """A member of a lower-case string enum, matched case-insensitively; ``None`` -> default."""
    if value is None:
        return default
    try:
        return choices(as_text(value, key).strip().lower())
    except ValueError:
        raise ConfigError(key, f"expected one of {', '.join(choices)}, got {value!r}") from None


def json_kind(value: Any) -> str:
    """The JSON type of a wrong value; the value itself is not shown, it may be a secret."""
    if isinstance(value, EnvText):
        return repr(str(value))  # env text reaches here only for non-secret options
    if value is None:
        return "null"
    kinds = ((bool, "a boolean"), (int | float, "a number"), (str, "a string"), (dict, "an object"))
    return next((name for type_, name in kinds if isinstance(value, type_)), "an array")


def resolve_secret(
    value: Any, key: str, environ: Mapping[str, str], base_dir: Path | None
) -> Secret:
    """A secret-capable string: ``env:NAME``, ``file:/path`` or a literal (reference ``None``).

    A relative ``file:`` path is looked up in ``base_dir`` (the configuration file's
    folder); the file's trailing line break is dropped.
    """
    text = as_text(value, key)
    if text.startswith("env:"):
        name = text.removeprefix("env:")
        if name not in environ:
            raise ConfigError(key, f"environment variable {name or '(empty name)'} is not set")
        return Secret(environ[name], text)
    if text.startswith("file:"):
        file = Path(text.removeprefix("file:"))
        if base_dir is not None and not file.is_absolute():
            file = base_dir / file
        try:
            content = file.read_text(encoding="utf-8")
        except FileNotFoundError:
            raise ConfigError(key, f"secret file {file} not found") from None
        except (OSError, UnicodeDecodeError) as exc:
            # Only the exception's type: a decode error quotes bytes of the secret.
            raise ConfigError(
                key, f"cannot read secret file {file}: {type(exc).__name__}"
            ) from None
        return Secret(content.rstrip("\r\n"), text)
    return Secret(text)


def check_url(url: Secret, key: str, prefixes: tuple[str, ...], expected: str) -> None:
    """Refuse a URL that does not start with one of ``prefixes`` (an http URL needs a host)."""
    lowered = url.value.lower()
    try:
        # An http(s) URL needs a host; a store URL needs a path or host after its scheme.
        valid = any(lowered.startswith(p) and len(lowered) > len(p) for p in prefixes) and (
            not lowered.startswith("http") or bool(urlsplit(url.value).hostname)
        )
    except ValueError:  # urlsplit refuses malformed IPv6 hosts
        valid = False
    if valid:
        return
    # Name the reference, not the value, when the value came from a secret store.
    shown = f"the value of {url.reference}" if url.reference else repr(mask_url(url.value))
    raise ConfigError(key, f"must be {expected}, got {shown}")
