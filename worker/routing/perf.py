"""The ``performance_weighted`` strategy: each rep's learned conversion rate tilts their share of a pool.

Pure. The rate table is data handed to the engine (``Router(config, state, rates=table)``); it
is built from ledger outcomes by ``worker/steps/rates.py`` on a beat schedule and kept in the
store, versioned, so each decision names the table it used.

**Smoothing.** For a lead whose key (``by``: segment, industry, source or a combination) is
``s``, rep ``i`` has converted ``k`` of ``n`` leads with that key in the window. The prior is
Beta(m p0, m (1 - p0)), where ``p0`` is the pool's rate for ``s`` (all its members' leads with
that key; the pool's overall rate when the key has none) and ``m`` is the prior strength in
pseudo-leads (``prior_strength``, default 20). The posterior mean is
``(k + m p0) / (n + m)``: a rep with 3 leads sits almost at the pool's rate, a rep with 300 is
judged on their own record.

**Picking.** Deterministic posterior-mean weighting, not Thompson sampling: a rep's weight is
their configured weight times ``(mean / p0) ** tilt`` (``tilt`` default 2), and the store's
atomic step turns weights into picks by smooth weighted round robin, under the pool's floor and
cap (``worker.routing.fairness``). Why: the decision is a function of the input, the store's
state and the table, with no random draw to seed, share or replay across workers; realised
shares follow the weights within one lead over each cycle, so floors and caps can be checked
exactly; and the exploration Thompson sampling buys by randomness comes here from the floor
(every eligible member keeps a share, so every rate keeps being measured) and the warm-up. The
prior's shrinkage keeps noise from moving weights much: with no real differences the posterior
means stay near ``p0`` and the weights near the configured ones.

**With a floor, the weights are planned.** A floor kept lead by lead binds on whatever lead comes
next, so a member who is behind gets an enterprise lead as readily as one of the kind they sell
best. So for a pool with a floor, :func:`plan` shares each key's leads among the learned members
to convert the most while each keeps a little more than the floor of all keys' leads (halfway
to an even share, ``MARGIN``), and a rep's weight for a lead is their planned share of its key,
plus ``LEAN`` of their tilted share (who gets it when the planned reps are away or at capacity).
A rep best at enterprise then takes most enterprise leads and the rest of their floor where they
lose least; the atomic floor still holds exactly whatever the plan says.

**Warm-up.** A member with fewer than ``warmup`` leads in the table (all keys) gets their
configured weight, as plain weighted round robin would; the learned members share the rest of
the pool's weight in proportion to their tilted rates.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from worker.routing.caps import Quota
from worker.routing.fairness import Fairness
from worker.routing.state import Candidate, Pick

SCALE = 1000  # weights reach the store as integers: configured weight x SCALE, split by the tilted rates

Key = tuple[str, ...]


@dataclass(frozen=True, slots=True)
class PerfSettings:
    """What a pool's ``performance:`` section sets (see ``worker.config.schema.Performance``)."""

    by: tuple[str, ...] = ("segment",)
    prior_strength: float = 20.0
    tilt: float = 2.0
    warmup: int = 20
    floor: float = 0.0  # the pool's floor and cap: with a floor, the weights are planned (see ``plan``)
    cap: float = 1.0


