"""Fairness for ``performance_weighted`` pools: a floor and a cap on each member's share of a rolling window.

Pure; the in-memory state keeps a :class:`FairWindow` per pool and calls :func:`choose_fair`, and the
store's ``fair_claim.lua`` does exactly the same inside one script, so under many workers the
guarantees hold exactly, not on average.

The window is the pool's last ``size`` picks. With ``floor_count`` = floor(floor x size) and
``cap_count`` = floor(cap x size), each pick looks at the last ``size - 1`` picks (the window
this pick completes):

1. **cap**: a candidate who already has ``cap_count`` of them is left out (unless every
   candidate is, then the cap is waived for this pick and the note says so);
2. **floor**: a candidate with fewer than ``floor_count`` must get this pick (several: the
   fewest, then candidate order). Forcing eagerly like this keeps every member at or above the
   floor in every full window once they have been eligible for one: each pick evicts one old pick,
   so at most one member can drop below the floor per pick, and that member gets the pick;
3. otherwise **smooth weighted round robin** on the weights (integers: the performance
   weights scaled), as nginx does: every open candidate's score grows by its weight, the
   highest wins and pays the total. A forced pick pays the same way, so forcing does not
   shift the long-run shares of the others.

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

    @property
    def floor_count(self) -> int:
        return math.floor(self.floor * self.window + 1e-9)

    @property
    def cap_count(self) -> int:
        return math.floor(self.cap * self.window + 1e-9)

    def code(self) -> str:
        """How the store's script receives it: ``pw:<window>:<floor count>:<cap count>``."""
        return f"pw:{self.window}:{self.floor_count}:{self.cap_count}"


@dataclass(slots=True)
class FairWindow:
    """One pool's fairness state: the last picks (oldest first), counts in them, and weighted scores."""

    picks: deque[str] = field(default_factory=deque)
    counts: dict[str, int] = field(default_factory=dict)
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
    if len(state.picks) >= rules.window:  # this pick completes the window: the oldest leaves it
        oldest = state.picks[0]
        counts[oldest] = counts.get(oldest, 0) - 1
    allowed = [(rep, w) for rep, w in open_ if counts.get(rep, 0) < rules.cap_count]
    note = ""
    if len(allowed) < len(open_):
        note = "cap:" + ",".join(rep for rep, _ in open_ if counts.get(rep, 0) >= rules.cap_count)
    if not allowed:
        allowed, note = list(open_), "cap-waived"
    owed = [(counts.get(rep, 0), i) for i, (rep, _) in enumerate(allowed) if counts.get(rep, 0) < rules.floor_count]
    scores = {rep: state.scores.get(rep, 0) + w for rep, w in allowed}
    total = sum(w for _, w in allowed)
    if owed:
        chosen = allowed[min(owed)[1]][0]
        note = f"floor:{chosen}"
    else:
        chosen = max(allowed, key=lambda c: scores[c[0]])[0]  # max() keeps the first on ties
    scores[chosen] -= total
    state.scores.update(scores)
    state.picks.append(chosen)
    state.counts[chosen] = state.counts.get(chosen, 0) + 1
    while len(state.picks) > rules.window:
        gone = state.picks.popleft()
        state.counts[gone] -= 1
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
