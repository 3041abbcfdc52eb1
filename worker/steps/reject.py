"""``leadroute reject``: hand a lead back by hand (ops, a rep without CRM access); see :mod:`.handback`."""

from __future__ import annotations

from typing import TYPE_CHECKING

from connectors.base import OwnerUpdate, RetriableError, WriteStatus
from worker.domain.leads import LeadRef
from worker.steps.handback import VIA, HandedBack, route_again
from worker.steps.route import WRITTEN_TTL, _lead_with_account, decide, owner_crm_id, reopened, track_open

if TYPE_CHECKING:  # the runtime is built by the Celery wiring, which imports the steps
    from worker.app.runtime import Runtime


def reject_by_hand(rt: Runtime, crm: str, lead_id: str, why: str, requested_by: str = "cli") -> tuple[str, str, str]:
    """``leadroute reject``: the lead's current owner hands it back; routed again at once and written.

    Returns (the rep who rejected it, the new owner, the reason). Raises LookupError for an unknown lead
    or one never routed, ValueError when its owner is a queue.
    """
    conn = rt.connector(crm)
    record = conn.fetch([lead_id]).get(lead_id)
    if record is None:
        raise LookupError(f"{crm} record {lead_id} not found")
    ref = LeadRef(crm, rt.object_name(crm), lead_id)
    current = rt.store.current_key(ref)
    recorded = rt.store.decision(current)
    if recorded is None:
        raise LookupError(f"{crm} record {lead_id} has no decision to reject")
    decision = recorded.decision
    owner = str(decision.get("owner", ""))
    if decision.get("owner_kind") != "rep":
        raise ValueError(f"{lead_id} is with {owner}, not a rep: nothing to reject")
    earlier = tuple(decision.get("excluded") or ()) if decision.get("via") == VIA else ()
    back = HandedBack(current, owner, why or "rejected by hand", (*earlier, owner), str(decision.get("target", "")))
    key, new = route_again(rt, crm, _lead_with_account(rt, crm, record), back, decide, requested_by=requested_by)
    update = OwnerUpdate(lead_id, owner_crm_id(rt.config, crm, new["owner"]), new["reason"], reopened(rt, crm, record))
    (result,) = conn.write_owners([update])
    if result.status is WriteStatus.RETRIABLE:
        raise RetriableError(result.message or "owner write failed; retry", crm=crm, code=result.code)
    if result.ok:
        rt.store.note_written(crm, [key], WRITTEN_TTL)
        track_open(rt, crm, lead_id, new["owner"])
    return owner, new["owner"], new["reason"]
