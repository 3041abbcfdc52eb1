"""The simulated month (issue 15): what each routing strategy is worth, on the real engine and a real Redis store.

One team, one month of inbound leads, routed four ways on the same lead stream and seed:

1. ``round_robin``: one rotation over everyone, as HubSpot rotation or a basic Apex round robin
   does: no hours, out-of-office days, capacity, regions or segments;
2. ``rules``: leadroute rules by the lead's region into its team's round-robin pool, with hours,
   out-of-office and capacity, and the pool's ``hold`` (``hold``, 30 minutes): a lead that comes
   while the whole pool is off waits for its first member's start, and one that finds every member
   in hours at capacity waits up to 30 minutes (from the pool's opening, or its arrival if later)
   for one to have room, tried again every minute, before going to the next to start;
3. ``rules_sla``: the same plus an SLA ladder: a lead not touched 15 minutes after its SLA clock
   starts (half the 30-minute SLA; see Measures) is reassigned (engine ``route_to`` the same pool, earlier
   owners excluded), and again 15 minutes later, at most twice;
4. ``performance_weighted``: the rules, each pool ``performance_weighted`` (by segment, prior
   strength 20, tilt 2, warm-up 20) with a 15% floor over a 100-lead window; its rate table is
   refreshed every midnight (UTC) from the outcomes known by then over the last 90 days (the
   strategy's ``window``), starting from the 90 days before the month (the same team routed by the
   rules on that quarter's leads: the ledger a team switching to the strategy would have).

Every decision goes through ``worker.routing.engine.Router`` against a ``RedisStore`` on a
throwaway Redis server (or ``--redis-url``), each strategy under its own key prefix. ``--memory``
uses the engine's in-process state instead (the same picks: tests hold the store's scripts to
it), for quick exploration.

Parameters (all in :class:`Scenario`, printed with ``--json`` under ``scenario``):

* **Arrivals**: ``leads`` (6,000) in the 30 days of June 2026, 300 per working day being a busy
  mid-market inbound team's volume. Each lead's own time zone is New York 50%, Chicago 25%, Los
  Angeles 25% (the team sells in the US); its local hour follows ``HOURLY`` (a business-hours
  hump peaking 10:00-15:00, a tail into the evening, little at night: the shape of B2B web-form
  traffic), weekends at 15% of a weekday.
* **Segments**: SMB 60%, mid-market 30%, enterprise 10%; base conversion 12%, 15%, 18% (lead ->
  opportunity rates for inbound B2B are commonly quoted at 10-20%).
* **Reps and teams** (``team``): 12 reps, in New York (5), Chicago (3) and Los Angeles (4), working
  09:00-17:00 local Monday-Friday. ``pods`` (default): two regional pods of six generalists who
  take every segment, East (the five New York reps and one in Chicago) for New York leads, West
  (two in Chicago, four in Los Angeles) for Chicago and Los Angeles leads; this is how many
  inbound SDR teams are organised, and it is the team the issue's strategy is for: it learns
  each rep's rate *by segment*, which only matters where a pool takes several segments.
  ``specialists``: pools by segment (6 SMB, 4 mid-market, 2 enterprise, shuffled over the time
  zones), where each pool sees one segment, so ``by: [segment]`` can only tell reps apart within
  it and a 15% floor in the pool of six leaves 10% of its leads to learning. Capacity 12 open
  (unacknowledged) leads each (a night's leads fit in the first reps on; a weekend's do not: the
  rest go to the next to start); each takes 0-3 out-of-office working days in the month.
* **Acknowledgement**: a rep's median in-hours response is 3-10 minutes (uniform per rep; a rep
  notified in Slack or e-mail who works the queue answers in minutes), log-normal with sigma 0.6
  (the slowest reps take over half an hour about once in 30 leads), stretched by
  ``1 + 1.5 x open/capacity`` when loaded (open: the leads assigned to them and not yet touched).
  Outside their hours or out of office, the clock waits for their next working minute; a response
  that runs past the end of the day continues the next working day.
* **Hold** (``hold``, minutes, rules and performance_weighted; 0 turns it off): without it a
  Monday's pile (the weekend's leads) overflows the first reps on (capacity 12) to colleagues who
  start up to two hours after the pool opened (the West pod's Los Angeles reps start two hours after
  its Chicago reps), and every one of those breaches: seed 7 breached 7.7% with it off, 5.5% with
  it on. 30 minutes is the SLA: waiting longer cannot save the lead's SLA.
* **Wind-down** (``wind_down``, rules only): the reps' hours end with a 30-minute wind-down
  (``hours.wind_down``, the SLA's length): in a rep's last half hour a new lead goes to a
  colleague in the pool with longer left when there is one (without it, about one lead in seven
  given in a rep's last working hour breached: the response ran into the next morning).
* **Conversion**: ``base(segment) x skill(rep, segment) x decay(time to first touch)``, with
  ``decay(t) = 0.35 + 0.65 exp(-t / 60 min)`` (0.95 at 5 min, 0.74 at 30 min, 0.59 at an hour,
  0.35 after a day). The slope is deliberately milder than the lead-response studies (Oldroyd's
  MIT/InsideSales study: 21x more qualification at 5 than at 30 minutes; HBR 2011, "The Short Life
  of Online Sales Leads": 7x within the hour), so speed is not overstated. ``skill`` is
  log-normal per rep and segment, independently, with ``sigma`` 0.35: within a segment the best of
  six converts about twice the worst, and a rep's strength in one segment says nothing of another
  (an enterprise closer is not a better SMB rep): the seeds' "a rep who gets the right lead
  closes at a higher rate". It is an assumption, not a measurement (no public source gives rep
  spreads by segment), so the sensitivity table halves sigma and sets it to 0 (re-running the
  rules and performance_weighted, each with its own earlier quarter); fixed per seed.
* **Wins**: a converted lead is won with probability ``0.25 x skill`` (capped at 0.9); outcomes
  are known 3 days after the first touch (the table learns only from those).
* **The fallback queue**: a lead no pool member can take (everyone eligible at capacity) goes to
  the triage queue, where the lead's team pulls it an hour (``triage_minutes``) after its SLA
  clock starts, converting at the segment's base rate (an average rep); counted per strategy.

Measures, per strategy: SLA breach rate (first touch more than 30 minutes after the SLA clock
starts: the lead's creation, or the next minute someone in the lead's team (its pool in the
rules) is working, so a Friday-night lead is not breached by Saturday; the same clock for every
strategy), p50/p90 speed to lead (creation -> first touch, wall clock), conversion (converted /
leads), win rate (won / converted), per pool max/min and Gini of leads got over leads expected (as
``leadroute simulate`` and ``report`` count them: each lead shared among the members eligible for
it; the ladder's reassignments count too), and for (4) floor violations (a member eligible at
every lead of a 100-lead window of their pool who got fewer than 15 of them).

Targets on the default scenario (printed with what was measured, met or not):
(2) or (3) breaches the SLA at most 1/5 as often as (1); (4) converts at least 10% more (relative)
than (2); every pool's max/min at most 1.2 for (2) and (3); no floor violation in (4). With no
real differences (sigma 0), (4) must not do worse than (2) by more than noise (two standard errors
of the difference of the two conversion rates).

    python bench/outcomes.py [--seed 7] [--leads 6000] [--team pods|specialists] [--json] [--html FILE]
                             [--redis-url URL | --memory]
"""

