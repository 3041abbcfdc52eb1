"""Loads and pool rotations: the engine's routing state in Redis, and claims against it.

:class:`RoutingStateStore` implements :class:`~worker.routing.state.RoutingState` with exactly
the semantics of :func:`~worker.routing.state.choose`, one round trip per pick (``claim.lua``);
:meth:`~RoutingStateStore.claim_many` makes many claims, each journaled under its lead's
decision, in one pipelined round trip. Loads are +1/-1 never below zero (``adjust.lua``) or
set all at once from a reconciliation (``set_loads.lua``).
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import redis

from worker.domain.leads import DecisionKey
from worker.routing.caps import Quota
from worker.routing.state import Candidate, Pick, Strategy, describe
from worker.store.base import StoreBase
from worker.store.caps import CapStore

CLAIM_CHUNK = 1000  # claims per script call: bounds how long one call holds Redis

_STRATEGY_CODE = {
    Strategy.ROUND_ROBIN: "rr",
    Strategy.WEIGHTED_ROUND_ROBIN: "wrr",
    Strategy.LEAST_LOADED: "ll",
}


@dataclass(frozen=True, slots=True)
class PoolClaim:
    """One lead's pick from a pool, for :meth:`RoutingStateStore.claim_many`."""

    key: DecisionKey
    pool: str
    strategy: Strategy
    members: Sequence[str]
    candidates: Sequence[Candidate]
    index: int = 0  # the n-th claim of this lead's decision (its journal entry)
    caps: tuple[tuple[str, tuple[Quota, ...]], ...] = ()  # per candidate rep: its caps per period


@dataclass(frozen=True, slots=True)
class DirectClaim:
    """One lead's direct assignment (named rep, account owner), for :meth:`RoutingStateStore.claim_many`."""

    key: DecisionKey
    rep_id: str
    index: int = 0  # the n-th claim of this lead's decision (its journal entry)
    caps: tuple[Quota, ...] = ()  # the rep's own caps per period: the claim is refused when one is reached


@dataclass(frozen=True, slots=True)
class Claim:
    """The outcome of one claim; ``replayed`` means it was recorded earlier and not repeated."""

    key: DecisionKey
    pick: Pick
    replayed: bool


