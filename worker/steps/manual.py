"""What a person does by hand, the same from the command line and the dashboard.

``leadroute ooo``/``reroute``/``explain``/``reps`` and the dashboard's pages call these, so a rep
marked away, a lead re-routed or a story told is one code path, whoever asks. Every function
takes the runtime and says who acted (``actor``), which is what the store and the ledger record.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from worker.domain.leads import LeadRef
from worker.ledger.events import InvalidEvent, LedgerEvent
from worker.routing.engine import absence, in_hours
from worker.steps.ledger import entry_event

if TYPE_CHECKING:
    from worker.app.runtime import Runtime
    from worker.steps.sla_sweep import SweepReport

Warn = Callable[[str], None]


class ManualError(ValueError):
    """A request that cannot be carried out as asked (unknown rep, pool, CRM, bad date): the message says why."""


# ------------------------------------------------------------------------------------------- reps


def rep_rows(rt: Runtime, now: datetime | None = None) -> list[dict[str, Any]]:
    """Each rep's load, capacity, availability now and why, override and out-of-office windows (``reps --json``)."""
    now = now or datetime.now(UTC)
    overrides = rt.store.availability()
    loads = rt.store.loads(list(rt.config.reps))
    unavailable = rt.store.unavailable()
    rows = []
    for rep_id, rep in rt.config.reps.items():
        forced = overrides.get(rep_id)
        away = absence(rep, rt.config, now, unavailable)
        working = in_hours(rep, rt.config, now)
        status = away or ("working" if working else "outside hours")
        rows.append({
            "rep": rep_id, "load": loads[rep_id], "capacity": rep.capacity, "status": status,
            "available": away is None and working, "away": away, "in_hours": working,
            "override": None if forced is None else {
                "available": forced.available, "reason": forced.reason or None,
                "until": forced.until.isoformat() if forced.until else None, "set_by": forced.set_by or None},
            "out_of_office": [{"start": w.start.isoformat(), "end": w.end.isoformat()} for w in rep.out_of_office],
        })
    return rows


def parse_until(rt: Runtime, rep: str, text: str | None) -> datetime | None:
    """``--until``: a date (back at the start of that day in the rep's zone) or an ISO 8601 time (UTC if no zone)."""
    if not text:
        return None
    try:
        end = datetime.fromisoformat(text)
    except ValueError:
        raise ManualError(f"--until: '{text}' is not a date (YYYY-MM-DD) or an ISO 8601 time") from None
    if len(text) == 10:  # a date: back at the start of that day in their zone
        return end.replace(tzinfo=rt.config.zones[rep])
    return end if end.tzinfo else end.replace(tzinfo=UTC)


def check_rep(rt: Runtime, rep: str) -> None:
    if rep not in rt.config.reps:
        raise ManualError(f"unknown rep '{rep}'")


def availability_event(kind: str, rep: str, at: datetime, actor: str, **data: Any) -> LedgerEvent:
    """``rep.away``/``rep.back``: who marked a rep away or back, when, until when and why (for the ledger)."""
    return LedgerEvent(event_id=f"{kind}/{rep}/{at.isoformat()}", kind=kind, crm="-", object="rep", lead_id=rep, at=at,
                       actor=actor or None, data={k: v for k, v in data.items() if v not in (None, "")})


def mark_away(rt: Runtime, rep: str, *, until: datetime | None, reason: str, actor: str) -> SweepReport | None:
    """Mark ``rep`` out of office now (until ``until``): routing skips them, and their unacknowledged
    leads follow the SLA ladder at once (per ``on_rep_away``); the sweep's report, None without SLAs.
    The ledger gets a ``rep.away`` event with ``actor``."""
    check_rep(rt, rep)
    override = rt.store.set_availability(rep, False, until=until, reason=reason, set_by=actor)
    at = override.set_at or datetime.now(UTC)
    rt.store.outbox_append([availability_event("rep.away", rep, at, actor, reason=reason,
                                                until=until.isoformat() if until else None)])
    return rt.sla.rep_went_away(rep) if rt.sla is not None else None


