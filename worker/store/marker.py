"""The state marker, and the writes that put a lost state back.

Redis can lose its data without anyone noticing: a server without persistence restarts, a
failover promotes an empty replica, an operator runs ``FLUSHALL``. Routing on from an empty
state would forget every SLA clock, load and round-robin position. So the state carries a
marker, one hash at ``<prefix>:state``: the instance id of this state (new after each
rebuild), the key prefix and the ledger it was built with, its generation and when it was
stamped. :meth:`RecoveryStore.state_status` reads it:

* ``ok``: the marker is ours (same prefix, same ledger);
* ``missing``: no marker: a new state, or a lost one; the caller asks the ledger whether there was
  a history to lose (:mod:`worker.steps.rebuild`);
* ``foreign``: a marker written for another prefix or another ledger (a copied dump, a shared
  server pointed at the wrong database): nothing is rebuilt over it automatically.

The ``restore_*`` methods write what :mod:`worker.steps.rebuild` recomputed from the CRM and
the ledger; they write state only (no decision log, no outbox: the ledger has those events).
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from worker.domain.leads import DecisionKey, LeadRef
from worker.store.base import StoreBase, dumps

Status = Literal["ok", "missing", "foreign"]


@dataclass(frozen=True, slots=True)
class StateMarker:
    """What the marker says about the state it marks."""

    instance: str
    prefix: str
    ledger: str
    generation: int
    stamped_at: float
    rebuilt: bool

    @classmethod
    def from_hash(cls, raw: Mapping[str, str]) -> StateMarker:
        return cls(instance=raw.get("instance", ""), prefix=raw.get("prefix", ""), ledger=raw.get("ledger", ""),
                   generation=int(raw.get("generation") or 0), stamped_at=float(raw.get("stamped_at") or 0.0),
                   rebuilt=raw.get("rebuilt") == "1")


class RecoveryStore(StoreBase):
    """The state marker and the restoring writes of a rebuild."""

    def state_marker(self) -> StateMarker | None:
        """The marker, or None when this state has none (new, or lost)."""
        raw = self.client.hgetall(self.keys.state())
        return StateMarker.from_hash(raw) if raw else None

    def state_status(self, ledger: str) -> tuple[Status, StateMarker | None]:
        """``ok``, ``missing`` or ``foreign`` (see the module), with the marker read."""
        marker = self.state_marker()
        if marker is None:
            return "missing", None
        if marker.prefix != self.prefix or (marker.ledger and ledger and marker.ledger != ledger):
            return "foreign", marker
        return "ok", marker

    def stamp_state(self, ledger: str, *, rebuilt: bool = False) -> StateMarker:
        """Write a new marker for this state (a new instance id, the next generation)."""
        previous = self.state_marker()
        marker = StateMarker(uuid.uuid4().hex, self.prefix, ledger, (previous.generation if previous else 0) + 1,
                             time.time(), rebuilt)
        self.client.hset(self.keys.state(), mapping={
            "instance": marker.instance, "prefix": marker.prefix, "ledger": marker.ledger,
            "generation": marker.generation, "stamped_at": repr(marker.stamped_at), "rebuilt": int(marker.rebuilt),
        })
        return marker

    def restore_open(self, crm: str, held: Mapping[str, str]) -> None:
        """Replace who holds each open lead of ``crm`` (lead id -> rep)."""
        pipe = self.client.pipeline(transaction=True)
        pipe.delete(self.keys.open_leads(crm))
        if held:
            pipe.hset(self.keys.open_leads(crm), mapping=dict(held))
        pipe.execute()

    def restore_pools(self, pools: Mapping[str, Mapping[str, object]]) -> None:
        """Replace pools' rotation state: per pool the fields the claim script keeps (``s``, ``last``, ``r:``, ``w:``)."""
        pipe = self.client.pipeline(transaction=True)
        for pool, fields in pools.items():
            pipe.delete(self.keys.pool(pool))
            if fields:
                pipe.hset(self.keys.pool(pool), mapping={k: str(v) for k, v in fields.items()})
        pipe.execute()

    def restore_clocks(self, clocks: Sequence[tuple[str, float, Mapping[str, Any], str]], *, replace: bool = False) -> None:
        """Put SLA clocks back: ``(timer id, due, payload, owner)``, each in its owner's index; nothing to the outbox.

        ``replace``: the clocks are all there are (every other timer and index entry goes).
        """
        if replace:
            indexes = list(self.client.scan_iter(match=self.keys.every_rep_timers(), count=1000))
            self.client.delete(self.keys.timers(), self.keys.timer_payloads(), *indexes)
        if not clocks:
            return
        pipe = self.client.pipeline(transaction=True)
        pipe.zadd(self.keys.timers(), {tid: float(due) for tid, due, _, _ in clocks})
        pipe.hset(self.keys.timer_payloads(), mapping={tid: dumps(payload) for tid, _, payload, _ in clocks})
        for tid, _, _, owner in clocks:
            pipe.sadd(self.keys.rep_timers(owner), tid)
        pipe.execute()

    def restore_decisions(self, decisions: Sequence[tuple[DecisionKey, Mapping[str, Any], float]]) -> None:
        """Put recorded decisions back ``(key, decision, seconds left to keep it)``, unless one is recorded:
        a drain that meets the lead again replays it instead of deciding anew."""
        pipe = self.client.pipeline(transaction=False)
        for key, decision, ttl in decisions:
            name = self.keys.decision(key)
            pipe.hsetnx(name, "d", json.dumps(decision, separators=(",", ":"), default=str))
            pipe.hsetnx(name, "id", "")
            pipe.pexpire(name, max(1, int(ttl * 1000)))
        pipe.execute()

    def restore_epochs(self, epochs: Sequence[tuple[LeadRef, int, float]]) -> None:
        """Put leads' routing epochs back ``(lead, epoch, seconds left)``, never lowering one that is there."""
        pipe = self.client.pipeline(transaction=False)
        for lead, epoch, ttl in epochs:
            name = self.keys.epoch(lead)
            pipe.set(name, int(epoch), nx=True, px=max(1, int(ttl * 1000)))
        pipe.execute()
