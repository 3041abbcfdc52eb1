"""Connecting to Redis: ``REDIS_URL`` in production, a private embedded server otherwise.

Everything the workers share lives in Redis, so a missing Redis is the first thing a user
meets. Two promises follow from that:

* With ``REDIS_URL`` (``redis://``, ``rediss://`` for TLS, ``unix://``, or
  ``redis+sentinel://host:port,host:port/service/db`` through Redis Sentinel, see
  :mod:`.sentinel`), the client gets
  timeouts, retries with exponential backoff on connection errors and periodic health
  checks. If the server cannot be reached at start-up, :func:`connect` raises
  :class:`RedisUnavailable`, whose message is one line naming the URL (password redacted)
  and the failure, meant to be printed as is, without a traceback.
* Without ``REDIS_URL``, :func:`connect` starts (or joins) the private embedded server of
  :mod:`worker.store.embedded` for the data directory and connects to it.

Clients come from :mod:`.client` and the embedded server from :mod:`.embedded`; their public
names (:func:`client_from_url`, :class:`RedisUnavailable`, :class:`RedisServer`,
:func:`start_embedded`, :func:`embedded_url`, :func:`free_port`...) can be imported from here too.
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

import redis
from redis.backoff import ExponentialBackoff
from redis.exceptions import RedisError
from redis.retry import Retry

from worker.store.client import RedisUnavailable, client_from_url, one_line, redact_url
from worker.store.embedded import (
    DEFAULT_DATA_DIR,
    RedisServer,
    embedded_url,
    free_port,
    redis_server_binary,
    start_embedded,
)

__all__ = [
    "DEFAULT_DATA_DIR",
    "ENV_URL",
    "RedisServer",
    "RedisUnavailable",
    "check",
    "client_from_url",
    "connect",
    "describe_client",
    "embedded_url",
    "free_port",
    "health",
    "redact_url",
    "redis_server_binary",
    "start_embedded",
]

ENV_URL = "REDIS_URL"
STARTUP_RETRIES = 3


def check(client: redis.Redis, url: str = "") -> None:
    """Fail fast with :class:`RedisUnavailable` if the server does not answer a PING."""
    target = url or describe_client(client)
    try:
        client.ping()
    except RedisError as exc:
        raise RedisUnavailable(target, one_line(exc)) from None
    except OSError as exc:  # e.g. TLS handshake failures surface as plain OSErrors
        raise RedisUnavailable(target, one_line(exc)) from None


def health(client: redis.Redis) -> dict[str, Any]:
    """Liveness facts for ``/healthz``: ok, round-trip latency, server version, memory."""
    started = time.perf_counter()
    try:
        client.ping()
        latency_ms = (time.perf_counter() - started) * 1000
        info = client.info("server") | client.info("memory")
    except (RedisError, OSError) as exc:
        return {"ok": False, "error": one_line(exc)}
    return {
        "ok": True,
        "latency_ms": round(latency_ms, 3),
        "version": info.get("redis_version"),
        "used_memory": info.get("used_memory"),
        "maxmemory_policy": info.get("maxmemory_policy"),
    }


def describe_client(client: redis.Redis) -> str:
    """A redacted URL-like description of where a client points, for messages."""
    pool = client.connection_pool
    kwargs = pool.connection_kwargs
    service = getattr(pool, "service_name", None)
    if service:  # through Sentinel: the master it points at changes with failovers
        return f"redis+sentinel://<sentinels>/{service}/{kwargs.get('db', 0)}"
    if "path" in kwargs:
        return f"unix://{kwargs['path']}"
    return f"redis://{kwargs.get('host', '?')}:{kwargs.get('port', '?')}/{kwargs.get('db', 0)}"


def connect(url: str | None = None, data_dir: Path | str = DEFAULT_DATA_DIR) -> redis.Redis:
    """The shared Redis: ``url``, else ``$REDIS_URL``, else the embedded server in ``data_dir``.

    Raises :class:`RedisUnavailable` (one printable line) if it cannot be reached or started.
    The start-up probe retries briefly (about half a second) so a user is told at once; the
    returned client retries with backoff for longer, for blips while running.
    """
    url = url or os.environ.get(ENV_URL) or None
    if url is None:
        url = start_embedded(data_dir).url
    probe = client_from_url(url, retry=Retry(ExponentialBackoff(cap=0.25, base=0.05), STARTUP_RETRIES))
    try:
        check(probe, url)
    finally:
        probe.close()
    return client_from_url(url)
