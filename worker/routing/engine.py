"""The routing engine: lead + team + rules -> one owner, with a full explanation.

Pure: no CRM, no Celery, no Redis. The only side effect goes through ``RoutingState``,
which makes the final pick atomic (advance a rotation, bump a load).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from worker.config import Assign, Rep, RoutingConfig
from worker.config.schema import Performance, Pool, PoolLoad, Rule
from worker.domain.normalize import NormalizedLead, is_blank, normalize_lead
from worker.routing.caps import CapTable
from worker.routing.conditions import Test, compile_when
from worker.routing.fairness import Fairness
from worker.routing.perf import PerfSettings, RateTable, explain, weigh
from worker.routing.pipeline import PipelineLoad
from worker.routing.split import choose_arm, split_key
from worker.routing.state import Candidate, ContactHistory, Pick, RoutingState, Strategy, weighted_ratio
from worker.routing.tiebreak import FILE_ORDER, LEAST_LOADED, MOST_RECENT_CONTACT, SENIORITY, settle

FALLBACK = "fallback"
DEFAULT_PERFORMANCE = Performance()

# Why a rep was passed over. Order matters: the first that applies is recorded.
INACTIVE, OOO, MISSING_SKILL, MISSING_LANGUAGE, AT_CAPACITY, OUTSIDE_HOURS = (
    "inactive", "ooo", "missing_skill", "missing_language", "at_capacity", "outside_hours",
)
DAY_ENDING = "day_ending"  # in their hours' wind-down while someone eligible had longer
HELD = "held"  # Decision.owner_kind of a lead a pool with ``hold`` keeps waiting (first routing only)
HOLD_RETRY_SECONDS = 60.0  # a held lead whose pool is open is tried again this often, for a member with room


@dataclass(slots=True)
class Decision:
    """Everything needed to explain, audit and replay one routing decision."""

    lead_id: str
    owner: str
    owner_kind: str
    rule: str
    target: str
    config_version: str
    routed_at: str
    reason: str
    considered: list[str] = field(default_factory=list)
    skipped: dict[str, str] = field(default_factory=dict)
    strategy_state: str = ""
    unreadable: list[str] = field(default_factory=list)
    facts: dict[str, Any] = field(default_factory=dict)
    chain: list[str] = field(default_factory=list)  # the backup walk, when the first rep was unavailable
    tie_breaks: dict[str, str] = field(default_factory=dict)  # "territory"/"pool" -> the tie-breaker that decided
    created_at: str | None = None  # the lead's creation time, when it has one (``routed_at`` is when it was decided)
    arm: str | None = None  # the A/B arm of the matched rule's split the lead fell in
    experiment: str | None = None  # ... and that rule's name, kept when the arm's target fell back
    retry_at: str | None = None  # owner_kind "held": when to route the lead again (its pool's ``hold``)

    @property
    def owner_rep(self) -> str | None:
        """The rep id, or None when the lead went to a queue."""
        return self.owner if self.owner_kind == "rep" else None

    def to_dict(self) -> dict[str, Any]:
        """A JSON-serialisable form for logs, the decision log and ``simulate --format jsonl``.

        ``chain`` and ``tie_breaks`` appear only when there was a backup walk or a tie, and
        ``created_at`` only when the lead has one, so ordinary decisions keep their size in the store.
        """
        out = {
            "lead_id": self.lead_id, "owner": self.owner, "owner_kind": self.owner_kind, "rule": self.rule,
            "target": self.target, "config_version": self.config_version, "routed_at": self.routed_at,
            "reason": self.reason, "considered": list(self.considered), "skipped": dict(self.skipped),
            "strategy_state": self.strategy_state, "unreadable": list(self.unreadable), "facts": dict(self.facts),
        }
        if self.chain:
            out["chain"] = list(self.chain)
        if self.tie_breaks:
            out["tie_breaks"] = dict(self.tie_breaks)
        if self.created_at is not None:
            out["created_at"] = self.created_at
        if self.arm is not None:
            out["arm"], out["experiment"] = self.arm, self.experiment
        if self.retry_at is not None:
            out["retry_at"] = self.retry_at
        return out

    @property
    def held(self) -> bool:
        """Whether nobody was given the lead yet: its pool holds it until ``retry_at``."""
        return self.owner_kind == HELD

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Decision:
        """Rebuild a decision read back from the decision log."""
        return cls(**{k: data[k] for k in cls.__dataclass_fields__ if k in data})


def _local(zone: Any, at: datetime) -> datetime:
    return at.astimezone(zone)


def absence(rep: Rep, config: RoutingConfig, at: datetime, overrides: Mapping[str, str]) -> str | None:
    """Why a rep cannot take any lead right now (inactive, out of office), or None."""
    forced = overrides.get(rep.id)
    if forced:
        return forced
    if not rep.active:
        return INACTIVE
    if rep.out_of_office:
        today = _local(config.zones[rep.id], at).date()
        if any(w.start <= today <= w.end for w in rep.out_of_office):
            return OOO
    return None


_DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")


def in_hours(rep: Rep, config: RoutingConfig, at: datetime) -> bool:
    """Whether ``at`` falls in the rep's working hours, in the rep's own time zone."""
    hours = rep.hours or config.model.hours
    if hours is None:
        return True
    local = at.astimezone(config.zones[rep.id])
    return _DAYS[local.weekday()] in hours.days and hours.start <= local.time() < hours.end


def _seconds(t: Any) -> int | None:
    return None if t.microsecond else t.hour * 3600 + t.minute * 60 + t.second


ZoneDay = tuple[float, float, int, Any]  # (epoch of local midnight, of the next one, weekday, local date)
_ZONE_DAYS: dict[Any, ZoneDay] = {}  # the day last asked about in each zone


def _zone_day(zone: Any, at: datetime, ts: float) -> ZoneDay:
    """The local day ``at`` falls in, in ``zone``, as epoch seconds: while the zone keeps one UTC offset all day,
    the local time of any instant in it is its seconds since the first. A day with an offset change is not kept
    (its span is just this instant, so the next decision works it out again)."""
    found = _ZONE_DAYS.get(zone)
    if found is not None and found[0] <= ts < found[1]:
        return found
    local = at.astimezone(zone)
    day = local.date()
    first = datetime(day.year, day.month, day.day, tzinfo=zone)
    after = first + timedelta(days=1)  # wall-clock arithmetic: the next local midnight
    lo, hi = first.timestamp(), after.timestamp()
    offset = local.utcoffset()
    if (lo <= ts < hi and first.utcoffset() == offset == after.utcoffset()
            and datetime.fromtimestamp(lo, zone).date() == day and datetime.fromtimestamp(hi, zone).date() != day):
        found = _ZONE_DAYS[zone] = (lo, hi, local.weekday(), day)
        return found
    return (ts, ts, local.weekday(), day)  # used once: ``working`` reads the time from the datetime then


class _Member:
    """A rep as the pool loop reads them, resolved once per config (configs are immutable)."""

    __slots__ = ("candidate", "capacity", "days", "end", "hours", "inactive", "languages", "ooo", "rep", "rep_id",
                 "skills", "start", "wind_down", "zone")

    def __init__(self, rep: Rep, config: RoutingConfig) -> None:
        self.rep, self.rep_id = rep, rep.id
        self.candidate = config.candidates.get(rep.id) or Candidate(rep.id, rep.weight, rep.capacity)
        self.capacity = rep.capacity
        self.inactive = not rep.active
        self.ooo = tuple((w.start, w.end) for w in rep.out_of_office)
        self.zone = config.zones[rep.id]
        self.skills, self.languages = rep.skills, rep.languages
        hours = rep.hours or config.model.hours
        self.days = None if hours is None else frozenset(i for i, d in enumerate(_DAYS) if d in hours.days)
        # seconds into the local day; None: a time with a fraction of a second, compared as a time instead
        self.start, self.end = (_seconds(hours.start), _seconds(hours.end)) if hours is not None else (None, None)
        self.hours = hours
        self.wind_down = hours is not None and bool(hours.wind_down)

    def static_why(self, skills: Sequence[str], languages: Sequence[str]) -> str | None:
        """What a target's requirements alone say about this rep: missing a skill, then a language."""
        if skills and not all(s in self.skills for s in skills):
            return MISSING_SKILL
        if languages and not any(g in self.languages for g in languages):
            return MISSING_LANGUAGE
        return None


