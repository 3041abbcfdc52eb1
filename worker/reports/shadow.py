"""``leadroute report --shadow``: live and shadow decisions compared on the same leads, from the ledger.

Each ``shadow`` event (a candidate config's decision in shadow mode, see ``docs/shadow.md``)
is paired with the live ``decision`` event of the same lead and epoch. A shadow event is in the
period when its ``at`` is, and its ``at`` is the live decision's routing time. A pair whose live
event is not in the ledger yet takes the live side from the copy the shadow event carries
(``data.live``). Figures are given per candidate config version:

* **agreement**: the share of leads where shadow and live chose the same owner (and the same
  rule, the same pool), each with a Wilson 95% interval;
* **where they differ**: counts of leads by rule change and by pool change (``live -> shadow``,
  changed pairs only), and a sample of differing leads with both reasons;
* **volume**: how many of the compared leads each owner (rep or queue) got live and would have got
  in shadow. These are lead counts over the period, not open loads.

``coverage`` says how many of the period's first routings were shadowed at all: shadow mode
may have been on for part of it, and a shadow failure leaves a lead without a row. Reads columns
only; JSON ``data`` is read only for the sample and for pairs without a live event.
"""

from __future__ import annotations

import html
from collections import Counter
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import Engine, and_, exists, func, or_, select

from worker.domain.stats import wilson
from worker.ledger.schema import events
from worker.reports.model import Period

SAMPLE = 20  # differing leads shown per candidate


@dataclass(frozen=True)
class Agreement:
    """``agree`` of ``compared`` leads, with its Wilson 95% interval (all None when nothing was compared)."""

    agree: int
    compared: int
    rate: float | None
    low: float | None
    high: float | None

    @classmethod
    def of(cls, agree: int, compared: int) -> Agreement:
        interval = wilson(agree, compared)
        return cls(agree, compared, agree / compared if compared else None,
                   interval[0] if interval else None, interval[1] if interval else None)


@dataclass(frozen=True)
class Change:
    """Leads that went one way live and another in shadow (a rule, a pool; ``(none)`` for no pool)."""

    live: str
    shadow: str
    leads: int


@dataclass(frozen=True)
class Differing:
    """One lead where the candidate chose another owner, with both reasons."""

    crm: str
    object: str
    lead_id: str
    epoch: int | None
    at: str
    live_owner: str | None
    live_rule: str | None
    live_reason: str | None
    shadow_owner: str | None
    shadow_rule: str | None
    shadow_reason: str | None


@dataclass(frozen=True)
class OwnerVolume:
    """How many of the compared leads an owner got live, and would have got from the candidate (not an open load)."""

    owner: str
    live: int
    shadow: int

    @property
    def change(self) -> int:
        return self.shadow - self.live


@dataclass(frozen=True)
class Comparison:
    """One candidate version against live, over the leads it shadowed in the period."""

    candidate_version: str
    live_versions: tuple[str, ...]
    compared: int
    live_from_shadow_event: int  # pairs whose live decision event is not in the ledger (yet): its copy was used
    first_at: str | None
    last_at: str | None
    owner: Agreement
    rule: Agreement
    pool: Agreement
    differing_owners: int
    rule_changes: tuple[Change, ...]
    pool_changes: tuple[Change, ...]
    sample: tuple[Differing, ...]
    volume: tuple[OwnerVolume, ...]

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["live_versions"] = list(self.live_versions)
        out["volume"] = [{**asdict(v), "change": v.change} for v in self.volume]
        return out


@dataclass(frozen=True)
class ShadowReport:
    """Every candidate shadowed in the period, newest first, and how much of the live routing was shadowed."""

    since: datetime
    until: datetime
    live_decisions: int  # first routings (``decision`` at epoch 0) in the period
    shadowed: int  # of them, those with a shadow event (any candidate, any time)
    candidates: tuple[Comparison, ...] = field(default_factory=tuple)

    def to_dict(self) -> dict[str, Any]:
        return {
            "since": self.since.isoformat(), "until": self.until.isoformat(),
            "coverage": {"live_decisions": self.live_decisions, "shadowed": self.shadowed},
            "candidates": [c.to_dict() for c in self.candidates],
        }


NONE = "(none)"


def _label(value: Any) -> str:
    return NONE if value is None else str(value)


