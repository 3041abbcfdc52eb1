"""The passes a report makes over the ledger, each reading one set of rows once.

A figure often needs rows another figure reads too (first routings feed speed to lead,
coverage, fairness and the outcome denominators), so the passes are separate from the
figures: :func:`worker.reports.report.build_report` runs each pass once, side by side, and
hands the results to every figure that needs them; a figure called on its own runs the
passes it needs itself.

Each pass has two halves. Its reader (``read_*``) reads a span of the ledger and returns one
:class:`~worker.reports.pieces.Piece` per UTC day (the day a lead was first routed, a clock
started, a move happened): what the figures need, with every value kept, so the pieces of
many days add up to exactly the piece of the whole span and can be kept in the day cache.
Its finisher turns the whole period's piece into what the figures take. :data:`PASSES` builds
them for one report; the functions named after each pass (``first_routings``, ``ack_waits``,
...) read a period in one go, without the cache.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import numpy as np
from sqlalchemy import ColumnElement, Connection, String, and_, cast, func, literal, or_, select

from worker.ledger.schema import events
from worker.reports import sql
from worker.reports.grouped import Finest, Grouped, fetch, summarise
from worker.reports.model import Period, TierWindow
from worker.reports.pieces import Pass, Piece


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


def _by_day(finest: Finest) -> dict[int, Piece]:
    """A fetch's finest groups (the day first among their keys) as one piece per day."""
    return {int(day): Piece(part) for day, part in finest.split(0).items()}


def _whole(piece: dict[int, Piece], empty: Piece) -> Piece:
    return Piece.concat(list(piece.values()), lambda: empty)


# -- first routings -----------------------------------------------------------------------------


def read_first_routings(connection: Connection, span: Period, by: str) -> dict[int, Piece]:
    """The first routings by (day, grouping, rule, pool, owner), with creation -> owner written
    (``wall``: ``wait_seconds``, else ``at - lead_created_at``; ``business``) and when each group's
    first and last lead came. Typed columns only."""
    dialect = connection.dialect.name
    wall = func.coalesce(events.c.wait_seconds,
                         sql.epoch_seconds(events.c.at, dialect) - sql.epoch_seconds(events.c.lead_created_at, dialect))
    columns = [sql.day_of(events.c.at, dialect), sql.dimension(by), events.c.rule, events.c.pool, events.c.owner]
    return _by_day(fetch(connection, sql.first_routings(span), columns=columns,
                         values={"wall": wall, "business": events.c.wait_business_seconds}, extremes_of=events.c.at))


def finish_first_routings(piece: Piece, by: str) -> tuple[list[DecisionGroup], Grouped]:
    """Counts by (grouping, rule, pool, owner) with their first and last lead; the waits' percentiles
    by path, by rep and overall, and the histogram of the wall-clock waits."""
    finest = piece.finest or Finest.empty(("wall", "business"))
    keys: dict[str, list[int]] = {"finest": [1, 2, 3, 4]}
    keys |= {"rep": [4]} if by == "rep" else {"group": [1], "rep": [4]}
    stats = summarise(finest, keys, percentiles_for=tuple(k for k in keys if k != "finest"), histogram_of="wall")
    groups = []
    for (group, rule, pool, owner), n in stats.rows.get("finest", {}).items():
        first, last = stats.extremes.get("finest", {}).get((group, rule, pool, owner), (None, None))
        groups.append(DecisionGroup(group, rule, pool, owner, n, _utc(first), _utc(last)))
    return groups, stats


def first_routings(connection: Connection, period: Period, by: str) -> tuple[list[DecisionGroup], Grouped]:
    """The first routings of the period (see :func:`read_first_routings`), read at once."""
    return finish_first_routings(_whole(read_first_routings(connection, period, by), _empty_routings()), by)


def _empty_routings() -> Piece:
    return Piece(Finest.empty(("wall", "business")))