from __future__ import annotations

import argparse
import heapq
import json
import math
import random
import sys
import tempfile
import time
import uuid
from collections import defaultdict
from dataclasses import asdict, dataclass, field, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import yaml

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from worker.cli.simulate import Summary
from worker.config import RoutingConfig, parse_config
from worker.config.schema import Assign
from worker.domain.stats import percentile
from worker.routing.engine import Decision, Router
from worker.routing.perf import RateTable
from worker.routing.state import InMemoryState
from worker.store.connection import RedisServer, client_from_url, free_port, redis_server_binary
from worker.store.redis_store import RedisStore

START = datetime(2026, 6, 1, tzinfo=UTC)
DAYS = 30
SEGMENTS = {"smb": (0.60, 0.12), "mid": (0.30, 0.15), "enterprise": (0.10, 0.18)}  # share of leads, base conversion
LEAD_ZONES = {"America/New_York": 0.5, "America/Chicago": 0.25, "America/Los_Angeles": 0.25}
HOURLY = [0.2, 0.1, 0.1, 0.1, 0.2, 0.4, 0.8, 1.5, 3.0, 5.0, 6.5, 7.0, 6.5, 6.5, 7.0, 6.5, 5.0, 3.5, 2.5, 2.0, 1.5, 1.2,
          0.8, 0.4]
TEAM = [("America/New_York", 5), ("America/Chicago", 3), ("America/Los_Angeles", 4)]
# pods (default): two regional pods of six, every segment; the lead's region picks the pod
PODS = {"east": ["America/New_York"] * 5 + ["America/Chicago"], "west": ["America/Chicago"] * 2 + ["America/Los_Angeles"] * 4}
REGIONS = {"east": ("America/New_York",), "west": ("America/Chicago", "America/Los_Angeles")}
STATES = {"America/New_York": "NY", "America/Chicago": "IL", "America/Los_Angeles": "CA"}
SPECIALISTS = {"smb": 6, "mid": 4, "enterprise": 2}  # --team specialists: pools by segment, members shuffled
SLA_MINUTES = 30.0
STRATEGIES = ("round_robin", "rules", "rules_sla", "performance_weighted")
FLOOR, WINDOW = 0.15, 100
RATE_WINDOW_DAYS = 90  # performance.window: the rates are learned from the last 90 days of outcomes
SENSITIVE = ("rules", "performance_weighted")  # the sensitivity table compares what learning adds


