"""Hand-offs of owned leads (issue 17): hand-off triggers, and rejections by CRM status.

Beat polls each CRM for owned records modified since a watermark of their own
(:meth:`connectors.base.Connector.owned_changes`, read in full, in pages). Of those, the records a
configured rep owns are looked at (not one the drain is routing right now):

* **Rejection by status**, of a lead leadroute gave the rep who holds it. The connector's
  ``rejection`` names a field and the values by which a rep hands a lead back (``Status: Rejected -
  Not my territory``). The lead goes the way of every rejection (:mod:`.handback`): a new epoch,
  routed by the rules away from everyone who rejected it, ``via: rejection`` with the status value as
  its reason; the new owner is written with the field set back to ``reopen``, so the status is not
  read again as the new owner's rejection.
* **Triggers.** ``triggers:`` in the config: when a trigger's ``when`` (the rules' condition
  language, over the lead as the CRM holds it now) goes from false to true, the lead is routed again
  in a new epoch by the trigger's rules (``via: trigger``, ``trigger: NAME``; the reason starts
  ``trigger NAME``), once per crossing: a lead that drops below and crosses again fires again only
  with ``refire: true``. A lead counts from how it was when routed, so one that arrived qualified
  does not fire (the route step notes each trigger's truth as it decides a new lead; a lead routed
  before the trigger existed, or by someone else, starts from how the poll first sees it). When none
  of the trigger's rules matches the lead, it stays where it is (a ``trigger_unmatched`` event says
  so). The old owner's load drops only if the lead was open in it (unacknowledged); when the rules pick the
  owner again, the lead still counts once in their load and they are not notified again.

Exactly once: the crossing is decided, and the hand-off put in progress, in one store script; a
rejection is put in progress only if the lead has none. A hand-off in progress keeps the epoch it
opened until its owner is written, so the next poll finishes what a dead worker left, in the same
epoch (decisions are idempotent per epoch). One poll per CRM at a time (a lock).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import structlog

from connectors.base import CrmRecord, OwnerUpdate, RetriableError, Watermark, WriteStatus
from connectors.settings import RejectionSettings
from worker.domain.leads import DecisionKey, LeadRef
from worker.domain.normalize import normalize_lead
from worker.routing.engine import Decision, Router
from worker.routing.triggers import takes, truths
from worker.steps import liveness
from worker.steps.after_route import after_reroute
from worker.steps.handback import VIA as REJECTION
from worker.steps.handback import HandedBack, route_again
from worker.steps.route import (
    WRITTEN_TTL,
    OwnerNotMapped,
    Rerouted,
    _lead_with_account,
    _to_fallback,
    decide,
    owner_crm_id,
    track_open,
)
from worker.store.handoffs import Crossing

if TYPE_CHECKING:  # the runtime is built by the Celery wiring, which imports the steps
    from worker.app.runtime import Runtime

log = structlog.get_logger("leadroute.handoffs")

TRIGGER = "trigger"
LOCK_TTL = 300
RENEW_EVERY = 100  # hand-offs routed between extensions of the poll's lock


@dataclass
class HandoffReport:
    """What one owned poll did: leads looked at, and each hand-off written as (lead id, kind, name, new owner)."""

    crm: str
    seen: int = 0
    handed_off: list[tuple[str, str, str, str]] = field(default_factory=list)
    unmatched: list[str] = field(default_factory=list)
    retry: list[str] = field(default_factory=list)


def watched(rt: Runtime, crm: str) -> bool:
    """Whether owned records are polled at all: triggers configured, or a rejection status for this CRM."""
    return bool(rt.config.triggers) or _rejection(rt, crm) is not None


def _rejection(rt: Runtime, crm: str) -> RejectionSettings | None:
    settings = rt.config.model.connectors.enabled().get(crm)
    return settings.rejection if settings is not None else None


def owned_lock(crm: str) -> str:
    """The lock that keeps two polls of one CRM's owned records apart."""
    return f"owned:{crm}"


def poll_owned(rt: Runtime, crm: str) -> HandoffReport:
    """Finish hand-offs left in progress, then read owned records changed since the watermark and hand off
    those a trigger or a rejection status says to. Returns what it did; raises RetriableError when an owner
    could not be written yet (its hand-off stays in progress for the next poll)."""
    report = HandoffReport(crm)
    if not watched(rt, crm):
        return report
    token = rt.store.acquire_lock(owned_lock(crm), ttl=LOCK_TTL, token=liveness.token())  # freed at once if we die
    if token is None:
        log.info("owned_poll_skipped_busy", crm=crm)
        return report
    held = token

    def renew() -> None:  # a long backlog or page keeps the lock while it is worked through
        rt.store.extend_lock(owned_lock(crm), held, LOCK_TTL)

    try:
        _finish(rt, crm, rt.store.handoffs(crm), report, renew)
        obj = f"{rt.object_name(crm)}:owned"
        # the first owned poll starts now (less the connector's overlap): what was owned before is not read back
        since = Watermark.decode(rt.store.watermark(crm, obj)) or Watermark(datetime.now(UTC))
        for page in rt.connector(crm).owned_changes(since):
            report.seen += len(page.records)
            _finish(rt, crm, _started(rt, crm, page.records), report, renew)
            rt.store.set_watermark(crm, obj, page.watermark.encode())
            renew()
    finally:
        rt.store.release_lock(owned_lock(crm), token)
    if report.retry:
        raise RetriableError(f"{len(report.retry)} hand-off(s) could not be written yet; retrying", crm=crm)
    return report