class RoutingStateStore(CapStore):
    """Open loads per rep and rotation state per pool (and the counters of caps per period)."""

    LUA = ("claim", "adjust", "set_loads")

    def loads(self, rep_ids: Sequence[str]) -> dict[str, int]:
        """Current open load per rep; missing reps count 0."""
        if not rep_ids:
            return {}
        values = self.client.hmget(self.keys.loads(), list(rep_ids))
        return {rep: int(v) if v else 0 for rep, v in zip(rep_ids, values, strict=True)}

    def all_loads(self) -> dict[str, int]:
        """Every rep with a non-zero load (for ``reps`` and reconciliation reports)."""
        return {rep: int(v) for rep, v in self.client.hgetall(self.keys.loads()).items()}

    def set_loads(self, loads: Mapping[str, int]) -> None:
        """Replace every rep's load at once (reconciliation against the CRM); never below zero."""
        args: list[object] = []
        for rep, n in loads.items():
            if int(n) > 0:
                args += [rep, int(n)]
        if args:
            self._lua["set_loads"](keys=[self.keys.loads()], args=args)
        else:
            self.client.delete(self.keys.loads())

    def adjust_load(self, rep_id: str, delta: int) -> int:
        """Add ``delta`` (+1 assigned, -1 acknowledged/reassigned/closed), never below zero."""
        return int(self._lua["adjust"](keys=[self.keys.loads()], args=[rep_id, int(delta)]))

    def assign(self, rep_id: str) -> int:
        """Record a direct assignment (named rep, account owner): load +1, returns the new load."""
        return self.adjust_load(rep_id, 1)

    def pick(self, pool: str, strategy: Strategy, members: Sequence[str], candidates: Sequence[Candidate],
             caps: Mapping[str, Sequence[Quota]] | None = None) -> Pick:
        """Choose one of ``candidates`` and record it, in one Lua round trip (see ``choose``); ``caps``: each
        candidate's caps per period, checked and counted in the same step."""
        batch = ClaimBatch(self)
        batch.pick(pool, strategy, members, candidates, caps=caps_by_rep(caps))
        return batch.run()[0][0]

    def claim_rep(self, rep_id: str, quotas: Sequence[Quota]) -> Pick:
        """A direct assignment within the rep's caps per period, atomically: refused (``capped``) at a cap."""
        batch = ClaimBatch(self)
        batch.direct(rep_id, caps=tuple(quotas))
        return batch.run()[0][0]

    def reset_pool(self, pool: str) -> None:
        """Forget a pool's rotation state (round-robin sequence and weighted scores)."""
        self.client.delete(self.keys.pool(pool))

    def claim_many(self, requests: Sequence[PoolClaim | DirectClaim]) -> list[Claim]:
        """Claim for many leads in one pipelined round trip, each idempotent on its key.

        A lead whose claim was made earlier (a retried batch) gets that claim back. Use with
        :meth:`decisions` (skip leads already decided) and :meth:`record_many`.
        """
        pipe = self.client.pipeline(transaction=False)
        parse = self._send_claims(pipe, requests)
        return parse(pipe.execute())

    def _send_claims(
        self, pipe: redis.client.Pipeline, requests: Sequence[PoolClaim | DirectClaim]
    ) -> Callable[[list[Any]], list[Claim]]:
        """Queue the claim scripts on ``pipe``; the returned function reads their replies
        (the first of the pipeline's replies; any after them are the caller's)."""
        batches = []
        for start in range(0, len(requests), CLAIM_CHUNK):
            batch = ClaimBatch(self)
            for req in requests[start : start + CLAIM_CHUNK]:
                if isinstance(req, PoolClaim):
                    batch.pick(req.pool, req.strategy, req.members, req.candidates, req.key, f"c:{req.index}", req.caps)
                else:
                    batch.direct(req.rep_id, req.key, f"c:{req.index}", req.caps)
            batch.send(pipe)
            batches.append(batch)

        def parse(replies: list[Any]) -> list[Claim]:
            outcomes = [o for batch, raw in zip(batches, replies, strict=False) for o in batch.parse(raw)]
            return [Claim(req.key, pick, replayed) for req, (pick, replayed) in zip(requests, outcomes, strict=True)]

        return parse


