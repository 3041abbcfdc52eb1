"""Prometheus metrics for CRM traffic: what we call, what it costs, when we hold back.

Call counts/latency and rate-limit waits are the worker's shared series
(:mod:`worker.metrics`: ``leadroute_crm_calls_total``, ``leadroute_crm_call_seconds``,
``leadroute_rate_limit_wait*``); the connector-only series are defined here. All live in
the default registry, so they aggregate across processes with prometheus-client's
multiprocess mode like the rest.
"""

from __future__ import annotations

from prometheus_client import Counter, Gauge

from worker.observability.metrics import observe_crm_call, rate_limit_wait

__all__ = ["DAILY_USAGE", "RECORDS_WRITTEN", "RETRIES", "SLOWED_DOWN", "observe_crm_call", "rate_limit_wait"]

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
