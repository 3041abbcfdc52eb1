"""Counters of caps per period, read back (``claim.lua`` counts them), and leads handed back.

Each cap's counter is one string key per (scope, rep, period, window) (:meth:`Keys.cap`),
incremented in the same script that picks the rep and set to expire a day after its window
ends, so nothing ever resets them and they never pile up.
"""

from __future__ import annotations

from collections.abc import Sequence

from worker.domain.leads import DecisionKey
from worker.routing.caps import Quota
from worker.store.relationships import DomainStore


class CapStore(DomainStore):
    """Reads of the counters behind caps per period; what a rejected lead gives back (``hand_back.lua``); and
    (from :class:`DomainStore`) the domain index of relationships, all part of the routing state."""

    LUA = ("hand_back",)

    def cap_key(self, quota: Quota) -> str:
        """The counter's key (the claim script is handed the same name)."""
        return self.keys.cap("pool." + quota.scope if quota.scope else "rep", quota.rep_id, quota.period, quota.window)

    def cap_counts(self, quotas: Sequence[Quota]) -> list[int]:
        """How many leads each quota's counter holds now (0 for a window nobody was given a lead in)."""
        if not quotas:
            return []
        return [int(v) if v else 0 for v in self.client.mget([self.cap_key(q) for q in quotas])]

    def hand_back(self, key: DecisionKey, rep_id: str, pool: str | None, *, credit_back: bool) -> bool:
        """``rep_id`` rejected the lead decided under ``key``: their load -1 and, with ``credit_back``, the counts
        against their caps and a turn in ``pool`` (served before the rotation) given back. Once per decision:
        True the first time, False after (a retried task)."""
        keys = [self.keys.decision(key), self.keys.loads()] + ([self.keys.pool(pool)] if pool else [])
        ttl = getattr(self, "decision_ttl_ms", 7 * 86_400_000)
        return bool(self._lua["hand_back"](keys=keys, args=[rep_id, 1 if credit_back else 0, ttl]))

    def turns_owed(self, pool: str) -> dict[str, int]:
        """Turns given back in ``pool`` and not yet served, by rep."""
        raw = self.client.hgetall(self.keys.pool(pool))
        return {f.removeprefix("cr:"): int(v) for f, v in raw.items() if f.startswith("cr:") and int(v) > 0}
