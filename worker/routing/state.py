"""The narrow state interface the routing engine needs, and its in-memory implementation.

The engine decides *who is eligible*; the state makes the *final pick* atomically
(advance the rotation or bump the load) so that many workers sharing one state never
double-assign or skew a rotation. The Redis implementation lives in ``worker.store``.

Strategy semantics (shared by every implementation, checked by one contract suite):

* ``round_robin``: each pool remembers, per member, the sequence number of the last lead
  it got. The next pick is the first candidate, in pool order, after the most recently
  served *current* member (cyclically). Adding or removing members never resets the
  others; a skipped member keeps its place and rejoins in turn with no catch-up.
* ``weighted_round_robin``: smooth weighted round robin (as in nginx). Each pick adds
  every candidate's weight to its running score, picks the highest (ties: candidate order)
  and subtracts the candidates' total weight from the winner. Members not in the
  candidate list are left untouched, so nobody accumulates credit while skipped.
* ``least_loaded``: lowest open load relative to capacity (a rep without a cap counts
  with the largest cap among the candidates, or 1); ties: candidate order. A pool with
  ``load:`` weights compares ``lead_weight x open leads + crm_load`` instead of the open load
  (``Candidate.lead_weight``, ``Candidate.crm_load``: its weighted open opportunities from the
  CRM, handed in as data); capacity still counts open leads alone.

Candidates come in pool order unless the config sets ``tie_break`` and the loads the engine
read tie: then it passes the winner of its tie-breakers (``worker.routing.tiebreak``) first,
so the atomic step settles the tie the configured way without knowing about tie-breakers.

``most_recent_contact`` needs to know who last owned a lead from a domain. A state that
tracks it also implements :class:`ContactHistory`; for one that does not (the Redis store
today) that tie-breaker sees a tie and the next one decides.

Every strategy skips a candidate whose load has reached its capacity at pick time,
re-checked inside the atomic step, and then increments the chosen rep's load.

Caps per period (``worker.routing.caps``) ride on the same step: ``pick(..., caps=...)``
passes each candidate's quotas; a candidate who has reached one is skipped with its reason
(``Pick.capped``), and the chosen rep's counters are counted with the pick. A direct
assignment to a rep with caps goes through ``claim_rep(rep, quotas)``, which may refuse.
A state is asked about caps only when the config has some.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Protocol, runtime_checkable

from worker.routing.caps import Quota, reached
from worker.routing.fairness import Fairness, FairWindow, choose_fair


class Strategy(StrEnum):
    ROUND_ROBIN = "round_robin"
    WEIGHTED_ROUND_ROBIN = "weighted_round_robin"
    LEAST_LOADED = "least_loaded"
    PERFORMANCE_WEIGHTED = "performance_weighted"  # learned rates, floors and caps: worker.routing.perf, .fairness


# the strategies ``RoutingState.pick`` serves; performance_weighted picks through ``pick_fair`` (worker.routing.perf)
ROTATIONS: tuple[Strategy, ...] = (Strategy.ROUND_ROBIN, Strategy.WEIGHTED_ROUND_ROBIN, Strategy.LEAST_LOADED)


@dataclass(frozen=True, slots=True)
class Candidate:
    """A pool member the engine found eligible, with what the pick needs to know."""

    rep_id: str
    weight: int = 1
    capacity: int | None = None
    # ``least_loaded`` with a pool's ``load:`` weights (worker.routing.pipeline): the load compared is
    # lead_weight x open leads + crm_load (the rep's weighted open opportunities), over the capacity as before
    lead_weight: float = 1.0
    crm_load: float = 0.0

    @property
    def weighted(self) -> bool:
        """Whether least_loaded weighs this candidate other than by open leads alone."""
        return self.lead_weight != 1.0 or self.crm_load != 0.0


@dataclass(frozen=True, slots=True)
class Pick:
    """The outcome of one atomic pick.

    ``rep_id`` is None when every candidate was at capacity (or a cap) at pick time.
    ``load`` is the chosen rep's open load after the pick. ``at_capacity`` lists the
    candidates skipped inside the atomic step, ``capped`` those skipped for a cap per period
    (rep, reason). ``detail`` is a short human note on the strategy state used, e.g.
    ``least loaded: sarah 3/25``.
    """

    rep_id: str | None
    load: int = 0
    at_capacity: tuple[str, ...] = ()
    detail: str = ""
    capped: tuple[tuple[str, str], ...] = ()


@runtime_checkable
class RoutingState(Protocol):
    """What the engine reads and the one atomic step it asks for."""

    def loads(self, rep_ids: Sequence[str]) -> dict[str, int]:
        """Current open (unacknowledged) load per rep; missing reps count 0."""
        ...

    def pick(
        self, pool: str, strategy: Strategy, members: Sequence[str], candidates: Sequence[Candidate]
    ) -> Pick:
        """Choose one of ``candidates`` (a tie goes to the earlier one) and record it, atomically."""
        ...

    def assign(self, rep_id: str) -> int:
        """Record a direct assignment (named rep, account owner): load +1, returns the new load."""
        ...


@runtime_checkable
class CapState(Protocol):
    """A state that enforces caps per period (``worker.routing.caps``) in its atomic step.

    The engine asks for it only when the config sets caps; every state in leadroute is one.
    """

    def pick(
        self, pool: str, strategy: Strategy, members: Sequence[str], candidates: Sequence[Candidate],
        caps: Mapping[str, Sequence[Quota]] | None = None,
    ) -> Pick:
        """As :meth:`RoutingState.pick`; a candidate who has reached a cap in ``caps`` is skipped (``Pick.capped``)
        and the chosen rep's counters count the pick."""
        ...

    def claim_rep(self, rep_id: str, quotas: Sequence[Quota]) -> Pick:
        """A direct assignment within the rep's caps: load +1 and counted, or refused (``rep_id`` None, ``capped``)."""
        ...