# -- acknowledgements ---------------------------------------------------------------------------


def read_ack_waits(connection: Connection, span: Period, by: str) -> dict[int, Piece]:
    """Owner written -> acknowledged, per ``ack`` whose clock started in the span, by (day of the clock's
    start, path, rep who acknowledged, tier), every wall and business wait kept. The path (rule, pool,
    source, arm, config version) is the lead's first routing's, which an ``ack`` need not carry: it is
    looked up by the lead's key (one probe of ``ix_events_lead`` per ack), falling back to the ack's own
    column. The SLA windows are not read here: :func:`finish_ack_waits` applies them to the kept waits,
    so a piece serves every config (the CLI's and ``db warm``'s alike).
    """
    dialect = connection.dialect.name
    columns: list[ColumnElement[Any]] = [sql.day_of_seconds(sql.clock_start(), dialect)]
    if by not in ("rep", "tier"):
        column = sql.dimension(by).name
        first = events.alias("routing")
        path = (select(first.c[column]).where(first.c.crm == events.c.crm, first.c.lead_id == events.c.lead_id,
                                              first.c.object == events.c.object, first.c.kind == "decision",
                                              or_(first.c.epoch.is_(None), first.c.epoch == 0))
                .order_by(first.c.id).limit(1).scalar_subquery())
        columns.append(func.coalesce(path, events.c[column]))
    columns += [events.c.owner, events.c.tier]
    where = sql.clocks_started_in(span, ["ack"])
    return _by_day(fetch(connection, where, columns=columns,
                         values={"wall": events.c.wait_seconds, "business": events.c.wait_business_seconds}))


def with_windows(finest: Finest, tiers: Mapping[str, TierWindow]) -> Finest:
    """The acks' finest groups (tier last among their keys) with ``within`` (how many of each group's acks
    came inside their tier's window, on the tier's clock: business time for a ``business_hours`` tier,
    else wall) and ``late`` (the wait, on that clock, of each ack outside it; NaN otherwise), as SQL's
    ``wait <= window`` would count them: a missing wait is neither within nor late."""
    m = len(finest)
    levels = finest.levels[-1] if m else []
    window = np.array([tiers[t].seconds if t in tiers else np.nan for t in levels], dtype=float)
    business = np.array([t in tiers and tiers[t].clock == "business_hours" for t in levels], dtype=bool)
    tier = finest.codes[:, -1] if m else np.zeros(0, dtype=np.int64)
    group = np.repeat(np.arange(m), finest.sizes)
    on_clock = np.where(business[tier][group], finest.values["business"], finest.values["wall"])
    limit = window[tier][group]
    within = on_clock <= limit  # NaN on either side: False
    late = np.where(~np.isnan(limit) & ~np.isnan(on_clock) & ~within, on_clock, np.nan)
    return Finest(finest.levels, finest.codes, finest.sizes, {**finest.values, "late": late},
                  {"within": np.bincount(group, weights=within, minlength=m).astype(np.int64)}, finest.extremes)


def finish_ack_waits(piece: Piece, period: Period, by: str, tiers: Mapping[str, TierWindow]) -> Grouped:
    """By path, rep, tier and (tier, time bucket of the clock's start), with percentiles and the histogram;
    within and late by the tiers' windows (:func:`with_windows`)."""
    finest = with_windows(piece.finest or Finest.empty(("wall", "business")), tiers)
    path = by not in ("rep", "tier")
    rep, tier = (2, 3) if path else (1, 2)
    keys = {"rep": [rep], "tier": [tier], "tier_day": [tier, 0]} | ({"group": [1]} if path else {})
    stats = summarise(finest, keys, percentiles_for=("group", "rep", "tier"), histogram_of="wall")
    buckets: dict[tuple[Any, int], dict[str, int]] = {}
    for (t, day), sums in stats.sums.pop("tier_day", {}).items():
        into = buckets.setdefault((t, _bucket(period, int(day))), {})
        for flag, n in sums.items():
            into[flag] = into.get(flag, 0) + n
    stats.sums["tier_bucket"] = buckets
    stats.rows.pop("tier_day", None)
    return stats