class ClaimBatch:
    """Arguments for one call of ``claim.lua``: picks and direct claims, in order.

    A claim made for a lead's decision (``key``) is journaled under its decision hash, field
    ``journal``; a retry with the same key and field gets it back instead of claiming again.
    """

    def __init__(self, store: StoreBase) -> None:
        self.store = store
        self.script_keys: list[str] = [store.keys.loads()]
        self._key_index: dict[str, int] = {}
        self._sets: dict[tuple[str, ...], int] = {}
        self._set_args: list[object] = []
        self._requests: list[object] = []
        self._parsers: list[tuple[Strategy | None, Sequence[Candidate], str]] = []

    def _key(self, name: str) -> int:
        index = self._key_index.get(name)
        if index is None:
            self.script_keys.append(name)
            index = self._key_index[name] = len(self.script_keys)  # Lua's KEYS is 1-based
        return index

    def _journal(self, key: DecisionKey | None) -> int:
        return 0 if key is None else self._key(self.store.keys.decision(key))

    def pick(
        self,
        pool: str,
        strategy: Strategy,
        members: Sequence[str],
        candidates: Sequence[Candidate],
        key: DecisionKey | None = None,
        journal: str = "",
        caps: tuple[tuple[str, tuple[Quota, ...]], ...] = (),
    ) -> None:
        set_index = 0  # only round robin needs the pool's member order
        if strategy == Strategy.ROUND_ROBIN:
            members = tuple(members)
            set_index = self._sets.get(members, 0)
            if not set_index:
                set_index = self._sets[members] = len(self._sets) + 1
                self._set_args += [len(members), *members]
        weighted = strategy == Strategy.LEAST_LOADED and any(c.weighted for c in candidates)
        self._requests += [
            "p",
            self._journal(key),
            journal,
            self._key(self.store.keys.pool(pool)),
            "lw" if weighted else _STRATEGY_CODE[strategy],
            set_index,
            len(candidates),
            *(_weighted_args(tuple(candidates)) if weighted else _candidates_args(tuple(candidates))),
        ]
        self._caps_args(caps, {c.rep_id: k for k, c in enumerate(candidates, 1)})
        self._parsers.append((strategy, candidates, ""))

    def direct(self, rep_id: str, key: DecisionKey | None = None, journal: str = "", caps: tuple[Quota, ...] = ()) -> None:
        self._requests += ["d", self._journal(key), journal, rep_id]
        self._caps_args(((rep_id, caps),) if caps else (), {rep_id: 1})
        self._parsers.append((None, (), rep_id))

    def _caps_args(self, caps: tuple[tuple[str, tuple[Quota, ...]], ...], number: Mapping[str, int]) -> None:
        """The caps section of a request (see ``claim.lua``): the counters as keys of this call."""
        args: list[object] = []
        for rep_id, quotas in caps:
            k = number.get(rep_id)
            if k is None:
                continue
            for q in quotas:
                counter = self._key(self.store.keys.cap("pool." + q.scope if q.scope else "rep", q.rep_id, q.period,
                                                        q.window))  # as CapStore.cap_key
                args += [k, counter, int(q.limit), q.reason, int(q.expires_at * 1000)]
        self._requests += [len(args) // 5, *args]

    def _args(self) -> list[object]:
        return [self.store.decision_ttl_ms, len(self._sets), *self._set_args, len(self._parsers), *self._requests]

    def send(self, pipe: redis.client.Pipeline) -> None:
        self.store._lua["claim"](keys=self.script_keys, args=self._args(), client=pipe)

    def run(self) -> list[tuple[Pick, bool]]:
        return self.parse(self.store._lua["claim"](keys=self.script_keys, args=self._args()))

    def parse(self, raw: list[Any]) -> list[tuple[Pick, bool]]:
        out, i = [], 0
        for strategy, candidates, direct in self._parsers:
            rep, load, replayed, skipped = raw[i], int(raw[i + 1]), bool(raw[i + 2]), int(raw[i + 3])
            passed = raw[i + 4 : i + 4 + skipped]
            at_capacity = tuple(r for r in passed if "\t" not in r)
            capped = tuple((r, why) for r, why in (p.split("\t", 1) for p in passed if "\t" in p))
            i += 4 + skipped
            if not rep:
                out.append((Pick(None, at_capacity=at_capacity, capped=capped), replayed))
            elif strategy is None:
                out.append((Pick(rep, load, (), f"direct: {direct} {load}"), replayed))
            else:
                capacity = next((c.capacity for c in candidates if c.rep_id == rep), None)
                out.append((Pick(rep, load, at_capacity, describe(strategy, rep, load, capacity), capped), replayed))
        return out


def caps_by_rep(caps: Mapping[str, Sequence[Quota]] | None) -> tuple[tuple[str, tuple[Quota, ...]], ...]:
    """Caps per candidate as a claim carries them (hashable, so a replayed claim compares equal)."""
    return tuple((rep, tuple(quotas)) for rep, quotas in caps.items() if quotas) if caps else ()


@functools.lru_cache(maxsize=4096)
def _candidates_args(candidates: tuple[Candidate, ...]) -> tuple[object, ...]:
    """Candidates as script arguments: rep, weight, capacity ("-" for none), repeated."""
    args: list[object] = []
    for c in candidates:
        args += [c.rep_id, int(c.weight), "-" if c.capacity is None else int(c.capacity)]
    return tuple(args)


def _weighted_args(candidates: tuple[Candidate, ...]) -> tuple[object, ...]:
    """Candidates of a least-loaded pool with load weights: rep, lead weight, capacity ("-" for none), CRM load."""
    args: list[object] = []
    for c in candidates:
        args += [c.rep_id, repr(float(c.lead_weight)), "-" if c.capacity is None else int(c.capacity),
                 repr(float(c.crm_load))]
    return tuple(args)