@runtime_checkable
class ContactHistory(Protocol):
    """Who most recently owned a lead from each company domain, for ``most_recent_contact``.

    Optional beside :class:`RoutingState`: the engine uses it only when the config names that
    tie-breaker and the state offers it, and records every rep-owned decision through it.
    """

    def last_owner(self, domain: str) -> str | None:
        """The rep who owned the latest lead routed from ``domain``, or None."""
        ...

    def note_owner(self, domain: str, rep_id: str, at: datetime) -> None:
        """Remember that ``rep_id`` got a lead from ``domain`` routed at ``at`` (the latest ``at`` wins)."""
        ...


def _ratio(load: int, capacity: int | None, default_cap: int) -> float:
    return load / (capacity if capacity else default_cap)


_POSITIONS: dict[tuple[str, ...], dict[str, int]] = {}  # a pool's members -> each one's place, for round robin


def _positions(members: Sequence[str]) -> dict[str, int]:
    found = _POSITIONS.get(members) if isinstance(members, tuple) else None
    if found is None:
        found = {rep: i for i, rep in enumerate(members)}
        if isinstance(members, tuple):
            if len(_POSITIONS) > 1024:
                _POSITIONS.clear()
            _POSITIONS[members] = found
    return found


def _choose(
    strategy: Strategy,
    members: Sequence[str],
    candidates: Sequence[Candidate],
    loads: Mapping[str, int],
    rr_seq: Mapping[str, int],
    wrr_score: Mapping[str, int],
) -> tuple[Candidate | None, tuple[str, ...], dict[str, int]]:
    """:func:`choose`, returning the chosen candidate itself (written as plain loops: it runs for every pool pick)."""
    full_list: list[str] = []
    open_: list[Candidate] = []
    get = loads.get
    for c in candidates:
        cap = c.capacity
        if cap is not None and get(c.rep_id, 0) >= cap:
            full_list.append(c.rep_id)
        else:
            open_.append(c)
    full = tuple(full_list)
    if not open_:
        return None, full, {}
    if strategy is Strategy.ROUND_ROBIN:
        position = _positions(members)
        best_seq, best_rep = 0, ""
        for rep in members:  # the most recently served member: max((seq, rep)) over those served
            seq = rr_seq.get(rep, 0)
            if seq > 0 and (seq > best_seq or (seq == best_seq and rep > best_rep)):
                best_seq, best_rep = seq, rep
        last_pos = position[best_rep] if best_seq > 0 else -1
        n = len(members)
        chosen = None
        best = n
        for c in open_:  # the first open candidate after it, cyclically (the earliest on ties)
            distance = (position[c.rep_id] - last_pos - 1) % n
            if distance < best:
                chosen, best = c, distance
        return chosen, full, {}
    if strategy is Strategy.WEIGHTED_ROUND_ROBIN:
        scores = {c.rep_id: wrr_score.get(c.rep_id, 0) + c.weight for c in open_}
        total = sum(c.weight for c in open_)
        chosen = open_[0]
        top = scores[chosen.rep_id]
        for c in open_:  # the highest score, the first on ties
            if scores[c.rep_id] > top:
                chosen, top = c, scores[c.rep_id]
        scores[chosen.rep_id] -= total
        return chosen, full, scores
    default_cap = max((c.capacity for c in open_ if c.capacity), default=1)
    chosen = None
    low = 0.0
    for c in open_:  # the lowest load ratio (weighted_ratio), the first on ties
        lead_weight, crm_load = c.lead_weight, c.crm_load
        if lead_weight != 1.0 or crm_load != 0.0:
            ratio = (lead_weight * get(c.rep_id, 0) + crm_load) / (c.capacity or default_cap)
        else:
            ratio = get(c.rep_id, 0) / (c.capacity if c.capacity else default_cap)
        if chosen is None or ratio < low:
            chosen, low = c, ratio
    return chosen, full, {}


