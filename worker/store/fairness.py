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
from collections.abc import Mapping, Sequence

from worker.domain.leads import DecisionKey
from worker.routing.caps import Quota
from worker.routing.fairness import Fairness
from worker.routing.perf import RateTable
from worker.routing.state import Candidate, Pick
from worker.store.base import StoreBase, dumps


class FairnessStore(StoreBase):
    """Floors and caps of performance-weighted pools, and the rate table they learn from."""

    LUA = ("fair_claim",)

    def pick_fair(self, pool: str, members: Sequence[str], candidates: Sequence[Candidate], fairness: Fairness,
                  caps: Mapping[str, Sequence[Quota]] | None = None) -> Pick:
        """Choose among ``candidates`` under the pool's floor and cap, atomically (see ``choose_fair``);
        ``caps``: each candidate's caps per period (issue 17), checked and counted in the same step."""
        return self.fair_claim(pool, candidates, fairness, caps=caps)

    def fair_claim(self, pool: str, candidates: Sequence[Candidate], fairness: Fairness,
                   key: DecisionKey | None = None, journal: str = "",
                   caps: Mapping[str, Sequence[Quota]] | None = None) -> Pick:
        """The pick, journaled as claim ``journal`` of ``key``'s decision when given (a retry gets it back)."""
        keys = [self.keys.loads(), self.keys.pool(pool),
                self.keys.decision(key) if key is not None else self.keys.pool(pool)]
        args: list[object] = [self.decision_ttl_ms, journal if key is not None else "", fairness.code(), len(candidates)]
        quotas: list[object] = []
        for number, c in enumerate(candidates, 1):
            args += [c.rep_id, int(c.weight), "-" if c.capacity is None else int(c.capacity)]
            for q in (caps or {}).get(c.rep_id, ()):
                keys.append(self.keys.cap("pool." + q.scope if q.scope else "rep", q.rep_id, q.period, q.window))
                quotas += [number, len(keys), int(q.limit), q.reason, int(q.expires_at * 1000)]
        args += [len(quotas) // 5, *quotas]
        rep, load, _replayed, detail, *passed = self._lua["fair_claim"](keys=keys, args=args)
        full = tuple(r for r in passed if "\t" not in r)
        capped = tuple(tuple(r.split("\t", 1)) for r in passed if "\t" in r)
        return Pick(rep or None, int(load), full, str(detail), capped)  # type: ignore[arg-type]

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
