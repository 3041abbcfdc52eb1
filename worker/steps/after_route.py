"""What follows a routing step: notifications, SLA timers, metrics, the ledger's move. Kept apart so tasks stay thin.

Follow-up work goes out through ``rt.enqueue`` (:class:`worker.steps.enqueue.Enqueuer`).
"""

from __future__ import annotations

import time
from collections import Counter
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import structlog

from connectors.base import CrmRecord
from worker.domain.leads import DecisionKey, LeadRef
from worker.notify.channels import SendReport
from worker.notify.ledger import send_once
from worker.notify.messages import Recipient, assigned, escalation, parked, reassigned_from, reminder
from worker.observability import metrics
from worker.steps import route
from worker.steps.ledger import notification_events

if TYPE_CHECKING:  # the runtime is built by the Celery wiring, which imports the steps
    from worker.app.runtime import Runtime

log = structlog.get_logger("leadroute.hooks")

LEDGER_KICK_EVERY = 1.0  # seconds: routed batches ask for at most one ledger move per second, fleet-wide


def after_batch(rt: Runtime, crm: str, written: list[tuple[CrmRecord, dict[str, Any], route.Handled]]) -> None:
    """A batch of owners was written: metrics, SLA clocks in one transaction, one notify task."""
    obj = rt.object_name(crm)
    decided: Counter[tuple[str, str]] = Counter()
    for record, decision, handled in written:
        latency = route.latency_since(handled.first_seen)
        if latency is not None:
            metrics.observe_routing_latency(crm, latency)
        decided[(decision["rule"], handled.outcome)] += 1
        if handled.outcome == "fallback_after_refusal":
            alert_refusal(rt, crm, obj, record.id, handled.epoch, decision)
    for (rule, outcome), count in decided.items():
        metrics.record_decision(rule, outcome, count)
    log.info("owners_written", crm=crm, count=len(written))
    deadlines = start_sla_many(rt, crm, written)
    items = [
        {"lead_id": record.id, "epoch": handled.epoch, "lead": record.lead,
         "sla_deadline": deadlines[record.id].isoformat() if deadlines.get(record.id) else None}
        for record, decision, handled in written
        if decision.get("owner_kind") == "rep"
    ]
    if items:
        rt.enqueue.notify_assigned_batch(crm, obj, items)
    kick_ledger(rt)


def kick_ledger(rt: Runtime) -> None:
    """Ask for the batch's decisions to be moved to the ledger now rather than at beat's next flush
    (once a second at most, however many drains finish batches)."""
    if rt.store.first_seen("kick", f"ledger-flush-{int(time.time() // LEDGER_KICK_EVERY)}", 10 * LEDGER_KICK_EVERY):
        rt.enqueue.ledger_flush()


def start_sla_many(
    rt: Runtime, crm: str, written: list[tuple[CrmRecord, dict[str, Any], route.Handled]]
) -> dict[str, datetime | None]:
    """Start the SLA clocks of a batch of newly owned leads; returns each lead's deadline."""
    service = rt.sla
    reps = [(record, decision, handled) for record, decision, handled in written if decision.get("owner_kind") == "rep"]
    if service is None or not reps:
        return {}
    obj = rt.object_name(crm)
    clocks = service.start_many(
        [(LeadRef(crm, obj, record.id), decision["owner"], handled.lead or record.lead, None, handled.epoch)
         for record, decision, handled in reps]
    )
    return {
        record.id: (datetime.fromtimestamp(clock.deadline, UTC) if clock is not None else None)
        for (record, _, _), clock in zip(reps, clocks, strict=True)
    }


def after_reroute(rt: Runtime, crm: str, lead_id: str, result: route.Rerouted) -> None:
    """A manual re-route was written: tell the new owner."""
    log.info("rerouted", lead_id=lead_id, crm=crm, owner=result.owner, previous=result.previous_owner)
    if result.written and result.owner in rt.config.reps:
        rt.enqueue.notify_assigned(crm, rt.object_name(crm), lead_id, result.epoch, None, None)


def alert_refusal(rt: Runtime, crm: str, obj: str, lead_id: str, epoch: int, decision: dict[str, Any]) -> None:
    """The CRM refused the chosen owner for good: the lead is in the fallback, and someone must look."""
    rt.enqueue.sla_notice({
        "kind": "parked", "to": None, "role": "alert", "lead": [crm, obj, lead_id], "tier": "",
        "reason": decision["reason"], "notice_id": f"refused:{crm}:{obj}:{lead_id}#{epoch}", "step": None,
        "deadline": None, "owner": decision.get("replaced_owner"), "epoch": epoch, "new_owner": decision["owner"],
        "decision": decision, "fields": {}, "reassignments": 0,
    })


def send_sla_notice(rt: Runtime, data: dict[str, Any]) -> SendReport | None:
    """Turn an SLA notice into its message (reminder, escalation, reassignment, park) and send it once."""
    lead_ref = LeadRef(*data["lead"])
    notifications = rt.config.model.notifications
    if data["to"] is None:
        recipient = notifications.alert_recipient()
    elif data["to"] in rt.config.reps:
        recipient = Recipient.from_rep(rt.config.reps[data["to"]])
    else:
        return None
    decided = rt.store.decision(lead_ref.at(data["epoch"]))
    decision = data.get("decision") or (decided.decision if decided else {"reason": data["reason"]})
    lead = data.get("fields") or decision.get("facts") or {}
    deadline = datetime.fromisoformat(data["deadline"]) if data.get("deadline") else datetime.now(UTC)
    common = {"decision_id": data["notice_id"], "crm": lead_ref.crm,
              "url": notifications.record_url(lead_ref.crm, lead_ref.lead_id)}

    def rep(rep_id: str | None) -> Recipient:
        found = rt.config.reps.get(rep_id or "")
        return Recipient.from_rep(found) if found else Recipient(id=rep_id or "?", name=rep_id or "?", email="", slack_id="")

    kind = data["kind"]
    if kind == "reminder":
        message = reminder(decision, lead, recipient, sla_deadline=deadline, **common)
    elif kind == "escalation":
        message = escalation(decision, lead, recipient, owner=rep(data["owner"]), sla_deadline=deadline, **common)
    elif kind == "assigned":
        message = assigned(decision, lead, recipient, sla_deadline=deadline, **common)
    elif kind == "reassigned_from":
        message = reassigned_from(decision, lead, recipient, new_owner=rep(data["new_owner"]), why=data["reason"], **common)
    elif kind == "parked":
        queue = str(decision.get("owner", "")).removeprefix("queue:") or "fallback"
        message = parked(decision, lead, recipient, queue=queue, reassignments=data["reassignments"], **common)
    else:
        log.error("unknown_sla_notice", kind=kind)
        return None
    report = send_once(rt.store, data["notice_id"], rt.notifier, message)
    for channel, result in report.results.items():
        metrics.record_notification(channel, kind, result.outcome.value)
    rt.store.outbox_append(notification_events(lead_ref, data["epoch"], data["notice_id"], kind, data["to"], report))
    return report


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
    rt.store.outbox_append(notification_events(key.lead, key.epoch, str(key), "assigned", rep.id, report))
    return report