@dataclass(frozen=True)
class Scenario:
    seed: int = 7
    leads: int = 6000
    skill_sigma: float = 0.35
    capacity: int = 12
    ooo_days_max: int = 3
    ack_median_min: tuple[float, float] = (3.0, 10.0)
    ack_sigma: float = 0.6
    ladder_minutes: float = 15.0
    load_stretch: float = 1.5
    decay_floor: float = 0.35
    decay_minutes: float = 60.0
    win_base: float = 0.25
    outcome_lag_days: float = 3.0
    triage_minutes: float = 60.0
    weekend_weight: float = 0.15
    team: str = "pods"
    history_days: int = 90
    wind_down: int = 30
    hold: int = 30


@dataclass
class Rep:
    id: str
    zone: ZoneInfo
    pool: str
    ooo: set[Any]
    ack_median: float
    skill: dict[str, float]


@dataclass
class Lead:
    id: str
    created: datetime
    segment: str
    employees: int
    zone: str
    u_ack: list[float] = field(default_factory=list)  # uniform draws: the same lead gets the same luck everywhere
    u_convert: float = 0.0
    u_win: float = 0.0


# -- the world ---------------------------------------------------------------------------------------


def make_team(sc: Scenario, rng: random.Random) -> list[Rep]:
    reps = []
    if sc.team == "pods":
        seats = [(zone, pod) for pod, zones in PODS.items() for zone in zones]
    else:
        segments = [s for s, n in SPECIALISTS.items() for _ in range(n)]
        rng.shuffle(segments)
        seats = list(zip([z for z, n in TEAM for _ in range(n)], segments, strict=True))
    for i, (zone, pool) in enumerate(seats):
        tz = ZoneInfo(zone)
        workdays = [START.astimezone(tz).date() + timedelta(days=d) for d in range(DAYS)]
        workdays = [d for d in workdays if d.weekday() < 5]
        ooo = set(rng.sample(workdays, rng.randint(0, sc.ooo_days_max)))
        skill = {s: math.exp(rng.gauss(0.0, 1.0) * sc.skill_sigma) for s in SEGMENTS}
        reps.append(Rep(f"rep{i:02d}", tz, pool, ooo, rng.uniform(*sc.ack_median_min), skill))
    return reps


def pools_of(sc: Scenario) -> list[str]:
    return list(PODS) if sc.team == "pods" else list(SPECIALISTS)


def pool_of(sc: Scenario, lead: Lead) -> str:
    """The pool the rules send ``lead`` to (its team: whose working hours start its SLA clock)."""
    if sc.team == "pods":
        return next(pod for pod, zones in REGIONS.items() if lead.zone in zones)
    return lead.segment


def make_leads(sc: Scenario, rng: random.Random, start: datetime = START, days: int = DAYS) -> list[Lead]:
    slots, weights, zones = [], [], []
    for zone in LEAD_ZONES:
        tz = ZoneInfo(zone)
        for h in range(days * 24):
            at = start + timedelta(hours=h)
            local = at.astimezone(tz)
            day = sc.weekend_weight if local.weekday() >= 5 else 1.0
            slots.append(at)
            zones.append(zone)
            weights.append(LEAD_ZONES[zone] * day * HOURLY[local.hour])
    segs, seg_w = list(SEGMENTS), [v[0] for v in SEGMENTS.values()]
    leads = []
    for i, j in enumerate(rng.choices(range(len(slots)), weights, k=round(sc.leads * days / DAYS))):
        slot = slots[j]
        segment = rng.choices(segs, seg_w)[0]
        employees = {"smb": rng.randint(5, 199), "mid": rng.randint(200, 999), "enterprise": rng.randint(1000, 20000)}[segment]
        created = slot + timedelta(seconds=rng.uniform(0, 3600))
        leads.append(Lead(f"L{i:05d}", created, segment, employees, zones[j], [rng.random() for _ in range(3)], rng.random(),
                          rng.random()))
    leads.sort(key=lambda lead: lead.created)
    return leads


def working(rep: Rep, at: datetime) -> bool:
    local = at.astimezone(rep.zone)
    return local.weekday() < 5 and local.date() not in rep.ooo and 9 <= local.hour < 17


