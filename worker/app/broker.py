"""Where Celery's messages go: the queue names, and which broker the app and the supervisor use.

The broker is ``LEADROUTE_BROKER_URL`` when it is set (``amqp://`` for RabbitMQ, which Celery
recommends for production, or a Redis URL), else the Redis that holds the state (``REDIS_URL``,
else the embedded server). Redis holds the shared state whichever broker carries the tasks.
A Redis Sentinel URL (``redis+sentinel://host:port,host:port/service/db``, see
:mod:`worker.store.sentinel`) becomes kombu's ``sentinel://`` broker URL, one per sentinel, and the
service name its ``master_name`` transport option (:func:`sentinel_options`).

Apart from :mod:`worker.app.celery_app` because importing the app resolves the broker (and,
without either variable, starts the embedded Redis), while the process supervisor only needs
these names and :func:`configured_broker_url`.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any
from urllib.parse import parse_qs, urlsplit

from worker.store.sentinel import SENTINEL_SCHEMES, is_sentinel, kombu_broker

QUEUES = ("ingest", "route", "notify", "sla")
BROKER_ENV = "LEADROUTE_BROKER_URL"
REDIS_ENV = "REDIS_URL"
REDIS_SCHEMES = frozenset({"redis", "rediss", "redis+socket", "unix", *SENTINEL_SCHEMES})


def broker_url(redis_url: str) -> str:
    """A kombu broker URL for a redis-py URL (``unix://`` becomes ``redis+socket://``, a Sentinel URL
    ``sentinel://host:port/db;sentinel://...``)."""
    if is_sentinel(redis_url):
        return kombu_broker(redis_url)[0]
    parts = urlsplit(redis_url)
    if parts.scheme == "unix":
        db = parse_qs(parts.query).get("db", ["0"])[0]
        return f"redis+socket://{parts.path}?virtual_host={db}"
    return redis_url


def configured_broker_url(env: Mapping[str, str] | None = None) -> str | None:
    """The broker URL ``env`` (default: this process's environment) names: ``LEADROUTE_BROKER_URL``,
    else the broker URL of ``REDIS_URL``; None when neither is set (the broker is then the
    embedded Redis, which only the app itself starts)."""
    env = os.environ if env is None else env
    if explicit := env.get(BROKER_ENV):
        return broker_url(explicit) if is_redis(explicit) else explicit
    if redis_url := env.get(REDIS_ENV):
        return broker_url(redis_url)
    return None


def configured_broker_source(env: Mapping[str, str] | None = None) -> str | None:
    """The URL the broker is configured with, as written (before :func:`broker_url` converts it)."""
    env = os.environ if env is None else env
    return env.get(BROKER_ENV) or env.get(REDIS_ENV) or None


def sentinel_options(env: Mapping[str, str] | None = None) -> dict[str, Any]:
    """The transport options a Sentinel broker needs (``master_name``, the sentinels' password); {} otherwise."""
    source = configured_broker_source(env)
    return kombu_broker(source)[1] if source and is_sentinel(source) else {}


def is_redis(url: str) -> bool:
    """Whether ``url`` is a Redis broker (or redis-py) URL."""
    return urlsplit(url).scheme.lower() in REDIS_SCHEMES


def transport_options(url: str, visibility_timeout: float) -> dict[str, Any]:
    """The broker's transport options: the Redis broker redelivers an unacknowledged message after
    ``visibility_timeout`` seconds; RabbitMQ redelivers it as soon as the consumer's connection
    closes, and takes no such option."""
    return {"visibility_timeout": visibility_timeout} if is_redis(url) else {}
