"""``leadroute report --by arm``: the arms of each A/B split compared, with intervals and a verdict.

An arm is what a rule's ``split`` gave a lead (the first routing's ``arm`` column;
``data.experiment`` names the rule). Every figure is intention-to-treat: a lead counts for the
arm it was assigned, whatever happened later (a fallback, an SLA reassignment), so the arms
stay comparable.

Per arm, over the leads first routed in the period:

* **speed to lead**: creation to the first acknowledgement (any owner), p50 and p90, with a
  distribution-free 95% interval for the median (order statistics: ranks ``n/2 -+ 1.96
  sqrt(n)/2``); leads never acknowledged are counted, not timed;
* **SLA compliance**: of the leads whose first owner had an SLA clock, the share never
  breached (no ``sla.breach`` at epoch 0), with its Wilson 95% interval;
* **conversion**: converted or further, out of leads, with its Wilson 95% interval.

Each arm is compared with the baseline (the arm named ``control``, else the first in name
order): the difference of two proportions with Newcombe's hybrid score interval (method 10,
built from the two Wilson intervals; it keeps its coverage near 0% and with unequal arms, where
the textbook Wald interval does not). When the interval excludes 0 the verdict says which is
better; when it does not, a power calculation says how many more leads per arm would detect a
``MIN_EFFECT`` difference: the two-sided two-proportion z-test at 5% with 80% power, around the
baseline's observed rate (Fleiss' formula without continuity correction).
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, Engine, String, cast, func, select

from worker.domain.stats import Z95, percentile, wilson
from worker.ledger.schema import events
from worker.reports import sql
from worker.reports.model import Period, Rate, _Json
from worker.reports.passes import _utc

MIN_EFFECT = 0.02  # the difference in conversion (2 points) the power calculation sizes the arms for
POWER = 0.80
Z_POWER = 0.8416212335729143  # the standard normal's 80th percentile
BASELINE = "control"

Key = tuple[str, str, str]  # (crm, object, lead id)


@dataclass(frozen=True)
class Median(_Json):
    """p50 and p90 of ``timed`` waits (seconds), the median's 95% interval; ``untimed`` never acknowledged."""

    timed: int
    untimed: int
    p50: float | None
    p90: float | None
    low: float | None
    high: float | None


@dataclass(frozen=True)
class ArmFigures(_Json):
    arm: str
    leads: int
    speed_to_lead: Median
    sla: Rate  # clocks never breached, out of clocks started for the first owner
    conversion: Rate


@dataclass(frozen=True)
class Difference(_Json):
    """``arm`` minus ``baseline`` on one measure, in percentage points, with its 95% interval."""

    measure: str
    arm: str
    baseline: str
    points: float | None
    low: float | None
    high: float | None
    significant: bool
    needed_per_arm: int | None  # conversion only: leads per arm to detect MIN_EFFECT (80% power, 5% two-sided)
    verdict: str


@dataclass(frozen=True)
class Experiment(_Json):
    experiment: str
    arms: tuple[ArmFigures, ...]
    differences: tuple[Difference, ...]
    verdicts: tuple[str, ...]


@dataclass(frozen=True)
class ArmsReport(_Json):
    since: datetime
    until: datetime
    experiments: tuple[Experiment, ...]


# -- statistics --------------------------------------------------------------------------------------


def rate(k: int, n: int) -> Rate:
    interval = wilson(k, n)
    return Rate(k, n, k / n if n else None, *(interval if interval else (None, None)))


def newcombe(k1: int, n1: int, k2: int, n2: int, z: float = Z95) -> tuple[float, float, float] | None:
    """``p1 - p2`` and its hybrid score interval (Newcombe 1998, method 10); None when an arm has no leads."""
    a, b = wilson(k1, n1, z), wilson(k2, n2, z)
    if a is None or b is None:
        return None
    p1, p2 = k1 / n1, k2 / n2
    d = p1 - p2
    low = d - math.sqrt((p1 - a[0]) ** 2 + (b[1] - p2) ** 2)
    high = d + math.sqrt((a[1] - p1) ** 2 + (p2 - b[0]) ** 2)
    return d, low, high


