"""``performance_weighted`` picks and the learned rate table, in Redis.

:meth:`FairnessStore.pick_fair` is the atomic step of a performance-weighted pool
(``lua/fair_claim.lua``, exactly :func:`worker.routing.fairness.choose_fair` plus the capacity
check and the load): the floor and cap hold however many workers pick at once. Its state lives
in the pool's hash beside the rotation fields (``fw``, ``fs``, ``fq:<slot>``, ``fc:<rep>``,
``fx:<rep>``). The rate table (:class:`worker.routing.perf.RateTable`) is one JSON string,
replaced whole when the refresh step builds a new version.
"""

from __future__ import annotations

import json
from collections.abc import Sequence

from worker.domain.leads import DecisionKey
from worker.routing.fairness import Fairness
from worker.routing.perf import RateTable
from worker.routing.state import Candidate, Pick
from worker.store.base import StoreBase, dumps


class FairnessStore(StoreBase):
    """Floors and caps of performance-weighted pools, and the rate table they learn from."""

    LUA = ("fair_claim",)

    def pick_fair(self, pool: str, members: Sequence[str], candidates: Sequence[Candidate], fairness: Fairness) -> Pick:
        """Choose among ``candidates`` under the pool's floor and cap, atomically (see ``choose_fair``)."""
        return self.fair_claim(pool, candidates, fairness)

    def fair_claim(self, pool: str, candidates: Sequence[Candidate], fairness: Fairness,
                   key: DecisionKey | None = None, journal: str = "") -> Pick:
        """The pick, journaled as claim ``journal`` of ``key``'s decision when given (a retry gets it back)."""
        keys = [self.keys.loads(), self.keys.pool(pool)]
        if key is not None:
            keys.append(self.keys.decision(key))
        args: list[object] = [self.decision_ttl_ms, journal if key is not None else "", fairness.code(), len(candidates)]
        for c in candidates:
            args += [c.rep_id, int(c.weight), "-" if c.capacity is None else int(c.capacity)]
        rep, load, _replayed, detail, *full = self._lua["fair_claim"](keys=keys, args=args)
        return Pick(rep or None, int(load), tuple(full), str(detail))

    def save_rates(self, table: RateTable) -> None:
        """Replace the rate table the workers route with."""
        self.client.set(self.keys.rates(), dumps(table.to_dict()))

    def rate_table(self) -> RateTable | None:
        """The latest rate table, or None before the first refresh."""
        raw = self.client.get(self.keys.rates())
        return RateTable.from_dict(json.loads(raw)) if raw else None

    def rates_version(self) -> str | None:
        """The latest table's version, cheaply (a worker re-reads the table only when it changed)."""
        raw = self.client.get(self.keys.rates())
        return json.loads(raw)["version"] if raw else None