def _started(rt: Runtime, crm: str, records: list[CrmRecord]) -> dict[str, dict[str, Any]]:
    """The hand-offs these records start (now in progress), by lead id; one store round trip for the crossings."""
    obj = rt.object_name(crm)
    refs = [LeadRef(crm, obj, r.id) for r in records]
    keys = [ref.at(epoch) for ref, epoch in zip(refs, rt.store.epochs(refs), strict=True)]
    decided = rt.store.decisions(keys)
    written = rt.store.written(keys)
    rejection = _rejection(rt, crm)
    started: dict[str, dict[str, Any]] = {}
    crossings: list[Crossing] = []
    for record, ref, key, found, done in zip(records, refs, keys, decided, written, strict=True):
        if found is not None and not done:
            continue  # the drain is routing it right now
        rep = rt.config.crm_owner_index.get(record.owner_id or "")
        reason = rejection.reason(record.fields) if rejection is not None else None
        if rep is None:  # a queue or someone leadroute never routes to
            if reason is not None:
                rt.store.log_event("skipped", ref, {"why": f"rejection by status {reason} ignored: its CRM owner "
                                                           f"{record.owner_id or '(none)'} is no configured rep"})
            continue
        base = {"key": str(key.epoch), "owner": rep}
        # the rep leadroute gave it to; with no decision left in the store (expired after its TTL, or lost with
        # Redis) the CRM owner, a configured rep, is taken to be that rep
        ours = found is None or (found.decision.get("owner_kind") == "rep" and found.decision.get("owner") == rep)
        if reason is not None and ours:
            decision = found.decision if found is not None else {}
            handoff = {**base, "kind": REJECTION, "why": f"status {reason}",
                       "excluded": list(decision.get("excluded") or ()) if decision.get("via") == REJECTION else [],
                       "target": str(decision.get("target", ""))}
            if rt.store.begin_handoff(crm, record.id, handoff):
                started[record.id] = handoff
            continue
        if reason is not None and found is not None:
            rt.store.log_event("skipped", ref, {"why": f"rejection by status {reason} ignored: leadroute gave the "
                                                       f"lead to {found.decision.get('owner')}, the CRM owner is {rep}"},
                               key.epoch)
        for name, now in truths(rt.config, normalize_lead(record.lead)).items():
            crossings.append(Crossing(ref, name, now, now, rt.config.triggers[name].refire,
                                      {**base, "kind": TRIGGER, "trigger": name}))
    for crossing, fired in zip(crossings, rt.store.cross(crm, crossings), strict=True):
        if fired:
            started[crossing.lead.lead_id] = crossing.handoff
    return started


Work = list[tuple[str, DecisionKey, dict[str, Any], dict[str, Any]]]  # (lead id, key, decision, hand-off)


def _finish(rt: Runtime, crm: str, handoffs: dict[str, dict[str, Any]], report: HandoffReport,
            renew: Callable[[], None] = lambda: None) -> None:
    """Route each hand-off in its own epoch (opened once, kept with it) and write the new owners in one batch;
    ``renew`` extends the poll's lock after the CRM read, every ``RENEW_EVERY`` hand-offs and before the write."""
    if not handoffs:
        return
    conn = rt.connector(crm)
    obj = rt.object_name(crm)
    records = conn.fetch(list(handoffs))
    renew()
    overrides = rt.store.unavailable()
    work: Work = []
    ended: list[str] = []
    for n, (lead_id, handoff) in enumerate(handoffs.items(), start=1):
        if n % RENEW_EVERY == 0:
            renew()
        record = records.get(lead_id)
        ref = LeadRef(crm, obj, lead_id)
        if record is None:
            rt.store.log_event("skipped", ref, {"why": f"{handoff['kind']} hand-off: record deleted or not found"})
            ended.append(lead_id)
            continue
        lead = normalize_lead(_lead_with_account(rt, crm, record))
        trigger = rt.config.triggers.get(str(handoff.get("trigger"))) if handoff["kind"] == TRIGGER else None
        if handoff["kind"] == TRIGGER and (trigger is None or not takes(trigger.config, lead)):
            why = "no rule of the trigger matches" if trigger is not None else "trigger no longer configured"
            rt.store.log_event("trigger_unmatched", ref, {"trigger": handoff.get("trigger"), "why": why,
                                                          "owner": handoff["owner"]})
            report.unmatched.append(lead_id)
            ended.append(lead_id)
            continue
        if "epoch" not in handoff:  # opened and kept with the hand-off in one script: one epoch, however many try
            epoch = rt.store.open_handoff_epoch(crm, ref, handoff)
            if epoch is None:
                continue  # another worker finished it meanwhile
            handoff["epoch"] = epoch
        key = ref.at(int(handoff["epoch"]))
        previous = ref.at(int(handoff["key"]))
        if trigger is not None:
            decision = _route_by_trigger(rt, key, lead, trigger, handoff, overrides)
        else:
            back = HandedBack(previous, handoff["owner"], handoff["why"], (*handoff["excluded"], handoff["owner"]),
                              handoff["target"])
            _, decision = route_again(rt, crm, lead, back, decide, overrides, key=key)
        work.append((lead_id, key, decision, handoff))
    rt.store.end_handoff(crm, ended)
    if not work:
        return
    renew()
    _write(rt, crm, work, report)