def leads_per_arm(p: float, effect: float = MIN_EFFECT, z_alpha: float = Z95, z_beta: float = Z_POWER) -> int:
    """Leads per arm for a two-sided two-proportion z-test to detect ``p`` vs ``p + effect`` (Fleiss, no correction)."""
    p1 = min(max(p, 1e-6), 1 - 1e-6)
    p2 = min(p1 + effect, 1 - 1e-6) if p1 + effect < 1 else p1 - effect
    mean = (p1 + p2) / 2
    top = z_alpha * math.sqrt(2 * mean * (1 - mean)) + z_beta * math.sqrt(p1 * (1 - p1) + p2 * (1 - p2))
    return math.ceil(top * top / (p2 - p1) ** 2)


def median_interval(ordered: Sequence[float], z: float = Z95) -> tuple[float, float] | None:
    """A distribution-free 95% interval for the median of ascending ``ordered`` (order statistics)."""
    n = len(ordered)
    if n == 0:
        return None
    half = z * math.sqrt(n) / 2
    lo = max(0, math.floor(n / 2 - half) - 1)
    hi = min(n - 1, math.ceil(n / 2 + half))
    return ordered[lo], ordered[hi]


# -- reading the ledger ------------------------------------------------------------------------------


def _experiment(dialect: str) -> Any:
    if dialect == "postgresql":
        return events.c.data["experiment"].as_string()
    return cast(func.json_extract(events.c.data, "$.experiment"), String)


@dataclass
class _Lead:
    experiment: str
    arm: str
    created: float
    touched: float | None = None
    clock: bool = False
    breached: bool = False
    converted: bool = False


def read_arms(connection: Connection, period: Period) -> dict[Key, _Lead]:
    """The leads first routed in the period under an arm, with their first touch, SLA clock and outcome."""
    dialect = connection.dialect.name
    at = sql.epoch_seconds(events.c.at, dialect)
    created = func.coalesce(sql.epoch_seconds(events.c.lead_created_at, dialect), at)
    query = (select(events.c.crm, events.c.object, events.c.lead_id, events.c.arm, events.c.rule,
                    _experiment(dialect).label("experiment"), created.label("created"))
             .where(*sql.first_routings(period), events.c.arm.is_not(None)))
    leads: dict[Key, _Lead] = {}
    for row in connection.execute(query):
        leads[(row.crm, row.object, row.lead_id)] = _Lead(row.experiment or row.rule or "", row.arm, float(row.created))
    if not leads:
        return leads
    key = (events.c.crm, events.c.object, events.c.lead_id)
    touches = (select(*key, func.min(at).label("first_touch"))
               .where(events.c.kind == "ack", events.c.at >= period.since).group_by(*key))
    for row in connection.execute(touches):
        lead = leads.get((row.crm, row.object, row.lead_id))
        if lead is not None:
            lead.touched = float(row.first_touch)
    clocks = (select(*key, events.c.kind).distinct()
              .where(events.c.kind.in_(("sla.start", "sla.breach")), events.c.epoch == 0, events.c.at >= period.since))
    for row in connection.execute(clocks):
        lead = leads.get((row.crm, row.object, row.lead_id))
        if lead is not None:
            if row.kind == "sla.start":
                lead.clock = True
            else:
                lead.breached = True
    converted = (select(*key).distinct()
                 .where(events.c.kind == "outcome", events.c.status.in_(sql.OUTCOME_STATUSES), events.c.at >= period.since))
    for row in connection.execute(converted):
        lead = leads.get((row.crm, row.object, row.lead_id))
        if lead is not None:
            lead.converted = True
    return leads


# -- figures and verdicts ----------------------------------------------------------------------------


def arm_figures(arm: str, leads: Iterable[_Lead]) -> ArmFigures:
    """One arm's speed to lead, SLA compliance and conversion."""
    group = list(leads)
    waits = sorted(max(0.0, lead.touched - lead.created) for lead in group if lead.touched is not None)
    interval = median_interval(waits)
    median = Median(len(waits), len(group) - len(waits), percentile(waits, 0.5), percentile(waits, 0.9),
                    *(interval if interval else (None, None)))
    clocks = [lead for lead in group if lead.clock]
    return ArmFigures(arm, len(group), median, rate(sum(not c.breached for c in clocks), len(clocks)),
                      rate(sum(lead.converted for lead in group), len(group)))


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{value * 100:.1f}%"


