"""Counters of caps per period: read back what the claim script counted (``claim.lua`` counts them).

Each cap's counter is one string key per (scope, rep, period, window) (:meth:`Keys.cap`),
incremented in the same script that picks the rep and set to expire a day after its window
ends, so nothing ever resets them and they never pile up.
"""

from __future__ import annotations

from collections.abc import Sequence

from worker.routing.caps import Quota
from worker.store.base import StoreBase


class CapStore(StoreBase):
    """Reads of the counters behind caps per period."""

    def cap_key(self, quota: Quota) -> str:
        """The counter's key (the claim script is handed the same name)."""
        return self.keys.cap("pool." + quota.scope if quota.scope else "rep", quota.rep_id, quota.period, quota.window)

    def cap_counts(self, quotas: Sequence[Quota]) -> list[int]:
        """How many leads each quota's counter holds now (0 for a window nobody was given a lead in)."""
        if not quotas:
            return []
        return [int(v) if v else 0 for v in self.client.mget([self.cap_key(q) for q in quotas])]