def add_working_minutes(rep: Rep, at: datetime, minutes: float) -> datetime:
    """``at`` plus ``minutes`` of the rep's working time (hours, weekdays, not out of office)."""
    local = at.astimezone(rep.zone)
    left = minutes
    for _ in range(60):
        day = local.date()
        start = datetime(day.year, day.month, day.day, 9, tzinfo=rep.zone)
        end = start + timedelta(hours=8)
        if local.weekday() < 5 and day not in rep.ooo and local < end:
            begin = max(local, start)
            room = (end - begin).total_seconds() / 60
            if left <= room:
                return (begin + timedelta(minutes=left)).astimezone(UTC)
            left -= room
        nxt = day + timedelta(days=1)
        local = datetime(nxt.year, nxt.month, nxt.day, 0, tzinfo=rep.zone)
    return (local + timedelta(minutes=left)).astimezone(UTC)


class TeamClock:
    """When the SLA clock starts for a lead: the first minute at or after its creation that some rep is working
    (to the quarter hour, precomputed for the month and the weeks around it)."""

    STEP = timedelta(minutes=15)

    def __init__(self, reps: list[Rep], start: datetime, days: int) -> None:
        self.start = start
        slots = [start + i * self.STEP for i in range(days * 96)]
        open_ = [any(working(r, t) for r in reps) for t in slots]
        self.next: list[int] = [0] * (len(slots) + 1)
        self.next[len(slots)] = len(slots)
        for i in range(len(slots) - 1, -1, -1):
            self.next[i] = i if open_[i] else self.next[i + 1]
        self.open = open_

    def starts(self, at: datetime) -> datetime:
        i = int((at - self.start) / self.STEP)
        if 0 <= i < len(self.open) and self.open[i]:
            return at
        j = self.next[min(max(i + 1, 0), len(self.open))]
        return self.start + j * self.STEP


def ack_delay(sc: Scenario, rep: Rep, load: int, u: float) -> float:
    """Minutes of the rep's working time until first touch (log-normal, stretched by load)."""
    z = math.sqrt(2) * _erfinv(2 * min(max(u, 1e-9), 1 - 1e-9) - 1)
    open_ = min(max(load, 0), sc.capacity)
    return rep.ack_median * math.exp(sc.ack_sigma * z) * (1 + sc.load_stretch * open_ / sc.capacity)


def _erfinv(y: float) -> float:
    a = 0.147  # Winitzki's approximation, refined by two Newton steps
    ln = math.log(1 - y * y)
    t = 2 / (math.pi * a) + ln / 2
    x = math.copysign(math.sqrt(math.sqrt(t * t - ln / a) - t), y)
    for _ in range(2):
        x -= (math.erf(x) - y) / (2 / math.sqrt(math.pi) * math.exp(-x * x))
    return x


# -- configs -----------------------------------------------------------------------------------------


def config_text(reps: list[Rep], strategy: str, sc: Scenario) -> str:
    def rep(r: Rep, full: bool) -> dict[str, Any]:
        out: dict[str, Any] = {"id": r.id, "timezone": r.zone.key}
        if full:
            out |= {"hours": {"start": "09:00", "end": "17:00", "wind_down": sc.wind_down}, "capacity": sc.capacity,
                    "out_of_office": [{"start": d.isoformat(), "end": d.isoformat()} for d in sorted(r.ooo)]}
        return out

    full = strategy != "round_robin"
    data: dict[str, Any] = {"version": 1, "timezone": "America/New_York", "reps": [rep(r, full) for r in reps],
                            "queues": {"triage": {"salesforce": "00G1"}}, "fallback": {"queue": "triage"}}
    if not full:
        data["pools"] = {"everyone": {"members": [r.id for r in reps], "strategy": "round_robin"}}
        data["rules"] = [{"name": "all", "assign": {"pool": "everyone"}}]
        return yaml.safe_dump(data, sort_keys=False)
    data["segments"] = {"enterprise": {"employees": {"gte": 1000}}, "mid": {"employees": {"between": [200, 999]}},
                        "smb": {"employees": {"lt": 200}}}
    data["pools"] = {}
    for name in pools_of(sc):
        pool: dict[str, Any] = {"members": [r.id for r in reps if r.pool == name], "strategy": "round_robin"}
        if strategy == "performance_weighted":
            pool = {"members": pool["members"], "strategy": "performance_weighted",
                    "performance": {"by": ["segment"], "floor": FLOOR, "fairness_window": WINDOW, "warmup": 20}}
        if sc.hold:
            pool["hold"] = f"{sc.hold}m"
        data["pools"][name] = pool
    if sc.team == "pods":
        data["territories"] = {pod: {"countries": ["US"], "states": [STATES[z] for z in REGIONS[pod]]} for pod in PODS}
        data["rules"] = [{"name": pod, "when": {"territory": pod}, "assign": {"pool": pod}} for pod in PODS]
    else:
        data["rules"] = [{"name": s, "when": {"segment": s}, "assign": {"pool": s}} for s in SPECIALISTS]
    return yaml.safe_dump(data, sort_keys=False)


