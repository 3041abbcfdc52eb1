"""One rate budget per CRM connection, shared by every worker process through Redis.

A CRM's limit applies to the connection (the private-app token, the org), not to one
process, so ten Celery workers each pacing themselves would still get 429s. The bucket
state lives in one Redis hash, updated by a Lua script (EVAL/EVALSHA only, so it runs on
Redis 6.2 and the embedded server) that uses the server's clock, so workers on different
machines agree on time.

The script *reserves*: a caller takes its token now, possibly driving the bucket negative,
and is told how long to sleep before using it. Waiters are therefore served in arrival
order without polling Redis, and the bucket never hands out more than ``capacity + rate *
t`` tokens in any interval ``t``. :meth:`TokenBucket.block` empties the bucket until a
moment (a 429's Retry-After), so one worker's 429 pauses all of them.

:class:`LocalTokenBucket` has the same interface in-process, for one-off commands and
tests that have no Redis.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Protocol

import redis

__all__ = ["LocalTokenBucket", "RateLimitTimeout", "RateLimiter", "TokenBucket"]

# KEYS[1] bucket hash. ARGV: rate (tokens/s), capacity, tokens wanted, max wait (s),
# block-for (s; 0 = normal acquire). Returns the wait in seconds as a string: >= 0 when
# reserved, negative (-wait) when the wait would exceed max wait (nothing reserved). State is
# stored at full precision: Lua's tostring keeps 14 digits, which rounds an epoch timestamp to
# 0.1 ms and made a free burst token cost a phantom microsecond.
_SCRIPT = """
local key = KEYS[1]
local rate = tonumber(ARGV[1])
local capacity = tonumber(ARGV[2])
local want = tonumber(ARGV[3])
local max_wait = tonumber(ARGV[4])
local block_for = tonumber(ARGV[5])
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
local state = redis.call('HMGET', key, 'tokens', 'ts')
local tokens = tonumber(state[1])
local ts = tonumber(state[2])
if tokens == nil or ts == nil then
  tokens = capacity
  ts = now
end
if now > ts then
  tokens = math.min(capacity, tokens + (now - ts) * rate)
  ts = now
end
if block_for > 0 then
  local until_ts = now + block_for
  if until_ts > ts then
    ts = until_ts
  end
  if tokens > 0 then
    tokens = 0
  end
  redis.call('HSET', key, 'tokens', string.format('%.17g', tokens), 'ts', string.format('%.6f', ts))
  redis.call('PEXPIRE', key, math.ceil((ts - now + capacity / rate) * 1000) + 1000)
  return tostring(ts - now)
end
local left = tokens - want
local wait = ts - now
if left < 0 then
  wait = wait + (-left) / rate
end
if wait > max_wait then
  return tostring(-wait)
end
redis.call('HSET', key, 'tokens', string.format('%.17g', left), 'ts', string.format('%.6f', ts))
redis.call('PEXPIRE', key, math.ceil((wait + capacity / rate) * 1000) + 1000)
return tostring(wait)
"""


class RateLimitTimeout(Exception):
    """The bucket is so far behind that waiting would exceed the caller's limit."""

    def __init__(self, wait: float) -> None:
        self.wait = wait
        super().__init__(f"rate limit: next token in {wait:.1f}s")


class RateLimiter(Protocol):
    """What a connector needs from a bucket."""

    def acquire(self, tokens: float = 1, *, rate: float | None = None, max_wait: float = 60.0) -> float: ...

    def block(self, seconds: float) -> None: ...


class TokenBucket:
    """The Redis-shared bucket of one CRM connection (``key`` names it; share it to share the budget)."""

    def __init__(
        self,
        client: redis.Redis,
        key: str,
        *,
        rate: float,
        capacity: float,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        if rate <= 0 or capacity <= 0:
            raise ValueError("rate and capacity must be positive")
        self.client = client
        self.key = key
        self.rate = rate
        self.capacity = capacity
        self._sleep = sleep
        self._script = client.register_script(_SCRIPT)

    def __repr__(self) -> str:
        return f"TokenBucket({self.key!r}, rate={self.rate:g}/s, capacity={self.capacity:g})"

    def _run(self, rate: float, want: float, max_wait: float, block_for: float) -> float:
        result = self._script(keys=[self.key], args=[repr(rate), repr(self.capacity), repr(want), repr(max_wait),
                                                     repr(block_for)])
        return float(result)

    def acquire(self, tokens: float = 1, *, rate: float | None = None, max_wait: float = 60.0) -> float:
        """Take ``tokens``, sleeping until they are ours; returns the seconds slept.

        ``rate`` overrides the refill rate for this call (the daily-limit slow-down).
        Raises :class:`RateLimitTimeout` (nothing taken) if that would take over ``max_wait``.
        """
        wait = self._run(rate or self.rate, tokens, max_wait, 0.0)
        if wait < 0:
            raise RateLimitTimeout(-wait)
        if wait > 0:
            self._sleep(wait)
        return wait

    def block(self, seconds: float) -> None:
        """Empty the bucket and hand out nothing for ``seconds`` (every worker waits)."""
        if seconds > 0:
            self._run(self.rate, 0, 0.0, seconds)

    def reset(self) -> None:
        self.client.delete(self.key)


class LocalTokenBucket:
    """The same reserve-and-sleep bucket for a single process (thread-safe)."""

    def __init__(
        self,
        *,
        rate: float,
        capacity: float,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if rate <= 0 or capacity <= 0:
            raise ValueError("rate and capacity must be positive")
        self.rate = rate
        self.capacity = capacity
        self._sleep = sleep
        self._clock = clock
        self._lock = threading.Lock()
        self._tokens = float(capacity)
        self._ts = clock()

    def __repr__(self) -> str:
        return f"LocalTokenBucket(rate={self.rate:g}/s, capacity={self.capacity:g})"

    def _refill(self, rate: float) -> float:
        now = self._clock()
        if now > self._ts:
            self._tokens = min(self.capacity, self._tokens + (now - self._ts) * rate)
            self._ts = now
        return now

    def acquire(self, tokens: float = 1, *, rate: float | None = None, max_wait: float = 60.0) -> float:
        rate = rate or self.rate
        with self._lock:
            now = self._refill(rate)
            left = self._tokens - tokens
            wait = self._ts - now + (max(0.0, -left) / rate)
            if wait > max_wait:
                raise RateLimitTimeout(wait)
            self._tokens = left
        if wait > 0:
            self._sleep(wait)
        return wait

    def block(self, seconds: float) -> None:
        with self._lock:
            now = self._refill(self.rate)
            self._ts = max(self._ts, now + seconds)
            self._tokens = min(self._tokens, 0.0)
