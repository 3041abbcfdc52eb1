"""The Redis-shared token bucket: pacing, sharing across clients, blocking after a 429."""

from __future__ import annotations

import threading
import time

import pytest
import redis

from connectors.ratelimit import LocalTokenBucket, RateLimitTimeout, TokenBucket
from worker.store.connection import client_from_url


def _max_in_window(stamps: list[float], window: float) -> int:
    stamps = sorted(stamps)
    best, j = 0, 0
    for i, t in enumerate(stamps):
        while stamps[j] <= t - window:
            j += 1
        best = max(best, i - j + 1)
    return best


def test_burst_then_steady_rate(redis_client: redis.Redis, redis_prefix: str) -> None:
    bucket = TokenBucket(redis_client, f"{redis_prefix}:bucket", rate=50, capacity=5)
    started = time.monotonic()
    waits = [bucket.acquire() for _ in range(30)]
    elapsed = time.monotonic() - started
    assert waits[:5] == [0.0] * 5  # the burst is free
    assert 0.45 <= elapsed <= 0.8  # the other 25 at 50/s


def test_workers_share_one_budget(redis_url: str, redis_prefix: str) -> None:
    """Four 'workers' with their own clients never exceed capacity + rate * window together."""
    stamps: list[float] = []
    lock = threading.Lock()

    def worker() -> None:
        client = client_from_url(redis_url)
        bucket = TokenBucket(client, f"{redis_prefix}:shared", rate=40, capacity=4)
        for _ in range(15):
            bucket.acquire()
            with lock:
                stamps.append(time.monotonic())
        client.close()

    threads = [threading.Thread(target=worker) for _ in range(4)]
    started = time.monotonic()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    elapsed = time.monotonic() - started
    assert len(stamps) == 60
    assert elapsed >= (60 - 4) / 40 - 0.05
    assert _max_in_window(stamps, 0.5) <= 4 + 40 * 0.5 + 1  # +1: timestamp jitter at the edges


def test_block_pauses_everyone(redis_client: redis.Redis, redis_prefix: str) -> None:
    a = TokenBucket(redis_client, f"{redis_prefix}:b", rate=100, capacity=10)
    b = TokenBucket(redis_client, f"{redis_prefix}:b", rate=100, capacity=10)
    a.block(0.3)
    started = time.monotonic()
    b.acquire()
    assert 0.25 <= time.monotonic() - started <= 0.5


def test_max_wait_reserves_nothing(redis_client: redis.Redis, redis_prefix: str) -> None:
    bucket = TokenBucket(redis_client, f"{redis_prefix}:slow", rate=1, capacity=1)
    bucket.acquire()
    with pytest.raises(RateLimitTimeout) as info:
        bucket.acquire(max_wait=0.2)
    assert 0.5 < info.value.wait <= 1.0
    with pytest.raises(RateLimitTimeout):  # still about 1 s away: the refused call took nothing
        bucket.acquire(max_wait=0.2)


def test_rate_override_slows_down(redis_client: redis.Redis, redis_prefix: str) -> None:
    bucket = TokenBucket(redis_client, f"{redis_prefix}:o", rate=100, capacity=1)
    bucket.acquire()
    started = time.monotonic()
    for _ in range(3):
        bucket.acquire(rate=25)  # a quarter of the rate
    assert 0.1 <= time.monotonic() - started <= 0.25


def test_state_expires_when_idle(redis_client: redis.Redis, redis_prefix: str) -> None:
    bucket = TokenBucket(redis_client, f"{redis_prefix}:ttl", rate=100, capacity=2)
    bucket.acquire()
    assert 0 < redis_client.pttl(f"{redis_prefix}:ttl") <= 1100 + 20


def test_local_bucket_same_contract() -> None:
    now = [0.0]
    slept: list[float] = []

    def sleep(s: float) -> None:
        slept.append(s)
        now[0] += s

    bucket = LocalTokenBucket(rate=10, capacity=2, sleep=sleep, clock=lambda: now[0])
    for _ in range(4):
        bucket.acquire()
    assert slept == pytest.approx([0.1, 0.1])
    bucket.block(1.0)
    bucket.acquire()
    assert slept[-1] == pytest.approx(1.1)
    with pytest.raises(RateLimitTimeout):
        LocalTokenBucket(rate=1, capacity=1, sleep=sleep, clock=lambda: now[0]).acquire(2, max_wait=0.5)


def test_a_burst_is_free_every_time_not_just_usually(redis_client: redis.Redis, redis_prefix: str) -> None:
    """The bucket's state keeps microseconds: rounded timestamps once made a burst token cost ~1 µs."""
    for n in range(200):
        bucket = TokenBucket(redis_client, f"{redis_prefix}:burst:{n}", rate=50, capacity=5)
        assert [bucket.acquire() for _ in range(5)] == [0.0] * 5, n
    stored = redis_client.hget(f"{redis_prefix}:burst:0", "ts")
    assert stored is not None and len(stored.partition(".")[2]) == 6