class _MemoryState(InMemoryState):
    """``--memory``: the engine's in-process state (the same picks as the store's scripts, as the tests hold them to);
    for quick exploration, the reported figures use Redis."""

    def clear(self) -> None:
        """Nothing outlives the run."""


# -- one run -----------------------------------------------------------------------------------------


@dataclass
class Outcome:
    rep: str
    segment: str
    touched: datetime
    converted: bool
    won: bool


def run(strategy: str, sc: Scenario, reps: list[Rep], leads: list[Lead], client: Any,
        history: list[tuple[str, tuple[str, ...], bool, datetime]] | None = None) -> dict[str, Any]:
    """Route ``leads`` one way; the measures, the outcomes (for a later month's history) and the decisions' balance."""
    config: RoutingConfig = parse_config(config_text(reps, strategy, sc), f"<{strategy}>", today=START.date())
    store: Any = (RedisStore(client, prefix=f"bench-outcomes-{uuid.uuid4().hex[:8]}", ledger_outbox=False)
                  if client is not None else _MemoryState())
    by_id = {r.id: r for r in reps}
    summary = Summary(config)
    loads: dict[str, int] = defaultdict(int)  # the store's open loads, mirrored (one round trip less per lead)
    pending: list[tuple[datetime, int, str]] = []  # (ack time, lead index, rep): the load comes off then
    owner_of: dict[int, tuple[str, int]] = {}  # lead index -> (rep, assignment token)
    observations = list(history or [])
    table: RateTable | None = None
    next_refresh = START
    waits, breaches, outcomes, queued = [], 0, [], 0
    held: set[int] = set()  # leads their pool held for a while (``hold``)
    pool_picks: dict[str, list[tuple[str, frozenset[str]]]] = defaultdict(list)
    ladder = strategy == "rules_sla"
    origin = leads[0].created.replace(hour=0, minute=0, second=0, microsecond=0) - timedelta(days=1)
    clocks = {name: TeamClock([r for r in reps if r.pool == name], origin,
                                 (leads[-1].created - origin).days + 9) for name in pools_of(sc)}
    started = time.perf_counter()
    try:
        arrivals = [(lead.created, i) for i, lead in enumerate(leads)]  # sorted by creation: already a heap
        while arrivals:
            now, index = heapq.heappop(arrivals)  # a lead as it comes, or again when its pool's hold says
            lead = leads[index]
            while pending and pending[0][0] <= now:
                _, i, rep = heapq.heappop(pending)
                if owner_of.get(i, ("",))[0] == rep:
                    store.adjust_load(rep, -1)
                    loads[rep] -= 1
            if strategy == "performance_weighted" and now >= next_refresh:
                since = now - timedelta(days=RATE_WINDOW_DAYS)
                known = [(r, k, c) for r, k, c, at in observations if since <= at <= now]
                table = RateTable.build(["segment"], known, now.isoformat(), RATE_WINDOW_DAYS)
                next_refresh = now.replace(hour=0, minute=0, second=0, microsecond=0) + timedelta(days=1)
            router = Router(config, store, rates=table)
            raw = {"id": lead.id, "employees": lead.employees, "country": "US", "state": STATES[lead.zone],
                   "created_at": lead.created.isoformat()}
            team = clocks[pool_of(sc, lead)]
            decision = router.route(raw, at=now, hold=True)
            if decision.held and decision.retry_at is not None:
                held.add(index)
                heapq.heappush(arrivals, (datetime.fromisoformat(decision.retry_at), index))
                continue
            summary.add(decision)
            _note_pick(pool_picks, decision)
            if decision.owner_kind != "rep":  # the fallback queue: pulled by the segment's team after triage_minutes
                queued += 1
                clock = team.starts(lead.created)
                touched = max(now, clock + timedelta(minutes=sc.triage_minutes))
                wait = (touched - lead.created).total_seconds()
                waits.append(wait)
                breaches += touched > clock + timedelta(minutes=SLA_MINUTES)
                decay = sc.decay_floor + (1 - sc.decay_floor) * math.exp(-wait / 60 / sc.decay_minutes)
                converted = lead.u_convert < SEGMENTS[lead.segment][1] * decay
                outcomes.append(Outcome("queue", lead.segment, touched, converted, converted and lead.u_win < sc.win_base))
                continue
            rep = by_id[decision.owner]
            token = 0
            owner_of[index] = (rep.id, token)
            loads[rep.id] += 1
            touched = add_working_minutes(rep, now, ack_delay(sc, rep, loads[rep.id] - 1, lead.u_ack[0]))
            clock = team.starts(lead.created)  # held or not, the lead's SLA clock started when it came
            due = clock + timedelta(minutes=SLA_MINUTES)
            deadline = max(clock, now) + timedelta(minutes=sc.ladder_minutes)  # the ladder runs from the owner's start
            moves = 0
            excluded = {rep.id}
            while ladder and touched > deadline and moves < 2:
                moves += 1
                pool = str(decision.target).removeprefix("pool ")
                again = router.route_to(raw, Assign(pool=pool), "sla-reassign", at=deadline, exclude=frozenset(excluded))
                if again.owner_kind != "rep":  # nobody else can take it: it stays, and the fallback gave nothing away
                    break
                summary.add(again)  # the pool's balance counts every lead a rep was given, moved ones too
                store.adjust_load(rep.id, -1)
                loads[rep.id] -= 1
                rep = by_id[again.owner]
                excluded.add(rep.id)
                owner_of[index] = (rep.id, moves)
                loads[rep.id] += 1
                touched = add_working_minutes(rep, deadline, ack_delay(sc, rep, loads[rep.id] - 1, lead.u_ack[moves]))
                deadline = deadline + timedelta(minutes=sc.ladder_minutes)
            heapq.heappush(pending, (touched, index, rep.id))
            wait = (touched - lead.created).total_seconds()
            waits.append(wait)
            breaches += touched > due
            skill = rep.skill[lead.segment]
            decay = sc.decay_floor + (1 - sc.decay_floor) * math.exp(-wait / 60 / sc.decay_minutes)
            converted = lead.u_convert < SEGMENTS[lead.segment][1] * skill * decay
            won = converted and lead.u_win < min(0.9, sc.win_base * skill)
            outcomes.append(Outcome(rep.id, lead.segment, touched, converted, won))
            observations.append((rep.id, (lead.segment,), converted, touched + timedelta(days=sc.outcome_lag_days)))
    finally:
        store.clear()
    elapsed = time.perf_counter() - started
    ordered = sorted(waits)
    converted = sum(o.converted for o in outcomes)
    pools = summary.to_dict()["pools"]
    violations = {pool: _floor_violations(picks) for pool, picks in pool_picks.items()}
    return {
        "leads": len(leads),
        "sla_breach_rate": round(breaches / len(leads), 4),
        "p50_speed_to_lead_s": round(percentile(ordered, 0.5) or 0.0, 1),
        "p90_speed_to_lead_s": round(percentile(ordered, 0.9) or 0.0, 1),
        "conversion_rate": round(converted / len(leads), 4),
        "converted": converted,
        "win_rate": round(sum(o.won for o in outcomes) / converted, 4) if converted else None,
        "max_min": _largest([p["max_min"] for p in pools.values()]),
        "gini": max((p["gini"] or 0.0 for p in pools.values()), default=None),
        "floor_violations": sum(v for v in violations.values() if v is not None) if strategy == "performance_weighted"
        else None,
        "to_fallback_queue": queued,
        "held": len(held),
        "pools": {name: {"max_min": p["max_min"], "gini": p["gini"],
                         "floor_violations": violations.get(name) if strategy == "performance_weighted" else None}
                  for name, p in pools.items()},
        "seconds": round(elapsed, 2),
        "_observations": [(o.rep, (o.segment,), o.converted, o.touched + timedelta(days=sc.outcome_lag_days))
                          for o in outcomes if o.rep != "queue"],
    }




