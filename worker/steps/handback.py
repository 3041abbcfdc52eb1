"""Hand-backs: a rep rejects a lead, and leadroute routes it again, never to them.

A rep rejects a lead in the CRM by putting it back in the intake (the owner set back to the
intake queue, or anything else that makes the connector's intake condition hold again). The
poll picks it up as it picks up any lead waiting for an owner; the drain sees that its current
routing epoch was written to someone else and treats it as handed back: it opens a new epoch,
routes the lead by the rules with every rep who rejected it excluded (``skipped`` says
``rejected``), and records the rejection: a ``rejected`` log event and, in
the new decision (and so in the ledger), ``via: rejection``, ``why`` (the reason), ``previous_owner``
and ``excluded``. ``leadroute reject`` does the same by hand (``worker.steps.reject``).

``rejections.credit_back`` (config) decides whether the rejected lead still counts against the
rep: with it, the rep's turn is given back (in a ``round_robin`` or ``weighted_round_robin`` pool
they take the next lead they can, outside the rotation; ``least_loaded`` needs nothing, the load is
given back anyway) and the lead's counts against their caps per period are given back.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import structlog

from connectors.base import CrmRecord
from worker.domain.leads import DecisionKey
from worker.routing.engine import Decision, Router

if TYPE_CHECKING:  # the runtime is built by the Celery wiring, which imports the steps
    from worker.app.runtime import Runtime

log = structlog.get_logger("leadroute.reject")

VIA = "rejection"


@dataclass(frozen=True, slots=True)
class HandedBack:
    """A lead its owner gave back: who had it, why, and everyone who rejected it so far."""

    key: DecisionKey  # the epoch that was rejected
    owner: str
    why: str
    rejected_by: tuple[str, ...]
    target: str  # the rejected decision's target ("pool inbound", "rep ava", ...)


def handed_back(rt: Runtime, crm: str, pairs: Sequence[tuple[CrmRecord, DecisionKey]]) -> dict[str, HandedBack]:
    """Of records whose current epoch was written, those back in the intake from a rep: by record id.

    ``pairs`` are (record, current key) of written leads; one Redis round trip for all of them.
    A lead that went to a queue, or that the CRM shows with the owner we wrote, was not handed back.
    """
    waiting = [(r, k) for r, k in pairs if r.needs_routing]
    if not waiting:
        return {}
    found: dict[str, HandedBack] = {}
    for (record, key), recorded in zip(waiting, rt.store.decisions([k for _, k in waiting]), strict=True):
        if recorded is None:
            continue
        decision = recorded.decision
        owner = str(decision.get("owner", ""))
        rep = rt.config.reps.get(owner)
        if decision.get("owner_kind") != "rep" or rep is None or record.owner_id == rep.crm_ids.get(crm):
            continue
        earlier = tuple(decision.get("excluded") or ()) if decision.get("via") == VIA else ()
        why = f"handed back to the intake (owner now {record.owner_id or 'none'})"
        found[record.id] = HandedBack(key, owner, why, (*earlier, owner), str(decision.get("target", "")))
    return found


Decide = Callable[..., dict[str, Any]]  # worker.steps.route.decide, handed in (route imports this module)


def route_again(
    rt: Runtime, crm: str, lead: Mapping[str, Any], back: HandedBack, decide: Decide,
    overrides: Mapping[str, str] | None = None, *, requested_by: str | None = None, key: DecisionKey | None = None,
) -> tuple[DecisionKey, dict[str, Any]]:
    """Route a handed-back lead in a new epoch, away from everyone who rejected it; returns the new key
    and its decision (``decide`` records it once, see ``worker.steps.route.decide``). Repeating it (a
    retried task) replays the same decision and gives nothing back twice."""
    key = key or rt.store.new_epoch(back.key.lead)
    excluded = frozenset(back.rejected_by)
    overrides = rt.store.unavailable() if overrides is None else overrides
    at = datetime.now(UTC)

    def route(router: Router) -> Decision:
        decision = router.route(lead, at=at, overrides=overrides, exclude=excluded)
        decision.reason = f"rejected by {back.owner} ({back.why}): {decision.reason}"
        for rep in excluded:
            if decision.skipped.get(rep) == "earlier_owner":
                decision.skipped[rep] = "rejected"
        return decision

    extra = {"via": VIA, "why": back.why, "previous_owner": back.owner, "excluded": list(back.rejected_by)}
    if requested_by:
        extra["requested_by"] = requested_by
    decision = decide(rt, key, lead, route, extra=extra)
    credit = rt.config.model.rejections.credit_back
    pool = back.target.removeprefix("pool ") if back.target.startswith("pool ") else None
    if rt.store.hand_back(back.key, back.owner, pool if pool in rt.config.pools else None, credit_back=credit):
        rt.store.log_event("rejected", back.key.lead, {"by": back.owner, "why": back.why, "to": decision["owner"],
                                                       "credit_back": credit}, key.epoch)
        log.info("lead_rejected", crm=crm, lead_id=back.key.lead_id, by=back.owner, to=decision["owner"])
    return key, decision
