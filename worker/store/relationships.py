"""The domain index behind ``relationships: recent_decision``: who last got a lead from each company domain.

Kept as decisions are made (the route step notes every batch's rep-owned decisions in one script
call, ``note_domains.lua``), read once per batch for the leads being routed. Domains last seen
before the keep window (the longest lookback configured) are forgotten a few hundred at a time as
new ones are noted, so the index holds only what a lookback can still reach.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from worker.store.base import StoreBase


@dataclass(frozen=True, slots=True)
class LastOwner:
    """The latest decision that gave a rep a lead from a domain."""

    rep_id: str
    at: float  # epoch seconds it was routed at
    lead_id: str


class DomainStore(StoreBase):
    """Per company domain, the rep who got the latest lead from it."""

    LUA = ("note_domains",)

    def note_domains(self, items: Sequence[tuple[str, str, str, float]], keep: float, now: float) -> int:
        """Note (domain, rep, lead id, routed at) for each item, the latest per domain winning; forget
        domains last seen more than ``keep`` seconds before ``now``. Returns how many were newer."""
        args: list[object] = [int((now - keep) * 1000)]
        for domain, rep, lead_id, at in items:
            args += [domain, int(at * 1000), rep, lead_id]
        return int(self._lua["note_domains"](keys=[self.keys.domains(), self.keys.domains_at()], args=args))

    def last_owners(self, domains: Sequence[str]) -> dict[str, LastOwner]:
        """The noted latest owner of each of ``domains`` that has one, in one round trip."""
        wanted = list(dict.fromkeys(domains))
        if not wanted:
            return {}
        out: dict[str, LastOwner] = {}
        for domain, raw in zip(wanted, self.client.hmget(self.keys.domains(), wanted), strict=True):
            if raw:
                at, rep, lead_id = raw.split("|", 2)
                out[domain] = LastOwner(rep, int(at) / 1000, lead_id)
        return out
