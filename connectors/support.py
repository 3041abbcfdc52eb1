"""What both connectors share: paced, retried calls; daily-quota awareness; the account cache.

:class:`CallRunner` wraps every CRM call: it waits for the shared rate-limit token(s),
makes the call, turns any failure into a :class:`~connectors.base.RetriableError` or
:class:`~connectors.base.FatalError` (via the connector's classifier), and retries the
retriable ones with tenacity: exponential backoff with full jitter, or exactly the CRM's
``Retry-After``/rate-limit-window hint when it gave one (and then the whole connection's
bucket is blocked for that long, so other workers do not walk into the same 429). After a
bounded number of attempts or seconds the error is raised to the caller, still marked
retriable: the worker keeps the work and tries again later.
"""

from __future__ import annotations

import contextlib
import random
import threading
import time
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

import redis
import structlog
from tenacity import RetryCallState, Retrying, retry_if_exception, stop_after_attempt, stop_after_delay

from connectors import metrics
from connectors.base import ConnectorError, RetriableError
from connectors.ratelimit import RateLimiter, RateLimitTimeout
from connectors.redact import redact_event, redact_text
from connectors.settings import DailyLimitSettings, RetrySettings

__all__ = ["AccountCache", "CallRunner", "DailyUsage", "RedactingLogger", "get_logger"]

T = TypeVar("T")


class RedactingLogger:
    """A structlog logger whose events are scrubbed of secrets before any processor sees them.

    The application's structlog configuration (JSON in production) still applies; the
    redaction does not depend on it having a redaction processor of its own.
    """

    def __init__(self, logger: Any) -> None:
        self._logger = logger

    def bind(self, **values: Any) -> RedactingLogger:
        return RedactingLogger(self._logger.bind(**redact_event(None, "", dict(values))))

    def _emit(self, method: str, event: str, values: dict[str, Any]) -> None:
        getattr(self._logger, method)(redact_text(event), **redact_event(None, method, values))

    def debug(self, event: str, **values: Any) -> None:
        self._emit("debug", event, values)

    def info(self, event: str, **values: Any) -> None:
        self._emit("info", event, values)

    def warning(self, event: str, **values: Any) -> None:
        self._emit("warning", event, values)

    def error(self, event: str, **values: Any) -> None:
        self._emit("error", event, values)


def get_logger(crm: str) -> RedactingLogger:
    """The connector's logger, bound to its name, with secrets redacted."""
    return RedactingLogger(structlog.get_logger("leadroute.connectors")).bind(crm=crm)


class DailyUsage:
    """The CRM's daily allocation as its response headers report it, and the slow-down it implies."""

    def __init__(self, crm: str, settings: DailyLimitSettings, log: Any) -> None:
        self.crm = crm
        self.settings = settings
        self.used: int | None = None
        self.total: int | None = None
        self.slowed = False
        self._log = log

    @property
    def share(self) -> float | None:
        if self.used is None or not self.total:
            return None
        return self.used / self.total

    def update(self, used: int, total: int) -> None:
        """Record the latest ``used``/``total`` and log when the slow-down starts or ends."""
        if total <= 0:
            return
        self.used, self.total = used, total
        share = used / total
        metrics.DAILY_USAGE.labels(self.crm).set(share)
        slowed = share >= self.settings.slow_down_at
        if slowed != self.slowed:
            self.slowed = slowed
            metrics.SLOWED_DOWN.labels(self.crm).set(1 if slowed else 0)
            if slowed:
                self._log.warning(
                    "crm daily allocation nearly used up: slowing down",
                    used=used,
                    total=total,
                    share=round(share, 4),
                    threshold=self.settings.slow_down_at,
                    factor=self.settings.slow_down_factor,
                )
            else:
                self._log.info("crm daily allocation back under threshold: full speed", used=used, total=total)

    def factor(self) -> float:
        """Multiplier for the bucket's refill rate (1.0, or the slow-down factor)."""
        return self.settings.slow_down_factor if self.slowed else 1.0


class _RetryWait:
    """Backoff for tenacity: the error's own hint when present, else exponential with full jitter."""

    def __init__(self, settings: RetrySettings, rng: random.Random) -> None:
        self.settings = settings
        self.rng = rng

    def __call__(self, state: RetryCallState) -> float:
        exc = state.outcome.exception() if state.outcome else None
        hint = getattr(exc, "retry_after", None)
        if hint is not None and hint > 0:
            return float(hint) + self.rng.uniform(0, min(0.25, hint * 0.1))
        ceiling = min(self.settings.max_wait, self.settings.initial_wait * 2 ** (state.attempt_number - 1))
        return self.rng.uniform(self.settings.initial_wait / 2, max(self.settings.initial_wait / 2, ceiling))


