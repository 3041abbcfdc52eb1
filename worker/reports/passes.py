"""The passes a report makes over the ledger, each reading one set of rows once.

A figure often needs rows another figure reads too (first routings feed speed to lead,
coverage, fairness and the outcome denominators), so the passes are separate from the
figures: :func:`worker.reports.report.build_report` runs each pass once, side by side, and
hands the results to every figure that needs them; a figure called on its own runs the
passes it needs itself.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import numpy as np
from sqlalchemy import ColumnElement, Connection, Float, Integer, String, and_, case, cast, func, literal, or_, select

from worker.ledger.schema import events
from worker.reports import sql
from worker.reports.grouped import Grouped, grouped
from worker.reports.model import Period, TierWindow


@dataclass(frozen=True)
class DecisionGroup:
    """First routings sharing a group, rule, pool and owner."""

    group: Any
    rule: str | None
    pool: str | None
    owner: str | None
    leads: int
    first_at: datetime | None
    last_at: datetime | None


def first_routings(connection: Connection, period: Period, by: str) -> tuple[list[DecisionGroup], Grouped]:
    """One pass over the first routings, on typed columns only: counts by (grouping, rule, pool,
    owner) with when each group's first and last lead came; and creation -> owner written
    (``wait_seconds``, else ``at - lead_created_at``) by path, by rep and overall.
    """
    dialect = connection.dialect.name
    wall = func.coalesce(events.c.wait_seconds,
                         sql.epoch_seconds(events.c.at, dialect) - sql.epoch_seconds(events.c.lead_created_at, dialect))
    keys = _speed_keys(by) | {"finest": [sql.dimension(by), events.c.rule, events.c.pool, events.c.owner]}
    stats = grouped(connection, sql.first_routings(period), keys=keys,
                    values={"wall": wall, "business": events.c.wait_business_seconds},
                    percentiles_for=tuple(k for k in keys if k != "finest"), histogram_of="wall", extremes_of=events.c.at)
    groups = []
    for (group, rule, pool, owner), n in stats.rows.get("finest", {}).items():
        first, last = stats.extremes.get("finest", {}).get((group, rule, pool, owner), (None, None))
        groups.append(DecisionGroup(group, rule, pool, owner, n, _utc(first), _utc(last)))
    return groups, stats


def ack_waits(connection: Connection, period: Period, by: str, tiers: Mapping[str, TierWindow]) -> Grouped:
    """Owner written -> acknowledged, per ``ack`` whose clock started in the period.

    Grouped by the path, rep (who acknowledged), tier and (tier, time bucket); ``within`` counts
    the acks inside their tier's window, on the tier's clock; ``late`` is the wait of those
    outside it. The path (rule, pool, source, arm, config version) is the lead's first routing's,
    which an ``ack`` need not carry: it is looked up by the lead's key.
    """
    dialect = connection.dialect.name
    wall, business = events.c.wait_seconds, events.c.wait_business_seconds
    business_tiers = [t for t, w in tiers.items() if w.clock == "business_hours"]
    on_clock = case((events.c.tier.in_(business_tiers), business), else_=wall) if business_tiers else wall
    windows = [and_(events.c.tier == t, on_clock <= w.seconds) for t, w in tiers.items()]
    within = or_(*windows) if windows else literal(False)
    late = and_(events.c.tier.in_(list(tiers)), on_clock.is_not(None), ~within) if tiers else literal(False)
    keys: dict[str, list[ColumnElement[Any]]] = {"rep": [events.c.owner]}
    where = sql.clocks_started_in(period, ["ack"], dialect)
    source = None
    if by not in ("rep", "tier"):
        # the path is the lead's first routing's, which an ack need not carry: by the lead's key
        column = sql.dimension(by).name
        if dialect == "postgresql":
            routing = (select(events.c.crm, events.c.object, events.c.lead_id, events.c[column].label("path"))
                       .where(events.c.kind == "decision", or_(events.c.epoch.is_(None), events.c.epoch == 0),
                              events.c.at < period.until).subquery("routing"))
            source = events.outerjoin(routing, and_(routing.c.crm == events.c.crm, routing.c.lead_id == events.c.lead_id,
                                                    routing.c.object == events.c.object))
            path: ColumnElement[Any] = routing.c.path
        else:  # SQLite joins by nested loops only: one probe of ix_events_lead per ack, the lead's first event first
            first = events.alias("routing")
            path = (select(first.c[column]).where(first.c.crm == events.c.crm, first.c.lead_id == events.c.lead_id,
                                                  first.c.object == events.c.object, first.c.kind == "decision",
                                                  or_(first.c.epoch.is_(None), first.c.epoch == 0))
                    .limit(1).scalar_subquery())
        keys["group"] = [func.coalesce(path, events.c[column])]
    keys |= {"tier": [events.c.tier], "tier_bucket": [events.c.tier, _bucket(period, dialect)]}
    return grouped(connection, where, keys=keys,
                   values={"wall": wall, "business": business, "late": case((late, on_clock), else_=None)},
                   flags={"within": within}, percentiles_for=("group", "rep", "tier"), histogram_of="wall", source=source)


def sla_steps(connection: Connection, period: Period) -> Grouped:
    """Clocks started (``sla.start``) by tier and time bucket, and the ladder's steps by kind and tier, with their waits.

    A clock's start is its ``sla.start``'s ``at``, so those rows are bounded by the index on
    (kind, at) alone and only counted; the steps (few) carry the waits.
    """
    dialect = connection.dialect.name
    stats = grouped(connection, sql.clocks_started_in(period, sql.STEP_KINDS, dialect),
                    keys={"kind_tier": [events.c.kind, events.c.tier]}, values={"wait": events.c.wait_seconds},
                    percentiles_for=("kind_tier",))
    bucket = _bucket(period, dialect, sql.epoch_seconds(events.c.at, dialect))
    starts = (select(events.c.tier, bucket.label("b"), func.count().label("n"))
              .where(*sql.happened_in(period, ["sla.start"])).group_by(events.c.tier, bucket))
    kind_tier, buckets = stats.rows.setdefault("kind_tier", {}), stats.rows.setdefault("bucket", {})
    for row in connection.execute(starts):
        kind_tier[("sla.start", row.tier)] = kind_tier.get(("sla.start", row.tier), 0) + int(row.n)
        buckets[("sla.start", row.tier, row.b)] = int(row.n)
    return stats


@dataclass(frozen=True)
class Move:
    """Moves of one kind between the same owners within one pool, with who asked."""

    kind: str
    pool: str | None
    owner: str | None
    previous_owner: str | None
    actor: str | None
    count: int


def moves(connection: Connection, period: Period) -> list[Move]:
    """Moves that happened in the period: manual re-routes, SLA reassignments (the ``sla.reassign`` step,
    and the ``decision`` at the new epoch that picked the new owner from a pool), parks and manual overrides.
    """
    cols = (events.c.kind, events.c.pool, events.c.owner, events.c.previous_owner, events.c.actor)
    kinds = [*sql.MOVE_KINDS, "sla.manual_override", "decision"]
    query = (select(*cols, func.count().label("n"))
             .where(*sql.happened_in(period, kinds), or_(events.c.kind != "decision", events.c.epoch > 0))
             .group_by(*cols))
    return [Move(r.kind, r.pool, r.owner, r.previous_owner, r.actor, int(r.n)) for r in connection.execute(query)]


@dataclass(frozen=True)
class SkipTotal:
    pool: str
    rep: str
    reason: str
    decisions: int
    seconds: float


def skips(connection: Connection, period: Period, now: datetime | None = None) -> list[SkipTotal]:
    """Pool members passed over in first routings, by reason, and for how long.

    A member skipped at a decision counts as skipped until the pool's next decision at a later
    time (after the last one: until the end of the period, or now), so a run of decisions that
    all skip a rep adds up to the time they were out of the rotation. Two reads: each pool's
    decision times (as one text list per pool) and the decisions that skipped someone, with
    their reasons from ``data``; numpy finds each one's next decision.
    """
    dialect = connection.dialect.name
    end = min(period.until, now or datetime.now(UTC)).timestamp()
    at = sql.epoch_seconds(events.c.at, dialect)
    where = [*sql.first_routings(period), events.c.pool.is_not(None)]
    joined = func.string_agg(cast(at, String), ",") if dialect == "postgresql" else func.group_concat(at)
    times = {row.pool: np.sort(np.round(np.array(row.stamps.split(","), dtype=float), 3))  # to the ms: as text, 15 digits
             for row in connection.execute(select(events.c.pool, joined.label("stamps")).where(*where).group_by(events.c.pool))}
    if dialect == "postgresql":
        pairs = func.jsonb_each_text(events.c.data["skipped"]).table_valued("key", "value").render_derived()
    else:
        pairs = func.json_each(events.c.data, "$.skipped").table_valued("key", "value")
    query = (select(events.c.pool, at.label("at_s"), pairs.c.key, pairs.c.value).select_from(events)
             .join(pairs, literal(True)).where(*where, sql.json_object_nonempty("skipped", dialect)))
    found: dict[tuple[str, str, str], list[float]] = {}
    for row in connection.execute(query):
        found.setdefault((row.pool, str(row.key), str(row.value)), []).append(float(row.at_s))
    out = []
    for (pool, rep, reason), stamps in found.items():
        pool_times = times.get(pool, np.zeros(0))
        skipped_at = np.round(np.array(stamps), 3)
        following = np.searchsorted(pool_times, skipped_at, side="right")
        later = np.where(following < len(pool_times), pool_times[np.minimum(following, len(pool_times) - 1)], end)
        out.append(SkipTotal(pool, rep, reason, len(stamps), float(np.sum(np.maximum(later, skipped_at) - skipped_at))))
    return out


@dataclass(frozen=True)
class Unreadable:
    """First routings naming each field they could not read, and per rule those with any."""

    fields: dict[str, int]
    by_rule: dict[str | None, int]


def unreadable_fields(connection: Connection, period: Period) -> Unreadable:
    """The first routings' ``data.unreadable`` lists: one row per (decision, field) comes back, few in a healthy form."""
    dialect = connection.dialect.name
    if dialect == "postgresql":
        fields = func.jsonb_array_elements_text(events.c.data["unreadable"]).table_valued("value").render_derived()
    else:
        fields = func.json_each(events.c.data, "$.unreadable").table_valued("value")
    query = (select(events.c.id, events.c.rule, fields.c.value).select_from(events).join(fields, literal(True))
             .where(*sql.first_routings(period), sql.json_list_nonempty("unreadable", dialect)))
    counts: dict[str, int] = {}
    leads: dict[str | None, set[int]] = {}
    for row in connection.execute(query):
        counts[str(row.value)] = counts.get(str(row.value), 0) + 1
        leads.setdefault(row.rule, set()).add(row.id)
    return Unreadable(counts, {rule: len(ids) for rule, ids in leads.items()})


