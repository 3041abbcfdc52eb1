"""Redis clients with the production settings, and the one-line error when Redis cannot be used.

The lowest layer of the store's connection code: :mod:`.embedded` (the private server) and
:mod:`.connection` (``REDIS_URL`` or the embedded server) both build on it.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit, urlunsplit

import redis
from redis.backoff import ExponentialBackoff
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import RedisError
from redis.exceptions import TimeoutError as RedisTimeoutError
from redis.retry import Retry

from worker.store.sentinel import SENTINEL_SCHEMES, sentinel_client

CONNECT_TIMEOUT = 3.0
SOCKET_TIMEOUT = 5.0
HEALTH_CHECK_INTERVAL = 30
RETRIES = 5


class RedisUnavailable(RuntimeError):
    """Redis could not be reached or started; ``str(exc)`` is one line fit for the user."""

    def __init__(self, url: str, reason: str) -> None:
        self.url = redact_url(url)
        self.reason = reason
        super().__init__(f"cannot use Redis at {self.url}: {reason}")


def redact_url(url: str) -> str:
    """The URL with any password replaced by ``***``, safe for logs and error lines."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return "<unparseable Redis URL>"
    if parts.password is None:
        return url
    if "," in parts.netloc:  # several hosts (Sentinel): no single host and port to rebuild from
        userinfo, _, hosts = parts.netloc.rpartition("@")
        user = userinfo.partition(":")[0]
        return urlunsplit((parts.scheme, f"{user}:***@{hosts}", parts.path, parts.query, parts.fragment))
    user = parts.username or ""
    host = parts.hostname or ""
    if parts.port is not None:
        host = f"{host}:{parts.port}"
    return urlunsplit((parts.scheme, f"{user}:***@{host}", parts.path, parts.query, parts.fragment))


def one_line(exc: BaseException | str) -> str:
    """An error as one short line, for messages meant to be printed as is."""
    text = " ".join(str(exc).split()) or type(exc).__name__
    return text[:300]


def client_from_url(url: str, **overrides: Any) -> redis.Redis:
    """A client with the production settings: timeouts, backoff retries, health checks.

    Creating the client does not connect; :func:`check` or the first command does.
    """
    scheme = urlsplit(url).scheme
    if scheme not in ("redis", "rediss", "unix", *SENTINEL_SCHEMES):
        raise RedisUnavailable(url, f"unsupported scheme {scheme!r} (use redis://, rediss://, unix:// or redis+sentinel://)")
    options: dict[str, Any] = {
        "decode_responses": True,
        "socket_connect_timeout": CONNECT_TIMEOUT,
        "socket_timeout": SOCKET_TIMEOUT,
        "health_check_interval": HEALTH_CHECK_INTERVAL,
        "retry": Retry(ExponentialBackoff(cap=2.0, base=0.05), RETRIES),
        "retry_on_error": [RedisConnectionError, RedisTimeoutError, ConnectionResetError],
        "client_name": "leadroute",
    }
    if scheme != "unix":
        options["socket_keepalive"] = True
    options.update(overrides)
    try:
        if scheme in SENTINEL_SCHEMES:
            return sentinel_client(url, **options)
        return redis.Redis.from_url(url, **options)
    except (ValueError, RedisError) as exc:
        raise RedisUnavailable(url, one_line(exc)) from None
