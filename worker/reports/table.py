"""The report as terminal tables (rich), each narrow enough for a 100-column terminal.

Long lists are cut to their largest rows with a line saying how many more there are; the
JSON and HTML formats carry every row.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import TypeVar

from rich.console import Group, RenderableType
from rich.markup import escape
from rich.table import Table
from rich.text import Text

from worker.reports.model import Percentiles, Rate, Report, SpeedMeasure, Wait

MAX_ROWS = 15
T = TypeVar("T")


def duration(seconds: float | None) -> str:
    """A wait the way people read it: ``850ms``, ``9.5s``, ``4m12s``, ``3h05m``, ``2d04h``; ``-`` for none."""
    if seconds is None:
        return "-"
    if seconds < 1:
        return f"{seconds * 1000:.0f}ms"
    if seconds < 60:
        return f"{seconds:.1f}s"
    minutes, secs = divmod(round(seconds), 60)
    if minutes < 60:
        return f"{minutes}m{secs:02d}s"
    hours, minutes = divmod(minutes, 60)
    if hours < 48:
        return f"{hours}h{minutes:02d}m"
    days, hours = divmod(hours, 24)
    return f"{days}d{hours:02d}h"


def percent(rate: Rate | None, interval: bool = True) -> str:
    """``42.0% [38.1-46.0]``: the rate with its Wilson 95% interval; ``-`` when there is nothing to rate."""
    if rate is None or rate.value is None:
        return "-"
    text = f"{rate.value * 100:.1f}%"
    if interval and rate.low is not None and rate.high is not None:
        text += f" [{rate.low * 100:.1f}-{rate.high * 100:.1f}]"
    return text


def _share(value: float | None) -> str:
    return "-" if value is None else f"{value * 100:.1f}%"


def _number(value: float | None, digits: int = 2) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def _table(title: str, *columns: str) -> Table:
    table = Table(title=title, title_justify="left", title_style="bold", expand=False, pad_edge=False)
    for i, name in enumerate(columns):
        table.add_column(name, justify="left" if i == 0 else "right", overflow="fold", max_width=28 if i == 0 else None)
    return table


def _cut(rows: Sequence[T], noun: str) -> tuple[Sequence[T], Text | None]:
    if len(rows) <= MAX_ROWS:
        return rows, None
    return rows[:MAX_ROWS], Text(f"... and {len(rows) - MAX_ROWS} more {noun} (all of them: --format json or html)",
                                 style="dim")


def _pcts(p: Percentiles) -> list[str]:
    return [duration(p.p50), duration(p.p90), duration(p.p95)]


def _speed(measure: SpeedMeasure, title: str, waits: Sequence[Wait], column: str) -> Iterator[RenderableType]:
    table = _table(title, column, "n", "p50", "p90", "p95", "biz p50", "biz p90", "biz p95")
    shown, more = _cut(waits, "rows")
    for w in [measure.overall, *shown]:
        table.add_row(escape(w.key), f"{w.wall.n:,}", *_pcts(w.wall), *_pcts(w.business),
                      end_section=w is measure.overall)
    yield table
    if more:
        yield more


def render(report: Report) -> list[RenderableType]:
    """Every section of the report, in order."""
    out: list[RenderableType] = [Text.from_markup(
        f"[bold]leadroute report[/bold]  {report.since:%Y-%m-%d %H:%M} -> {report.until:%Y-%m-%d %H:%M} UTC, "
        f"by {escape(report.by)}, {report.leads:,} leads ({escape(report.database)})")]
    by = report.by
    s = report.speed
    out += _speed(s.to_owner, f"Speed to lead: creation -> owner, by {by}", s.to_owner.by_group, by)
    out += _speed(s.to_ack, f"Speed to lead: owner -> first touch, by {by}", s.to_ack.by_group, by)
    if by != "rep":
        out += _speed(s.to_owner, "Creation -> owner, by rep", s.to_owner.by_rep, "rep")
        out += _speed(s.to_ack, "Owner -> first touch, by rep", s.to_ack.by_rep, "rep")

    sla = _table("SLA compliance per tier (clocks started in the period)", "tier", "window", "clocks", "within [95% CI]",
                 "breach", "escal.", "reass.", "parks", "ack p50", "ack p90")
    for t in report.sla.tiers:
        clock = "" if t.clock in (None, "wall") else " biz"
        waited = t.waited.business if t.clock == "business_hours" else t.waited.wall
        sla.add_row(escape(t.tier), duration(t.window_seconds) + clock, f"{t.clocks:,}", percent(t.within),
                    f"{t.breaches:,}", f"{t.escalations:,}", f"{t.reassignments:,}", f"{t.parks:,}",
                    duration(waited.p50), duration(waited.p90))
    out.append(sla)

    for pool in report.fairness:
        table = _table(f"Fairness: pool {escape(pool.pool)} ({pool.decisions:,} decisions; max/min "
                       f"{_number(pool.max_min)}, Gini {_number(pool.gini, 3)})",
                       "rep", "weight", "assigned", "+in", "-back", "net", "expected", "ratio")
        for m in pool.members:
            table.add_row(escape(m.rep) + ("" if m.member else " *"), str(m.weight), f"{m.assigned:,}", f"{m.received:,}",
                          f"{m.taken_back:,}", f"{m.net:,}", _number(m.expected, 1), _number(m.ratio))
        out.append(table)
        if pool.skipped:
            skips = _table(f"Skipped in pool {escape(pool.pool)}", "rep", "reason", "decisions", "share", "time")
            shown, more = _cut(pool.skipped, "skips")
            for k in shown:
                skips.add_row(escape(k.rep), escape(k.reason), f"{k.decisions:,}", _share(k.share),
                              duration(k.seconds))
            out.append(skips)
            if more:
                out.append(more)

    accepted = _table("Acceptance: leads that left each rep", "rep", "received", "rerouted", "reass.", "parked",
                      "rejected", "kept [95% CI]")
    shown, more = _cut(report.acceptance.reps, "reps")
    for r in shown:
        accepted.add_row(escape(r.rep), f"{r.received:,}", f"{r.rerouted:,}", f"{r.reassigned:,}",
                         f"{r.parked:,}", f"{r.rejected:,}", percent(r.kept))
    out.append(accepted)
    if more:
        out.append(more)
    if any(r.rejected for r in report.acceptance.reps):
        rejecting = sorted(report.acceptance.reps, key=lambda r: (-(r.rejection_rate.value or 0.0), -r.received, r.rep))
        rejections = _table("Rejection rate per rep", "rep", "received",
                            "rejected", "rate [95% CI]")
        shown, more = _cut(rejecting, "reps")
        for r in shown:
            rejections.add_row(escape(r.rep), f"{r.received:,}", f"{r.rejected:,}", percent(r.rejection_rate))
        out.append(rejections)
        if more:
            out.append(more)
    if report.acceptance.overrides:
        overrides = _table("Manual overrides by who asked", "actor", "kind", "count")
        for o in report.acceptance.overrides:
            overrides.add_row(escape(o.actor), escape(o.kind), f"{o.count:,}")
        out.append(overrides)

    o = report.outcomes
    outcome = _table(f"Outcomes by {by} (leads first routed in the period)", by, "leads", "converted [95% CI]",
                     "opportunity [95% CI]", "won/closed [95% CI]")
    shown, more = _cut(o.rows, "rows")
    for row in [o.overall, *shown]:
        outcome.add_row(escape(row.key), f"{row.leads:,}", percent(row.conversion), percent(row.opportunity),
                        percent(row.win), end_section=row is o.overall)
    out.append(outcome)
    if more:
        out.append(more)

    c = report.coverage
    rules = _table(f"Rule coverage: fallback {percent(c.fallback, interval=False)} of {c.leads:,} leads",
                   "rule", "leads", "share", "unreadable", "last lead")
    shown, more = _cut(c.rules, "rules")
    for r in shown:
        rules.add_row(escape(r.rule), f"{r.leads:,}", _share(r.share), f"{r.unreadable:,}",
                      f"{r.last_at:%Y-%m-%d %H:%M}" if r.last_at else "-")
    out.append(rules)
    if more:
        out.append(more)
    if c.unreadable:
        fields = _table("Unreadable fields", "field", "leads")
        for f in c.unreadable:
            fields.add_row(escape(f.field), f"{f.leads:,}")
        out.append(fields)
    return out


def as_group(report: Report) -> Group:
    """The whole report as one renderable."""
    return Group(*render(report))
