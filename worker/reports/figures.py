"""The report's figures, each a function of a connection and a period (the library API the dashboard calls).

Each takes the results of the passes it needs when the caller already has them
(:func:`worker.reports.report.build_report` shares one pass among several figures), and
otherwise runs them itself. See ``docs/reports.md`` for how each figure is defined.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping
from datetime import datetime, timedelta

from sqlalchemy import Connection

from worker.domain.stats import gini, share, wilson
from worker.reports import passes
from worker.reports.grouped import Grouped
from worker.reports.model import (
    Acceptance,
    CompliancePoint,
    Coverage,
    FieldCount,
    MemberLoad,
    OutcomeRow,
    Outcomes,
    Override,
    Percentiles,
    Period,
    PoolFairness,
    Rate,
    RepAcceptance,
    RuleCoverage,
    Skip,
    SlaCompliance,
    SpeedMeasure,
    SpeedToLead,
    TierCompliance,
    TierWindow,
    Wait,
)
from worker.reports.sql import STEP_KINDS, label

FALLBACK = "fallback"
QUEUE = "queue:"
REJECTION = "rejection"  # ``data.via`` of the decision that re-routed a lead its rep handed back (steps.handback)


def _need(connection: Connection | None) -> Connection:
    if connection is None:
        raise ValueError("no connection, and not every pass this figure needs was given")
    return connection


def rate(k: int, n: int) -> Rate:
    """``k`` of ``n`` with its Wilson 95% interval."""
    interval = wilson(k, n)
    return Rate(k, n, share(k, n), *(interval if interval else (None, None)))


# -- speed to lead ------------------------------------------------------------------------------


def speed_to_lead(connection: Connection | None, period: Period, by: str = "rule", *, routing: Grouped | None = None,
                  acks: Grouped | None = None) -> SpeedToLead:
    """Creation -> owner written and owner written -> acknowledged: p50/p90/p95 by path and by rep, wall and business."""
    routing = routing or passes.first_routings(_need(connection), period, by)[1]
    acks = acks or passes.ack_waits(_need(connection), period, by, {})
    return SpeedToLead(_measure("to_owner", routing, by), _measure("to_ack", acks, by))


def _measure(name: str, stats: Grouped, by: str) -> SpeedMeasure:
    def waits(key: str) -> tuple[Wait, ...]:
        rows = [Wait(label(lbl[0]), stats.pct(key, lbl, "wall"), stats.pct(key, lbl, "business"))
                for lbl in stats.percentiles.get(key, {})]
        return tuple(sorted(rows, key=lambda w: (-w.wall.n, w.key)))

    overall = Wait("all", stats.pct("", (), "wall"), stats.pct("", (), "business"))
    by_rep = waits("rep")
    return SpeedMeasure(name, overall, by_rep if by == "rep" else waits("group"), by_rep, stats.histogram)


# -- SLA compliance -----------------------------------------------------------------------------


def sla_compliance(connection: Connection | None, period: Period, tiers: Mapping[str, TierWindow] | None = None, *,
                   acks: Grouped | None = None, steps: Grouped | None = None) -> SlaCompliance:
    """Per tier: clocks started in the period, acknowledged within the window, the ladder's steps, the waits."""
    tiers = tiers or {}
    acks = acks or passes.ack_waits(_need(connection), period, "rule", tiers)
    steps = steps or passes.sla_steps(_need(connection), period)
    started: dict[str | None, int] = defaultdict(int)
    counted: dict[tuple[str, str | None], int] = defaultdict(int)
    for (kind, tier), n in steps.rows.get("kind_tier", {}).items():
        counted[(kind, tier)] += n
        if kind == "sla.start":
            started[tier] += n
    names = sorted({*started, *(t for (t,) in acks.rows.get("tier", {})), *(t for _, t in counted)} - {None},
                   key=str) + ([None] if None in started or (None,) in acks.rows.get("tier", {}) else [])
    rows = []
    for tier in names:
        window = tiers.get(tier) if tier is not None else None
        clocks = started.get(tier, 0)
        acknowledged = acks.rows.get("tier", {}).get((tier,), 0)
        within = acks.total("tier", (tier,), "within")
        rows.append(TierCompliance(
            tier=label(tier), window_seconds=window.seconds if window else None, clock=window.clock if window else None,
            clocks=clocks, acknowledged=acknowledged,
            within=rate(min(within, clocks), clocks) if window else None,
            breaches=counted.get(("sla.breach", tier), 0), reminders=counted.get(("sla.remind", tier), 0),
            escalations=counted.get(("sla.escalate", tier), 0), reassignments=counted.get(("sla.reassign", tier), 0),
            parks=counted.get(("sla.park", tier), 0),
            waited=Wait(label(tier), acks.pct("tier", (tier,), "wall"), acks.pct("tier", (tier,), "business")),
            waited_late=acks.pct("tier", (tier,), "late"),
            steps_waited={kind.removeprefix("sla."): steps.pct("kind_tier", (kind, tier), "wait") for kind in STEP_KINDS
                          if counted.get((kind, tier))},
        ))
    bucket, size = passes.bucket_size(period)
    origin = passes.bucket_origin(period)
    clocks_at: dict[tuple[str | None, int], int] = defaultdict(int)
    for (kind, tier, b), n in steps.rows.get("bucket", {}).items():
        if kind == "sla.start" and b is not None:
            clocks_at[(tier, int(b))] += n
    within_at: dict[tuple[str | None, int], int] = defaultdict(int)
    for (tier, b), sums in acks.sums.get("tier_bucket", {}).items():
        if b is not None:
            within_at[(tier, int(b))] += sums.get("within", 0)
    timeline = tuple(
        CompliancePoint(origin + timedelta(seconds=b * size), label(tier), n, min(within_at.get((tier, b), 0), n),
                        share(min(within_at.get((tier, b), 0), n), n) if tier in tiers else None)
        for (tier, b), n in sorted(clocks_at.items(), key=lambda item: (item[0][1], str(item[0][0])))
    )
    return SlaCompliance(tuple(rows), timeline, bucket)  # type: ignore[arg-type]


