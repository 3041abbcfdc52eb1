"""Redis Sentinel URLs: ``redis+sentinel://[user:password@]host[:port][,host[:port]...]/service[/db]``.

With Sentinel, clients ask the sentinels where the master of a service is, and ask again after a
failover, so ``REDIS_URL`` names the sentinels and the service instead of one server. The same
URL serves the state store (redis-py's :class:`redis.sentinel.Sentinel`, here) and the Celery
broker (kombu's ``sentinel://`` transport with the ``master_name`` transport option, in
:mod:`worker.app.broker`).

* schemes: ``redis+sentinel`` or ``sentinel``; ``rediss+sentinel`` for TLS to the master;
* sentinels: one or more ``host:port``, comma-separated (port 26379 when left out);
* path: the service (master) name, then the database number (0 when left out);
* the user and password are the master's; ``?sentinel_password=...`` (and
  ``sentinel_username``) when the sentinels require their own.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs, quote, unquote, urlsplit

import redis
from redis.connection import SSLConnection
from redis.sentinel import Sentinel, SentinelManagedConnection

SENTINEL_SCHEMES = frozenset({"redis+sentinel", "rediss+sentinel", "sentinel"})
DEFAULT_PORT = 26379


@dataclass(frozen=True, slots=True)
class SentinelUrl:
    """A parsed Sentinel URL."""

    sentinels: tuple[tuple[str, int], ...]
    service: str
    db: int = 0
    username: str | None = None
    password: str | None = None
    ssl: bool = False
    sentinel_username: str | None = None
    sentinel_password: str | None = None


def is_sentinel(url: str) -> bool:
    """Whether ``url`` names Redis through Sentinel."""
    return url.split("://", 1)[0].lower() in SENTINEL_SCHEMES


def parse_sentinel_url(url: str) -> SentinelUrl:
    """Parse a Sentinel URL; raises ValueError naming what is wrong."""
    scheme, sep, rest = url.partition("://")
    if not sep or scheme.lower() not in SENTINEL_SCHEMES:
        raise ValueError(f"not a Sentinel URL (use {', '.join(sorted(s + '://' for s in SENTINEL_SCHEMES))})")
    parts = urlsplit("x://" + rest)
    userinfo, _, hosts = parts.netloc.rpartition("@")
    username = password = None
    if userinfo:
        user, _, secret = userinfo.partition(":")
        username, password = unquote(user) or None, unquote(secret) or None
    sentinels = tuple(_host_port(item) for item in hosts.split(",") if item.strip())
    if not sentinels:
        raise ValueError("no sentinel host: give host:port[,host:port...]")
    path = [p for p in parts.path.split("/") if p]
    if not path:
        raise ValueError("no service name: the path is /service_name[/db]")
    if len(path) > 2 or (len(path) == 2 and not path[1].isdigit()):
        raise ValueError(f"path {parts.path!r}: expected /service_name[/db]")
    query = {k: v[-1] for k, v in parse_qs(parts.query).items()}
    return SentinelUrl(sentinels, unquote(path[0]), int(path[1]) if len(path) == 2 else 0, username, password,
                       scheme.lower() == "rediss+sentinel", query.get("sentinel_username"), query.get("sentinel_password"))


def _host_port(item: str) -> tuple[str, int]:
    host, _, port = item.strip().rpartition(":") if ":" in item else (item.strip(), "", "")
    if not host:
        raise ValueError(f"sentinel {item!r}: expected host:port")
    if port and not port.isdigit():
        raise ValueError(f"sentinel {item!r}: port {port!r} is not a number")
    return host.strip("[]"), int(port) if port else DEFAULT_PORT


class MasterFollowingConnection(SentinelManagedConnection):
    """A connection to the service's master that asks the sentinels where it is on every (re)connect.

    redis-py's own reconnects a dropped connection inside ``send_packed_command`` through
    ``connect_check_health``, which skips the sentinel lookup and dials the old master again: after
    a failover whose old master is gone, every retry then fails (redis-py 6.4).
    """

    def connect_check_health(self, check_health: bool = True, retry_socket_connect: bool = True) -> None:
        if self._sock is None and self.connection_pool.is_master:
            self.host, self.port = self.connection_pool.get_master_address()
        super().connect_check_health(check_health=check_health, retry_socket_connect=retry_socket_connect)


class MasterFollowingSSLConnection(MasterFollowingConnection, SSLConnection):
    """:class:`MasterFollowingConnection` over TLS."""


def sentinel_client(url: str, **options: Any) -> redis.Redis:
    """A client for the service's current master, found through the sentinels (again after a failover).

    ``options`` are the client settings (timeouts, retries, ``decode_responses``...); the sentinels
    are asked with the same timeouts. A connection to a master that has become a replica fails and
    is retried against the new master.
    """
    target = parse_sentinel_url(url)
    sentinel_kwargs = {k: options[k] for k in ("socket_connect_timeout", "socket_timeout") if k in options}
    if target.sentinel_password:
        sentinel_kwargs["password"] = target.sentinel_password
    if target.sentinel_username:
        sentinel_kwargs["username"] = target.sentinel_username
    manager = Sentinel(list(target.sentinels), sentinel_kwargs=sentinel_kwargs)
    master: dict[str, Any] = {"db": target.db, **options}
    if target.username:
        master["username"] = target.username
    if target.password:
        master["password"] = target.password
    master["connection_class"] = MasterFollowingSSLConnection if target.ssl else MasterFollowingConnection
    return manager.master_for(target.service, redis_class=redis.Redis, **master)


def kombu_broker(url: str) -> tuple[str, dict[str, Any]]:
    """The kombu broker URL (``sentinel://host:port/db;sentinel://...``) and the transport options
    (``master_name``, ``sentinel_kwargs``) for a Sentinel URL."""
    target = parse_sentinel_url(url)
    auth = ""
    if target.password:
        auth = f"{quote(target.username or '', safe='')}:{quote(target.password, safe='')}@"
    broker = ";".join(f"sentinel://{auth}{host}:{port}/{target.db}" for host, port in target.sentinels)
    options: dict[str, Any] = {"master_name": target.service}
    if target.sentinel_password:
        options["sentinel_kwargs"] = {"password": target.sentinel_password}
        if target.sentinel_username:
            options["sentinel_kwargs"]["username"] = target.sentinel_username
    return broker, options
