"""Route history again under two configs, side by side, from the same starting state.

Pure-ish: the real routing engine against in-memory states (no Redis, no database). Both the
baseline (the config in force) and the candidate see the same leads, in the order they were
routed, each at its own routing time, with the same loads at the start of the window and the
same moments at which a lead's load leaves its owner (the recorded acknowledgements, closes and
reassignments), so a capacity cap bites when it would have. Whatever differs between the two
sides is the configs' doing: a config compared with itself changes nothing.

**The starting state.** Loads at the window's start are the leads routed before it (within the
history read) that had not been released by then, on their recorded owners; each is released
at its recorded time, on both sides. Round-robin rotations resume after the rep each pool
recorded last before the window. The rest of a strategy's state is not recorded (smooth
weighted round-robin scores, caps per period counted so far, the domains' last owners for
``most_recent_contact``, performance-weighted windows): it is what routing the leads before the
window under the baseline leaves (a warm-up run), so a replay of the config in force keeps the
live state when the history read reaches back to where the live state started.
"""

from __future__ import annotations

import copy
import heapq
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, fields
from datetime import datetime

from worker.config import RoutingConfig
from worker.replay.history import HistoricalLead
from worker.routing.engine import AT_CAPACITY, Decision, Router, in_hours
from worker.routing.state import InMemoryState

_FROM_THE_RECORD = ("_lock", "_loads", "_rr", "_rr_counter")


class ReplayState(InMemoryState):
    """The in-memory state, able to start where the record and a warm-up run left the live one."""

    def carry(self, warm: InMemoryState) -> None:
        """Take ``warm``'s strategy state but its loads and round-robin positions (the record gives those)."""
        for f in fields(InMemoryState):
            if f.name not in _FROM_THE_RECORD:
                setattr(self, f.name, copy.deepcopy(getattr(warm, f.name)))

    def resume_rotation(self, pool: str, order: Sequence[str]) -> None:
        """Round robin picks up after the last of ``order`` (the pool's picks, oldest first)."""
        served = self._rr.setdefault(pool, {})
        for rep in order:
            self._rr_counter[pool] = self._rr_counter.get(pool, 0) + 1
            served[rep] = self._rr_counter[pool]

    def load(self, rep: str) -> int:
        return self._loads.get(rep, 0)


@dataclass
class StartState:
    """The state at the window's start, shared by both sides."""

    loads: dict[str, int] = field(default_factory=dict)
    rotations: dict[str, list[str]] = field(default_factory=dict)  # pool -> its recorded picks, oldest first
    pending: list[tuple[datetime, str]] = field(default_factory=list)  # (release time, owner) of the open leads
    warm: ReplayState | None = None  # the baseline's state after routing the earlier leads (the warm-up run)

    def to_dict(self) -> dict[str, object]:
        return {"open_leads": sum(self.loads.values()), "loads": dict(sorted(self.loads.items())),
                "rotations_resumed": sorted(self.rotations), "warmed_up": self.warm is not None}


def start_state(earlier: Sequence[HistoricalLead], since: datetime | None,
                baseline: RoutingConfig | None = None) -> StartState:
    """Loads and rotations as the leads routed before ``since`` left them, and the rest of the state as routing them
    again under ``baseline`` leaves it (see the module's docstring)."""
    start = StartState()
    for lead in earlier:
        recorded = lead.recorded
        if recorded is None or not recorded.owner or recorded.owner.startswith("queue:"):
            continue
        if recorded.pool:
            start.rotations.setdefault(recorded.pool, []).append(recorded.owner)
        if lead.released_at is None or since is None or lead.released_at > since:
            start.loads[recorded.owner] = start.loads.get(recorded.owner, 0) + 1
            if lead.released_at is not None:
                start.pending.append((lead.released_at, recorded.owner))
    if baseline is not None and earlier:
        warm = Side.start(baseline, StartState())
        route_in_order(warm, earlier)
        start.warm = warm.state
    return start


