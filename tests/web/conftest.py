"""Run the real web app under a real uvicorn server on a free loopback port.

``serve`` (function, factory)
    ``serve(app) -> base_url``: starts ``uvicorn.Server`` in a thread, waits until it
    accepts connections, and stops it after the test.
``queue`` (function, :class:`Queue`)
    An ``enqueue`` callable that records ``(crm, record_ids, source)`` calls
    (``queue.calls``); set ``queue.fail = True`` to make it raise.
``seen`` (function)
    ``first_seen(namespace, id)`` backed by the real :class:`RedisStore` on the test's prefix.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

import pytest
import redis
import uvicorn
from starlette.applications import Starlette

from worker.store.connection import free_port
from worker.store.redis_store import RedisStore


@pytest.fixture
def serve() -> Iterator[Callable[[Starlette], str]]:
    servers: list[tuple[uvicorn.Server, threading.Thread]] = []

    def start(app: Starlette) -> str:
        config = uvicorn.Config(app, host="127.0.0.1", port=free_port(), log_config=None, lifespan="off", access_log=False)
        server = uvicorn.Server(config)
        thread = threading.Thread(target=server.run, daemon=True)
        thread.start()
        deadline = time.monotonic() + 10
        while not server.started:
            if time.monotonic() > deadline or not thread.is_alive():
                raise RuntimeError("uvicorn did not start")
            time.sleep(0.01)
        servers.append((server, thread))
        return f"http://127.0.0.1:{config.port}"

    yield start
    for server, thread in servers:
        server.should_exit = True
        thread.join(10)


@dataclass
class Queue:
    calls: list[tuple[str, list[str], str]] = field(default_factory=list)
    fail: bool = False

    def __call__(self, crm: str, record_ids: list[str], source: str) -> None:
        if self.fail:
            raise ConnectionError("broker down")
        self.calls.append((crm, list(record_ids), source))

    @property
    def ids(self) -> list[str]:
        return [i for _, ids, _ in self.calls for i in ids]


@pytest.fixture
def queue() -> Queue:
    return Queue()


@pytest.fixture
def store(redis_client: redis.Redis, redis_prefix: str) -> RedisStore:
    return RedisStore(redis_client, prefix=redis_prefix)


@pytest.fixture
def seen(store: RedisStore) -> Callable[[str, str], bool]:
    return lambda namespace, item_id: store.first_seen(namespace, item_id, 3600)