def _pts(value: float) -> str:
    return f"{value * 100:.1f}"


def compare(measure: str, arm: ArmFigures, base: ArmFigures) -> Difference:
    """``arm`` against ``base`` on ``conversion`` or ``sla``, with the plain-words verdict."""
    a, b = getattr(arm, measure), getattr(base, measure)
    what = "converts" if measure == "conversion" else "meets the SLA on"
    of = "" if measure == "conversion" else " of clocks"
    found = newcombe(a.k, a.n, b.k, b.n)
    needed = None
    if measure == "conversion" and b.n:
        needed = leads_per_arm(b.k / b.n)
    if found is None:
        verdict = (f"not enough data yet: {arm.arm} has {a.n} and {base.arm} {b.n} "
                   f"{'leads' if measure == 'conversion' else 'SLA clocks'}")
        if needed is not None:
            verdict += f"; about {needed:,} per arm are needed to detect a {MIN_EFFECT * 100:g}-pt difference"
        return Difference(measure, arm.arm, base.arm, None, None, None, False, needed, verdict)
    d, low, high = found
    significant = low > 0 or high < 0
    numbers = (f"{_pct(a.value)} vs {_pct(b.value)}{of} (difference {_pts(d)} pts, 95% CI {_pts(low)} to {_pts(high)}; "
               f"n = {a.n:,} / {b.n:,})")
    if significant:
        verdict = f"{arm.arm} {what} {numbers}"
    elif needed is not None and min(a.n, b.n) < needed:
        more = needed - min(a.n, b.n)
        verdict = (f"not enough data yet: about {more:,} more leads per arm needed to detect a {MIN_EFFECT * 100:g}-pt "
                   f"difference ({needed:,} per arm for 80% power at 5%, two-sided; {arm.arm} {what} {numbers})")
    else:
        verdict = f"no difference detected: {arm.arm} {what} {numbers}"
        if needed is not None:
            verdict += f"; a {MIN_EFFECT * 100:g}-pt difference would show with 80% power at this size"
    return Difference(measure, arm.arm, base.arm, d, low, high, significant, needed, verdict)


def speed_verdict(arm: ArmFigures, base: ArmFigures) -> str | None:
    """Which arm is faster to first touch, when the medians' 95% intervals do not overlap."""
    a, b = arm.speed_to_lead, base.speed_to_lead
    if a.low is None or b.low is None or a.high is None or b.high is None or a.p50 is None or b.p50 is None:
        return None
    if a.high < b.low or b.high < a.low:
        faster, slower = (arm, base) if a.p50 < b.p50 else (base, arm)
        return (f"{faster.arm} reaches first touch faster: median {_clock(faster.speed_to_lead.p50)} vs "
                f"{_clock(slower.speed_to_lead.p50)} (95% intervals do not overlap; n = {a.timed:,} / {b.timed:,})")
    return (f"speed to lead: no clear difference (median {_clock(a.p50)} vs {_clock(b.p50)}, "
            f"95% intervals overlap; n = {a.timed:,} / {b.timed:,})")