def mark_back(rt: Runtime, rep: str, actor: str = "") -> bool:
    """Clear ``rep``'s override: routing to them resumes (a ``rep.back`` event with ``actor`` in the ledger).
    False if they had none."""
    check_rep(rt, rep)
    cleared = rt.store.clear_availability(rep)
    if cleared:
        rt.store.outbox_append([availability_event("rep.back", rep, datetime.now(UTC), actor)])
    return cleared


# ------------------------------------------------------------------------------------------- re-route


@dataclass(frozen=True, slots=True)
class RerouteRequest:
    """A re-route asked for: enqueued under ``epoch`` (or done inline, then ``result`` holds what was written)."""

    crm: str
    lead_id: str
    epoch: int
    result: Any = None


def check_reroute(rt: Runtime, crm: str, to: str | None, pool: str | None) -> None:
    """The checks ``leadroute reroute`` makes before it asks anything of the CRM or the queue."""
    if to and pool:
        raise ManualError("give --to or --pool, not both")
    if crm not in rt.crms:
        raise ManualError(f"--crm: '{crm}' is not configured in the connectors section "
                          f"(configured: {', '.join(rt.crms) or 'none'})")
    if to and to not in rt.config.reps:
        raise ManualError(f"--to: unknown rep '{to}'")
    if pool and pool not in rt.config.pools:
        raise ManualError(f"--pool: unknown pool '{pool}'")


def reroute(rt: Runtime, crm: str, lead_id: str, *, to: str | None, pool: str | None, why: str, actor: str,
            inline: bool = False) -> RerouteRequest:
    """Re-route one lead by hand: a new routing epoch, the load moved, ``actor`` and ``why`` recorded in the
    decision (and so in the ledger's ``reroute`` event). Enqueued for the worker, or run here when ``inline``."""
    check_reroute(rt, crm, to, pool)
    if inline:
        # the routing steps load only when a re-route runs here rather than in the worker
        from worker.steps import after_route, route

        result = route.reroute(rt, crm, lead_id, to_rep=to, pool=pool, why=why, requested_by=actor)
        after_route.after_reroute(rt, crm, lead_id, result)
        return RerouteRequest(crm, lead_id, result.epoch, result)
    key = rt.store.new_epoch(LeadRef(crm, rt.object_name(crm), lead_id))
    rt.enqueue.reroute(crm, lead_id, to_rep=to, pool=pool, why=why, requested_by=actor, epoch=key.epoch)
    return RerouteRequest(crm, lead_id, key.epoch)


# ------------------------------------------------------------------------------------------- explain


OPEN = object()  # ledger_history's default: open the ledger at DATABASE_URL for the call


def ledger_history(rt: Runtime, ref: LeadRef, warn: Warn | None = None, ledger: Any = OPEN) -> list[Any]:
    """The lead's ledger events, and those still in the outbox, oldest first; [] when neither has any.

    ``ledger``: one already open (the dashboard keeps one), None for none (the outbox alone), or by
    default the one at ``DATABASE_URL``, opened for this call. A ledger that cannot be read is
    reported through ``warn`` (the exception's name) and what the outbox holds still explains.
    """
    # the one reader of an existing ledger (SQLAlchemy loads with it, for the commands that read the ledger)
    from worker.cli.export import open_for_reading

    found: dict[str, Any] = {}
    own = ledger is OPEN
    if own:
        ledger = open_for_reading(os.environ.get("DATABASE_URL") or None)
    if ledger is not None:
        try:
            for event in ledger.for_lead(ref.crm, ref.lead_id, object=ref.object):
                found[event.event_id] = event
        except Exception as exc:  # a ledger down or not migrated: what Redis holds still explains
            if warn is not None:
                warn(type(exc).__name__)
        finally:
            if own:
                ledger.close()
    for entry in rt.store.outbox_for_lead(ref.crm, ref.object, ref.lead_id):
        try:
            event = entry_event(entry, rt.config)
        except (InvalidEvent, ValueError, KeyError):
            continue
        found.setdefault(event.event_id, event)
    return sorted(found.values(), key=lambda e: (e.at, e.event_id))