@dataclass(frozen=True)
class OutcomeCounts:
    group: Any
    converted: int
    opportunity: int
    won: int
    closed: int


def outcome_counts(connection: Connection, period: Period, by: str) -> list[OutcomeCounts]:
    """Of the leads first routed in the period, per group: how many converted, got an opportunity, won, closed.

    The funnel is cumulative: an opportunity counts as converted, a won or lost deal as an
    opportunity. Outcomes are read whenever they were recorded, up to now.
    """
    status = events.c.status
    per_lead = (
        select(events.c.crm, events.c.object, events.c.lead_id,
               func.max(sql.flag(status.in_(sql.OUTCOME_STATUSES))).label("converted"),
               func.max(sql.flag(status.in_(("opportunity", "won", "lost")))).label("opportunity"),
               func.max(sql.flag(status == "won")).label("won"),
               func.max(sql.flag(status.in_(("won", "lost")))).label("closed"))
        .where(events.c.kind == "outcome", events.c.at >= period.since)
        .group_by(events.c.crm, events.c.object, events.c.lead_id)
        .subquery()
    )
    group = sql.dimension(by)
    joined = per_lead.join(events, and_(events.c.crm == per_lead.c.crm, events.c.lead_id == per_lead.c.lead_id,
                                        events.c.object == per_lead.c.object, *sql.first_routings(period)))
    query = (select(group.label("grp"), func.sum(per_lead.c.converted).label("converted"),
                    func.sum(per_lead.c.opportunity).label("opportunity"), func.sum(per_lead.c.won).label("won"),
                    func.sum(per_lead.c.closed).label("closed"))
             .select_from(joined).group_by(group))
    return [OutcomeCounts(r.grp, int(r.converted or 0), int(r.opportunity or 0), int(r.won or 0), int(r.closed or 0))
            for r in connection.execute(query)]


