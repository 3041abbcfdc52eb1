"""Hand-offs of owned leads (``worker.steps.handoffs``): trigger crossings and hand-offs in progress.

A trigger fires once per crossing of its condition from false to true, however many workers see the
record at once: each lead's last-seen truth per trigger, and how often it fired, live in one hash,
updated by one script (``cross.lua``) that also puts the fired hand-off in the per-CRM hash of
hand-offs in progress. A hand-off (a trigger's, or a rejection by CRM status) stays there, with the
routing epoch it opened, until its owner is written, so a worker that dies half-way leaves it for the
next poll to finish in the same epoch: never lost, never done twice.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from worker.domain.leads import LeadRef
from worker.store.base import DAY, StoreBase, dumps

CROSSING_TTL = 400 * DAY  # a lead untouched for longer forgets its crossings (and would count as never seen)


@dataclass(frozen=True, slots=True)
class Crossing:
    """One trigger's truth for one lead as the poll sees it now."""

    lead: LeadRef
    trigger: str
    now: bool
    initial: bool  # the truth assumed if the lead's baseline is unknown (routed before the trigger existed)
    refire: bool
    handoff: dict[str, Any]  # what to keep in progress if it fires


class HandoffStore(StoreBase):
    """Crossing state per lead and trigger, and the hand-offs in progress per CRM."""

    LUA = ("cross", "open_handoff")

    def cross(self, crm: str, items: Sequence[Crossing]) -> list[bool]:
        """Note each item's truth; True for those that crossed and fired (now in progress), in one script call.

        Items of one lead are decided in order: once one fires (or while the lead has a hand-off in progress) the
        lead's triggers leave their stored truth as it was, so their crossings are not used up but fire later.
        """
        if not items:
            return []
        keys = [self.keys.handoffs(crm), *(self.keys.crossings(c.lead) for c in items)]
        args: list[object] = [int(CROSSING_TTL)]
        for c in items:
            args += [c.lead.lead_id, c.trigger, int(c.now), int(c.initial), int(c.refire), dumps(c.handoff)]
        return [bool(x) for x in self._lua["cross"](keys=keys, args=args)]

    def seed_crossings(self, items: Sequence[tuple[LeadRef, str, bool]]) -> None:
        """Each (lead, trigger)'s truth when the lead was routed, unless already known: the baseline its first
        crossing is measured from (a lead that arrived qualified does not fire). One round trip."""
        if not items:
            return
        pipe = self.client.pipeline(transaction=False)
        for lead, trigger, now in items:
            key = self.keys.crossings(lead)
            pipe.hsetnx(key, trigger, int(now))
            pipe.expire(key, int(CROSSING_TTL))
        pipe.execute()

    def begin_handoff(self, crm: str, lead_id: str, handoff: dict[str, Any]) -> bool:
        """Put a hand-off in progress unless the lead has one already; True if this call did."""
        return bool(self.client.hsetnx(self.keys.handoffs(crm), lead_id, dumps(handoff)))

    def open_handoff_epoch(self, crm: str, lead: LeadRef, handoff: dict[str, Any]) -> int | None:
        """The routing epoch of the lead's hand-off in progress, opened (and kept with it) in one script if it
        has none yet; None when the hand-off is no longer in progress (another worker finished it)."""
        body = dumps({k: v for k, v in handoff.items() if k != "epoch"})
        ttl = int(getattr(self, "decision_ttl_ms", 7 * 86_400_000) + DAY * 1000)
        epoch = int(self._lua["open_handoff"](keys=[self.keys.handoffs(crm), self.keys.epoch(lead)],
                                              args=[lead.lead_id, ttl, body[:-1]]))
        return None if epoch < 0 else epoch

    def update_handoff(self, crm: str, lead_id: str, handoff: dict[str, Any]) -> None:
        """Keep what a hand-off in progress has done so far (the epoch it opened)."""
        self.client.hset(self.keys.handoffs(crm), lead_id, dumps(handoff))

    def handoffs(self, crm: str) -> dict[str, dict[str, Any]]:
        """Every hand-off in progress for the CRM, by lead id."""
        return {lead: json.loads(raw) for lead, raw in self.client.hgetall(self.keys.handoffs(crm)).items()}

    def end_handoff(self, crm: str, lead_ids: Sequence[str]) -> None:
        """The hand-offs are done: their owners are written (or they came to nothing)."""
        if lead_ids:
            self.client.hdel(self.keys.handoffs(crm), *lead_ids)