class _Plan:
    """What the engine derives from a config once instead of per lead: each rep as a :class:`_Member`, and each
    pool target's members with what its skill and language requirements say about them."""

    __slots__ = ("all_rules", "by_pool_caps", "members", "rule_tests", "starts", "targets", "territories")

    def __init__(self, config: RoutingConfig) -> None:
        self.members = {rep_id: _Member(rep, config) for rep_id, rep in config.reps.items()}
        self.by_pool_caps: dict[str, frozenset[str]] = {}
        self.all_rules = tuple(enumerate(c.test for c in config.compiled_rules))
        self.rule_tests = _rule_tests(config)
        self.starts: dict[tuple[str, float, int], datetime] = {}  # next_start per rep, local day and time of day
        # per country, the territories that list it, in file order (derive_facts tests only those)
        self.territories: dict[str, tuple[tuple[str, frozenset[str], frozenset[str], tuple[str, ...]], ...]] = {}
        for entry in config.territory_order:
            for country in entry[1]:
                self.territories[country] = (*self.territories.get(country, ()), entry)
        self.targets: dict[tuple[str, tuple[str, ...], tuple[str, ...]], tuple[tuple[_Member, str | None], ...]] = {}

    def target(self, config: RoutingConfig, pool: str, skills: tuple[str, ...],
               languages: tuple[str, ...]) -> tuple[tuple[_Member, str | None], ...]:
        key = (pool, skills, languages)
        found = self.targets.get(key)
        if found is None:
            found = tuple((m, m.static_why(skills, languages))
                          for m in (self.members[r] for r in config.pools[pool].members))
            self.targets[key] = found
        return found


    def capped(self, caps: CapTable, pool: str) -> frozenset[str]:
        """The members of ``pool`` with any cap per period a pick from it counts (their own, or the pool's)."""
        found = self.by_pool_caps.get(pool)
        if found is None:
            found = self.by_pool_caps[pool] = frozenset(m for m in self.members if caps.has(m, pool))
        return found


def _rule_tests(config: RoutingConfig) -> dict[str | None, tuple[tuple[int, Test], ...]]:
    """Per territory, the rules a lead there can match (``rules_by_territory``), each with the test to run: a rule
    whose ``territory:`` names that territory (a name or a list) is listed for it only because it names it, so
    its territory test would pass and only the rest of its ``when:`` is tested."""
    by = config.rules_by_territory
    if by is None:
        return {}
    model, compiled = config.model, config.compiled_rules
    residual: dict[int, Test] = {}
    for i, rule in enumerate(config.rules):
        value = rule.when.get("territory")
        if isinstance(value, str) or (isinstance(value, list) and value and all(isinstance(v, str) for v in value)):
            rest = {k: v for k, v in rule.when.items() if k != "territory"}
            residual[i] = compile_when(rest, model.territories, model.fields, model.segments).test
    out: dict[str | None, tuple[tuple[int, Test], ...]] = {}
    for name, indices in by.items():
        exact = name is not None and not is_blank(name)  # a blank-looking name would fail the territory test
        out[name] = tuple((i, residual[i] if exact and i in residual else compiled[i].test) for i in indices)
    return out


def _plan(config: RoutingConfig) -> _Plan:
    """The config's plan, made on first use and kept on the (frozen) config object."""
    plan = config.__dict__.get("_engine_plan")
    if plan is None:
        plan = _Plan(config)
        object.__setattr__(config, "_engine_plan", plan)
    return plan


_routed_iso: tuple[datetime | None, str] = (None, "")
_created_iso: tuple[datetime | None, str] = (None, "")


def _iso_routed(at: datetime) -> str:
    """``at.isoformat()``, remembered for the last instant: a replay decides each lead at one time under two configs."""
    global _routed_iso
    seen, text = _routed_iso
    if seen is not at:
        text = at.isoformat()
        _routed_iso = (at, text)
    return text


def _iso_created(at: datetime) -> str:
    """As :func:`_iso_routed`, for the lead's ``created_at`` (a slot of its own, so the two do not evict each other)."""
    global _created_iso
    seen, text = _created_iso
    if seen is not at:
        text = at.isoformat()
        _created_iso = (at, text)
    return text


def next_start(rep: Rep, config: RoutingConfig, at: datetime) -> datetime:
    """When the rep is next in working hours at or after ``at``, out-of-office days skipped (``datetime.max``
    when not within two weeks): an after-hours lead goes to whoever will see it first."""
    hours = rep.hours or config.model.hours
    zone = config.zones[rep.id]
    local = at.astimezone(zone)
    if hours is None:
        return at
    for ahead in range(15):
        day = local.date() + timedelta(days=ahead)
        if _DAYS[day.weekday()] not in hours.days or any(w.start <= day <= w.end for w in rep.out_of_office):
            continue
        if ahead == 0 and local.time() >= hours.end:
            continue
        if ahead == 0 and local.time() >= hours.start:
            return at
        return datetime.combine(day, hours.start, tzinfo=zone).astimezone(UTC)
    return datetime.max.replace(tzinfo=UTC)