def ack_waits(connection: Connection, period: Period, by: str, tiers: Mapping[str, TierWindow]) -> Grouped:
    """The acknowledgements of clocks started in the period (see :func:`read_ack_waits`), read at once."""
    return finish_ack_waits(_whole(read_ack_waits(connection, period, by), _empty_acks()), period, by, tiers)


def _empty_acks() -> Piece:
    return Piece(Finest.empty(("wall", "business")))


# -- the SLA ladder -----------------------------------------------------------------------------


def read_sla_steps(connection: Connection, span: Period) -> dict[int, Piece]:
    """Clocks started (``sla.start``, by its ``at``) by day and tier, and the ladder's steps by the day
    their clock started, kind and tier, with their waits. The starts are only counted."""
    dialect = connection.dialect.name
    steps = fetch(connection, sql.clocks_started_in(span, sql.STEP_KINDS),
                  columns=[sql.day_of_seconds(sql.clock_start(), dialect), events.c.kind, events.c.tier],
                  values={"wait": events.c.wait_seconds})
    out = _by_day(steps)
    day = sql.day_of(events.c.at, dialect)
    starts = (select(day.label("day"), events.c.tier, func.count().label("n"))
              .where(*sql.happened_in(span, ["sla.start"])).group_by(day, events.c.tier))
    for row in connection.execute(starts):
        piece = out.setdefault(int(row.day), _empty_steps())
        piece.tally.setdefault("starts", {})[(int(row.day), row.tier)] = [int(row.n)]
    return out


def finish_sla_steps(piece: Piece, period: Period) -> Grouped:
    """Counts by (kind, tier), the starts among them; starts by (kind, tier, time bucket); the steps' waits."""
    finest = piece.finest or Finest.empty(("wait",))
    stats = summarise(finest, {"kind_tier": [1, 2]}, percentiles_for=("kind_tier",))
    kind_tier, buckets = stats.rows.setdefault("kind_tier", {}), stats.rows.setdefault("bucket", {})
    for (day, tier), (n,) in piece.tally.get("starts", {}).items():
        kind_tier[("sla.start", tier)] = kind_tier.get(("sla.start", tier), 0) + n
        key = ("sla.start", tier, _bucket(period, int(day)))
        buckets[key] = buckets.get(key, 0) + n
    return stats


def sla_steps(connection: Connection, period: Period) -> Grouped:
    """The ladder of clocks started in the period (see :func:`read_sla_steps`), read at once."""
    return finish_sla_steps(_whole(read_sla_steps(connection, period), _empty_steps()), period)


def _empty_steps() -> Piece:
    return Piece(Finest.empty(("wait",)))


# -- moves --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Move:
    """Moves of one kind between the same owners within one pool, with who asked and how (``data.via``)."""

    kind: str
    pool: str | None
    owner: str | None
    previous_owner: str | None
    actor: str | None
    via: str | None  # a re-decision's cause: ``sla`` (reassignment), ``rejection`` (handed back), ``trigger``, ...
    count: int


# the moves' pieces are keyed (kind, pool, owner, previous owner, actor, via) since layout 2; pieces kept in
# layout 1 (no via) are under other parameters, so they are never read as these, and are read again once
MOVES_LAYOUT = 2


