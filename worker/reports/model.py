"""What a report takes and what it returns: plain, frozen dataclasses.

Every result type has ``to_dict()``, a JSON-ready dict (times as ISO 8601 strings in UTC,
tuples as lists), which is what ``leadroute report --format json`` prints and what the
dashboard will serve; the figures never need the database again once built.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

Dimension = Literal["rule", "pool", "rep", "tier", "source", "config_version", "arm"]
DIMENSIONS: tuple[str, ...] = ("rule", "pool", "rep", "tier", "source", "config_version", "arm")
NONE = "(none)"  # the group of events that have no value in the grouping column


class _Json:
    """``to_dict`` for every result type: a JSON-ready copy."""

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready: datetimes as ISO 8601 strings, tuples as lists, nested results as dicts."""
        return {f.name: _plain(getattr(self, f.name)) for f in dataclasses.fields(self)}  # type: ignore[arg-type]


def _plain(value: Any) -> Any:
    if isinstance(value, _Json):
        return value.to_dict()
    if isinstance(value, datetime):
        return value.astimezone(UTC).isoformat()
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, float):
        return round(value, 6)
    return value


# -- inputs -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Period:
    """``since <= at < until``, both timezone-aware: the leads routed (or clocks started) in it."""

    since: datetime
    until: datetime

    def __post_init__(self) -> None:
        for name in ("since", "until"):
            value = getattr(self, name)
            if value.tzinfo is None or value.utcoffset() is None:
                raise ValueError(f"{name}: {value.isoformat()} has no time zone; pass an aware datetime (UTC)")
            object.__setattr__(self, name, value.astimezone(UTC))
        if self.until <= self.since:
            raise ValueError(f"until ({self.until.isoformat()}) must be after since ({self.since.isoformat()})")

    @classmethod
    def last(cls, days: float, now: datetime | None = None) -> Period:
        """The ``days`` before ``now`` (default: this moment)."""
        end = now or datetime.now(UTC)
        return cls(end - timedelta(days=days), end)

    @property
    def days(self) -> float:
        return (self.until - self.since).total_seconds() / 86400


@dataclass(frozen=True)
class TierWindow:
    """One SLA tier's acknowledgement window, and which clock measures it (``wall`` or ``business_hours``)."""

    seconds: float
    clock: Literal["wall", "business_hours"] = "wall"


@dataclass(frozen=True)
class ReportSettings:
    """What the routing config tells a report that the ledger does not: pool members with their
    weights (``{pool: {rep: weight}}``, in member order) and the SLA tiers' windows.

    Without it a report still runs: a pool's members are the reps its events name, each of
    weight 1, and compliance within the window is unknown (breaches are still counted).
    """

    pools: Mapping[str, Mapping[str, int]] = field(default_factory=dict)
    tiers: Mapping[str, TierWindow] = field(default_factory=dict)


# -- results ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Percentiles(_Json):
    """p50/p90/p95 of ``n`` waits, in seconds (continuous percentiles, as PostgreSQL's percentile_cont)."""

    n: int
    p50: float | None
    p90: float | None
    p95: float | None


@dataclass(frozen=True)
class Wait(_Json):
    """One group's waits: wall clock and the owner's business time."""

    key: str
    wall: Percentiles
    business: Percentiles


@dataclass(frozen=True)
class Bin(_Json):
    """A histogram bin: waits ``low <= w < high`` seconds (``high`` None: no upper end)."""

    low: float
    high: float | None
    count: int


@dataclass(frozen=True)
class SpeedMeasure(_Json):
    """One leg of speed to lead: overall, by the report's grouping (the path) and by rep."""

    name: str
    overall: Wait
    by_group: tuple[Wait, ...]
    by_rep: tuple[Wait, ...]
    histogram: tuple[Bin, ...]  # wall-clock waits, for the distribution chart


@dataclass(frozen=True)
class SpeedToLead(_Json):
    """Creation -> owner written (``decision``), and owner written -> first touch (``ack``)."""

    to_owner: SpeedMeasure
    to_ack: SpeedMeasure


@dataclass(frozen=True)
class Rate(_Json):
    """``k`` out of ``n``, with its Wilson 95% interval; all None when ``n`` is 0."""

    k: int
    n: int
    value: float | None
    low: float | None
    high: float | None