def first_on(group: list[Candidate], config: RoutingConfig, at: datetime) -> list[list[Candidate]]:
    """Candidates who are all outside hours, grouped by when they next start, soonest first (ties keep pool
    order): the pool's strategy picks in the first group, and in the next only when the first is all at capacity."""
    if len(group) < 2:
        return [group] if group else []
    starts: dict[datetime, list[Candidate]] = {}
    for c in group:
        starts.setdefault(next_start(config.reps[c.rep_id], config, at), []).append(c)
    return [starts[t] for t in sorted(starts)]


def _fmt_count(n: float) -> str:
    return f"{int(n):,}" if float(n).is_integer() else f"{n:,.1f}"


def _fact_phrase(name: str, facts: Mapping[str, Any]) -> str | None:
    value = facts.get(name)
    if name == "territory":
        country = facts.get("country")
        if not country:
            return None
        return f"{country}/{facts['state']}" if facts.get("state") else str(country)
    if value is None or value == "":
        return None
    if name == "employees":
        return f"{_fmt_count(value)} employees"
    if name == "annual_revenue":
        return f"revenue {_fmt_count(value)}"
    if name == "score":
        return f"score {_fmt_count(value)}"
    if name == "account_owner":
        return str(facts.get("relationship") or f"account owner {value}")  # relationship: who matched how
    if name in ("segment", "industry", "lead_source", "product_interest", "domain", "country", "state"):
        return str(value)
    return f"{name} {value}"


def derive_facts(lead: NormalizedLead, config: RoutingConfig) -> dict[str, Any]:
    """Canonical fields plus what the rules can ask about: territory, segment, account owner."""
    facts = dict(lead.fields)
    country = facts.get("country")
    if country:
        state = facts.get("state")
        postcode = facts.get("postcode", "")
        by_country = _plan(config).territories
        for name, countries, states, postcodes in (by_country.get(country, ()) if type(country) is str
                                                   else config.territory_order):
            if country not in countries:
                continue
            if states and state not in states:
                continue
            if postcodes and not any(str(postcode).replace(" ", "").startswith(p) for p in postcodes):
                continue
            facts["territory"] = name
            break
    for name, condition in config.compiled_segments:
        if condition.test(facts):
            facts["segment"] = name
            break
    owner = facts.get("account_owner")
    if owner:
        rep = config.owner_rep(str(owner))
        facts["account_owner"] = rep or str(owner)
    elif facts.get("domain") and facts["domain"] in config.model.accounts:
        facts["account_owner"] = config.model.accounts[facts["domain"]]
    return facts


def territories_of(facts: Mapping[str, Any], config: RoutingConfig) -> list[str]:
    """Every territory the lead is in, in file order (``derive_facts`` keeps only the first)."""
    country = facts.get("country")
    if not country:
        return []
    state = facts.get("state")
    postcode = str(facts.get("postcode", "")).replace(" ", "")
    return [
        name for name, countries, states, postcodes in config.territory_order
        if country in countries and (not states or state in states)
        and (not postcodes or any(postcode.startswith(p) for p in postcodes))
    ]


class Router:
    """Routes leads for one configuration against one state."""

    __slots__ = ("config", "history", "pipeline", "plan", "rates", "state", "weighted")

    def __init__(self, config: RoutingConfig, state: RoutingState, rates: RateTable | None = None,
                 pipeline: PipelineLoad | None = None) -> None:
        self.config = config
        self.plan = _plan(config)
        self.weighted: dict[tuple[str, float, float], Candidate] = {}  # pool members with their CRM load (weigh)
        self.state = state
        self.rates = rates  # learned conversion rates for performance_weighted pools (worker.routing.perf), as data
        self.pipeline = pipeline  # open opportunities per rep, cached from the CRM (worker.routing.pipeline), as data
        # Contact history is optional (see ContactHistory): asked for only when a tie-breaker needs it.
        self.history: ContactHistory | None = (
            state if config.tie_breaks.uses_contact and isinstance(state, ContactHistory) else None
        )

    def route(
        self,
        lead: Mapping[str, Any] | NormalizedLead,
        at: datetime | None = None,
        overrides: Mapping[str, str] | None = None,
        exclude: frozenset[str] = frozenset(),
        *,
        at_created: bool = False,
        hold: bool = False,
    ) -> Decision:
        """Decide the owner of one lead; never raises for bad lead data, never leaves it unrouted.

        ``lead`` is a raw lead, or one normalised already (a caller deciding it more than once).
        ``at`` is the routing time (default now): availability, hours and out-of-office are
        judged then. Live work (the worker, re-routes, SLA reassignments) decides at the moment
        it decides. ``at_created`` routes at the lead's ``created_at`` instead (``at`` for a lead
        without one): ``simulate`` and replays, which re-enact the past. ``overrides`` forces a
        rep unavailable (rep id -> reason, e.g. an OOO set from the CLI); ``exclude`` lists
        reps that must not get this lead (earlier owners, on reassignment). The decision
        records both times: ``routed_at`` and the lead's ``created_at``. ``hold`` lets a pool with
        ``hold`` keep the lead waiting for a member in hours with room (a first routing, whose caller
        routes it again at the decision's ``retry_at``); otherwise every lead gets an owner.
        """
        normalized, ctx = self._start(lead, at, overrides, exclude, at_created)
        ctx.may_hold = hold
        facts = ctx.facts
        lead_id = str(facts.get("id", ""))
        rules, compiled = self.config.rules, self.config.compiled_rules
        overlap, start = ctx.settle_territory() if self.config.tie_breaks.territories is not None else ("", 0)
        plan = self.plan
        tests = plan.rule_tests.get(facts.get("territory")) if plan.rule_tests else None  # as _candidate_rules
        for index, test in tests if tests is not None else plan.all_rules:
            if index < start or not test(facts):
                continue
            rule, condition = rules[index], compiled[index]
            phrase = ", ".join([p for p in [_fact_phrase(f, facts) for f in condition.fields] if p])
            head = f"{rule.name}: {phrase}" if phrase else rule.name
            if overlap:
                head += f" ({overlap})"
            target = rule.assign
            if rule.split is not None:
                target, head = _split_target(ctx, rule, head)
            outcome = ctx.assign(target, index)
            if outcome is not None:
                return ctx.decision(lead_id, rule.name, head, outcome, normalized)
            return ctx.decision(lead_id, FALLBACK, head, ctx.fallback(ctx.failure), normalized)
        return ctx.decision(lead_id, FALLBACK, "no rule matched", ctx.fallback(None), normalized)

    def route_to(
        self,
        lead: Mapping[str, Any],
        target: Assign,
        label: str,
        at: datetime | None = None,
        overrides: Mapping[str, str] | None = None,
        exclude: frozenset[str] = frozenset(),
        *,
        at_created: bool = False,
    ) -> Decision:
        """Send a lead to one given target (a manual re-route, an SLA reassignment), with the same
        availability checks and strategies as a rule, and the fallback when nobody can take it.
        ``at`` and ``at_created`` as for :meth:`route`."""
        normalized, ctx = self._start(lead, at, overrides, exclude, at_created)
        lead_id = str(ctx.facts.get("id", ""))
        outcome = ctx.assign(target)
        if outcome is None:
            return ctx.decision(lead_id, FALLBACK, label, ctx.fallback(ctx.failure), normalized)
        return ctx.decision(lead_id, label, label, outcome, normalized)

    def _start(
        self,
        lead: Mapping[str, Any] | NormalizedLead,
        at: datetime | None,
        overrides: Mapping[str, str] | None,
        exclude: frozenset[str],
        at_created: bool = False,
    ) -> tuple[NormalizedLead, _Context]:
        normalized = lead if isinstance(lead, NormalizedLead) else normalize_lead(lead)
        facts = derive_facts(normalized, self.config)
        created = facts.get("created_at")
        if not isinstance(created, datetime):
            created = None
        elif created.tzinfo is None:
            created = created.replace(tzinfo=UTC)
        when = created if at_created and created is not None else (at or datetime.now(UTC))
        if when.tzinfo is None:
            when = when.replace(tzinfo=UTC)
        ctx = _Context(self, facts, when, overrides or {}, exclude)
        ctx.created = created
        return normalized, ctx