@dataclass(frozen=True)
class RateTable:
    """Leads and conversions per (rep, key), learned from the ledger over a window, and its version.

    ``by`` is the fields the key is made of; ``counts[key][rep] = (converted, leads)``.
    """

    by: tuple[str, ...]
    counts: Mapping[Key, Mapping[str, tuple[int, int]]]
    built_at: str = ""
    window_days: float = 0.0
    version: str = field(default="")

    def __post_init__(self) -> None:
        if not self.version:
            object.__setattr__(self, "version", _version(self.by, self.counts))

    @classmethod
    def build(cls, by: Sequence[str], rows: Iterable[tuple[str, Key, bool]], built_at: str = "",
              window_days: float = 0.0) -> RateTable:
        """A table from observations: (rep, key, converted) per lead routed in the window."""
        counts: dict[Key, dict[str, list[int]]] = {}
        for rep, key, converted in rows:
            cell = counts.setdefault(tuple(key), {}).setdefault(rep, [0, 0])
            cell[0] += int(bool(converted))
            cell[1] += 1
        frozen = {k: {r: (c[0], c[1]) for r, c in reps.items()} for k, reps in counts.items()}
        return cls(tuple(by), frozen, built_at, window_days)

    def to_dict(self) -> dict[str, Any]:
        return {"version": self.version, "by": list(self.by), "built_at": self.built_at, "window_days": self.window_days,
                "counts": [[list(k), {r: list(v) for r, v in reps.items()}] for k, reps in self.counts.items()]}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> RateTable:
        counts = {tuple(k): {r: (int(v[0]), int(v[1])) for r, v in reps.items()} for k, reps in data["counts"]}
        return cls(tuple(data["by"]), counts, str(data.get("built_at", "")), float(data.get("window_days", 0.0)),
                   str(data.get("version", "")))

    def key_of(self, facts: Mapping[str, Any]) -> Key:
        """The lead's key: each ``by`` field's value as text ("" when missing)."""
        return tuple(_text(facts.get("lead_source" if name == "source" else name)) for name in self.by)

    def observations(self, rep: str) -> int:
        """All of a rep's leads in the table, every key: what the warm-up counts."""
        return sum(reps.get(rep, (0, 0))[1] for reps in self.counts.values())


def _text(value: Any) -> str:
    return "" if value is None else str(value).strip().lower()


def _version(by: Sequence[str], counts: Mapping[Key, Mapping[str, tuple[int, int]]]) -> str:
    canonical = json.dumps([list(by), sorted([list(k), sorted((r, list(v)) for r, v in reps.items())]
                                             for k, reps in counts.items())], separators=(",", ":"))
    return "r" + hashlib.sha256(canonical.encode()).hexdigest()[:10]


def posterior_mean(converted: int, leads: int, prior_rate: float, strength: float) -> float:
    """The mean of Beta(converted + strength p0, leads - converted + strength (1 - p0))."""
    return (converted + strength * prior_rate) / (leads + strength)


@dataclass(frozen=True, slots=True)
class RepRate:
    rep: str
    mean: float | None  # None: in warm-up
    leads: int  # with this key (learned) or in all (warm-up)
    weight: int  # what the atomic pick uses


@dataclass(frozen=True, slots=True)
class Weighting:
    """The weights for one pick and how they came about, for the decision's explanation."""

    rates: tuple[RepRate, ...]
    prior: float | None
    key: Key
    version: str

    def weight_of(self, rep: str) -> int:
        return next(r.weight for r in self.rates if r.rep == rep)


def pool_prior(table: RateTable, key: Key, members: Sequence[str]) -> float | None:
    """The pool's conversion rate for ``key`` (all keys when it has no leads there); None with no leads at all."""
    cells = table.counts.get(key, {})
    k = sum(cells.get(m, (0, 0))[0] for m in members)
    n = sum(cells.get(m, (0, 0))[1] for m in members)
    if n:
        return k / n
    k = sum(reps.get(m, (0, 0))[0] for reps in table.counts.values() for m in members)
    n = sum(reps.get(m, (0, 0))[1] for reps in table.counts.values() for m in members)
    return k / n if n else None


