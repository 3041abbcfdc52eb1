"""Prometheus metrics for CRM traffic: what we call, what it costs, when we hold back.

Registered on the default registry, so the ``web`` process's ``/metrics`` exposes them for
the worker processes (with prometheus-client's multiprocess mode) without extra wiring.
"""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

__all__ = ["CALLS", "CALL_SECONDS", "DAILY_USAGE", "RATE_WAIT_SECONDS", "RECORDS_WRITTEN", "RETRIES", "SLOWED_DOWN"]

CALLS = Counter(
    "leadroute_crm_calls_total",
    "HTTP calls made to a CRM, by connector, endpoint and status (0 = no response).",
    ["crm", "endpoint", "status"],
)
CALL_SECONDS = Histogram(
    "leadroute_crm_call_seconds",
    "Latency of CRM calls as seen by the connector.",
    ["crm", "endpoint"],
    buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
)
RETRIES = Counter(
    "leadroute_crm_retries_total",
    "Calls retried after a transient failure, by reason (RATE_LIMIT, 503, UNABLE_TO_LOCK_ROW...).",
    ["crm", "endpoint", "reason"],
)
RATE_WAIT_SECONDS = Counter(
    "leadroute_crm_rate_limit_wait_seconds_total",
    "Time spent waiting for the shared rate-limit bucket.",
    ["crm"],
)
RECORDS_WRITTEN = Counter(
    "leadroute_crm_records_written_total",
    "Per-record outcomes of batch writes.",
    ["crm", "status"],
)
DAILY_USAGE = Gauge(
    "leadroute_crm_daily_usage_ratio",
    "Share of the CRM's daily API allocation used, from its own usage headers.",
    ["crm"],
)
SLOWED_DOWN = Gauge(
    "leadroute_crm_slowed_down",
    "1 while the connector paces itself because the daily allocation is nearly used up.",
    ["crm"],
)