def _split_target(ctx: _Context, rule: Rule, head: str) -> tuple[Assign, str]:
    """The arm of ``rule``'s split the lead falls in (recorded on the context) and its target."""
    split = rule.split
    assert split is not None
    value, used = split_key(split.key, ctx.facts)
    arm = split.arms[choose_arm(rule.name, split.arms, value)]
    ctx.arm, ctx.experiment = arm.name, rule.name
    by = split.key if used == split.key else f"lead_id, no {split.key}"
    return arm.assign, f"{head} [arm {arm.name} {arm.share:g}%, by {by}]"


def _candidate_rules(config: RoutingConfig, territory: str | None) -> Sequence[int]:
    """The rules, in order, that a lead in ``territory`` can match (rules naming only other
    territories cannot): testing just these decides the same, faster."""
    by = config.rules_by_territory
    if by is None:
        return range(len(config.rules))
    found = by.get(territory)
    return found if found is not None else range(len(config.rules))


def _first_rules(config: RoutingConfig, names: Sequence[str], variants: Sequence[Mapping[str, Any]]) -> list[int | None]:
    """The first matching rule for each of a lead's territory variants (``names[i]`` is the
    territory of ``variants[i]``): only rules that can match in that territory are tested,
    and one that reads neither territory nor segment is tested once for all of them."""
    tb, compiled = config.tie_breaks, config.compiled_rules
    shared: dict[int, bool] = {}
    first: list[int | None] = []
    for name, variant in zip(names, variants, strict=True):
        found = None
        for i in _candidate_rules(config, name):
            if tb.territorial[i]:
                hit = compiled[i].test(variant)
            else:
                hit = shared.get(i)
                if hit is None:
                    hit = shared[i] = compiled[i].test(variant)
            if hit:
                found = i
                break
        first.append(found)
    return first


@dataclass(slots=True)
class _Outcome:
    owner: str
    kind: str
    target: str
    detail: str


