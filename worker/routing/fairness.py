"""Fairness for ``performance_weighted`` pools: a floor and a cap on each member's share of a rolling window.

Pure; the in-memory state keeps a :class:`FairWindow` per pool and calls :func:`choose_fair`, and the
store's ``fair_claim.lua`` does exactly the same inside one script, so under many workers the
guarantees hold exactly, not on average.

The window is the pool's last ``size`` picks. With ``floor_count`` = floor(floor x size) and
``cap_count`` = floor(cap x size), each pick looks at the last ``size - 1`` picks (the window
this pick completes):

1. **cap**: a candidate who already has ``cap_count`` of them is left out (unless every
   candidate is, then the cap is waived for this pick and the note says so);
2. **floor**: a member is owed the floor's share of the picks they were eligible for (an open
   candidate), counted a little early: with ``e`` of the window's picks eligible (this one
   included) and ``n`` open candidates, ``floor_count x min(size, e + n - 1) // size`` of them (so
   members who come back together and are owed at the same pick catch up, one per pick, before
   the floor itself is at stake). A candidate with fewer must get this pick (several: one
   eligible for the whole window first, then the largest shortfall, then candidate order). For a
   member eligible throughout that is ``floor_count``, and forcing eagerly keeps them at or above
   it in every full window: each pick evicts one old pick, so at most one such member can drop
   below per pick, and that member gets it. A member who was away for part of the window (hours,
   out of office, at capacity) is owed only for the picks they were there for, so coming back
   does not force a catch-up run of picks: the floor binds only on a member who is behind;
3. otherwise **smooth weighted round robin** on the weights (integers: the performance
   weights scaled), as nginx does: every open candidate's score grows by its weight, the
   highest wins and pays the total. A forced pick pays the same way, so forcing does not
   shift the long-run shares of the others. ``Fairness.scores`` names whose scores: a
   performance_weighted pool keeps one set per rate key, since each key has its own weights (one
   set shared by all keys would let a rep's picks of one kind spend the credit their weight
   earned on another).

The configuration check makes the floors feasible (floor x members <= 1, floor <= cap,
cap x members >= 1).
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field


@dataclass(frozen=True, slots=True)
class Fairness:
    """A pool's floor and cap, as shares of a rolling window of its last ``window`` picks."""

    window: int = 100
    floor: float = 0.0
    cap: float = 1.0
    scores: str = ""  # whose smooth weighted round robin this pick runs on: one per rate key (the weights differ)

    @property
    def floor_count(self) -> int:
        return math.floor(self.floor * self.window + 1e-9)

    @property
    def cap_count(self) -> int:
        return math.floor(self.cap * self.window + 1e-9)

    def code(self) -> str:
        """How the store's script receives it: ``pw:<window>:<floor count>:<cap count>:<scores>``."""
        return f"pw:{self.window}:{self.floor_count}:{self.cap_count}:{self.scores}"


@dataclass(slots=True)
class FairWindow:
    """One pool's fairness state: the last picks (oldest first), counts in them, and weighted scores."""

    picks: deque[str] = field(default_factory=deque)
    counts: dict[str, int] = field(default_factory=dict)
    eligible: deque[tuple[str, ...]] = field(default_factory=deque)  # each pick's open candidates
    seen: dict[str, int] = field(default_factory=dict)  # picks in the window each member was eligible for
    scores: dict[str, int] = field(default_factory=dict)
    seq: int = 0


@dataclass(frozen=True, slots=True)
class FairChoice:
    rep_id: str
    note: str  # "floor:<rep>", "cap:<rep,rep>", "cap-waived", or ""
    seq: int  # the pool's pick number


def choose_fair(state: FairWindow, rules: Fairness, open_: Sequence[tuple[str, int]]) -> FairChoice | None:
    """Pick among ``open_`` ((rep, weight), candidate order, none at capacity) and record it in ``state``."""
    if not open_:
        return None
    counts = dict(state.counts)
    seen = dict(state.seen)
    if len(state.picks) >= rules.window:  # this pick completes the window: the oldest leaves it
        oldest = state.picks[0]
        counts[oldest] = counts.get(oldest, 0) - 1
        for rep in state.eligible[0] if state.eligible else ():
            seen[rep] -= 1
    allowed = [(rep, w) for rep, w in open_ if counts.get(rep, 0) < rules.cap_count]
    note = ""
    if len(allowed) < len(open_):
        note = "cap:" + ",".join(rep for rep, _ in open_ if counts.get(rep, 0) >= rules.cap_count)
    if not allowed:
        allowed, note = list(open_), "cap-waived"
    owed = []
    for i, (rep, _) in enumerate(allowed):
        there = seen.get(rep, 0) + 1
        ahead = min(rules.window, there + len(allowed) - 1)  # owed a few picks early: see the module's doc
        short = rules.floor_count * ahead // rules.window - counts.get(rep, 0)
        if short > 0:
            owed.append((there < rules.window, -short, i))
    name = {rep: f"{rep}\t{rules.scores}" if rules.scores else rep for rep, _ in allowed}
    scores = {rep: state.scores.get(name[rep], 0) + w for rep, w in allowed}
    total = sum(w for _, w in allowed)
    if owed:
        chosen = allowed[min(owed)[2]][0]
        note = f"floor:{chosen}"
    else:
        chosen = max(allowed, key=lambda c: scores[c[0]])[0]  # max() keeps the first on ties
    scores[chosen] -= total
    state.scores.update({name[rep]: score for rep, score in scores.items()})
    state.picks.append(chosen)
    state.counts[chosen] = state.counts.get(chosen, 0) + 1
    present = tuple(rep for rep, _ in open_)
    state.eligible.append(present)
    for rep in present:
        state.seen[rep] = state.seen.get(rep, 0) + 1
    while len(state.picks) > rules.window:
        gone = state.picks.popleft()
        state.counts[gone] -= 1
    while len(state.eligible) > rules.window:
        for rep in state.eligible.popleft():
            state.seen[rep] -= 1
    state.seq += 1
    return FairChoice(chosen, note, state.seq)


def window_shares(picks: Sequence[str], window: int) -> Mapping[str, tuple[int, int]]:
    """Each rep's fewest and most picks over every full window of ``picks`` (for tests and the benchmark)."""
    out: dict[str, tuple[int, int]] = {}
    reps = set(picks)
    counts = {rep: 0 for rep in reps}
    for i, rep in enumerate(picks):
        counts[rep] += 1
        if i >= window:
            counts[picks[i - window]] -= 1
        if i >= window - 1:
            for r in reps:
                low, high = out.get(r, (counts[r], counts[r]))
                out[r] = (min(low, counts[r]), max(high, counts[r]))
    return out