def _clock(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    minutes, secs = divmod(round(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02d}m" if hours else (f"{minutes}m{secs:02d}s" if minutes else f"{secs}s")


def baseline_of(arms: Sequence[str], order: Sequence[str] = ()) -> str:
    """``control`` if there is one, else the first in the config's order, else in name order."""
    if BASELINE in arms:
        return BASELINE
    for name in order:
        if name in arms:
            return name
    return sorted(arms)[0]


def experiment_figures(name: str, leads: Iterable[_Lead], order: Sequence[str] = ()) -> Experiment:
    by_arm: dict[str, list[_Lead]] = defaultdict(list)
    for lead in leads:
        by_arm[lead.arm].append(lead)
    arms = [arm_figures(a, g) for a, g in by_arm.items()]
    base_name = baseline_of([a.arm for a in arms], order)
    position = {a: i for i, a in enumerate(order)}
    arms.sort(key=lambda a: (a.arm != base_name, position.get(a.arm, len(position)), a.arm))
    base = arms[0]
    differences: list[Difference] = []
    verdicts: list[str] = []
    for arm in arms[1:]:
        for measure in ("conversion", "sla"):
            diff = compare(measure, arm, base)
            differences.append(diff)
            if measure == "conversion" or diff.significant:
                verdicts.append(diff.verdict)
        speed = speed_verdict(arm, base)
        if speed:
            verdicts.append(speed)
    if len(arms) < 2:
        verdicts.append(f"only arm {base.arm} has leads in this period: nothing to compare")
    return Experiment(name, tuple(arms), tuple(differences), tuple(verdicts))


def compare_arms(source: Engine | Connection, period: Period, orders: Mapping[str, Sequence[str]] | None = None) -> ArmsReport:
    """Every experiment's arms over ``period``; ``orders`` (experiment -> arm names in file order) picks baselines."""
    if isinstance(source, Engine):
        with source.connect() as connection:
            leads = read_arms(connection, period)
    else:
        leads = read_arms(source, period)
    by_experiment: dict[str, list[_Lead]] = defaultdict(list)
    for lead in leads.values():
        by_experiment[lead.experiment].append(lead)
    orders = orders or {}
    experiments = tuple(experiment_figures(name, group, orders.get(name, ()))
                        for name, group in sorted(by_experiment.items()))
    return ArmsReport(_utc(period.since) or period.since, _utc(period.until) or period.until, experiments)


def render_lines(report: ArmsReport) -> list[str]:
    """The comparison as plain lines for the terminal: a row per arm, then the verdicts."""
    if not report.experiments:
        return ["A/B arms: no lead in this period was routed by a rule with a split"]
    lines: list[str] = []
    for exp in report.experiments:
        lines.append(f"A/B arms of rule {exp.experiment}")
        lines.append(f"  {'arm':<16} {'leads':>7} {'p50 to touch':>13} {'p90':>8} {'SLA met':>22} {'conversion':>22}")
        for a in exp.arms:
            s, c = a.sla, a.conversion
            sla = f"{_pct(s.value)} [{_pct(s.low)}-{_pct(s.high)}]" if s.n else "-"
            conv = f"{_pct(c.value)} [{_pct(c.low)}-{_pct(c.high)}]" if c.n else "-"
            lines.append(f"  {a.arm[:16]:<16} {a.leads:>7,} {_clock(a.speed_to_lead.p50):>13} "
                         f"{_clock(a.speed_to_lead.p90):>8} {sla:>22} {conv:>22}")
        lines += [f"  - {v}" for v in exp.verdicts]
    return lines


def orders_from_config(config: Any) -> dict[str, list[str]]:
    """Each split rule's arm names in file order, from a loaded routing config."""
    return {r.name: [a.name for a in r.split.arms] for r in config.rules if getattr(r, "split", None) is not None}


def render_html(report: ArmsReport) -> str:
    """The comparison as an HTML section (no script, no external asset), appended to the report's page."""
    import html  # the HTML format only

    parts = ['<h2 id="arms">A/B arms</h2>']
    if not report.experiments:
        parts.append("<p>No lead in this period was routed by a rule with a split.</p>")
    for exp in report.experiments:
        parts.append(f"<h3>rule {html.escape(exp.experiment)}</h3><table><tr><th>arm</th><th>leads</th>"
                     "<th>p50 to first touch</th><th>p90</th><th>SLA met [95% CI]</th><th>conversion [95% CI]</th></tr>")
        for a in exp.arms:
            s, c = a.sla, a.conversion
            parts.append(
                f"<tr><td>{html.escape(a.arm)}</td><td>{a.leads:,}</td><td>{_clock(a.speed_to_lead.p50)}</td>"
                f"<td>{_clock(a.speed_to_lead.p90)}</td><td>{_pct(s.value)} [{_pct(s.low)}-{_pct(s.high)}]</td>"
                f"<td>{_pct(c.value)} [{_pct(c.low)}-{_pct(c.high)}]</td></tr>")
        parts.append("</table><ul>" + "".join(f"<li>{html.escape(v)}</li>" for v in exp.verdicts) + "</ul>")
    return "\n".join(parts)