class _Context:
    """Per-decision scratch: what was considered, what was skipped and why."""

    __slots__ = ("arm", "at", "chain", "config", "considered", "created", "exclude", "experiment", "facts", "failure",
                 "history", "locals", "may_hold", "overrides", "pipeline", "plan", "rates", "retry_at", "skipped", "state",
                 "tie_breaks", "ts", "weighted")

    def __init__(
        self, router: Router, facts: dict[str, Any], at: datetime,
        overrides: Mapping[str, str], exclude: frozenset[str],
    ) -> None:
        self.config = router.config
        self.plan = router.plan
        self.locals: dict[Any, ZoneDay] = {}  # zone -> its local day at ``at``
        self.ts = at.timestamp()
        self.state = router.state
        self.history = router.history
        self.facts = facts
        self.at = at
        self.created: datetime | None = None  # the lead's created_at, recorded beside the routing time
        self.overrides = overrides
        self.exclude = exclude
        self.considered: list[str] = []
        self.skipped: dict[str, str] = {}
        self.failure: str | None = None
        self.chain: list[str] = []
        self.tie_breaks: dict[str, str] = {}
        self.arm: str | None = None
        self.experiment: str | None = None
        self.may_hold = False
        self.retry_at: datetime | None = None
        self.rates = router.rates
        self.pipeline = router.pipeline
        self.weighted = router.weighted

    def local(self, zone: Any) -> ZoneDay:
        """The local day of the routing time in ``zone`` (see :func:`_zone_day`)."""
        found = self.locals.get(zone)
        if found is None:
            ts = self.ts
            found = _ZONE_DAYS.get(zone)
            if found is None or not found[0] <= ts < found[1]:
                found = _zone_day(zone, self.at, ts)
            self.locals[zone] = found
        return found

    def away(self, m: _Member) -> bool:
        """Whether the routing time falls in one of the rep's out-of-office windows (their local dates, inclusive)."""
        today = self.local(m.zone)[3]
        return any(start <= today <= end for start, end in m.ooo)

    def working(self, m: _Member) -> bool:
        """:func:`in_hours` for a planned rep."""
        if m.days is None:
            return True
        lo, hi, weekday, _ = self.local(m.zone)
        if weekday not in m.days:
            return False
        if hi > lo and m.start is not None and m.end is not None:
            return m.start <= self.ts - lo < m.end  # exact: whole seconds against a time to the microsecond
        return in_hours(m.rep, self.config, self.at)

    def skip(self, rep_id: str, reason: str) -> None:
        if rep_id not in self.considered:
            self.considered.append(rep_id)
        self.skipped.setdefault(rep_id, reason)

    def assign(self, target: Assign, rule: int | None = None) -> _Outcome | None:
        """Place the lead on ``target``; ``rule`` is the matched rule's number (its tie-breakers)."""
        kind = target.kind
        if kind == "queue":
            return _Outcome(f"queue:{target.queue}", "queue", f"queue {target.queue}", "")
        if kind == "pool":
            return self.pool(target, rule)
        if kind == "rep":
            return self.relationship(str(target.rep), f"rep {target.rep}")
        owner = self.facts.get("account_owner")
        if not owner:
            self.failure = "no account owner"
            return None
        if owner not in self.config.reps:
            self.failure = f"account owner {owner} is not a configured rep"
            return None
        return self.relationship(str(owner), "account owner")

    def _why_away(self, rep_id: str) -> str | None:
        if rep_id in self.exclude:
            return "earlier_owner"
        forced = self.overrides.get(rep_id)  # absence(), on the plan
        if forced:
            return forced
        m = self.plan.members[rep_id]
        if m.inactive:
            return INACTIVE
        if m.ooo and self.away(m):
            return OOO
        return None

    def _walk(self, reps: Sequence[str]) -> str:
        return " -> ".join(f"{r} {self.skipped[r]}" for r in reps)

    def relationship(self, rep_id: str, label: str) -> _Outcome | None:
        """A named rep or account owner: only absence skips them; then their backup chain.

        The walk tries each backup in turn and stops when it comes back to a rep it has
        visited (a coverage pair or a longer cycle), so the caller falls back.
        """
        tried: list[str] = []
        current: str | None = rep_id
        while current is not None and current not in tried:
            tried.append(current)
            rep = self.config.reps[current]
            self.considered.append(current)
            why = self._why_away(current)
            load = 0
            if why is None:
                load, why = self._claim_direct(current)
            if why is None:
                via = ""
                if current != rep_id:
                    self.chain.extend(tried)
                    via = f" (backup for {rep_id}: {self._walk(tried[:-1])} -> {current})"
                cap = f"/{rep.capacity}" if rep.capacity else ""
                return _Outcome(current, "rep", label, f"{current} {load}{cap}{via}")
            self.skip(current, why)
            current = rep.backup
        self.chain.extend(tried)
        back = f" -> back to {current}" if current is not None else ""
        who = label if label.endswith(rep_id) else f"{label} {rep_id}"
        self.failure = f"{who} unavailable ({self._walk(tried)}{back})"
        return None

    def _claim_direct(self, rep_id: str) -> tuple[int, str | None]:
        """Load +1 for a named rep, account owner or backup: (new load, None), or (0, the cap reached) when
        one of the rep's own caps per period stops it (checked and counted atomically by the state)."""
        caps = self.config.caps
        if rep_id not in caps.reps:
            return self.state.assign(rep_id), None
        pick = self.state.claim_rep(rep_id, caps.quotas(rep_id, self.config.zones[rep_id], self.at))  # a CapState
        if pick.rep_id is None:
            return 0, pick.capped[0][1]
        return pick.load, None

    def _pick(self, pool: str, strategy: Strategy, members: Sequence[str], group: list[Candidate]) -> Pick:
        """The state's atomic pick, with the caps per period of each candidate when the config has any."""
        caps, zones = self.config.caps, self.config.zones
        if caps.any:
            capped = self.plan.capped(caps, pool)
            quotas = {c.rep_id: q for c in group
                      if c.rep_id in capped and (q := caps.quotas(c.rep_id, zones[c.rep_id], self.at, pool))}
            if quotas:
                return self.state.pick(pool, strategy, members, group, caps=quotas)  # a CapState
        return self.state.pick(pool, strategy, members, group)

    def recent_owner(self) -> str | None:
        """The rep who last owned a lead from this lead's domain: from the state when it keeps that (in memory),
        else as the worker read it from the store's domain index into the lead (``last_domain_owner``)."""
        domain = self.facts.get("domain")
        if self.history is not None and domain:
            return self.history.last_owner(str(domain))
        owner = self.facts.get("last_domain_owner")
        return str(owner) if owner and domain else None

    def _rep_measure(self, key: str, rep_id: str, loads: Mapping[str, int], recent: str | None) -> float:
        if key == LEAST_LOADED:
            return loads.get(rep_id, 0)
        if key == MOST_RECENT_CONTACT:
            return 0 if rep_id == recent else 1
        if key == SENIORITY:
            seniority = self.config.reps[rep_id].seniority
            return -seniority if seniority is not None else math.inf
        raise KeyError(key)

    def rank(
        self, group: list[Candidate], keys: Sequence[str], loads: Mapping[str, int]
    ) -> tuple[list[Candidate], tuple[str, str, list[str]] | None]:
        """Settle a least-loaded tie in ``group`` (pool order) by ``keys``.

        Returns the candidates for the atomic pick, the winner first, and (winner,
        tie-breaker, the others tied) when there is a tie. Ties are found on the loads just
        read; the pick re-checks loads atomically and, should they have moved, still takes a
        least-loaded rep (a tie it alone sees goes by pool order).
        """
        default_cap = max((c.capacity for c in group if c.capacity), default=1)  # as state.choose
        ratios = [weighted_ratio(c, loads.get(c.rep_id, 0), default_cap) for c in group]
        low = min(ratios)
        tied = [c for c, r in zip(group, ratios, strict=True) if r == low]
        if len(tied) < 2:
            return group, None
        position = {c.rep_id: i for i, c in enumerate(tied)}
        recent = self.recent_owner() if MOST_RECENT_CONTACT in keys else None

        def measure(key: str, c: Candidate) -> float:
            if key == FILE_ORDER:
                return position[c.rep_id]
            return self._rep_measure(key, c.rep_id, loads, recent)

        winner, key = settle(tied, keys, measure)
        others = [c for c in tied if c is not winner]
        ordered = [winner, *others] + [c for c, r in zip(group, ratios, strict=True) if r != low]
        return ordered, (winner.rep_id, key, [c.rep_id for c in others])

    def pool(self, target: Assign, rule: int | None = None) -> _Outcome | None:
        name = str(target.pool)
        pool = self.config.pools[name]
        keys = self.config.tie_breaks.for_pool(name, rule) if pool.strategy is Strategy.LEAST_LOADED else None
        loads = self.state.loads(pool.members)
        in_hours_now: list[Candidate] = []
        after_hours: list[Candidate] = []
        closing: list[Candidate] = []  # in hours, but in their wind-down
        exclude, overrides, skipped = self.exclude, self.overrides, self.skipped
        days_of, ts = self.locals, self.ts
        self.considered += pool.members
        # absence(), the target's requirements and capacity, in that order of reasons; then in_hours()
        for m, static in self.plan.target(self.config, name, target.require_skills, target.require_languages):
            rep_id = m.rep_id
            if rep_id in exclude:
                skipped[rep_id] = "earlier_owner"
                continue
            why = overrides.get(rep_id) if overrides else None
            if not why:
                if m.inactive:
                    why = INACTIVE
                elif m.ooo and self.away(m):
                    why = OOO
                elif static is not None:
                    why = static
                elif m.capacity is not None and loads.get(rep_id, 0) >= m.capacity:
                    why = AT_CAPACITY
            if why:
                skipped[rep_id] = why
                continue
            days = m.days  # self.working(m), inlined: it runs for every member of every pool
            if days is None:
                working = True
            else:
                lo, hi, weekday, _ = days_of.get(m.zone) or self.local(m.zone)
                if weekday not in days:
                    working = False
                elif hi > lo and m.start is not None and m.end is not None:
                    working = m.start <= ts - lo < m.end
                else:
                    working = in_hours(m.rep, self.config, self.at)
            if working:
                if m.wind_down and self.winding_down(m):
                    closing.append(m.candidate)
                else:
                    in_hours_now.append(m.candidate)
            else:
                after_hours.append(m.candidate)
        closing_by_end = self.longest_left(closing)
        if pool.strategy is Strategy.PERFORMANCE_WEIGHTED:
            return self.perf_pool(target, in_hours_now, after_hours, closing_by_end)
        if pool.load is not None:
            in_hours_now, after_hours = self.weigh(pool.load, in_hours_now), self.weigh(pool.load, after_hours)
            closing_by_end = [self.weigh(pool.load, group) for group in closing_by_end]
        hold = pool.hold if self.may_hold else None
        for group, note in self.groups(in_hours_now, after_hours, closing_by_end):
            if note and hold is not None:  # nobody in hours could take it: wait for someone who can?
                if (held := self.held(target, hold, after_hours)) is not None:
                    return held
                hold = None
            tie = None
            if keys is not None and len(group) > 1:
                group, tie = self.rank(group, keys, loads)
            pick = self._pick(name, pool.strategy, pool.members, group)
            for rep_id in pick.at_capacity:
                self.skipped[rep_id] = AT_CAPACITY
            for rep_id, why in pick.capped:
                self.skipped[rep_id] = why
            if pick.rep_id is not None:
                detail = pick.detail if pool.load is None else self.load_detail(pool, pick)
                if tie is not None and tie[0] == pick.rep_id:  # the atomic step saw the same tie
                    detail += f", tie with {', '.join(tie[2])} broken by {tie[1]}"
                    self.tie_breaks["pool"] = tie[1]
                self.passed_over(pick.rep_id, note, after_hours, closing_by_end)
                return _Outcome(pick.rep_id, "rep", f"pool {name}", detail + note)
        if hold is not None and (held := self.held(target, hold, after_hours)) is not None:
            return held
        self.failure = f"pool {name} had nobody available" + (
            f" ({', '.join(f'{r} {w}' for r, w in self.skipped.items())})" if self.skipped else ""
        )
        return None

    def held(self, target: Assign, hold: float, after_hours: list[Candidate]) -> _Outcome | None:
        """A pool with ``hold`` whose members in hours cannot take the lead keeps it waiting, unowned: until its
        first member starts while nobody is in hours, then up to ``hold`` seconds after the pool opened (or the
        lead came, if later) for someone in hours to have room. None when the wait is over or nobody will come:
        the lead goes to the next to start, then the fallback, as without ``hold``."""
        name = str(target.pool)
        opened: datetime | None = None
        soonest: datetime | None = None
        for m, static in self.plan.target(self.config, name, target.require_skills, target.require_languages):
            if static is not None or self._why_away(m.rep_id):
                continue
            if self.working(m):
                start = self.day_start(m)
                opened = start if opened is None else min(opened, start)
            else:
                start = self.next_start(m)
                soonest = start if soonest is None else min(soonest, start)
        if opened is None:
            if soonest is None or soonest <= self.at:
                return None
            self.retry_at, note = soonest, f"pool {name} closed: held until its first member starts"
        else:
            since = max(opened, self.created) if self.created is not None else opened
            waited = max(0.0, (self.at - since).total_seconds())
            if waited >= hold:
                return None
            self.retry_at = self.at + timedelta(seconds=min(HOLD_RETRY_SECONDS, hold - waited))
            note = (f"nobody in hours has room: held for a member who has ({waited / 60:.0f} of "
                    f"{hold / 60:g} min waited)")
        for c in after_hours:
            self.skipped.setdefault(c.rep_id, OUTSIDE_HOURS)
        return _Outcome("", HELD, f"pool {name}", f"{note}; again at {_iso_routed(self.retry_at)}")

    def day_start(self, m: _Member) -> datetime:
        """When the working day the rep is in began: today's ``hours.start`` in their zone (yesterday's for hours
        that run past midnight); the routing time for a rep without hours."""
        if m.days is None or m.hours is None:
            return self.at
        local = self.at.astimezone(m.zone)
        start = datetime.combine(local.date(), m.hours.start, tzinfo=m.zone)
        return start if start <= self.at else start - timedelta(days=1)

    def first_on(self, group: list[Candidate]) -> list[list[Candidate]]:
        """:func:`first_on`, each rep's next start read through :meth:`next_start`."""
        return self.grouped(group, self.next_start)

    def grouped(self, group: list[Candidate], when: Callable[[_Member], datetime],
                latest_first: bool = False) -> list[list[Candidate]]:
        """``group`` split by ``when`` each member's time comes, in time order (ties keep pool order)."""
        if len(group) < 2:
            return [group] if group else []
        by: dict[datetime, list[Candidate]] = {}
        members = self.plan.members
        for c in group:
            by.setdefault(when(members[c.rep_id]), []).append(c)
        return [by[t] for t in sorted(by, reverse=latest_first)]

    def next_start(self, m: _Member) -> datetime:
        """:func:`next_start`, remembered per rep, local day and where the time of day falls against the hours
        (before the start, in them, after the end): all it depends on but the instant it returns when in hours."""
        if m.days is None:
            return self.at
        lo, hi, _, _ = self.local(m.zone)
        if hi <= lo or m.start is None or m.end is None:  # a day with an offset change, or hours to the microsecond
            return next_start(m.rep, self.config, self.at)
        since = self.ts - lo
        key = (m.rep_id, lo, 0 if since < m.start else 1 if since < m.end else 2)
        memo = self.plan.starts
        found = memo.get(key)
        if found is None:
            found = next_start(m.rep, self.config, self.at)
            if found is not self.at:  # ``at`` itself (in hours today) is not kept: the next instant is another
                if len(memo) > 65536:
                    memo.clear()
                memo[key] = found
        return found

    def winding_down(self, m: _Member) -> bool:
        """Whether the rep is in the last ``hours.wind_down`` minutes of their working day."""
        return (self.day_end(m) - self.at).total_seconds() < m.hours.wind_down * 60

    def day_end(self, m: _Member) -> datetime:
        """When the rep's working day (in hours now) ends: today's ``hours.end`` in their zone."""
        local = self.at.astimezone(m.zone)
        return datetime.combine(local.date(), m.hours.end, tzinfo=m.zone)

    def longest_left(self, closing: list[Candidate]) -> list[list[Candidate]]:
        """The reps in their wind-down grouped by when their day ends, latest first (ties keep pool order): the
        strategy picks among those with the longest left, and among the next only when those are all at capacity,
        as :meth:`first_on` orders those outside hours by start."""
        return self.grouped(closing, self.day_end, latest_first=True)

    def passed_over(self, chosen: str, note: str, after_hours: list[Candidate],
                    closing: list[list[Candidate]]) -> None:
        """Why the members outside the group picked from were not picked: outside hours, or winding down with
        less time left than the one picked (or while someone not winding down took the lead)."""
        if note:
            for c in after_hours:
                if c.rep_id != chosen:
                    self.skipped.setdefault(c.rep_id, OUTSIDE_HOURS)
            return
        for c in after_hours:
            self.skipped[c.rep_id] = OUTSIDE_HOURS
        after = next((i + 1 for i, group in enumerate(closing) if any(c.rep_id == chosen for c in group)), 0)
        for group in closing[after:]:
            for c in group:
                self.skipped.setdefault(c.rep_id, DAY_ENDING)

    def groups(self, in_hours_now: list[Candidate], after_hours: list[Candidate],
               closing: list[list[Candidate]] | None = None) -> Iterator[tuple[list[Candidate], str]]:
        """Whom a pool's strategy picks among, in turn: the members in hours (those in their wind-down only after
        the others, longest left first, as :meth:`longest_left` groups them); when none can take the lead, those
        outside hours who start soonest (then the next to start), so the lead waits the least for its owner.
        Lazily: who starts when is worked out only when nobody in hours could take the lead."""
        if in_hours_now:
            yield in_hours_now, ""
        for group in closing or ():
            yield group, ""
        later = self.first_on(after_hours)
        for group in later:
            first = f"; first on: {', '.join(c.rep_id for c in group)}" if len(later) > 1 else ""
            yield group, first + "; all eligible reps outside hours"

    def weigh(self, load: PoolLoad, group: list[Candidate]) -> list[Candidate]:
        """The candidates of a pool with ``load:`` weights, each carrying its weighted CRM load."""
        pipeline, opps, memo = self.pipeline, load.opportunities, self.weighted
        out = []
        for c in group:  # each made once per router: the counts are the router's data, the rest the config's
            key = (c.rep_id, load.leads, opps)
            found = memo.get(key)
            if found is None:
                found = memo[key] = Candidate(c.rep_id, c.weight, c.capacity, load.leads, opps *
                                              pipeline.opportunities(c.rep_id) if opps and pipeline is not None else 0.0)
            out.append(found)
        return out

    def load_detail(self, pool: Pool, pick: Pick) -> str:
        """``least loaded: tom 3/25 leads + 7 opps x0.5`` (leads after this one), and a note on counts that are
        missing or stale."""
        load, rep_id = pool.load, str(pick.rep_id)
        assert load is not None
        capacity = self.config.reps[rep_id].capacity
        text = f"least loaded: {rep_id} {pick.load}{f'/{capacity}' if capacity else ''} leads"
        if load.leads != 1:
            text += f" x{load.leads:g}"
        if load.opportunities:
            pipeline = self.pipeline or PipelineLoad()
            text += f" + {pipeline.opportunities(rep_id)} {pipeline.label}"
            if load.opportunities != 1:
                text += f" x{load.opportunities:g}"
            note = pipeline.note(self.at)
            if note:
                text += f" ({note})"
        return text

    def perf_pool(self, target: Assign, in_hours_now: list[Candidate], after_hours: list[Candidate],
                  closing: list[list[Candidate]]) -> _Outcome | None:
        """``performance_weighted``: weights from the rate table for this lead's key, picked atomically
        under the pool's floor and cap (``state.pick_fair``); the reason names the rates used."""
        name = str(target.pool)
        pool = self.config.pools[name]
        perf = pool.performance or DEFAULT_PERFORMANCE
        settings = PerfSettings(tuple(perf.by), perf.prior_strength, perf.tilt, perf.warmup, perf.floor, perf.cap)
        hold = pool.hold if self.may_hold else None
        for group, note in self.groups(in_hours_now, after_hours, closing):
            if note and hold is not None:  # as :meth:`pool`
                if (held := self.held(target, hold, after_hours)) is not None:
                    return held
                hold = None
            weighting = weigh(self.rates, settings, pool.members, [(c.rep_id, c.weight) for c in group], self.facts)
            weighted = [Candidate(c.rep_id, weighting.weight_of(c.rep_id), c.capacity) for c in group]
            fairness = Fairness(perf.fairness_window, perf.floor, perf.cap, "|".join(weighting.key))
            caps, zones = self.config.caps, self.config.zones
            quotas = {c.rep_id: q for c in group if (q := caps.quotas(c.rep_id, zones[c.rep_id], self.at, name))}
            pick = self.state.pick_fair(name, pool.members, weighted, fairness, caps=quotas or None)  # a FairState
            for rep_id in pick.at_capacity:
                self.skipped[rep_id] = AT_CAPACITY
            for rep_id, why in pick.capped:
                self.skipped[rep_id] = why
            if pick.rep_id is None:
                continue
            self.passed_over(pick.rep_id, note, after_hours, closing)
            detail = explain(weighting, perf.by, pick.rep_id, pick.detail.partition(" ")[2], perf.floor, perf.cap)
            return _Outcome(pick.rep_id, "rep", f"pool {name}", detail + note)
        if hold is not None and (held := self.held(target, hold, after_hours)) is not None:
            return held
        self.failure = f"pool {name} had nobody available" + (
            f" ({', '.join(f'{r} {w}' for r, w in self.skipped.items())})" if self.skipped else "")
        return None

    def reachable(self, target: Assign) -> list[str]:
        """Who ``target`` could give the lead to now, without claiming anyone (territory tie-breaks)."""
        kind = target.kind
        if kind == "queue":
            return []
        if kind == "pool":
            reps = []
            exclude, overrides = self.exclude, self.overrides
            for m, static in self.plan.target(self.config, str(target.pool), target.require_skills,
                                              target.require_languages):
                rep_id = m.rep_id  # absence(), then the target's skills and languages
                if (rep_id in exclude or m.inactive or overrides.get(rep_id) or (m.ooo and self.away(m))
                        or static is not None):
                    continue
                reps.append(rep_id)
            return reps
        current = str(target.rep) if kind == "rep" else self.facts.get("account_owner")
        seen: set[str] = set()
        while current is not None and current in self.config.reps and current not in seen:
            if self._why_away(current) is None:
                return [current]
            seen.add(current)
            current = self.config.reps[current].backup
        return []

    def settle_territory(self) -> tuple[str, int]:
        """With ``territory_overlap: tie_break``, choose among the territories the lead is in.

        A territory no rule takes the lead in is no choice. Territories whose first matching
        rule is the same route the lead the same way, so the first in file order stands.
        Otherwise each territory is measured by the reps its rule could give the lead to now
        (their lowest load, the domain's last owner among them, their highest seniority).
        Returns a note for the reason (or "") and the first rule that can match the lead's
        facts now, so the rules are not tested twice.
        """
        tie_breaks = self.config.tie_breaks
        keys = tie_breaks.territories
        if not keys or self.facts.get("territory") not in tie_breaks.overlapping:
            return "", 0
        names = territories_of(self.facts, self.config)
        if len(names) < 2:
            return "", 0
        variants = []
        for name in names:
            variant = dict(self.facts, territory=name)
            variant.pop("segment", None)
            for segment, condition in self.config.compiled_segments:
                if condition.test(variant):
                    variant["segment"] = segment
                    break
            variants.append(variant)
        firsts = _first_rules(self.config, names, variants)
        options = [(n, v, r) for n, v, r in zip(names, variants, firsts, strict=True) if r is not None]
        if not options:
            return "", len(self.config.rules)
        if len({rule for _, _, rule in options}) == 1:
            name, variant, rule = options[0]
            if name == names[0]:
                return "", rule
            self.facts.clear()
            self.facts.update(variant)
            return f"territory {name} over {', '.join(names[:names.index(name)])}, which no rule takes", rule
        # A territory is measured by its rule's target: options with equal targets measure alike.
        target_of = {name: tie_breaks.targets[rule] for name, _, rule in options}
        assigns = {tie_breaks.targets[rule]: self.config.rules[rule].assign for _, _, rule in options}
        position = {name: i for i, name in enumerate(names)}
        if len(assigns) == 1:  # every measure alike: file order decides
            winner, key = options[0], FILE_ORDER
        else:
            reach = {t: self.reachable(a) for t, a in assigns.items()}
            everyone = list(dict.fromkeys(r for reps in reach.values() for r in reps))
            loads = self.state.loads(everyone) if everyone else {}
            for t, assign in assigns.items():
                if assign.kind == "pool":  # a pool passes over a rep at capacity; a named rep or owner is not
                    caps = self.config.reps
                    reach[t] = [r for r in reach[t] if (cap := caps[r].capacity) is None or loads.get(r, 0) < cap]
            recent = self.recent_owner() if MOST_RECENT_CONTACT in keys else None
            memo: dict[tuple[str, tuple[object, ...]], float] = {}

            def measure(key: str, option: tuple[str, dict[str, Any], int]) -> float:
                if key == FILE_ORDER:
                    return position[option[0]]
                target = target_of[option[0]]
                value = memo.get((key, target))
                if value is None:
                    value = memo[(key, target)] = min(
                        (self._rep_measure(key, r, loads, recent) for r in reach[target]), default=math.inf)
                return value

            winner, key = settle(options, keys, measure)
        self.facts.clear()
        self.facts.update(winner[1])
        self.tie_breaks["territory"] = key
        others = ", ".join(name for name, _, _ in options if name != winner[0])
        return f"territory {winner[0]} over {others}, by {key}", winner[2]

    def fallback(self, why: str | None) -> _Outcome:
        fb = self.config.fallback
        prefix = f"{why} -> " if why else ""
        if fb.queue:
            return _Outcome(f"queue:{fb.queue}", "queue", f"fallback queue {fb.queue}", why or "")
        outcome = self.relationship(str(fb.rep), "fallback rep")
        if outcome is not None:
            outcome.target = f"fallback rep {fb.rep}"
            outcome.detail = prefix + outcome.detail
            return outcome
        # The fallback must never fail: the triage rep takes it even when away.
        load = self.state.assign(str(fb.rep))
        return _Outcome(str(fb.rep), "rep", f"fallback rep {fb.rep}", f"{prefix}{fb.rep} {load} (away, no cover)")

    def decision(
        self, lead_id: str, rule: str, head: str, outcome: _Outcome, normalized: NormalizedLead
    ) -> Decision:
        detail = f" ({outcome.detail})" if outcome.detail else ""
        reason = f"{head} -> {outcome.target}{detail}"
        if normalized.unreadable:
            reason += f" [unreadable: {', '.join(normalized.unreadable)}]"
        considered = list(dict.fromkeys(self.considered))
        facts = {k: self.facts[k] for k in ("territory", "segment", "domain", "account_owner", "relationship")
                 if k in self.facts}
        if self.history is not None and outcome.kind == "rep" and self.facts.get("domain"):
            self.history.note_owner(str(self.facts["domain"]), outcome.owner, self.at)
        return Decision(
            lead_id=lead_id,
            owner=outcome.owner,
            owner_kind=outcome.kind,
            rule=rule,
            target=outcome.target,
            config_version=self.config.version_hash,
            routed_at=_iso_routed(self.at),
            reason=reason,
            considered=considered,
            skipped=self.skipped,  # this context ends with the decision: its lists are the decision's
            strategy_state=outcome.detail,
            unreadable=list(normalized.unreadable),
            facts=facts,
            chain=self.chain,
            tie_breaks=self.tie_breaks,
            created_at=_iso_created(self.created) if self.created is not None else None,
            arm=self.arm,
            experiment=self.experiment,
            retry_at=_iso_routed(self.retry_at) if outcome.kind == HELD and self.retry_at is not None else None,
        )
