"""The search API's limits and token (`ApiSettings`), read from the environment.

Pure: `from_env` takes a mapping and a file reader, so it is tested without a process.

    RAP_SEARCH_TOKEN / RAP_SEARCH_TOKEN_FILE   bearer token (unset: no authentication)
    RAP_SEARCH_MAX_IN_FLIGHT                   requests served at once; more get 429
    RAP_SEARCH_POOL_SIZE                       database connections for queries
    RAP_SEARCH_ACQUIRE_TIMEOUT                 seconds to wait for one; then 503
    RAP_SEARCH_STATEMENT_TIMEOUT               seconds a statement may run; then 503
    RAP_SEARCH_READY_TIMEOUT                   seconds /readyz waits for the database
    RAP_SEARCH_METRICS_PORT                    port of /metrics (0: not served)
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

PREFIX = "RAP_SEARCH_"


class InvalidSettings(ValueError):
    """A RAP_SEARCH_* variable that cannot be used; the message names it."""


@dataclass(frozen=True, slots=True)
class ApiSettings:
    token: str | None = None
    max_in_flight: int = 32
    pool_size: int = 4
    acquire_timeout: float = 2.0
    statement_timeout: float = 5.0
    ready_timeout: float = 2.0
    metrics_port: int = 0

    def __repr__(self) -> str:
        # The token never reaches a log line through a repr.
        token = "set" if self.token else "none"
        return (
            f"ApiSettings(token={token}, max_in_flight={self.max_in_flight},"
            f" pool_size={self.pool_size}, acquire_timeout={self.acquire_timeout},"
            f" statement_timeout={self.statement_timeout},"
            f" ready_timeout={self.ready_timeout}, metrics_port={self.metrics_port})"
        )


def _number(env: Mapping[str, str], name: str, default: float, kind: type, low: float) -> float:
    raw = env.get(PREFIX + name, "").strip()
    if not raw:
        return default
    try:
        value = kind(raw)
    except ValueError:
        what = "an integer" if kind is int else "a number"
        raise InvalidSettings(f"{PREFIX}{name}={raw!r} is not {what}") from None
    if value < low:
        raise InvalidSettings(f"{PREFIX}{name}={raw!r}: at least {low}")
    return float(value) if kind is float else value


def _token(env: Mapping[str, str], read: Callable[[str], str]) -> str | None:
    direct = env.get(PREFIX + "TOKEN")
    path = env.get(PREFIX + "TOKEN_FILE", "").strip()
    if direct is not None and path:
        raise InvalidSettings(f"set {PREFIX}TOKEN or {PREFIX}TOKEN_FILE, not both")
    if path:
        try:
            direct = read(path)
        except OSError as exc:
            raise InvalidSettings(f"{PREFIX}TOKEN_FILE: cannot read {path}: {exc}") from None
    if direct is None:
        return None
    token = direct.strip()
    # Set but empty (an empty Secret key, say) must not silently turn authentication off.
    if not token:
        raise InvalidSettings(
            f"the bearer token ({PREFIX}TOKEN or {PREFIX}TOKEN_FILE) is set but empty;"
            f" unset it to serve without authentication"
        )
    if any(c.isspace() for c in token) or not token.isprintable():
        raise InvalidSettings("the bearer token contains whitespace or unprintable characters")
    return token


def from_env(
    env: Mapping[str, str], read: Callable[[str], str] = lambda p: Path(p).read_text()
) -> ApiSettings:
    d = ApiSettings()
    return ApiSettings(
        token=_token(env, read),
        max_in_flight=int(_number(env, "MAX_IN_FLIGHT", d.max_in_flight, int, 1)),
        pool_size=int(_number(env, "POOL_SIZE", d.pool_size, int, 1)),
        acquire_timeout=_number(env, "ACQUIRE_TIMEOUT", d.acquire_timeout, float, 0.001),
        statement_timeout=_number(env, "STATEMENT_TIMEOUT", d.statement_timeout, float, 0.001),
        ready_timeout=_number(env, "READY_TIMEOUT", d.ready_timeout, float, 0.001),
        metrics_port=_port(env),
    )


def _port(env: Mapping[str, str]) -> int:
    port = int(_number(env, "METRICS_PORT", 0, int, 0))
    if port > 65535:
        raise InvalidSettings(f"{PREFIX}METRICS_PORT={port}: a port is at most 65535")
    return port