def shadow_report(engine: Engine, period: Period, *, sample: int = SAMPLE) -> ShadowReport:
    """Compare live and shadow decisions of the leads shadowed in ``period`` (see the module's notes)."""
    live = events.alias("live")
    pair = and_(live.c.kind == "decision", _same_lead(live, events))
    in_period = [events.c.kind == "shadow", events.c.at >= period.since, events.c.at < period.until]
    query = (
        select(events.c.id, events.c.crm, events.c.object, events.c.lead_id, events.c.epoch, events.c.at,
               events.c.config_version, events.c.owner, events.c.rule, events.c.pool,
               live.c.id.label("live_id"), live.c.owner.label("live_owner"), live.c.rule.label("live_rule"),
               live.c.pool.label("live_pool"), live.c.config_version.label("live_version"))
        .select_from(events.outerjoin(live, pair))
        .where(*in_period)
        .order_by(events.c.at, events.c.id)
    )
    first = [events.c.kind == "decision", events.c.at >= period.since, events.c.at < period.until,
             or_(events.c.epoch.is_(None), events.c.epoch == 0)]
    with engine.connect() as connection:
        rows = [dict(row) for row in connection.execute(query).mappings()]
        orphans = [row["id"] for row in rows if row["live_id"] is None]
        copies = _data(connection, orphans)
        for row in rows:
            if row["live_id"] is None:
                copy = (copies.get(row["id"]) or {}).get("live") or {}
                row.update(live_owner=copy.get("owner"), live_rule=copy.get("rule"), live_pool=copy.get("pool"),
                           live_version=copy.get("config_version"))
        live_decisions = int(connection.execute(select(func.count()).select_from(events).where(*first)).scalar_one())
        other = events.alias("other")
        has_shadow = exists().where(other.c.kind == "shadow", _same_lead(other, events))  # as the pairing
        shadowed = int(connection.execute(select(func.count()).select_from(events).where(*first, has_shadow)).scalar_one())
        by_version: dict[str, list[dict[str, Any]]] = {}
        for row in rows:
            by_version.setdefault(str(row["config_version"]), []).append(row)
        comparisons = [_compare(connection, version, group, sample) for version, group in by_version.items()]
    comparisons.sort(key=lambda c: c.last_at or "", reverse=True)
    return ShadowReport(period.since, period.until, live_decisions, shadowed, tuple(comparisons))


def _same_lead(a: Any, b: Any) -> Any:
    """The same lead and epoch in two aliases of the events table (a NULL epoch matches a NULL epoch)."""
    return and_(a.c.crm == b.c.crm, a.c.object == b.c.object, a.c.lead_id == b.c.lead_id,
                or_(a.c.epoch == b.c.epoch, and_(a.c.epoch.is_(None), b.c.epoch.is_(None))))


def _data(connection: Any, ids: Iterable[int]) -> dict[int, dict[str, Any]]:
    """``data`` of the events with these row ids."""
    wanted = list(ids)
    out: dict[int, dict[str, Any]] = {}
    for start in range(0, len(wanted), 500):
        query = select(events.c.id, events.c.data).where(events.c.id.in_(wanted[start : start + 500]))
        out.update({row.id: row.data or {} for row in connection.execute(query)})
    return out


def _compare(connection: Any, version: str, rows: list[dict[str, Any]], sample: int) -> Comparison:
    owners = sum(1 for r in rows if r["owner"] == r["live_owner"])
    rules = sum(1 for r in rows if r["rule"] == r["live_rule"])
    pools = sum(1 for r in rows if r["pool"] == r["live_pool"])
    rule_changes = Counter((_label(r["live_rule"]), _label(r["rule"])) for r in rows if r["rule"] != r["live_rule"])
    pool_changes = Counter((_label(r["live_pool"]), _label(r["pool"])) for r in rows if r["pool"] != r["live_pool"])
    live_load = Counter(_label(r["live_owner"]) for r in rows)
    shadow_load = Counter(_label(r["owner"]) for r in rows)
    differing = [r for r in rows if r["owner"] != r["live_owner"]]
    picked = differing[:sample]
    data = _data(connection, [r["id"] for r in picked])
    return Comparison(
        candidate_version=version,
        live_versions=tuple(sorted({str(r["live_version"]) for r in rows if r["live_version"]})),
        compared=len(rows),
        live_from_shadow_event=sum(1 for r in rows if r["live_id"] is None),
        first_at=rows[0]["at"].isoformat() if rows else None,
        last_at=rows[-1]["at"].isoformat() if rows else None,
        owner=Agreement.of(owners, len(rows)),
        rule=Agreement.of(rules, len(rows)),
        pool=Agreement.of(pools, len(rows)),
        differing_owners=len(differing),
        rule_changes=tuple(Change(a, b, n) for (a, b), n in sorted(rule_changes.items(), key=lambda i: (-i[1], i[0]))),
        pool_changes=tuple(Change(a, b, n) for (a, b), n in sorted(pool_changes.items(), key=lambda i: (-i[1], i[0]))),
        sample=tuple(_differing(r, data.get(r["id"]) or {}) for r in picked),
        volume=tuple(OwnerVolume(o, live_load[o], shadow_load[o])
                    for o in sorted(set(live_load) | set(shadow_load), key=lambda o: (-abs(shadow_load[o] - live_load[o]), o))),
    )


def _differing(row: dict[str, Any], data: dict[str, Any]) -> Differing:
    copy = data.get("live") or {}
    return Differing(row["crm"], row["object"], row["lead_id"], row["epoch"], row["at"].isoformat(),
                     row["live_owner"], row["live_rule"], copy.get("reason"), row["owner"], row["rule"], data.get("reason"))


# ------------------------------------------------------------------------------------------- rendering


def _pct(agreement: Agreement) -> str:
    if agreement.rate is None:
        return "-"
    low, high = agreement.low or 0.0, agreement.high or 0.0
    return f"{agreement.rate * 100:.1f}% [{low * 100:.1f}-{high * 100:.1f}] ({agreement.agree}/{agreement.compared})"


