"""What the worker keeps about the CRM side: how far each poll got, what was written, who holds what.

* Watermarks: the last processed change marker per connector and object.
* When each CRM was last polled (polls are put off while a backlog drains).
* Written markers: a decision's owner is in the CRM, so a replayed batch does not write again.
* Open leads per CRM: which rep holds each unacknowledged lead, to recount loads from the CRM.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence

import redis

from worker.domain.leads import DecisionKey
from worker.store.base import StoreBase

POLLED_TTL = 86_400  # seconds a "last polled" note is kept


class CrmStateStore(StoreBase):
    """Watermarks, last polls, written markers and the open-lead holders, per CRM."""

    LUA = ("flags",)

    # ------------------------------------------------------------------ polls

    def watermark(self, connector: str, obj: str) -> str | None:
        """The last processed change marker for a connector's object (None before the first poll)."""
        return self.client.hget(self.keys.watermarks(), self.keys.watermark_field(connector, obj))

    def set_watermark(self, connector: str, obj: str, value: str) -> None:
        self.client.hset(self.keys.watermarks(), self.keys.watermark_field(connector, obj), value)

    def mark_polled(self, crm: str, at: float | None = None) -> None:
        """Note that a poll of ``crm`` finished at ``at`` (epoch seconds, default now); kept a day."""
        self.client.set(self.keys.polled(crm), repr(time.time() if at is None else float(at)), ex=POLLED_TTL)

    def last_polled(self, crm: str) -> float | None:
        """When a poll of ``crm`` last finished (epoch seconds), if within the last day."""
        value = self.client.get(self.keys.polled(crm))
        return None if value is None else float(value)

    # ------------------------------------------------------------------ written owners

    def set_flags(self, keys: Sequence[str], ttl: float, pipe: redis.client.Pipeline | None = None) -> None:
        """Set many flag keys (full key names) to "1" for ``ttl`` seconds, in one script call per 1,000."""
        for start in range(0, len(keys), 1000):
            self._lua["flags"](keys=list(keys[start : start + 1000]), args=[max(1, int(ttl))], client=pipe or self.client)

    def written(self, keys: Sequence[DecisionKey]) -> list[bool]:
        """Whether each decision's owner was written to its CRM (within the markers' time to live)."""
        if not keys:
            return []
        return [bool(flag) for flag in self.client.mget([self.keys.written(key) for key in keys])]

    def note_written(
        self,
        crm: str,
        keys: Sequence[DecisionKey],
        ttl: float,
        *,
        held: Mapping[str, str] | None = None,
        released: Sequence[str] = (),
    ) -> None:
        """Mark decisions written to ``crm`` for ``ttl`` seconds and update the open-lead holders, in one round trip.

        ``held``: lead id -> the rep now holding it; ``released``: lead ids no rep holds any
        more (a queue owns them).
        """
        pipe = self.client.pipeline(transaction=False)
        self.set_flags([self.keys.written(key) for key in keys], ttl, pipe)
        if held:
            pipe.hset(self.keys.open_leads(crm), mapping=dict(held))
        if released:
            pipe.hdel(self.keys.open_leads(crm), *released)
        pipe.execute()

    # ------------------------------------------------------------------ open leads

    def hold_open(self, crm: str, lead_id: str, rep: str) -> None:
        """Note that ``rep`` holds the open lead (so loads can be reconciled against the CRM)."""
        self.client.hset(self.keys.open_leads(crm), lead_id, rep)

    def release_open(self, crm: str, lead_ids: Sequence[str]) -> None:
        """The leads no longer count towards anyone's load (acknowledged, closed, deleted, queued)."""
        if lead_ids:
            self.client.hdel(self.keys.open_leads(crm), *lead_ids)

    def holder(self, crm: str, lead_id: str) -> str | None:
        """The rep holding the open lead (counted in their load), if any."""
        return self.client.hget(self.keys.open_leads(crm), lead_id)

    def open_leads(self, crm: str) -> dict[str, str]:
        """Every open lead of ``crm`` a rep holds: lead id -> rep."""
        return dict(self.client.hgetall(self.keys.open_leads(crm)))