def choose(
    strategy: Strategy,
    members: Sequence[str],
    candidates: Sequence[Candidate],
    loads: Mapping[str, int],
    rr_seq: Mapping[str, int],
    wrr_score: Mapping[str, int],
) -> tuple[str | None, tuple[str, ...], dict[str, int]]:
    """Pure pick used by the in-memory state (the Redis Lua script mirrors it).

    Returns the chosen rep (or None), the candidates skipped at capacity, and the new
    weighted scores for the candidates (only meaningful for weighted round robin).
    """
    chosen, full, scores = _choose(strategy, members, candidates, loads, rr_seq, wrr_score)
    return (chosen.rep_id if chosen is not None else None), full, scores


_NAMES = {s: s.value.replace("_", " ") for s in Strategy}


def weighted_ratio(candidate: Candidate, load: int, default_cap: int) -> float:
    """What ``least_loaded`` compares: (lead weight x open leads + weighted CRM load) over the capacity."""
    if not candidate.weighted:
        return _ratio(load, candidate.capacity, default_cap)
    return (candidate.lead_weight * load + candidate.crm_load) / (candidate.capacity or default_cap)


def describe(strategy: Strategy, rep_id: str, load: int, capacity: int | None) -> str:
    """One short phrase on the strategy state behind a pick, for the decision's reason."""
    cap = f"/{capacity}" if capacity else ""
    return f"{_NAMES[strategy]}: {rep_id} {load}{cap}"


