"""Prometheus metrics for CRM traffic: what we call, what it costs, when we hold back.

Every CRM series is defined here, beside the code that records it: call counts and latency
(``leadroute_crm_calls_total``, ``leadroute_crm_call_seconds``), rate-limit waits
(``leadroute_rate_limit_wait*``), retries, per-record write outcomes and the daily
allocation. :mod:`worker.observability.metrics` re-exports the call and wait series and their
helpers, so the worker and the web process record and serve the very same objects. All live
in the default registry, so they aggregate across processes with prometheus-client's
multiprocess mode like the rest (gauges keep the most recent value of any process).
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager

from prometheus_client import Counter, Gauge, Histogram

__all__ = [
    "CRM_CALLS",
    "CRM_CALL_SECONDS",
    "DAILY_USAGE",
    "RATE_LIMIT_WAITS",
    "RATE_LIMIT_WAIT_SECONDS",
    "RECORDS_WRITTEN",
    "RETRIES",
    "SLOWED_DOWN",
    "crm_call",
    "observe_crm_call",
    "rate_limit_wait",
]

_CALL_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)

CRM_CALLS = Counter(
    "leadroute_crm_calls_total",
    "CRM API calls by connector, endpoint (a template, never an id) and HTTP status or error class.",
    ["connector", "endpoint", "status"],
)
CRM_CALL_SECONDS = Histogram(
    "leadroute_crm_call_seconds",
    "CRM API call duration by connector and endpoint.",
    ["connector", "endpoint"],
    buckets=_CALL_BUCKETS,
)
RATE_LIMIT_WAITS = Counter(
    "leadroute_rate_limit_waits_total",
    "Times a CRM call waited for the shared rate limit (or a Retry-After) before going out.",
    ["connector", "reason"],
)
RATE_LIMIT_WAIT_SECONDS = Counter(
    "leadroute_rate_limit_wait_seconds_total",
    "Seconds spent waiting for the shared CRM rate limit or a Retry-After.",
    ["connector", "reason"],
)
RETRIES = Counter(
    "leadroute_crm_retries_total",
    "CRM calls retried after a transient failure, by reason (RATE_LIMIT, 503, INVALID_SESSION_ID...).",
    ["connector", "endpoint", "reason"],
)
RECORDS_WRITTEN = Counter(
    "leadroute_crm_records_written_total",
    "Per-record outcomes of batch writes (ok, retriable, fatal).",
    ["connector", "status"],
)
DAILY_USAGE = Gauge(
    "leadroute_crm_daily_usage_ratio",
    "Share of the CRM's daily API allocation used, from its own usage headers.",
    ["connector"],
    multiprocess_mode="mostrecent",
)
SLOWED_DOWN = Gauge(
    "leadroute_crm_slowed_down",
    "1 while the connector paces itself because the daily allocation is nearly used up.",
    ["connector"],
    multiprocess_mode="mostrecent",
)


def observe_crm_call(connector: str, endpoint: str, status: int | str, seconds: float | None = None) -> None:
    """Count one CRM call; ``status`` is the HTTP status, or an error class such as ``timeout``."""
    CRM_CALLS.labels(connector=connector, endpoint=endpoint, status=str(status)).inc()
    if seconds is not None:
        CRM_CALL_SECONDS.labels(connector=connector, endpoint=endpoint).observe(max(0.0, seconds))


@contextmanager
def crm_call(connector: str, endpoint: str) -> Iterator[dict[str, int | str]]:
    """Time a CRM call; set ``result["status"]`` inside the block (an exception records its class)."""
    result: dict[str, int | str] = {"status": "ok"}
    started = time.perf_counter()
    try:
        yield result
    except BaseException as exc:
        if result["status"] == "ok":
            result["status"] = type(exc).__name__
        raise
    finally:
        observe_crm_call(connector, endpoint, result["status"], time.perf_counter() - started)


def rate_limit_wait(connector: str, seconds: float, reason: str = "shared_limit") -> None:
    """Record one wait for the shared rate limit (``reason``: shared_limit, retry_after, daily_quota)."""
    RATE_LIMIT_WAITS.labels(connector=connector, reason=reason).inc()
    RATE_LIMIT_WAIT_SECONDS.labels(connector=connector, reason=reason).inc(max(0.0, seconds))
