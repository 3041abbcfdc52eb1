"""Prometheus metrics for the worker, beat and web processes, correct across processes.

Celery's prefork workers and the web process are separate processes, each with its own
counters; a scrape of ``/metrics`` on the web process must still report the fleet's totals.
prometheus-client's *multiprocess mode* does that: set ``PROMETHEUS_MULTIPROC_DIR`` to an
empty directory shared by every process of one host **before any of them start** (the value
class is chosen when ``prometheus_client`` is first imported), and each process writes its
samples to memory-mapped files there; :func:`render` then aggregates all of them. Clear the
directory when the fleet restarts (:func:`prepare_multiproc_dir`), and tell the library when
a worker child exits (:func:`mark_process_dead`, e.g. from Celery's
``worker_process_shutdown`` signal) so its live gauges are dropped. Without the variable,
each process serves its own registry (fine for one process, or the demo).

Metric names, labels and meaning are listed in ``docs/operations.md``. Label values are
bounded sets (connector names, endpoint templates, rule names, channels, tiers), never lead
ids, so series counts stay small.
"""

from __future__ import annotations

import os
from pathlib import Path

from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client import multiprocess as _multiprocess

# The CRM series (calls, call latency, rate-limit waits) are the connectors' own: defined and
# recorded in connectors.metrics, named here too so every process serves the same objects.
from connectors.metrics import (
    CRM_CALL_SECONDS,
    CRM_CALLS,
    RATE_LIMIT_WAIT_SECONDS,
    RATE_LIMIT_WAITS,
    crm_call,
    observe_crm_call,
    rate_limit_wait,
)

__all__ = [
    "CONTENT_TYPE",
    "CRM_CALLS",
    "CRM_CALL_SECONDS",
    "DECISIONS",
    "LEDGER_OUTBOX_AGE",
    "LEDGER_OUTBOX_DEPTH",
    "MULTIPROC_ENV",
    "NOTIFICATIONS",
    "PENDING_DEPTH",
    "RATE_LIMIT_WAITS",
    "RATE_LIMIT_WAIT_SECONDS",
    "ROUTING_LATENCY",
    "SLA_ACTIONS",
    "WEBHOOK_EVENTS",
    "WEBHOOK_REQUESTS",
    "crm_call",
    "mark_process_dead",
    "multiprocess_enabled",
    "observe_crm_call",
    "observe_routing_latency",
    "prepare_multiproc_dir",
    "rate_limit_wait",
    "record_decision",
    "record_notification",
    "record_sla_action",
    "render",
    "set_ledger_outbox",
    "set_pending_depth",
    "set_pipeline_read",
]

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"
CONTENT_TYPE = CONTENT_TYPE_LATEST

# Ingest -> owner written spans the CRM's own latency (webhook delivery, API round trips):
# buckets from 50 ms to 5 min, dense around the one-second target.
_LATENCY_BUCKETS = (0.05, 0.1, 0.25, 0.5, 0.75, 1.0, 1.5, 2.0, 3.0, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0)

ROUTING_LATENCY = Histogram(
    "leadroute_routing_latency_seconds",
    "Seconds from a lead's ingest (webhook received or poll fetched) to its owner written in the CRM.",
    ["crm"],
    buckets=_LATENCY_BUCKETS,
)
DECISIONS = Counter(
    "leadroute_decisions_total",
    "Routing decisions by matched rule and outcome (rep, queue, account_owner, fallback, skipped...).",
    ["rule", "outcome"],
)
PENDING_DEPTH = Gauge(
    "leadroute_pending_depth",
    "Leads waiting in the pending set to be routed, as last measured by any process.",
    ["crm"],
    multiprocess_mode="mostrecent",
)
LEDGER_OUTBOX_DEPTH = Gauge(
    "leadroute_ledger_outbox_depth",
    "Ledger events waiting in the Redis outbox to be written to SQL, as last measured by any process.",
    multiprocess_mode="mostrecent",
)
LEDGER_OUTBOX_AGE = Gauge(
    "leadroute_ledger_outbox_oldest_seconds",
    "Seconds the oldest event in the ledger outbox has waited (0 when empty): grows while SQL is down.",
    multiprocess_mode="mostrecent",
)
PIPELINE_READ = Gauge(
    "leadroute_pipeline_read_timestamp_seconds",
    "When each CRM's open opportunities per rep were last counted (least_loaded pools with load weights); "
    "time() minus it is the age of the counts routing uses.",
    ["crm"],
    multiprocess_mode="mostrecent",
)
PIPELINE_FAILURES = Counter(
    "leadroute_pipeline_refresh_failures_total",
    "Counts of open opportunities that could not be read from a CRM (the earlier counts stay and age).",
    ["crm"],
)
NOTIFICATIONS = Counter(
    "leadroute_notifications_total",
    "Notifications by channel, kind and status (sent, skipped, duplicate, retriable_error, fatal_error).",
    ["channel", "kind", "status"],
)
SLA_ACTIONS = Counter(
    "leadroute_sla_actions_total",
    "SLA breach-ladder actions taken, by tier and action (remind, escalate, reassign, park).",
    ["tier", "action"],
)
WEBHOOK_REQUESTS = Counter(
    "leadroute_webhook_requests_total",
    "Webhook requests received, by source (hubspot, salesforce) and outcome (accepted, or the rejection reason).",
    ["source", "outcome"],
)
WEBHOOK_EVENTS = Counter(
    "leadroute_webhook_events_total",
    "Events inside accepted webhook requests, by source and result (enqueued, duplicate, ignored).",
    ["source", "result"],
)