def _write(rt: Runtime, crm: str, work: Work, report: HandoffReport, *, fallback: bool = False) -> None:
    """Write the new owners in one batch (a rejection's status reopened with them) and end the hand-offs written.

    A retriable failure leaves the hand-off in progress for the next poll; an owner the CRM refuses for good
    (or a rep without an id in it) is replaced by the fallback, as the drain does, and written in turn.
    """
    rejection = _rejection(rt, crm)
    updates = []
    for i, (lead_id, key, decision, handoff) in enumerate(work):
        try:
            owner_id = owner_crm_id(rt.config, crm, decision["owner"])
        except OwnerNotMapped as exc:
            decision = _to_fallback(rt, crm, key, decision, f"config: {exc}")
            work[i] = (lead_id, key, decision, handoff)
            owner_id = owner_crm_id(rt.config, crm, decision["owner"])
        extra = {rejection.field: rejection.reopen} if handoff["kind"] == REJECTION and rejection is not None else {}
        updates.append(OwnerUpdate(lead_id, owner_id, decision["reason"], extra))
    done: list[str] = []
    refused: Work = []
    for (lead_id, key, decision, handoff), result in zip(work, rt.connector(crm).write_owners(updates), strict=True):
        if result.status is WriteStatus.RETRIABLE:
            report.retry.append(lead_id)
        elif result.ok:
            rt.store.note_written(crm, [key], WRITTEN_TTL)
            track_open(rt, crm, lead_id, decision["owner"])
            name = str(handoff.get("trigger") or handoff.get("why"))
            report.handed_off.append((lead_id, handoff["kind"], name, decision["owner"]))
            if decision["owner"] != handoff["owner"]:  # the rep who holds it already knows it
                after_reroute(rt, crm, lead_id, Rerouted(lead_id, key.epoch, handoff["owner"], decision["owner"],
                                                         decision["reason"], True))
            done.append(lead_id)
        elif not fallback:
            why = f"{result.code or 'error'}: {result.message or ''}".strip()
            refused.append((lead_id, key, _to_fallback(rt, crm, key, decision, why), handoff))
        else:
            rt.store.log_event("refused", key.lead, {"code": result.code, "message": result.message}, key.epoch)
            log.error("handoff_write_refused", crm=crm, lead_id=lead_id, code=result.code, message=result.message)
            done.append(lead_id)
    rt.store.end_handoff(crm, done)
    if refused:
        _write(rt, crm, refused, report, fallback=True)


def _route_by_trigger(
    rt: Runtime, key: DecisionKey, lead: Any, trigger: Any, handoff: dict[str, Any], overrides: Any
) -> dict[str, Any]:
    """Decide a fired trigger's lead by the trigger's rules, once per epoch; the load leaves the old owner once."""
    previous = str(handoff["owner"])
    first = rt.store.decision(key) is None
    condition = ", ".join(trigger.condition.fields)

    def route(router: Router) -> Decision:
        decision = Router(trigger.config, router.state, router.rates, router.pipeline).route(lead, overrides=overrides)
        decision.reason = f"trigger {trigger.name} ({condition}) from {previous}: {decision.reason}"
        return decision

    extra = {"via": TRIGGER, "trigger": trigger.name, "why": f"trigger {trigger.name}", "previous_owner": previous}
    decision = decide(rt, key, lead, route, extra=extra)
    if first and rt.store.holder(key.crm, key.lead_id) == previous:
        # an open, unacknowledged lead of theirs leaves their load; when the rules pick them again the route
        # just counted it anew, so the lead still counts once
        rt.store.adjust_load(previous, -1)
    if first:
        rt.store.log_event("handoff", key.lead, {"trigger": trigger.name, "from": previous, "to": decision["owner"]},
                           key.epoch)
        log.info("lead_handed_off", crm=key.crm, lead_id=key.lead_id, trigger=trigger.name, by=previous,
                 to=decision["owner"])
    return decision