def read_moves(connection: Connection, span: Period) -> dict[int, Piece]:
    """Moves that happened in the span, by day: manual re-routes, SLA reassignments (the ``sla.reassign``
    step, and the ``decision`` at the new epoch that picked the new owner from a pool), parks, manual
    overrides, and the other re-decisions at a later epoch: rejections (``via: rejection``, the rep who
    handed the lead back as ``previous_owner``) and hand-off triggers."""
    dialect = connection.dialect.name
    day = sql.day_of(events.c.at, dialect)
    cols = (events.c.kind, events.c.pool, events.c.owner, events.c.previous_owner, events.c.actor,
            sql.json_text("via", dialect).label("via"))
    kinds = [*sql.MOVE_KINDS, "sla.manual_override", "decision"]
    query = (select(day.label("day"), *cols, func.count().label("n"))
             .where(*sql.happened_in(span, kinds), or_(events.c.kind != "decision", events.c.epoch > 0))
             .group_by(day, *cols))
    out: dict[int, Piece] = {}
    for row in connection.execute(query):
        piece = out.setdefault(int(row.day), Piece())
        piece.tally.setdefault("moves", {})[tuple(row[1:7])] = [int(row.n)]
    return out


def finish_moves(piece: Piece) -> list[Move]:
    return [Move(*key, n) for key, (n,) in piece.tally.get("moves", {}).items()]


def moves(connection: Connection, period: Period) -> list[Move]:
    """Moves that happened in the period (see :func:`read_moves`), read at once."""
    return finish_moves(_whole(read_moves(connection, period), Piece()))


# -- skips --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class SkipTotal:
    pool: str
    rep: str
    reason: str
    decisions: int
    seconds: float


def read_skips(connection: Connection, span: Period) -> dict[int, Piece]:
    """Each pool's first-routing times (to the millisecond), and the times of the decisions that skipped
    a member, per (pool, member, reason) from ``data.skipped``, by day. Two reads: the times as one
    text list per pool and day, and the decisions that skipped someone."""
    dialect = connection.dialect.name
    at = sql.epoch_seconds(events.c.at, dialect)
    day = sql.day_of(events.c.at, dialect)
    where = [*sql.first_routings(span), events.c.pool.is_not(None)]
    joined = func.string_agg(cast(at, String), ",") if dialect == "postgresql" else func.group_concat(at)
    out: dict[int, Piece] = {}
    for row in connection.execute(select(day.label("day"), events.c.pool, joined.label("stamps"))
                                  .where(*where).group_by(day, events.c.pool)):
        piece = out.setdefault(int(row.day), Piece())
        # to the ms: as text, 15 digits
        piece.stamps.setdefault("pool", {})[(row.pool,)] = np.round(np.array(row.stamps.split(","), dtype=float), 3)
    if dialect == "postgresql":
        pairs = func.jsonb_each_text(events.c.data["skipped"]).table_valued("key", "value").render_derived()
    else:
        pairs = func.json_each(events.c.data, "$.skipped").table_valued("key", "value")
    query = (select(day.label("day"), events.c.pool, at.label("at_s"), pairs.c.key, pairs.c.value).select_from(events)
             .join(pairs, literal(True)).where(*where, sql.json_object_nonempty("skipped", dialect)))
    found: dict[int, dict[tuple[str, str, str], list[float]]] = {}
    for row in connection.execute(query):
        found.setdefault(int(row.day), {}).setdefault((row.pool, str(row.key), str(row.value)), []).append(float(row.at_s))
    for d, skipped in found.items():
        piece = out.setdefault(d, Piece())
        piece.stamps["skip"] = {key: np.round(np.array(stamps), 3) for key, stamps in skipped.items()}
    return out


def finish_skips(piece: Piece, period: Period, now: datetime | None = None) -> list[SkipTotal]:
    """Pool members passed over in first routings, by reason, and for how long.

    A member skipped at a decision counts as skipped until the pool's next decision at a later
    time (after the last one: until the end of the period, or now), so a run of decisions that
    all skip a rep adds up to the time they were out of the rotation; numpy finds each one's next.
    """
    end = min(period.until, now or datetime.now(UTC)).timestamp()
    times = {pool: np.sort(stamps) for (pool,), stamps in piece.stamps.get("pool", {}).items()}
    out = []
    for (pool, rep, reason), skipped_at in piece.stamps.get("skip", {}).items():
        pool_times = times.get(pool, np.zeros(0))
        following = np.searchsorted(pool_times, skipped_at, side="right")
        later = np.where(following < len(pool_times), pool_times[np.minimum(following, len(pool_times) - 1)], end)
        out.append(SkipTotal(pool, rep, reason, len(skipped_at), float(np.sum(np.maximum(later, skipped_at) - skipped_at))))
    return out