def route_in_order(side: Side, leads: Sequence[HistoricalLead]) -> None:
    """Route ``leads`` on ``side`` in their order, freeing each owner's load when its lead was acknowledged
    (before the first lead routed after that moment), as the live loads went."""
    due: list[tuple[datetime, int, str]] = []
    for i, lead in enumerate(leads):
        while due and due[0][0] <= lead.routed_at:
            side.release(heapq.heappop(due)[2])
        decision, _ = side.route(lead)
        if lead.released_at is not None:
            heapq.heappush(due, (lead.released_at, i, decision.owner))


@dataclass(frozen=True, slots=True)
class Exposure:
    """Where a decision put the lead, against its owner's hours and capacity."""

    outside_hours: bool = False  # the owner rep was outside working hours at the routing time
    over_capacity: bool = False  # the owner rep held more open leads than their cap after it (a named or fallback rep)
    passed_at_capacity: bool = False  # some rep was passed over for being at capacity


_EXPOSURE = {(o, c, p): Exposure(o, c, p) for o in (False, True) for c in (False, True) for p in (False, True)}
_ALL_OUTSIDE = "; all eligible reps outside hours"  # the engine's note on a pool pick made out of hours


@dataclass(slots=True)
class Side:
    """One config's run: its router and state."""

    config: RoutingConfig
    state: ReplayState
    router: Router

    @classmethod
    def start(cls, config: RoutingConfig, start: StartState) -> Side:
        state = ReplayState()
        if start.warm is not None:
            state.carry(start.warm)
        state.set_loads(start.loads)
        for pool, order in start.rotations.items():
            state.resume_rotation(pool, order)
        return cls(config, state, Router(config, state))

    def route(self, lead: HistoricalLead) -> tuple[Decision, Exposure]:
        """Decide ``lead`` at its routing time, and where that leaves it against its owner's hours and capacity."""
        decision = self.router.route(lead.lead, at=lead.routed_at)
        passed = AT_CAPACITY in decision.skipped.values()
        rep = self.config.reps.get(decision.owner) if decision.owner_kind == "rep" else None
        if rep is None:
            return decision, _EXPOSURE[False, False, passed]
        if decision.target.startswith("pool "):  # the pool said so when nobody eligible was in hours
            outside = decision.strategy_state.endswith(_ALL_OUTSIDE)
        else:  # a named rep, account owner or fallback rep gets the lead whatever the hour
            outside = not in_hours(rep, self.config, lead.routed_at)
        over = rep.capacity is not None and self.state.load(decision.owner) > rep.capacity
        return decision, _EXPOSURE[outside, over, passed]

    def release(self, owner: str) -> None:
        if owner and not owner.startswith("queue:"):
            self.state.adjust_load(owner, -1)


Visit = Callable[[HistoricalLead, Decision, Exposure, Decision, Exposure], None]


def replay(leads: Sequence[HistoricalLead], baseline: RoutingConfig, candidate: RoutingConfig, start: StartState,
           visit: Visit) -> None:
    """Route every lead, oldest first, under ``baseline`` and ``candidate``; ``visit`` gets each lead's two answers.

    Before each lead, every load due to end by its routing time ends, on each side for the owner
    that side gave the lead to.
    """
    before, after = Side.start(baseline, start), Side.start(candidate, start)
    due: list[tuple[datetime, int, str, str]] = [(at, -i - 1, owner, owner) for i, (at, owner) in enumerate(start.pending)]
    heapq.heapify(due)
    pop, push = heapq.heappop, heapq.heappush
    for i, lead in enumerate(leads):
        at = lead.routed_at
        while due and due[0][0] <= at:
            _, _, was, now = pop(due)
            before.release(was)
            after.release(now)
        old, old_exposure = before.route(lead)
        new, new_exposure = after.route(lead)
        if lead.released_at is not None:
            push(due, (lead.released_at, i, old.owner, new.owner))
        visit(lead, old, old_exposure, new, new_exposure)