def bucket_size(period: Period) -> tuple[str, int]:
    """Days for periods up to about a quarter, weeks beyond: a timeline of at most ~90 points."""
    return ("day", 86400) if period.days <= 92 else ("week", 7 * 86400)


def bucket_origin(period: Period) -> datetime:
    """Buckets start at midnight UTC (weeks: on a Monday) at or before ``since``."""
    kind, _ = bucket_size(period)
    midnight = period.since.replace(hour=0, minute=0, second=0, microsecond=0)
    if kind == "week":
        midnight = midnight.fromordinal(midnight.toordinal() - midnight.weekday()).replace(tzinfo=UTC)
    return midnight


def _bucket(period: Period, dialect: str, start: ColumnElement[float] | None = None) -> ColumnElement[int]:
    """Which time bucket (a day or a week from :func:`bucket_origin`) a clock's start falls in."""
    _, size = bucket_size(period)
    offset = ((sql.clock_start(dialect) if start is None else start) - bucket_origin(period).timestamp()) / size
    return cast(func.floor(offset), Float) if dialect == "postgresql" else cast(offset, Integer)


def _speed_keys(by: str) -> dict[str, list[ColumnElement[Any]]]:
    rep = events.c.owner
    return {"rep": [rep]} if by == "rep" else {"group": [sql.dimension(by)], "rep": [rep]}


def _utc(value: datetime | str | None) -> datetime | None:
    """A time as read back: SQLite hands grouped raw times over as text in UTC."""
    if value is None:
        return None
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
