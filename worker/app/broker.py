"""Where Celery's messages go: the queue names and the broker URL for a Redis URL.

Apart from :mod:`worker.app.celery_app` because importing the app resolves the broker (and,
without ``REDIS_URL``, starts the embedded Redis), while the process supervisor only needs
these names.
"""

from __future__ import annotations

from urllib.parse import parse_qs, urlsplit

QUEUES = ("ingest", "route", "notify", "sla")


def broker_url(redis_url: str) -> str:
    """A kombu broker URL for a redis-py URL (``unix://`` becomes ``redis+socket://``)."""
    parts = urlsplit(redis_url)
    if parts.scheme == "unix":
        db = parse_qs(parts.query).get("db", ["0"])[0]
        return f"redis+socket://{parts.path}?virtual_host={db}"
    return redis_url