def _largest(ratios: list[float | None]) -> float | None:
    """The largest pool max/min; None when a pool has a member who got none of the leads owed them (unbounded)."""
    return None if not ratios or any(r is None for r in ratios) else max(r for r in ratios if r is not None)


def _note_pick(picks: dict[str, list[tuple[str, frozenset[str]]]], decision: Decision) -> None:
    if not decision.target.startswith("pool ") or decision.owner_kind != "rep":
        return
    eligible = frozenset(r for r in decision.considered if r not in decision.skipped)
    picks[decision.target.removeprefix("pool ")].append((decision.owner, eligible | {decision.owner}))


def _floor_violations(picks: list[tuple[str, frozenset[str]]]) -> int | None:
    """(window, member) pairs where a member eligible at every lead of a full window got fewer than the floor."""
    members = set().union(*(e for _, e in picks)) if picks else set()
    if not members or len(members) * FLOOR > 1:
        return None
    need = math.floor(FLOOR * WINDOW + 1e-9)
    count = 0
    for start in range(0, len(picks) - WINDOW + 1):
        window = picks[start:start + WINDOW]
        always = frozenset.intersection(*(e for _, e in window))
        got = defaultdict(int)
        for owner, _ in window:
            got[owner] += 1
        count += sum(1 for rep in always if got[rep] < need)
    return count