@dataclass
class InMemoryState:
    """Process-local state for ``simulate``, tests and the benchmark. Thread-safe."""

    _loads: dict[str, int] = field(default_factory=dict)
    _rr: dict[str, dict[str, int]] = field(default_factory=dict)
    _rr_counter: dict[str, int] = field(default_factory=dict)
    _wrr: dict[str, dict[str, int]] = field(default_factory=dict)
    _contacts: dict[str, tuple[datetime, str]] = field(default_factory=dict)
    _fair: dict[str, FairWindow] = field(default_factory=dict)  # performance_weighted pools' windows
    _counts: dict[tuple[str, str, str, str], int] = field(default_factory=dict)  # caps per period, by Quota.counter
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def loads(self, rep_ids: Sequence[str]) -> dict[str, int]:
        return {rep: self._loads.get(rep, 0) for rep in rep_ids}

    def set_loads(self, loads: Mapping[str, int]) -> None:
        """Replace every rep's load (a reconciliation, or ``simulate --loads``); never below zero."""
        with self._lock:
            self._loads = {rep: max(0, int(n)) for rep, n in loads.items()}

    def adjust_load(self, rep_id: str, delta: int) -> int:
        """Add ``delta`` to a rep's load, never going below zero; returns the new load."""
        with self._lock:
            self._loads[rep_id] = max(0, self._loads.get(rep_id, 0) + delta)
            return self._loads[rep_id]

    def assign(self, rep_id: str) -> int:
        return self.adjust_load(rep_id, 1)

    def pick_fair(self, pool: str, members: Sequence[str], candidates: Sequence[Candidate], fairness: Fairness,
                  caps: Mapping[str, Sequence[Quota]] | None = None) -> Pick:
        """A ``performance_weighted`` pick under the pool's floor and cap (``worker.routing.fairness``) and the
        candidates' caps per period; ``detail`` is ``#<pick number> <note>``, as ``fair_claim.lua`` returns it."""
        with self._lock:
            full = tuple(c.rep_id for c in candidates
                         if c.capacity is not None and self._loads.get(c.rep_id, 0) >= c.capacity)
            capped = tuple((c.rep_id, why) for c in candidates if c.rep_id not in full
                           and (why := reached(tuple((caps or {}).get(c.rep_id, ())), self._counts)) is not None)
            out = set(full) | {rep for rep, _ in capped}
            window = self._fair.setdefault(pool, FairWindow())
            found = choose_fair(window, fairness, [(c.rep_id, c.weight) for c in candidates if c.rep_id not in out])
            if found is None:
                return Pick(None, at_capacity=full, capped=capped)
            for q in (caps or {}).get(found.rep_id, ()):
                self._counts[q.counter] = self._counts.get(q.counter, 0) + 1
            self._loads[found.rep_id] = self._loads.get(found.rep_id, 0) + 1
            return Pick(found.rep_id, self._loads[found.rep_id], full, f"#{found.seq} {found.note}".strip(), capped)

    def last_owner(self, domain: str) -> str | None:
        seen = self._contacts.get(domain)
        return seen[1] if seen else None

    def note_owner(self, domain: str, rep_id: str, at: datetime) -> None:
        with self._lock:
            seen = self._contacts.get(domain)
            if seen is None or at >= seen[0]:
                self._contacts[domain] = (at, rep_id)

    def cap_count(self, quota: Quota) -> int:
        """How many leads a cap's counter holds now."""
        return self._counts.get(quota.counter, 0)

    def claim_rep(self, rep_id: str, quotas: Sequence[Quota]) -> Pick:
        """A direct assignment that respects the rep's caps: refused (``capped``) when one is reached."""
        with self._lock:
            why = reached(quotas, self._counts)
            if why is not None:
                return Pick(None, capped=((rep_id, why),))
            for q in quotas:
                self._counts[q.counter] = self._counts.get(q.counter, 0) + 1
            self._loads[rep_id] = self._loads.get(rep_id, 0) + 1
            load = self._loads[rep_id]
        return Pick(rep_id, load, detail=f"direct: {rep_id} {load}")

    def pick(
        self, pool: str, strategy: Strategy, members: Sequence[str], candidates: Sequence[Candidate],
        caps: Mapping[str, Sequence[Quota]] | None = None,
    ) -> Pick:
        with self._lock:
            rr = self._rr.setdefault(pool, {})
            wrr = self._wrr.setdefault(pool, {})
            capped: tuple[tuple[str, str], ...] = ()
            if caps:
                found = []
                for c in candidates:
                    quotas = caps.get(c.rep_id)
                    if not quotas or (c.capacity is not None and self._loads.get(c.rep_id, 0) >= c.capacity):
                        continue  # uncapped, or at capacity (said first, as in the store)
                    why = reached(quotas, self._counts)
                    if why is not None:
                        found.append((c.rep_id, why))
                if found:
                    capped = tuple(found)
                    out = {rep for rep, _ in found}
                    candidates = [c for c in candidates if c.rep_id not in out]
            found, full, scores = _choose(strategy, members, candidates, self._loads, rr, wrr)
            if found is None:
                return Pick(None, at_capacity=full, capped=capped)
            chosen = found.rep_id
            if caps:
                counts = self._counts
                for q in caps.get(chosen, ()):
                    counts[q.counter] = counts.get(q.counter, 0) + 1
            if strategy is Strategy.ROUND_ROBIN:
                self._rr_counter[pool] = self._rr_counter.get(pool, 0) + 1
                rr[chosen] = self._rr_counter[pool]
            elif strategy is Strategy.WEIGHTED_ROUND_ROBIN:
                wrr.update(scores)
            load = self._loads[chosen] = self._loads.get(chosen, 0) + 1
        return Pick(chosen, load, full, describe(strategy, chosen, load, found.capacity), capped)