def routings(history: list[Any]) -> list[Any]:
    """The history's decisions and re-routes (a refused owner's fallback is an event, not a routing)."""
    return [e for e in history if e.kind in ("decision", "reroute") and (e.data or {}).get("via") != "refused"]


def _lead_json(ref: LeadRef, source: str) -> dict[str, Any]:
    return {"crm": ref.crm, "object": ref.object, "lead_id": ref.lead_id, "source": source}


def _decision_json(*, epoch: Any, at: Any, config_version: Any, kind: str, owner: Any, previous_owner: Any, rule: Any,
                   data: dict[str, Any], actor: Any = None, wait_seconds: Any = None,
                   wait_business_seconds: Any = None) -> dict[str, Any]:
    return {
        "epoch": epoch, "at": at.isoformat() if hasattr(at, "isoformat") else at, "config_version": config_version,
        "kind": kind, "via": data.get("via"), "owner": owner, "previous_owner": previous_owner, "rule": rule,
        "reason": data.get("reason"), "considered": list(data.get("considered") or []),
        "skipped": dict(data.get("skipped") or {}), "unreadable": list(data.get("unreadable") or []),
        "actor": actor, "why": data.get("why"), "wait_seconds": wait_seconds,
        "wait_business_seconds": wait_business_seconds,
    }


def history_json(ref: LeadRef, history: list[Any]) -> dict[str, Any]:
    """``explain --json`` from the ledger: decisions newest first, then the other events oldest first."""
    routed = routings(history)
    decisions = [_decision_json(epoch=e.epoch, at=e.at, config_version=e.config_version, kind=e.kind, owner=e.owner,
                                previous_owner=e.previous_owner, rule=e.rule, data=e.data or {}, actor=e.actor,
                                wait_seconds=e.wait_seconds, wait_business_seconds=e.wait_business_seconds)
                 for e in sorted(routed, key=lambda e: (e.epoch or 0, e.at), reverse=True)]
    events = [{"at": e.at.isoformat(), "kind": e.kind, "owner": e.owner, "previous_owner": e.previous_owner,
               "actor": e.actor, "tier": e.tier, "status": e.status, "wait_seconds": e.wait_seconds,
               "data": e.data or {}} for e in history if e not in routed]
    return {**_lead_json(ref, "ledger"), "decisions": decisions, "events": events}


def redis_json(ref: LeadRef, decisions: list[Any], events: list[Any]) -> dict[str, Any]:
    """``explain --json`` from what Redis still holds, in the same shape as from the ledger."""
    out_decisions = []
    for decided in decisions:
        d = decided.decision
        out_decisions.append(_decision_json(
            epoch=decided.key.epoch, at=decided.at or d.get("routed_at"), config_version=d.get("config_version"),
            kind="decision", owner=d.get("owner"), previous_owner=d.get("previous_owner"), rule=d.get("rule"), data=d))
    out_events = [{"at": e.at.isoformat(), "kind": e.kind, "owner": None, "previous_owner": None, "actor": None,
                   "tier": None, "status": None, "wait_seconds": None, "data": e.data} for e in reversed(events)]
    return {**_lead_json(ref, "redis"), "decisions": out_decisions, "events": out_events}


def explain(rt: Runtime, ref: LeadRef, warn: Warn | None = None, ledger: Any = OPEN) -> dict[str, Any] | None:
    """The lead's whole story as ``explain --json`` prints it (ledger first, else what Redis holds); None if
    nothing is recorded anywhere."""
    history = ledger_history(rt, ref, warn, ledger)
    if history:
        return history_json(ref, history)
    decisions = rt.store.decisions_for_lead(ref)
    events = [e for e in rt.store.log_for_lead(ref) if e.kind != "decision"]
    if not decisions and not events:
        return None
    return redis_json(ref, decisions, events)