# -- the month, four ways -------------------------------------------------------------------------------


def month(sc: Scenario, client: Any, strategies: tuple[str, ...] = STRATEGIES) -> dict[str, dict[str, Any]]:
    rng = random.Random(sc.seed)
    reps = make_team(sc, rng)
    leads = make_leads(sc, random.Random(sc.seed * 1000 + 1))
    earlier = make_leads(sc, random.Random(sc.seed * 1000 + 2), START - timedelta(days=sc.history_days), sc.history_days)
    previous = run("rules", sc, reps, earlier, client)["_observations"]
    shifted = [(r, k, c, at) for r, k, c, at in previous]
    results = {}
    for strategy in strategies:
        result = run(strategy, sc, reps, leads, client, shifted if strategy == "performance_weighted" else None)
        result.pop("_observations")
        results[strategy] = result
    return results


def targets(res: dict[str, dict[str, Any]], flat: dict[str, dict[str, Any]]) -> list[dict[str, Any]]:
    rr, rules, sla, perf = (res[s] for s in STRATEGIES)
    best = min(rules["sla_breach_rate"], sla["sla_breach_rate"])
    lift = perf["conversion_rate"] / rules["conversion_rate"] - 1 if rules["conversion_rate"] else None
    p1, p2, n = flat["performance_weighted"]["conversion_rate"], flat["rules"]["conversion_rate"], flat["rules"]["leads"]
    noise = 2 * math.sqrt(p1 * (1 - p1) / n + p2 * (1 - p2) / n)
    return [
        {"target": "(2) or (3) SLA breach rate <= 1/5 of (1)", "measured": f"{best:.4f} vs {rr['sla_breach_rate']:.4f} "
         f"(ratio {best / rr['sla_breach_rate']:.2f})" if rr["sla_breach_rate"] else "(1) never breached",
         "met": rr["sla_breach_rate"] > 0 and best <= rr["sla_breach_rate"] / 5},
        {"target": "(4) converts >= 10% more (relative) than (2)", "measured": None if lift is None else f"{lift * 100:+.1f}%",
         "met": lift is not None and lift >= 0.10},
        {"target": "every pool's max/min <= 1.2 in (2) and (3)",
         "measured": f"{rules['max_min']} / {sla['max_min']}",
         "met": rules["max_min"] is not None and sla["max_min"] is not None and max(rules["max_min"], sla["max_min"]) <= 1.2},
        {"target": "no floor violation in (4)", "measured": perf["floor_violations"], "met": perf["floor_violations"] == 0},
        {"target": "no rep differences: (4) not worse than (2) by more than noise",
         "measured": f"{p1:.4f} vs {p2:.4f} (2 s.e. = {noise:.4f})", "met": p1 >= p2 - noise},
    ]


def html(report: dict[str, Any]) -> str:
    """One self-contained page: bar charts as inline SVG (no script, no CDN) and the tables."""
    def bars(title: str, key: str, fmt: str, scale: float) -> str:
        rows = report["strategies"]
        top = max((rows[s][key] or 0) for s in STRATEGIES) or 1
        out = [f'<h2>{title}</h2><svg width="720" height="{len(STRATEGIES) * 34 + 10}" role="img">']
        for i, s in enumerate(STRATEGIES):
            v = rows[s][key] or 0
            w = 400 * v / top
            out.append(f'<text x="0" y="{i * 34 + 24}" font-size="13">{s}</text>'
                       f'<rect x="190" y="{i * 34 + 8}" width="{w:.1f}" height="22" fill="#4a78b5"/>'
                       f'<text x="{195 + w:.1f}" y="{i * 34 + 24}" font-size="13">{fmt.format(v * scale)}</text>')
        return "".join(out) + "</svg>"

    head = "<tr><th>strategy</th>" + "".join(f"<th>{k}</th>" for k in COLUMNS) + "</tr>"
    body = "".join("<tr><td>" + s + "</td>" + "".join(f"<td>{report['strategies'][s][k]}</td>" for k in COLUMNS) + "</tr>"
                   for s in STRATEGIES)
    sens = "".join(f"<tr><td>{name}</td>" + "".join(f"<td>{row[s]['conversion_rate']:.4f}</td>" for s in SENSITIVE) + "</tr>"
                   for name, row in report["sensitivity"].items())
    goals = "".join(f"<tr><td>{t['target']}</td><td>{t['measured']}</td><td>{'met' if t['met'] else 'NOT met'}</td></tr>"
                    for t in report["targets"])
    return ("<!doctype html><meta charset='utf-8'><title>leadroute: a simulated month</title>"
            "<style>body{font-family:system-ui,sans-serif;max-width:900px;margin:2rem auto}td,th{padding:.2rem .6rem;"
            "border-bottom:1px solid #ddd;text-align:right;font-size:.85rem}"
            "td:first-child,th:first-child{text-align:left}</style>"
            "<h1>A simulated month, four ways</h1>"
            + bars("SLA breach rate", "sla_breach_rate", "{:.1f}%", 100)
            + bars("Median speed to lead (minutes)", "p50_speed_to_lead_s", "{:.1f}", 1 / 60)
            + bars("Conversion", "conversion_rate", "{:.2f}%", 100)
            + f"<h2>Figures</h2><div style='overflow-x:auto'><table>{head}{body}</table></div>"
            + "<h2>Sensitivity: conversion when rep differences are halved or absent</h2><table><tr><th>skill sigma</th>"
            + "".join(f"<th>{s}</th>" for s in SENSITIVE) + f"</tr>{sens}</table>"
            + f"<h2>Targets</h2><table><tr><th>target</th><th>measured</th><th></th></tr>{goals}</table>"
            + f"<pre>{json.dumps(report['scenario'], indent=1)}</pre>")


