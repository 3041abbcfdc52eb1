"""What follows a routing step: notifications, SLA timers, metrics. Kept apart so tasks stay thin."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import structlog

from connectors.base import CrmRecord
from worker import metrics, pipeline
from worker.notify import Recipient, SendReport, assigned, send_once
from worker.runtime import Runtime
from worker.store import DecisionKey

log = structlog.get_logger("leadroute.hooks")


def after_write(rt: Runtime, crm: str, record: CrmRecord, decision: dict[str, Any], handled: pipeline.Handled) -> None:
    """An owner was written: metrics, the SLA clock, and the rep's notification on its own queue."""
    latency = pipeline.latency_since(handled.first_seen)
    if latency is not None:
        metrics.observe_routing_latency(crm, latency)
    metrics.record_decision(decision["rule"], handled.outcome)
    log.info("owner_written", lead_id=record.id, crm=crm, owner=decision["owner"], rule=decision["rule"],
             latency_s=None if latency is None else round(latency, 3))
    deadline = start_sla(rt, crm, record, decision, handled.epoch)
    if decision.get("owner_kind") == "rep":
        enqueue_notification(crm, rt.object_name(crm), record.id, handled.epoch, record.lead, deadline)


def after_reroute(rt: Runtime, crm: str, lead_id: str, result: pipeline.Rerouted) -> None:
    """A manual re-route was written: tell the new owner."""
    log.info("rerouted", lead_id=lead_id, crm=crm, owner=result.owner, previous=result.previous_owner)
    if result.written and result.owner in rt.config.reps:
        enqueue_notification(crm, rt.object_name(crm), lead_id, result.epoch, None, None)


def start_sla(rt: Runtime, crm: str, record: CrmRecord, decision: dict[str, Any], epoch: int) -> datetime | None:
    """Start the lead's SLA clock if a tier applies; returns the acknowledgement deadline."""
    service = getattr(rt, "sla", None)
    if service is None:
        return None
    return service.start_for_decision(crm, record, decision, epoch)


def enqueue_notification(
    crm: str, obj: str, lead_id: str, epoch: int, lead: dict[str, Any] | None, deadline: datetime | None
) -> None:
    """Queue the 'new lead' message; the notify queue never holds up routing."""
    from worker.tasks import notify

    notify.delay(crm, obj, lead_id, epoch, lead=lead, sla_deadline=deadline.isoformat() if deadline else None)


def notify_assigned(
    rt: Runtime,
    key: DecisionKey,
    lead: dict[str, Any] | None,
    sla_deadline: datetime | None,
) -> SendReport | None:
    """Send the 'new lead' message for a recorded decision, once per channel."""
    decided = rt.store.decision(key)
    if decided is None:
        log.warning("notify_without_decision", lead_id=key.lead_id, crm=key.crm)
        return None
    decision = decided.decision
    rep = rt.config.reps.get(decision["owner"])
    if rep is None:
        return None
    notifier = rt.notifier
    message = assigned(
        decision,
        lead or decision.get("facts") or {},
        Recipient.from_rep(rep),
        decision_id=str(key),
        sla_deadline=sla_deadline,
        crm=key.crm,
        url=rt.config.model.notifications.record_url(key.crm, key.lead_id),
    )
    report = send_once(rt.store, str(key), notifier, message)
    for channel, result in report.results.items():
        metrics.record_notification(channel, "assigned", result.outcome.value)
    return report
