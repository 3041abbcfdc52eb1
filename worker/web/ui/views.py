"""What the dashboard shows, read from the store (live state), the ledger (history) and the config.

Plain functions of a :class:`~worker.app.runtime.Runtime` returning plain data for the templates.
The store is the runtime's, scoped to ``LEADROUTE_PREFIX``, and the ledger is the one at
``DATABASE_URL``: the dashboard of one configuration never reads another's keys.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from sqlalchemy import func, select

from worker.domain.leads import LeadRef
from worker.domain.normalize import domain_of
from worker.ledger.schema import events
from worker.sla.policy import SlaRecord, lead_of
from worker.steps import manual

if TYPE_CHECKING:
    from worker.app.runtime import Runtime

ASSIGNMENTS = 15  # rows in the live table
EVENTS = 12
DUE_AHEAD = timedelta(minutes=15)  # SLA clocks due within this are shown beside the breached ones
TREND_POINTS = 120
MOVE_KINDS = ("sla.escalate", "sla.reassign", "sla.park", "reroute", "sla.breach", "sla.remind")


def _lead_parts(text: str) -> tuple[str, str, str]:
    crm, _, rest = text.partition(":")
    obj, _, lead_id = rest.partition(":")
    return crm, obj, lead_id


@dataclass
class Trend:
    """Pending depth per CRM as this process last sampled it (at most once a second), for the sparkline."""

    points: dict[str, deque[tuple[float, int]]] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def add(self, crm: str, depth: int, now: float) -> list[int]:
        with self._lock:
            series = self.points.setdefault(crm, deque(maxlen=TREND_POINTS))
            if not series or now - series[-1][0] >= 1.0:
                series.append((now, depth))
            return [d for _, d in series]


def sparkline(values: list[int], width: int = 120, height: int = 24) -> str:
    """An inline SVG polyline of ``values`` (server-drawn: no script needed for the trend)."""
    if len(values) < 2:
        values = [*values, *values] if values else [0, 0]
    top = max(max(values), 1)
    step = width / (len(values) - 1)
    points = " ".join(f"{i * step:.1f},{height - 1 - (v / top) * (height - 2):.1f}" for i, v in enumerate(values))
    return (f'<svg class="spark" viewBox="0 0 {width} {height}" width="{width}" height="{height}" role="img" '
            f'aria-label="pending depth trend"><polyline fill="none" stroke="currentColor" stroke-width="1.5" '
            f'points="{points}"/></svg>')


def assignments(rt: Runtime, count: int = ASSIGNMENTS) -> list[dict[str, Any]]:
    """The latest decisions, newest first: when, CRM, lead, owner, rule, reason."""
    rows = []
    for entry in rt.store.recent(count, kind="decision"):
        crm, obj, lead_id = _lead_parts(entry.lead)
        data = entry.data
        rows.append({"at": entry.at, "crm": crm, "object": obj, "lead_id": lead_id, "owner": data.get("owner"),
                     "rule": data.get("rule"), "reason": data.get("reason", ""), "epoch": entry.epoch,
                     "via": data.get("via")})
    return rows


def recent_moves(rt: Runtime, count: int = EVENTS) -> list[dict[str, Any]]:
    """Recent escalations, reassignments, parks, re-routes and other non-decision events, newest first."""
    rows = []
    for entry in rt.store.recent(400):
        if entry.kind == "decision":
            continue
        crm, _obj, lead_id = _lead_parts(entry.lead)
        detail = ", ".join(f"{k}={v}" for k, v in list(entry.data.items())[:4])
        rows.append({"at": entry.at, "kind": entry.kind, "crm": crm, "lead_id": lead_id, "detail": detail[:160],
                     "moves": entry.kind in MOVE_KINDS})
        if len(rows) == count:
            break
    return rows


def sla_clocks(rt: Runtime, now: datetime) -> dict[str, Any]:
    """Open SLA clocks whose next step is due within :data:`DUE_AHEAD` or past, by tier, with the breached ones first."""
    total = rt.store.open_timers()
    clocks = []
    for timer in rt.store.peek_due(now + DUE_AHEAD, limit=200):
        lead = lead_of(timer.timer_id)
        if lead is None:
            continue
        try:
            record = SlaRecord.from_payload(lead, timer.payload)
        except (KeyError, ValueError):
            continue
        late = now.timestamp() - record.deadline
        clocks.append({"lead_id": lead.lead_id, "crm": lead.crm, "tier": record.tier, "owner": record.owner,
                       "deadline": datetime.fromtimestamp(record.deadline, UTC), "breached": late > 0 or record.breached,
                       "late_seconds": late, "due_at": datetime.fromtimestamp(timer.due_at, UTC)})
    clocks.sort(key=lambda c: (not c["breached"], c["due_at"]))
    tiers: dict[str, dict[str, int]] = {}
    for clock in clocks:
        counts = tiers.setdefault(clock["tier"], {"breached": 0, "due": 0})
        counts["breached" if clock["breached"] else "due"] += 1
    return {"open": total, "clocks": clocks[:30], "tiers": dict(sorted(tiers.items()))}


def budget(rt: Runtime) -> list[dict[str, Any]]:
    """Each CRM's API budget: the configured rate limit, and from the metrics (all processes in multiprocess
    mode) the calls made, the rate limiter's waits, and the share of the CRM's daily allocation it reports used."""
    from worker.observability import metrics  # prometheus_client is loaded by the web process already

    samples: dict[tuple[str, str], float] = {}
    text, _ = metrics.render()
    from prometheus_client.parser import text_string_to_metric_families  # the exposition's own parser

    for family in text_string_to_metric_families(text.decode()):
        for sample in family.samples:
            crm = sample.labels.get("connector")
            if crm is None:
                continue
            if sample.name in ("leadroute_crm_calls_total", "leadroute_rate_limit_waits_total",
                               "leadroute_rate_limit_wait_seconds_total", "leadroute_crm_daily_usage_ratio"):
                key = (crm, sample.name)
                samples[key] = samples.get(key, 0.0) + sample.value
    rows = []
    enabled = rt.config.model.connectors.enabled()
    for crm in rt.crms:
        settings = enabled.get(crm)
        limit = getattr(settings, "rate_limit", None)
        daily = samples.get((crm, "leadroute_crm_daily_usage_ratio"))
        rows.append({
            "crm": crm,
            "limit": f"{limit.requests:g} per {limit.per_seconds:g} s (burst {limit.burst:g})" if limit else "-",
            "calls": int(samples.get((crm, "leadroute_crm_calls_total"), 0)),
            "waits": int(samples.get((crm, "leadroute_rate_limit_waits_total"), 0)),
            "wait_seconds": samples.get((crm, "leadroute_rate_limit_wait_seconds_total"), 0.0),
            "daily_used": None if daily is None else daily,
        })
    return rows


def pending(rt: Runtime, trend: Trend) -> list[dict[str, Any]]:
    """Pending depth per CRM now, its sampled trend, and when beat last polled it."""
    now = time.time()
    rows = []
    for crm in rt.crms:
        depth = rt.pending.depth(crm)
        polled = rt.store.last_polled(crm)
        rows.append({"crm": crm, "depth": depth, "spark": sparkline(trend.add(crm, depth, now)),
                     "polled_ago": None if polled is None else max(0.0, now - polled)})
    return rows


def live(rt: Runtime, trend: Trend, health: dict[str, Any] | None) -> dict[str, Any]:
    """Everything on the live page, read now."""
    now = datetime.now(UTC)
    return {"now": now, "assignments": assignments(rt), "pending": pending(rt, trend), "reps": manual.rep_rows(rt, now),
            "sla": sla_clocks(rt, now), "moves": recent_moves(rt), "budget": budget(rt), "health": health,
            "config_version": rt.config.version_hash}


# ------------------------------------------------------------------------------------------- search


def search(rt: Runtime, ledger: Any, query: str, limit: int = 50) -> dict[str, Any]:
    """Leads matching ``query``: a lead id (exact, in every CRM), an e-mail address (by its domain: the ledger
    keeps no addresses) or a company domain; newest first, from the ledger and what Redis still holds."""
    query = query.strip()
    found: dict[tuple[str, str, str], dict[str, Any]] = {}
    if not query:
        return {"query": query, "domain": None, "leads": []}
    domain = None
    if "." in query and " " not in query:  # an address or a domain; a host without a public suffix is taken as it is
        domain = (domain_of(query if "@" in query else None, None if "@" in query else query)
                  or query.rpartition("@")[2].lower().removeprefix("www."))

    def add(crm: str, obj: str, lead_id: str, at: datetime | None, owner: Any, rule: Any, source: str) -> None:
        key = (crm, obj, lead_id)
        if key not in found or (at and found[key]["at"] and at > found[key]["at"]):
            found[key] = {"crm": crm, "object": obj, "lead_id": lead_id, "at": at, "owner": owner, "rule": rule,
                          "source": source}

    for crm in rt.crms:
        ref = LeadRef(crm, rt.object_name(crm), query)
        for decided in rt.store.decisions_for_lead(ref)[:1]:
            add(crm, ref.object, query, decided.at, decided.decision.get("owner"), decided.decision.get("rule"), "redis")
    if ledger is not None:
        latest = (select(events.c.crm, events.c.object, events.c.lead_id, func.max(events.c.at).label("at"))
                  .where(events.c.kind.in_(("decision", "reroute"))))
        by_id = latest.where(events.c.crm.in_(rt.crms), events.c.lead_id == query)
        queries = [by_id]
        if domain:
            queries.append(latest.where(events.c.domain == domain))  # indexed with at (migration 0004)
        with ledger.engine.connect() as connection:
            for q in queries:
                q = q.group_by(events.c.crm, events.c.object, events.c.lead_id).order_by(func.max(events.c.at).desc())
                for row in connection.execute(q.limit(limit)):
                    owner = connection.execute(
                        select(events.c.owner, events.c.rule).where(
                            events.c.crm == row.crm, events.c.lead_id == row.lead_id, events.c.at == row.at,
                            events.c.kind.in_(("decision", "reroute"))).limit(1)).first()
                    add(row.crm, row.object, row.lead_id, _utc(row.at), owner.owner if owner else None,
                        owner.rule if owner else None, "ledger")
    if domain:
        for entry in rt.store.recent(2000, kind="decision"):
            if (entry.data.get("facts") or {}).get("domain") == domain:
                crm, obj, lead_id = _lead_parts(entry.lead)
                add(crm, obj, lead_id, entry.at, entry.data.get("owner"), entry.data.get("rule"), "redis")
    leads = sorted(found.values(), key=lambda r: r["at"] or datetime.min.replace(tzinfo=UTC), reverse=True)
    return {"query": query, "domain": domain, "leads": leads[:limit]}


def _utc(value: datetime | None) -> datetime | None:
    if value is None:
        return None
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def story(rt: Runtime, ledger: Any, crm: str, lead_id: str) -> tuple[dict[str, Any] | None, list[str]]:
    """``explain --json``'s story of one lead, and any warning (a ledger that could not be read)."""
    warnings: list[str] = []
    ref = LeadRef(crm, rt.object_name(crm), lead_id)
    told = manual.explain(rt, ref, warn=lambda name: warnings.append(f"the ledger could not be read ({name}); "
                                                                      "showing what Redis holds"), ledger=ledger)
    return told, warnings


def ledger_count(ledger: Any) -> int | None:
    """How many decisions the ledger holds (None without a ledger)."""
    if ledger is None:
        return None
    with ledger.engine.connect() as connection:
        return int(connection.execute(select(func.count()).select_from(events)
                                      .where(events.c.kind.in_(("decision", "reroute")))).scalar_one())