def weigh(table: RateTable | None, settings: PerfSettings, members: Sequence[str],
          candidates: Sequence[tuple[str, int]], facts: Mapping[str, Any]) -> Weighting:
    """Integer weights for ``candidates`` ((rep, configured weight)) from the table's rates for this lead's key."""
    if table is None:
        return Weighting(tuple(RepRate(r, None, 0, w * SCALE) for r, w in candidates), None, (), "none")
    key = table.key_of(facts)
    prior = pool_prior(table, key, members)
    cells = table.counts.get(key, {})
    warm = {r for r, _ in candidates if table.observations(r) < settings.warmup or prior is None}
    learned = [(r, w) for r, w in candidates if r not in warm]
    tilted: dict[str, float] = {}
    means: dict[str, float] = {}
    for rep, w in learned:
        k, n = cells.get(rep, (0, 0))
        assert prior is not None
        means[rep] = posterior_mean(k, n, prior, settings.prior_strength)
        tilted[rep] = w * ((means[rep] / prior) ** settings.tilt if prior > 0 else 1.0)
    if learned and settings.floor > 0 and prior is not None:
        planned = plan_for(table, settings, members).get(key)
        if planned is not None:  # lean on the plan; the tilt orders the rest (planned reps away or at capacity)
            whole = sum(tilted.values()) or 1.0
            tilted = {r: w * (planned.get(r, 0.0) + LEAN * tilted[r] / whole) for r, w in learned}
    shares = _apportion(sum(w for _, w in learned) * SCALE, tilted) if learned else {}
    rates = []
    for rep, w in candidates:
        if rep in warm:
            rates.append(RepRate(rep, None, table.observations(rep), w * SCALE))
        else:
            rates.append(RepRate(rep, means[rep], cells.get(rep, (0, 0))[1], max(1, shares[rep])))
    return Weighting(tuple(rates), prior, key, table.version)


LEAN = 0.05  # with a plan, the tilted weights' part: who gets a lead when the planned reps cannot take it
_PLANS: dict[tuple[Any, ...], dict[Key, dict[str, float]]] = {}


def plan_for(table: RateTable, settings: PerfSettings, members: Sequence[str]) -> dict[Key, dict[str, float]]:
    """:func:`plan` for a pool's learned members from ``table`` (kept per table version: it changes with it)."""
    learned = tuple(m for m in members if table.observations(m) >= settings.warmup)
    cache = (table.version, learned, tuple(members), settings)
    found = _PLANS.get(cache)
    if found is None:
        means: dict[Key, dict[str, float]] = {}
        volume: dict[Key, float] = {}
        for key, cells in table.counts.items():
            n = sum(cells.get(m, (0, 0))[1] for m in members)
            prior = pool_prior(table, key, members)
            if not n or prior is None:
                continue
            volume[key] = float(n)
            means[key] = {m: posterior_mean(*cells.get(m, (0, 0)), prior, settings.prior_strength) for m in learned}
        share = len(learned) / len(members) if members else 0.0  # the learned members' part of every key
        floor = min(settings.floor + (1 / max(len(members), 1) - settings.floor) * MARGIN, 1 / max(len(members), 1))
        found = plan(means, volume, learned, floor / share if share else 0.0, min(1.0, settings.cap / share) if share else 1.0)
        if len(_PLANS) > 64:
            _PLANS.clear()
        _PLANS[cache] = found
    return found


MARGIN = 0.5  # plan each member halfway from the floor to an even share, so the window's ups and downs rarely force