def skips(connection: Connection, period: Period, now: datetime | None = None) -> list[SkipTotal]:
    """Skips in the period's first routings (see :func:`read_skips`, :func:`finish_skips`), read at once."""
    return finish_skips(_whole(read_skips(connection, period), Piece()), period, now)


# -- unreadable fields --------------------------------------------------------------------------


@dataclass(frozen=True)
class Unreadable:
    """First routings naming each field they could not read, and per rule those with any."""

    fields: dict[str, int]
    by_rule: dict[str | None, int]


def read_unreadable_fields(connection: Connection, span: Period) -> dict[int, Piece]:
    """The first routings' ``data.unreadable`` lists, by day: one row per (decision, field) comes back,
    few in a healthy form."""
    dialect = connection.dialect.name
    if dialect == "postgresql":
        fields = func.jsonb_array_elements_text(events.c.data["unreadable"]).table_valued("value").render_derived()
    else:
        fields = func.json_each(events.c.data, "$.unreadable").table_valued("value")
    day = sql.day_of(events.c.at, dialect)
    query = (select(day.label("day"), events.c.id, events.c.rule, fields.c.value).select_from(events)
             .join(fields, literal(True)).where(*sql.first_routings(span), sql.json_list_nonempty("unreadable", dialect)))
    counts: dict[int, dict[str, int]] = {}
    leads: dict[int, dict[str | None, set[int]]] = {}
    for row in connection.execute(query):
        d = int(row.day)
        counts.setdefault(d, {})[str(row.value)] = counts.get(d, {}).get(str(row.value), 0) + 1
        leads.setdefault(d, {}).setdefault(row.rule, set()).add(row.id)
    return {d: Piece(tally={"fields": {(f,): [n] for f, n in counts[d].items()},
                            "rules": {(rule,): [len(ids)] for rule, ids in leads.get(d, {}).items()}})
            for d in counts}


def finish_unreadable_fields(piece: Piece) -> Unreadable:
    return Unreadable({f: n for (f,), (n,) in piece.tally.get("fields", {}).items()},
                      {rule: n for (rule,), (n,) in piece.tally.get("rules", {}).items()})


def unreadable_fields(connection: Connection, period: Period) -> Unreadable:
    """Unreadable fields of the period's first routings (see :func:`read_unreadable_fields`), read at once."""
    return finish_unreadable_fields(_whole(read_unreadable_fields(connection, period), Piece()))


# -- outcomes -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class OutcomeCounts:
    group: Any
    converted: int
    opportunity: int
    won: int
    closed: int