# -- fairness and acceptance --------------------------------------------------------------------


def fairness(connection: Connection | None, period: Period, pools: Mapping[str, Mapping[str, int]] | None = None, *,
             decisions: list[passes.DecisionGroup] | None = None, moved: list[passes.Move] | None = None,
             skipped: list[passes.SkipTotal] | None = None, now: datetime | None = None) -> tuple[PoolFairness, ...]:
    """Per pool: each member's leads against their weight, max/min and Gini, skips, credit taken back."""
    pools = pools or {}
    decisions = decisions if decisions is not None else passes.first_routings(_need(connection), period, "rule")[0]
    moved = moved if moved is not None else passes.moves(_need(connection), period)
    skipped = skipped if skipped is not None else passes.skips(_need(connection), period, now)
    assigned: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))
    received: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))
    taken: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))
    for d in decisions:
        if d.pool is not None and d.owner is not None:
            assigned[d.pool][d.owner] += d.leads
    for m in moved:
        # a pool's own picks: manual re-routes through it and the re-decisions of SLA reassignments
        if m.pool is None or m.kind not in ("reroute", "decision"):
            continue
        if m.owner and not m.owner.startswith(QUEUE):
            received[m.pool][m.owner] += m.count
        if m.previous_owner and m.previous_owner != m.owner:
            taken[m.pool][m.previous_owner] += m.count
    skips_by_pool: dict[str, list[passes.SkipTotal]] = defaultdict(list)
    for s in skipped:
        skips_by_pool[s.pool].append(s)
    out = []
    for pool in sorted({*pools, *assigned, *received, *taken}):
        configured = pools.get(pool, {})
        seen = {*assigned[pool], *received[pool], *taken[pool]}
        reps = [*configured, *sorted(r for r in seen if r not in configured and not r.startswith(QUEUE))]
        nets = {r: assigned[pool][r] + received[pool][r] - taken[pool][r] for r in reps}
        weights = {r: int(configured.get(r, 1)) for r in reps}
        total_net, total_weight = sum(nets.values()), sum(weights.values())
        members = []
        for rep in reps:
            expected = total_net * weights[rep] / total_weight if total_weight else None
            members.append(MemberLoad(rep, weights[rep], rep in configured, assigned[pool][rep], received[pool][rep],
                                      taken[pool][rep], nets[rep], expected,
                                      nets[rep] / expected if expected else None))
        per_weight = [max(nets[r], 0) / weights[r] for r in reps]
        pool_decisions = sum(assigned[pool].values())
        out.append(PoolFairness(
            pool=pool, decisions=pool_decisions, members=tuple(members),
            max_min=(max(per_weight) / min(per_weight)) if per_weight and min(per_weight) > 0 else None,
            gini=gini(per_weight),
            skipped=tuple(sorted((Skip(s.rep, s.reason, s.decisions, share(s.decisions, pool_decisions), s.seconds)
                                  for s in skips_by_pool[pool]), key=lambda s: (-s.seconds, s.rep, s.reason))),
        ))
    return tuple(out)