def plan(means: Mapping[Key, Mapping[str, float]], volume: Mapping[Key, float], reps: Sequence[str], floor: float,
         cap: float = 1.0) -> dict[Key, dict[str, float]]:
    """Each key's leads shared among ``reps`` to convert the most (the sum of volume x share x rate) while every
    rep keeps at least ``floor`` and at most ``cap`` of all the keys' leads: per key, each rep's share.

    Why: a floor kept lead by lead binds on whatever lead comes next, whatever its key, so a rep who is behind
    gets an enterprise lead as readily as one of the kind they sell best; planned, each rep's floor comes
    from the keys where they lose least against the best. Greedy and deterministic: every key goes to its
    best rep (first in ``reps`` on ties); then, while a rep is below the floor, the cheapest move (the smallest
    rate given up per lead) from a rep above it, and while one is above the cap, the cheapest move to one
    below it. Infeasible bounds (floor x reps > 1) stop at what can be done.
    """
    total = sum(volume.values())
    if not reps or total <= 0:
        return {}
    order = {r: i for i, r in enumerate(reps)}
    got = {k: {r: 0.0 for r in reps} for k in volume}
    for k in volume:
        best = max(reps, key=lambda r: (means[k].get(r, 0.0), -order[r]))
        got[k][best] = volume[k]
    held = {r: sum(got[k][r] for k in volume) for r in reps}
    low, high, eps = floor * total, cap * total, 1e-9 * total
    for _ in range(10 * len(reps) * (len(volume) + 1)):
        short = [r for r in reps if held[r] < low - eps]
        over = [r for r in reps if held[r] > high + eps]
        if short:
            to = min(short, key=lambda r: (held[r], order[r]))
            moves = [(means[k].get(d, 0.0) - means[k].get(to, 0.0), order[d], k, d) for k in volume for d in reps
                     if d != to and got[k][d] > eps and held[d] > low + eps]
            if not moves:
                break
            _, _, k, d = min(moves)
            amount = min(got[k][d], low - held[to], held[d] - low)
        elif over:
            d = max(over, key=lambda r: (held[r], -order[r]))
            moves = [(means[k].get(d, 0.0) - means[k].get(t, 0.0), order[t], k, t) for k in volume for t in reps
                     if t != d and got[k][d] > eps and held[t] < high - eps]
            if not moves:
                break
            _, _, k, to = min(moves)
            amount = min(got[k][d], held[d] - high, high - held[to])
        else:
            break
        got[k][d] -= amount
        got[k][to] += amount
        held[d] -= amount
        held[to] += amount
    return {k: {r: v / volume[k] for r, v in cells.items()} for k, cells in got.items()}


def _apportion(total: int, scores: Mapping[str, float]) -> dict[str, int]:
    """``total`` split in proportion to ``scores`` as integers that add up exactly (largest remainder)."""
    whole = sum(scores.values())
    if whole <= 0:
        scores = {r: 1.0 for r in scores}
        whole = float(len(scores))
    exact = {r: total * s / whole for r, s in scores.items()}
    out = {r: int(v) for r, v in exact.items()}
    rest = total - sum(out.values())
    for rep in sorted(exact, key=lambda r: (-(exact[r] - out[r]), list(exact).index(r)))[:rest]:
        out[rep] += 1
    return out


def explain(weighting: Weighting, by: Sequence[str], chosen: str, note: str, floor: float, cap: float) -> str:
    """``perf-weighted (rates r1a2b3c4d5, segment=smb): ana 0.21 (n = 140), lee 0.17 (n = 96); floor keeps tom at >= 15%``."""
    if weighting.version == "none":
        head = "perf-weighted (no rate table yet: weighted round robin)"
    else:
        key = ", ".join(f"{name}={value or '-'}" for name, value in zip(by, weighting.key, strict=False))
        prior = f", pool {weighting.prior:.2f}" if weighting.prior is not None else ", no outcomes yet"
        head = f"perf-weighted (rates {weighting.version}, {key}{prior})"
    parts = []
    for r in sorted(weighting.rates, key=lambda r: (r.mean is None, -(r.mean or 0), r.rep)):
        parts.append(f"{r.rep} {r.mean:.2f} (n = {r.leads})" if r.mean is not None else f"{r.rep} warm-up (n = {r.leads})")
    text = f"{head}: {', '.join(parts)} -> {chosen}"
    if note.startswith("floor:"):
        text += f"; floor keeps {note[6:]} at >= {floor * 100:g}%"
    elif note.startswith("cap:"):
        text += f"; cap holds {note[4:].replace(',', ', ')} at <= {cap * 100:g}%"
    elif note == "cap-waived":
        text += f"; every candidate at the {cap * 100:g}% cap: waived for this lead"
    return text


class FairState(Protocol):
    """A state that makes ``performance_weighted`` picks: every state in leadroute is one."""

    def pick_fair(self, pool: str, members: Sequence[str], candidates: Sequence[Candidate], fairness: Fairness,
                  caps: Mapping[str, Sequence[Quota]] | None = None) -> Pick:
        """Choose among ``candidates`` (weights already tilted) under ``fairness`` and their caps per period,
        atomically; ``detail`` is ``#<pick number> <note>`` (``floor:<rep>``, ``cap:<reps>``, ``cap-waived``)."""
        ...