def read_outcome_counts(connection: Connection, span: Period, by: str) -> dict[int, Piece]:
    """Of the leads first routed in the span, per day and group: how many converted, got an opportunity,
    won, closed.

    The funnel is cumulative: an opportunity counts as converted, a won or lost deal as an
    opportunity. A lead's outcomes count whenever they were recorded, up to now: they are found
    from its first routing, by the lead's key.
    """
    dialect = connection.dialect.name
    routing = (select(events.c.crm, events.c.object, events.c.lead_id, sql.dimension(by).label("grp"),
                      sql.day_of(events.c.at, dialect).label("day"))
               .where(*sql.first_routings(span)).subquery("routing"))
    outcome = events.alias("outcome")
    status = outcome.c.status
    flags = (func.max(sql.flag(status.in_(sql.OUTCOME_STATUSES))).label("converted"),
             func.max(sql.flag(status.in_(("opportunity", "won", "lost")))).label("opportunity"),
             func.max(sql.flag(status == "won")).label("won"),
             func.max(sql.flag(status.in_(("won", "lost")))).label("closed"))
    same_lead = and_(outcome.c.crm == routing.c.crm, outcome.c.lead_id == routing.c.lead_id,
                     outcome.c.object == routing.c.object, outcome.c.kind == "outcome")
    if dialect == "postgresql" and span.days <= 2:
        # a few hours' leads (a report's edges): probe each lead's outcomes on ix_events_lead rather than
        # hash-join them against every outcome ever read back, which PostgreSQL's planner prefers
        found = select(*flags, func.count().label("n")).where(same_lead).lateral("found")
        per_lead = (select(routing.c.grp, routing.c.day, found.c.converted, found.c.opportunity, found.c.won,
                           found.c.closed)
                    .select_from(routing.join(found, literal(True))).where(found.c.n > 0).subquery("per_lead"))
    else:
        per_lead = (select(routing.c.grp, routing.c.day, *flags).select_from(routing.join(outcome, same_lead))
                    .group_by(routing.c.crm, routing.c.object, routing.c.lead_id, routing.c.grp, routing.c.day)
                    .subquery("per_lead"))
    query = (select(per_lead.c.day, per_lead.c.grp, func.sum(per_lead.c.converted), func.sum(per_lead.c.opportunity),
                    func.sum(per_lead.c.won), func.sum(per_lead.c.closed))
             .group_by(per_lead.c.day, per_lead.c.grp))
    out: dict[int, Piece] = {}
    for day, group, *counts in connection.execute(query):
        piece = out.setdefault(int(day), Piece())
        piece.tally.setdefault("outcomes", {})[(group,)] = [int(c or 0) for c in counts]
    return out


def finish_outcome_counts(piece: Piece) -> list[OutcomeCounts]:
    return [OutcomeCounts(group, *counts) for (group,), counts in piece.tally.get("outcomes", {}).items()]


def outcome_counts(connection: Connection, period: Period, by: str) -> list[OutcomeCounts]:
    """Outcomes of the leads first routed in the period (see :func:`read_outcome_counts`), read at once."""
    return finish_outcome_counts(_whole(read_outcome_counts(connection, period, by), Piece()))


# -- one report's passes ------------------------------------------------------------------------


def passes_for(by: str) -> dict[str, Pass]:
    """The passes of one report (grouped ``by``), named as its progress shows them. No pass depends on the
    config: the SLA windows are applied when the acknowledgements' piece is finished, so every report
    grouped ``by`` shares one set of cached pieces."""
    return {
        "first routings": Pass("first_routings", {"by": by},
                               lambda c, s: read_first_routings(c, s, by), _empty_routings),
        "acknowledgements": Pass("ack_waits", {"by": by if by not in ("rep", "tier") else "-"},
                                 lambda c, s: read_ack_waits(c, s, by), _empty_acks),
        "SLA ladder": Pass("sla_steps", {}, read_sla_steps, _empty_steps),
        "moves": Pass("moves", {"layout": MOVES_LAYOUT}, read_moves, Piece),
        "skips": Pass("skips", {}, read_skips, Piece),
        "unreadable fields": Pass("unreadable_fields", {}, read_unreadable_fields, Piece),
        "outcomes": Pass("outcome_counts", {"by": by}, lambda c, s: read_outcome_counts(c, s, by), Piece),
    }


# -- time buckets -------------------------------------------------------------------------------


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


def _bucket(period: Period, day: int) -> int:
    """Which time bucket (a day or a week from :func:`bucket_origin`) a UTC day falls in."""
    _, size = bucket_size(period)
    origin = int(bucket_origin(period).timestamp()) // 86400
    return (day - origin) // (size // 86400)


def _utc(value: datetime | str | None) -> datetime | None:
    """A time as read back: SQLite hands grouped raw times over as text in UTC."""
    if value is None:
        return None
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