def acceptance(connection: Connection | None, period: Period, *, decisions: list[passes.DecisionGroup] | None = None,
               moved: list[passes.Move] | None = None) -> Acceptance:
    """Per rep: leads that reached them and left again (re-route, reassignment, park, rejection), and their
    rejection rate; overrides by who asked."""
    decisions = decisions if decisions is not None else passes.first_routings(_need(connection), period, "rule")[0]
    moved = moved if moved is not None else passes.moves(_need(connection), period)
    received: dict[str, int] = defaultdict(int)
    left: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))
    overrides: dict[tuple[str, str], int] = defaultdict(int)
    for d in decisions:
        if d.owner is not None:
            received[d.owner] += d.leads
    for m in moved:
        if m.kind in ("reroute", "decision") and m.owner:  # a re-route's or a re-decision's new owner
            received[m.owner] += m.count
        if m.kind in ("reroute", "sla.reassign", "sla.park") and m.previous_owner:
            left[m.previous_owner][m.kind] += m.count
        if m.kind == "decision" and m.via == REJECTION and m.previous_owner:  # the rep who handed it back
            left[m.previous_owner][REJECTION] += m.count
        if m.kind == "sla.manual_override" or (m.kind == "reroute" and m.actor):
            overrides[(m.actor or "(unknown)", m.kind)] += m.count
    reps = sorted(r for r in {*received, *left} if not r.startswith(QUEUE))
    rows = []
    for rep in reps:
        gone = left[rep]
        total_left = sum(gone.values())
        n = received[rep]
        rows.append(RepAcceptance(rep, n, gone["reroute"], gone["sla.reassign"], gone["sla.park"], gone[REJECTION],
                                  rate(max(n - total_left, 0), n), rate(min(gone[REJECTION], n), n)))
    rows.sort(key=lambda r: (-(r.rerouted + r.reassigned + r.parked + r.rejected), r.rep))
    listed = sorted((Override(actor, kind, n) for (actor, kind), n in overrides.items()),
                    key=lambda o: (-o.count, o.actor, o.kind))
    return Acceptance(tuple(rows), tuple(listed))


# -- outcomes and coverage ----------------------------------------------------------------------


def outcomes(connection: Connection | None, period: Period, by: str = "rule", *,
             decisions: list[passes.DecisionGroup] | None = None,
             counts: list[passes.OutcomeCounts] | None = None) -> Outcomes:
    """Conversion, opportunity and win rates of the leads first routed in the period, by the grouping."""
    decisions = decisions if decisions is not None else passes.first_routings(_need(connection), period, by)[0]
    counts = counts if counts is not None else passes.outcome_counts(_need(connection), period, by)
    leads: dict[str, int] = defaultdict(int)
    for d in decisions:
        leads[label(d.group)] += d.leads
    found = {label(c.group): c for c in counts}
    rows = [_outcome(key, n, found.get(key)) for key, n in leads.items()]
    rows.sort(key=lambda r: (-r.leads, r.key))
    total = passes.OutcomeCounts(None, *(sum(getattr(c, f) for c in counts) for f in ("converted", "opportunity", "won",
                                                                                          "closed")))
    return Outcomes(by, _outcome("all", sum(leads.values()), total), tuple(rows))


def _outcome(key: str, leads: int, c: passes.OutcomeCounts | None) -> OutcomeRow:
    c = c or passes.OutcomeCounts(None, 0, 0, 0, 0)
    return OutcomeRow(key, leads, rate(c.converted, leads), rate(c.opportunity, leads), rate(c.won, c.closed))


def coverage(connection: Connection | None, period: Period, *, decisions: list[passes.DecisionGroup] | None = None,
             unreadable: passes.Unreadable | None = None) -> Coverage:
    """Leads per rule (with when each rule last matched), the fallback's share, unreadable fields."""
    decisions = decisions if decisions is not None else passes.first_routings(_need(connection), period, "rule")[0]
    unreadable = unreadable if unreadable is not None else passes.unreadable_fields(_need(connection), period)
    per_rule: dict[str, list[passes.DecisionGroup]] = defaultdict(list)
    for d in decisions:
        per_rule[label(d.rule)].append(d)
    total = sum(d.leads for d in decisions)
    rules = []
    for rule, groups in per_rule.items():
        n = sum(g.leads for g in groups)
        rules.append(RuleCoverage(rule, n, share(n, total), unreadable.by_rule.get(groups[0].rule, 0),
                                  _earliest(g.first_at for g in groups), _latest(g.last_at for g in groups)))
    rules.sort(key=lambda r: (-r.leads, r.rule))
    fallback = sum(r.leads for r in rules if r.rule == FALLBACK)
    fields = tuple(sorted((FieldCount(f, n) for f, n in unreadable.fields.items()), key=lambda f: (-f.leads, f.field)))
    return Coverage(total, rate(fallback, total), tuple(rules), fields)


def _earliest(values: Iterable[datetime | None]) -> datetime | None:
    present = [v for v in values if v is not None]
    return min(present) if present else None


def _latest(values: Iterable[datetime | None]) -> datetime | None:
    present = [v for v in values if v is not None]
    return max(present) if present else None


__all__ = ["Percentiles", "acceptance", "coverage", "fairness", "outcomes", "rate", "sla_compliance", "speed_to_lead"]