@dataclass(frozen=True)
class TierCompliance(_Json):
    """One SLA tier over the clocks started in the period."""

    tier: str
    window_seconds: float | None  # None: the tier is not in the settings, so "within" is unknown
    clock: str | None
    clocks: int  # sla.start
    acknowledged: int  # ack, any time after
    within: Rate | None  # acknowledged within the window, out of the clocks started
    breaches: int
    reminders: int
    escalations: int
    reassignments: int
    parks: int
    waited: Wait  # time to acknowledgement of this tier's acknowledged leads
    waited_late: Percentiles  # ... of those acknowledged after the window, on the tier's clock
    steps_waited: Mapping[str, Percentiles]  # how long leads had waited when each ladder step hit them


@dataclass(frozen=True)
class CompliancePoint(_Json):
    """Compliance of one tier in one time bucket (a day, or a week over long periods)."""

    start: datetime
    tier: str
    clocks: int
    within: int
    share: float | None


@dataclass(frozen=True)
class SlaCompliance(_Json):
    tiers: tuple[TierCompliance, ...]
    timeline: tuple[CompliancePoint, ...]
    bucket: Literal["day", "week"]


@dataclass(frozen=True)
class MemberLoad(_Json):
    """One pool member's leads over the period against their weight."""

    rep: str
    weight: int
    member: bool  # in the pool per the settings (False: named by events only)
    assigned: int  # first routings to them from this pool
    received: int  # re-routes and reassignments to them within this pool
    taken_back: int  # leads that left them by re-route, reassignment or park: credit taken back
    net: int  # assigned + received - taken_back
    expected: float | None  # their weight's share of the pool's net leads
    ratio: float | None  # net / expected: 1.0 is exactly their share


@dataclass(frozen=True)
class Skip(_Json):
    """How often, and for how long, a member was passed over for one reason."""

    rep: str
    reason: str
    decisions: int  # pool decisions that skipped them for this reason
    share: float | None  # ... out of the pool's decisions
    seconds: float  # time until the pool's next decision, summed over those decisions


@dataclass(frozen=True)
class PoolFairness(_Json):
    pool: str
    decisions: int
    members: tuple[MemberLoad, ...]
    max_min: float | None  # highest over lowest net leads per unit of weight (None: someone got none)
    gini: float | None  # over net leads per unit of weight: 0 is perfectly fair
    skipped: tuple[Skip, ...]


@dataclass(frozen=True)
class RepAcceptance(_Json):
    """Leads that reached a rep, and those that left them again."""

    rep: str
    received: int  # first routings + re-routes, reassignments and other re-decisions to them
    rerouted: int  # left them by manual re-route
    reassigned: int  # left them by SLA reassignment
    parked: int  # left them for the fallback queue (SLA park)
    rejected: int  # handed back by them (in the CRM or by ``leadroute reject``) and routed to someone else
    kept: Rate  # received - left (all four ways), out of received
    rejection_rate: Rate  # rejected, out of received


@dataclass(frozen=True)
class Override(_Json):
    """Manual interventions by who made them: ``reroute`` (leadroute reroute) or ``sla.manual_override`` (a CRM owner change)."""

    actor: str
    kind: str
    count: int


@dataclass(frozen=True)
class Acceptance(_Json):
    reps: tuple[RepAcceptance, ...]
    overrides: tuple[Override, ...]


@dataclass(frozen=True)
class OutcomeRow(_Json):
    """Outcomes of the leads first routed in the period, in one group."""

    key: str
    leads: int
    conversion: Rate  # converted (or further), out of leads
    opportunity: Rate  # opportunity (or won/lost), out of leads
    win: Rate  # won, out of won + lost


@dataclass(frozen=True)
class Outcomes(_Json):
    by: str
    overall: OutcomeRow
    rows: tuple[OutcomeRow, ...]


@dataclass(frozen=True)
class RuleCoverage(_Json):
    rule: str
    leads: int
    share: float | None
    unreadable: int  # leads with at least one unreadable field
    first_at: datetime | None
    last_at: datetime | None  # a rule that stopped matching shows an old last_at


@dataclass(frozen=True)
class FieldCount(_Json):
    field: str
    leads: int


@dataclass(frozen=True)
class Coverage(_Json):
    leads: int
    fallback: Rate  # leads that went to the fallback, out of leads
    rules: tuple[RuleCoverage, ...]
    unreadable: tuple[FieldCount, ...]


@dataclass(frozen=True)
class Report(_Json):
    """Every figure over one period, grouped one way."""

    since: datetime
    until: datetime
    by: str
    generated_at: datetime
    database: str
    leads: int
    speed: SpeedToLead
    sla: SlaCompliance
    fairness: tuple[PoolFairness, ...]
    acceptance: Acceptance
    outcomes: Outcomes
    coverage: Coverage