def render_lines(report: ShadowReport, rows: int = 15) -> list[str]:
    """The report as plain lines for a terminal or a file (the JSON carries every row)."""
    lines = [f"shadow vs live, {report.since.isoformat()} to {report.until.isoformat()}",
             f"shadowed {report.shadowed:,} of {report.live_decisions:,} first routings in the period"]
    if not report.candidates:
        lines.append("no shadow decisions in the period (is worker.shadow set, and the worker running?)")
    for c in report.candidates:
        lines += ["", f"candidate {c.candidate_version} (live {', '.join(c.live_versions) or '?'}): {c.compared:,} leads, "
                      f"{c.first_at} to {c.last_at}"]
        if c.live_from_shadow_event:
            lines.append(f"  {c.live_from_shadow_event:,} live decisions not in the ledger yet: their copy in the shadow "
                         "event was used")
        lines += [f"  same owner  {_pct(c.owner)}", f"  same rule   {_pct(c.rule)}", f"  same pool   {_pct(c.pool)}"]
        for title, changes in (("rule changes (live -> shadow)", c.rule_changes), ("pool changes (live -> shadow)",
                                                                                   c.pool_changes)):
            if changes:
                lines.append(f"  {title}:")
                lines += [f"    {ch.live} -> {ch.shadow}: {ch.leads:,}" for ch in changes[:rows]]
                if len(changes) > rows:
                    lines.append(f"    ... {len(changes) - rows} more (--format json has every row)")
        lines.append("  volume (compared leads per owner, not open loads: live, shadow, change):")
        for load in c.volume[:rows]:
            lines.append(f"    {load.owner:<24} {load.live:>7,} {load.shadow:>7,} {load.change:>+7,}")
        if len(c.volume) > rows:
            lines.append(f"    ... {len(c.volume) - rows} more (--format json has every row)")
        if c.sample:
            lines.append(f"  differing owners: {c.differing_owners:,}; a sample:")
            for d in c.sample:
                lines.append(f"    {d.crm} {d.lead_id}: {d.live_owner} ({d.live_rule}) -> {d.shadow_owner} ({d.shadow_rule})")
                lines.append(f"      live:   {d.live_reason or ''}")
                lines.append(f"      shadow: {d.shadow_reason or ''}")
    return lines


def render_html(report: ShadowReport) -> str:
    """One self-contained HTML page (no script, nothing loaded from elsewhere)."""
    e = html.escape

    def table(head: list[str], body: list[list[Any]]) -> str:
        cells = "".join(f"<th>{e(h)}</th>" for h in head)
        rows = "".join("<tr>" + "".join(f"<td>{e(str(v))}</td>" for v in r) + "</tr>" for r in body)
        return f"<table><thead><tr>{cells}</tr></thead><tbody>{rows}</tbody></table>"

    parts = [f"<h1>Shadow vs live</h1><p>{e(report.since.isoformat())} to {e(report.until.isoformat())}: shadowed "
             f"{report.shadowed:,} of {report.live_decisions:,} first routings.</p>"]
    if not report.candidates:
        parts.append("<p>No shadow decisions in the period.</p>")
    for c in report.candidates:
        parts.append(f"<h2>Candidate {e(c.candidate_version)}</h2><p>{c.compared:,} leads; live version(s) "
                     f"{e(', '.join(c.live_versions) or '?')}</p>")
        parts.append(table(["agreement", "rate [95% CI] (k/n)"],
                           [["same owner", _pct(c.owner)], ["same rule", _pct(c.rule)], ["same pool", _pct(c.pool)]]))
        parts.append("<h3>Rule changes</h3>" + table(["live", "shadow", "leads"],
                                                      [[x.live, x.shadow, x.leads] for x in c.rule_changes]))
        parts.append("<h3>Pool changes</h3>" + table(["live", "shadow", "leads"],
                                                      [[x.live, x.shadow, x.leads] for x in c.pool_changes]))
        parts.append("<h3>Volume (compared leads per owner, not open loads)</h3>" + table(
            ["owner", "live", "shadow", "change"], [[x.owner, x.live, x.shadow, f"{x.change:+d}"] for x in c.volume]))
        parts.append("<h3>Differing owners (sample)</h3>" + table(
            ["lead", "live owner", "live rule", "live reason", "shadow owner", "shadow rule", "shadow reason"],
            [[f"{d.crm} {d.lead_id}", d.live_owner, d.live_rule, d.live_reason, d.shadow_owner, d.shadow_rule,
              d.shadow_reason] for d in c.sample]))
    style = ("body{font-family:system-ui,sans-serif;margin:2em;max-width:70em}table{border-collapse:collapse;margin:.5em 0}"
             "td,th{border:1px solid #ccc;padding:.2em .5em;text-align:left}th{background:#f3f3f3}")
    return (f"<!doctype html><html><head><meta charset='utf-8'><title>leadroute shadow report</title>"
            f"<style>{style}</style></head><body>{''.join(parts)}</body></html>")