class CallRunner:
    """Paced, classified, retried CRM calls for one connector instance."""

    def __init__(
        self,
        crm: str,
        *,
        retry: RetrySettings,
        daily: DailyUsage,
        classify: Callable[[BaseException], ConnectorError],
        log: Any,
        sleep: Callable[[float], None] = time.sleep,
        rng: random.Random | None = None,
    ) -> None:
        self.crm = crm
        self.retry = retry
        self.daily = daily
        self.classify = classify
        self.log = log
        self.sleep = sleep
        self.rng = rng or random.Random()
        self.calls = 0
        self.rate_waited = 0.0

    def pace(self, limiters: Sequence[tuple[RateLimiter, float]]) -> None:
        """Wait for one token from each limiter (at its rate, slowed near the daily limit)."""
        factor = self.daily.factor()
        for limiter, rate in limiters:
            try:
                waited = limiter.acquire(1, rate=rate * factor, max_wait=self.retry.max_total)
            except RateLimitTimeout as exc:
                raise RetriableError(str(exc), crm=self.crm, code="RATE_LIMIT_LOCAL", retry_after=exc.wait) from None
            except (redis.RedisError, OSError) as exc:
                raise RetriableError(f"rate limiter unavailable: {exc}", crm=self.crm, code="REDIS") from None
            if waited > 0:
                self.rate_waited += waited
                metrics.rate_limit_wait(self.crm, waited, "daily_quota" if factor < 1 else "shared_limit")

    def backoff(self, attempt: int) -> float:
        """Exponential backoff with full jitter for the ``attempt``-th retry (1-based)."""
        ceiling = min(self.retry.max_wait, self.retry.initial_wait * 2 ** (attempt - 1))
        return self.rng.uniform(self.retry.initial_wait / 2, max(self.retry.initial_wait / 2, ceiling))

    def call(
        self,
        endpoint: str,
        fn: Callable[[], T],
        *,
        limiters: Sequence[tuple[RateLimiter, float]] = (),
        attempts: int | None = None,
    ) -> T:
        """Run ``fn`` (one HTTP call) paced by ``limiters`` ((bucket, rate) pairs), with retries.

        Raises the classified :class:`ConnectorError` once retries are exhausted or the
        error is fatal.
        """

        def attempt() -> T:
            self.pace(limiters)
            started = time.perf_counter()
            status = "200"
            try:
                self.calls += 1
                return fn()
            except ConnectorError as exc:
                status = str(exc.status or 0)
                raise
            except Exception as exc:
                error = self.classify(exc)
                status = str(error.status or 0)
                if error.status == 429 and limiters:
                    block = error.retry_after if error.retry_after else 1.0
                    for limiter, _ in limiters[:1]:
                        limiter.block(block)
                raise error from None
            finally:
                metrics.observe_crm_call(self.crm, endpoint, status, time.perf_counter() - started)

        def before_sleep(state: RetryCallState) -> None:
            exc = state.outcome.exception() if state.outcome else None
            reason = (getattr(exc, "code", None) or str(getattr(exc, "status", "") or "error"))
            metrics.RETRIES.labels(self.crm, endpoint, reason).inc()
            self.log.warning(
                "crm call failed, retrying",
                endpoint=endpoint,
                attempt=state.attempt_number,
                wait=round(state.upcoming_sleep, 3),
                error=str(exc),
            )

        def hint_too_long(state: RetryCallState) -> bool:
            # a CRM that says "come back in an hour" gets the work handed back, not a sleeping worker
            exc = state.outcome.exception() if state.outcome else None
            return (getattr(exc, "retry_after", None) or 0) > self.retry.max_wait

        retrying = Retrying(
            stop=stop_after_attempt(attempts or self.retry.attempts)
            | stop_after_delay(self.retry.max_total)
            | hint_too_long,
            wait=_RetryWait(self.retry, self.rng),
            retry=retry_if_exception(lambda e: isinstance(e, ConnectorError) and e.retriable),
            sleep=self.sleep,
            before_sleep=before_sleep,
            reraise=True,
        )
        return retrying(attempt)


class AccountCache:
    """Domain -> account owner answers, in Redis (shared, with TTL) or in-process without it."""

    _NONE = "-"

    def __init__(self, client: redis.Redis | None, prefix: str, *, ttl: float, negative_ttl: float) -> None:
        self.client = client
        self.prefix = prefix
        self.ttl = ttl
        self.negative_ttl = negative_ttl
        self._local: dict[str, tuple[float, str]] = {}
        self._lock = threading.Lock()

    def _key(self, domain: str) -> str:
        return f"{self.prefix}:acct:{domain}"

    def get(self, domain: str) -> tuple[bool, str | None]:
        """``(hit, owner)``: a hit may be a cached "no account" (owner ``None``)."""
        value: str | None
        if self.client is not None:
            try:
                raw = self.client.get(self._key(domain))
            except redis.RedisError:
                raw = None
            value = raw.decode() if isinstance(raw, bytes) else raw
        else:
            with self._lock:
                expires, value = self._local.get(domain, (0.0, None))  # type: ignore[assignment]
                if expires < time.monotonic():
                    value = None
        if value is None:
            return False, None
        return True, (None if value == self._NONE else value)

    def put(self, domain: str, owner: str | None) -> None:
        ttl = self.ttl if owner else self.negative_ttl
        if ttl <= 0:
            return
        value = owner or self._NONE
        if self.client is not None:
            with contextlib.suppress(redis.RedisError):
                self.client.set(self._key(domain), value, px=max(1, int(ttl * 1000)))
        else:
            with self._lock:
                self._local[domain] = (time.monotonic() + ttl, value)