# ------------------------------------------------------------------------------- recording helpers


def observe_routing_latency(crm: str, seconds: float) -> None:
    """Record one lead's ingest -> owner-written latency (negative clock skew counts as 0)."""
    ROUTING_LATENCY.labels(crm=crm).observe(max(0.0, seconds))


def record_decision(rule: str, outcome: str, count: int = 1) -> None:
    """Count decisions for a rule (``outcome``: the decision's owner kind, or fallback/skipped)."""
    DECISIONS.labels(rule=rule or "-", outcome=outcome).inc(count)


def set_pending_depth(crm: str, depth: int) -> None:
    """Publish the pending-set depth measured from Redis."""
    PENDING_DEPTH.labels(crm=crm).set(depth)


def set_ledger_outbox(depth: int, oldest_age: float) -> None:
    """Publish the ledger outbox's depth and the age of its oldest event, measured from Redis."""
    LEDGER_OUTBOX_DEPTH.set(depth)
    LEDGER_OUTBOX_AGE.set(max(0.0, oldest_age))


def set_pipeline_read(crm: str, read_at: float | None) -> None:
    """Publish when ``crm``'s open opportunities were counted (epoch seconds), or count a failed read (None)."""
    if read_at is None:
        PIPELINE_FAILURES.labels(crm=crm).inc()
    else:
        PIPELINE_READ.labels(crm=crm).set(read_at)


def record_notification(channel: str, kind: str, status: str) -> None:
    """Count one notification attempt's outcome on one channel."""
    NOTIFICATIONS.labels(channel=channel, kind=kind, status=status).inc()


def record_sla_action(tier: str, action: str) -> None:
    """Count one SLA ladder step taken."""
    SLA_ACTIONS.labels(tier=tier, action=action).inc()


# ------------------------------------------------------------------------------- exposition


def multiprocess_enabled() -> bool:
    """Whether this process writes to (and scrapes from) ``PROMETHEUS_MULTIPROC_DIR``."""
    return bool(os.environ.get(MULTIPROC_ENV))


def render() -> tuple[bytes, str]:
    """The Prometheus text exposition and its content type: all processes' samples in multiprocess mode."""
    if multiprocess_enabled():
        registry = CollectorRegistry()
        _multiprocess.MultiProcessCollector(registry)
        return generate_latest(registry), CONTENT_TYPE
    return generate_latest(REGISTRY), CONTENT_TYPE


def prepare_multiproc_dir(path: str | os.PathLike[str] | None = None) -> Path | None:
    """Create the multiprocess directory and delete stale ``*.db`` files from a previous run.

    Call it once in the parent (``leadroute demo``, a container entrypoint) before any
    process that records metrics starts; never while workers are running.
    """
    target = path if path is not None else os.environ.get(MULTIPROC_ENV)
    if not target:
        return None
    directory = Path(target)
    directory.mkdir(parents=True, exist_ok=True)
    for stale in directory.glob("*.db"):
        stale.unlink(missing_ok=True)
    return directory


def mark_process_dead(pid: int | None = None) -> None:
    """Tell multiprocess mode a process exited so its live gauges vanish (no-op otherwise)."""
    if multiprocess_enabled():
        _multiprocess.mark_process_dead(pid if pid is not None else os.getpid())