COLUMNS = ("sla_breach_rate", "p50_speed_to_lead_s", "p90_speed_to_lead_s", "conversion_rate", "win_rate", "max_min", "gini",
           "floor_violations")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seed", type=int, default=Scenario.seed)
    parser.add_argument("--leads", type=int, default=Scenario.leads)
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--html", type=Path, default=Path("bench-outcomes.html"), help="where the chart goes")
    parser.add_argument("--redis-url", default=None, help="an existing Redis (default: a throwaway server)")
    parser.add_argument("--team", choices=("pods", "specialists"), default=Scenario.team,
                        help="two regional pods of generalists (default) or pools by segment")
    parser.add_argument("--memory", action="store_true", help="the in-process state instead of Redis (exploration)")
    args = parser.parse_args()
    sc = Scenario(seed=args.seed, leads=args.leads, team=args.team)
    with tempfile.TemporaryDirectory(prefix="leadroute-outcomes-") as tmp:
        server, client = None, None
        if args.memory:
            pass
        elif args.redis_url:
            client = client_from_url(args.redis_url)
        else:
            server = RedisServer(data_dir=Path(tmp), port=free_port(), persistent=False, binary=redis_server_binary(),
                                 die_with_parent=True)
            server.start()
            client = client_from_url(server.url)
        try:
            started = time.perf_counter()
            results = month(sc, client)
            sensitivity = {"0.35 (default)": results}
            for label, sigma in (("0.175 (halved)", sc.skill_sigma / 2), ("0 (none)", 0.0)):
                sensitivity[label] = month(replace(sc, skill_sigma=sigma), client, SENSITIVE)
        finally:
            if server is not None:
                server.stop()
    report = {
        "strategies": results,
        "scenario": asdict(sc) | {"days": DAYS, "start": START.isoformat(), "sla_minutes": SLA_MINUTES, "floor": FLOOR,
                                  "floor_window": WINDOW, "team_zones": TEAM,
                                  "pools": PODS if sc.team == "pods" else SPECIALISTS, "segments": SEGMENTS},
        "sensitivity": {k: {s: {m: v[s][m] for m in ("conversion_rate", "sla_breach_rate", "p50_speed_to_lead_s",
                                                       "max_min", "floor_violations")} for s in SENSITIVE}
                        for k, v in sensitivity.items()},
        "seconds": round(time.perf_counter() - started, 1),
    }
    report["targets"] = targets(results, sensitivity["0 (none)"])
    args.html.write_text(html(report), encoding="utf-8")
    if args.json:
        print(json.dumps(report, indent=1, default=str))
        return
    print(f"A simulated month: {sc.leads:,} leads, 12 reps, seed {sc.seed} ({report['seconds']} s; chart: {args.html})")
    print(f"{'strategy':<22}" + "".join(f"{c[:12]:>13}" for c in COLUMNS))
    for s in STRATEGIES:
        print(f"{s:<22}" + "".join(f"{results[s][c]!s:>13}" for c in COLUMNS))
    print("\nsensitivity: conversion by skill sigma")
    for label, row in report["sensitivity"].items():
        print(f"  {label:<16}" + "".join(f"{s}={row[s]['conversion_rate']:.4f}  " for s in SENSITIVE))
    print("\ntargets")
    for t in report["targets"]:
        print(f"  [{'met' if t['met'] else 'NOT met'}] {t['target']}: {t['measured']}")


if __name__ == "__main__":
    main()
