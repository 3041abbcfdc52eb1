"""Rebuild the shared state after Redis lost it, from the two places that did not: the CRM and the ledger.

When Redis comes back empty (a restart without persistence, a failover to an empty replica, a
``FLUSHALL``), the pending ids and unrouted leads come back through the poll and the orphan
sweep, but the SLA clocks, the loads and the round-robin positions would not. :func:`rebuild`
recomputes them:

* **History** (:func:`history`): one pass over the ledger's decisions and SLA events, oldest
  first, keeping per lead its latest decision (owner, epoch) and its SLA clock as the ladder
  left it: started (``sla.start``: tier, deadline, ladder), steps done (``sla.remind`` /
  ``sla.escalate``: the step; ``sla.breach``), moved (``sla.reassign``: the next owner's clock,
  recomputed in their calendar as the sweep did), or ended (stop, ack, close, park, manual
  override, a manual re-route).
* **The CRM** is asked about every lead the ledger shows with a rep (the connectors'
  ``read_acks``, 200 ids a call): a lead counts towards its owner's **load** when the CRM still
  has it open, unacknowledged, with that owner; its **clock** comes back only then, due at the
  next undone step. A lead whose decision the CRM does not show yet (decided, not written)
  gets its **decision** back, so the next drain replays it instead of routing it again.
* **Rotations** from the last decisions per pool: round robin continues after the rep served
  last; smooth weighted round robin gets the scores its pick counts imply.
* **Epochs** of re-routed leads, so a later re-route does not reuse an epoch the ledger has.

One rebuild at a time (the store lock ``rebuild``). :func:`ensure_state` is what the drain and the
re-route tasks call first: it stamps a new state, rebuilds a lost one, and refuses to route on a
foreign one (see ``docs/operations.md``).
"""

from __future__ import annotations

import hashlib
import time
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

import structlog

from connectors.base import Watermark
from worker.domain.leads import DecisionKey, LeadRef
from worker.domain.normalize import normalize_lead
from worker.ledger.events import DECISION_KINDS, SLA_KINDS, LedgerEvent
from worker.routing.engine import derive_facts
from worker.routing.state import Strategy
from worker.sla.calendar import calendar_for, next_day_off
from worker.sla.policy import SlaRecord, open_record, reassigned
from worker.sla.settings import LadderAction, OnRepAway
from worker.store.base import DAY

if TYPE_CHECKING:
    from worker.app.runtime import Runtime
    from worker.config import RoutingConfig
    from worker.ledger.ledger import Ledger
    from worker.sla.settings import CompiledSla

log = structlog.get_logger("leadroute.rebuild")

REBUILD_LOCK = "rebuild"
LOCK_TTL = 120.0  # renewed after every CRM call: a rebuild that died frees the lock within two minutes
ACK_CHUNK = 200  # ids per acknowledgement read
UNRECORDED_MARGIN = timedelta(minutes=2)  # read the CRM's changes from this long before the ledger's newest event
_ENDS_CLOCK = frozenset(("sla.stop", "sla.close", "sla.park", "sla.manual_override", "ack"))


class RebuildBusy(RuntimeError):
    """Another rebuild holds the lock."""


def ledger_fingerprint(url: str | None = None) -> str:
    """A short digest of the ledger's database (password left out): the marker says which ledger a state belongs to."""
    from worker.ledger.database import database_url, display_url  # SQLAlchemy loads only where the ledger is used

    return hashlib.sha256(display_url(url or database_url()).encode()).hexdigest()[:16]


# ------------------------------------------------------------------------------------------- the ledger's history


@dataclass
class LeadHistory:
    """What the ledger says about one lead: its latest decision and its SLA clock, if one is open."""

    lead: LeadRef
    epoch: int = -1
    owner: str | None = None
    decided_at: datetime | None = None
    decision: dict[str, Any] | None = None
    clock: SlaRecord | None = None


@dataclass
class History:
    """Every lead's history, and the picks per pool in order (rep -> the sequence of its last pick; counts)."""

    leads: dict[LeadRef, LeadHistory] = field(default_factory=dict)
    last_pick: dict[str, dict[str, int]] = field(default_factory=dict)
    picks: dict[str, Counter[str]] = field(default_factory=dict)
    events: int = 0
    latest: datetime | None = None  # the newest event: what happened after it is not in the ledger


def history(events: Iterable[LedgerEvent], config: RoutingConfig) -> History:
    """Fold the ledger's decision and SLA events (oldest first) into each lead's latest state."""
    out = History()
    sla = config.sla
    for event in events:
        out.events += 1
        if out.latest is None or event.at > out.latest:
            out.latest = event.at
        ref = LeadRef(event.crm, event.object, event.lead_id)
        lead = out.leads.get(ref)
        if lead is None:
            lead = out.leads[ref] = LeadHistory(ref)
        if event.kind in DECISION_KINDS:
            _decided(out, lead, event)
        elif event.kind == "sla.start":
            if lead.clock is None or (event.epoch or 0) >= lead.clock.epoch:
                lead.clock = _started(ref, event, config, sla)
        elif lead.clock is not None and event.epoch == lead.clock.epoch:
            lead.clock = _stepped(lead.clock, event, config, sla)
    return out


def _decided(out: History, lead: LeadHistory, event: LedgerEvent) -> None:
    data = dict(event.data or {})
    if event.pool and event.owner:
        seq = out.picks.setdefault(event.pool, Counter())
        seq[event.owner] += 1
        order = out.last_pick.setdefault(event.pool, {})
        order.pop(event.owner, None)
        order[event.owner] = sum(seq.values())
    epoch = event.epoch or 0
    if epoch < lead.epoch:
        return
    if lead.clock is not None and epoch > lead.clock.epoch and data.get("via") != "sla":
        lead.clock = None  # re-routed by hand: a new clock starts (sla.start) if the new owner has one
    lead.epoch, lead.owner, lead.decided_at = epoch, event.owner, event.at
    lead.decision = {
        **data, "owner": event.owner, "rule": event.rule, "config_version": event.config_version,
        "previous_owner": event.previous_owner, "crm": event.crm, "object": event.object, "epoch": epoch,
        "restored_from": "ledger",
    }


def _started(lead: LeadRef, event: LedgerEvent, config: RoutingConfig, sla: CompiledSla | None) -> SlaRecord | None:
    data = event.data or {}
    try:
        ladder = tuple((_ts(step["at"]), LadderAction(step["action"])) for step in data.get("ladder", ()))
        record = SlaRecord(
            lead=lead, tier=str(event.tier), owner=str(event.owner), assigned_at=event.at.timestamp(),
            deadline=_ts(data["deadline"]), ladder=ladder, max_reassignments=int(data.get("max_reassignments", 0)),
            earlier=tuple(str(x) for x in data.get("earlier_owners", ())), reassignments=int(data.get("reassignments", 0)),
            epoch=int(event.epoch or 0), opened_at=event.at.timestamp(),
        )
    except (KeyError, TypeError, ValueError):
        log.warning("rebuild_unreadable_clock", event_id=event.event_id)
        return None
    return replace(record, away_at=_away_at(record, config, sla))


def _stepped(clock: SlaRecord, event: LedgerEvent, config: RoutingConfig, sla: CompiledSla | None) -> SlaRecord | None:
    data = event.data or {}
    status = data.get("status", "done")
    if event.kind in _ENDS_CLOCK:
        return None
    if event.kind == "sla.breach":
        return replace(clock, breached=True)
    if event.kind in ("sla.remind", "sla.escalate") and status == "done":
        step = int(data.get("ladder_step") or 0)
        return replace(clock, step=max(clock.step, step))
    if event.kind == "sla.reassign":
        tier = sla.tier(clock.tier) if sla is not None else None
        target = data.get("to") or event.owner
        if status != "done" or tier is None or not target or target == clock.owner or target not in config.reps:
            return None  # refused by the CRM (parked), or a tier the config no longer has
        epoch = (data.get("decision") or {}).get("epoch")
        return reassigned(clock, str(target), event.at, tier, calendar_for(str(target), config),
                          epoch=int(epoch) if epoch is not None else clock.epoch + 1, away_policy=sla.away_policy(tier))
    return clock


def _away_at(record: SlaRecord, config: RoutingConfig, sla: CompiledSla | None) -> float | None:
    """The owner's next day off within the clock, as :func:`~worker.sla.policy.open_record` finds it."""
    tier = sla.tier(record.tier) if sla is not None else None
    if tier is None or sla is None or sla.away_policy(tier) is not OnRepAway.REASSIGN_NOW or record.owner not in config.reps:
        return None
    last = max([record.deadline, *(t for t, _ in record.ladder)])
    found = next_day_off(calendar_for(record.owner, config), _dt(record.assigned_at), _dt(last))
    return found.timestamp() if found else None


def next_due(record: SlaRecord, now: float) -> float:
    """When the sweep must look at a rebuilt clock: its next undone step, as the sweep would have armed it."""
    upcoming = [at for at, _ in record.ladder[record.step:]]
    if not record.breached:
        upcoming.append(record.deadline)
    if record.away_at is not None:
        upcoming.append(record.away_at)
    return min(upcoming) if upcoming else now


def _ts(value: Any) -> float:
    if isinstance(value, int | float):
        return float(value)
    parsed = value if isinstance(value, datetime) else datetime.fromisoformat(str(value))
    return (parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)).timestamp()


def _dt(ts: float) -> datetime:
    return datetime.fromtimestamp(ts, UTC)


# ------------------------------------------------------------------------------------------- the plan


@dataclass
class RebuildReport:
    """What a rebuild found and (unless a dry run) wrote."""

    dry_run: bool
    ledger_events: int = 0
    leads: int = 0
    loads: dict[str, int] = field(default_factory=dict)
    holders: dict[str, dict[str, str]] = field(default_factory=dict)
    clocks: list[tuple[SlaRecord, float]] = field(default_factory=list)
    started: list[tuple[SlaRecord, float]] = field(default_factory=list)  # clocks of leads the ledger had not heard of
    unrecorded: int = 0  # leads owned by a rep that the CRM changed after the ledger's newest event
    caught_up: int = 0  # leads written by a batch in flight while the rebuild ran (see catch_up)
    known: dict[str, set[str]] = field(default_factory=dict, repr=False)  # lead ids per CRM the ledger told about
    pools: dict[str, dict[str, object]] = field(default_factory=dict)
    decisions: list[tuple[DecisionKey, dict[str, Any], float]] = field(default_factory=list)
    epochs: list[tuple[LeadRef, int, float]] = field(default_factory=list)
    left_out: Counter[str] = field(default_factory=Counter)
    crm_calls: int = 0
    seconds: float = 0.0
    generation: int | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "dry_run": self.dry_run, "ledger_events": self.ledger_events, "leads": self.leads,
            "loads": dict(sorted(self.loads.items())), "open_leads": sum(len(h) for h in self.holders.values()),
            "clocks": len(self.clocks), "clocks_started": len(self.started), "unrecorded_leads": self.unrecorded,
            "caught_up": self.caught_up,
            "pools": {p: {k: v for k, v in f.items() if k in ("s", "last")}
                                                  for p, f in sorted(self.pools.items())},
            "decisions_restored": len(self.decisions), "epochs_restored": len(self.epochs),
            "left_out": dict(sorted(self.left_out.items())), "crm_calls": self.crm_calls,
            "seconds": round(self.seconds, 3), "generation": self.generation,
        }

    def lines(self) -> list[str]:
        verb = "would restore" if self.dry_run else "restored"
        loads = ", ".join(f"{rep} {n}" for rep, n in sorted(self.loads.items())) or "none"
        out = [
            f"read {self.ledger_events} ledger events about {self.leads} leads; {self.crm_calls} CRM calls",
            f"{verb}: loads {loads}",
            f"{verb}: {sum(len(h) for h in self.holders.values())} open leads, {len(self.clocks)} SLA clocks, "
            f"{len(self.decisions)} decisions not yet written, {len(self.epochs)} epochs",
        ]
        if self.unrecorded:
            out.append(f"{verb}: {self.unrecorded} open leads the ledger had not heard of yet (owned in the CRM since "
                       f"its newest event), {len(self.started)} SLA clocks started from their owner-change times")
        for pool, fields in sorted(self.pools.items()):
            scores = ", ".join(f"{k[2:]} {v}" for k, v in sorted(fields.items()) if k.startswith("w:"))
            out.append(f"{verb}: pool {pool}: " + (f"last served {fields['last']}" if "last" in fields
                                                     else f"weighted scores {scores}"))
        if self.left_out:
            out.append("left out: " + ", ".join(f"{n} {why}" for why, n in sorted(self.left_out.items())))
        out.append(f"took {self.seconds:.1f} s" + ("" if self.generation is None else f"; state generation {self.generation}"))
        return out


def plan(
    rt: Runtime, ledger: Ledger, *, since: datetime | None = None, now: datetime | None = None,
    beat: Callable[[], None] | None = None, dry_run: bool = True,
) -> RebuildReport:
    """What a rebuild would write: the ledger's history checked against the CRM (nothing is written)."""
    started = time.monotonic()
    at = (now or datetime.now(UTC)).timestamp()
    config = rt.config
    report = RebuildReport(dry_run)
    found = history(ledger.between(since, None, (*DECISION_KINDS, *SLA_KINDS)), config)
    report.ledger_events, report.leads = found.events, len(found.leads)
    for ref in found.leads:
        report.known.setdefault(ref.crm, set()).add(ref.lead_id)
    report.pools = _pools(found, config)
    ttl = rt.store.decision_ttl_ms / 1000
    for lead in found.leads.values():
        if lead.epoch > 0 and lead.decided_at is not None:
            left = lead.decided_at.timestamp() + ttl + DAY - at
            if left > 0:
                report.epochs.append((lead.lead, lead.epoch, left))
    by_crm: dict[str, tuple[list[LeadHistory], list[LeadHistory]]] = {}
    for lead in found.leads.values():
        if lead.owner is None:
            continue
        if lead.lead.crm not in rt.crms:
            report.left_out["of a CRM not enabled"] += 1
            continue
        reps, queued = by_crm.setdefault(lead.lead.crm, ([], []))
        if lead.owner in config.reps:
            reps.append(lead)
        elif lead.decided_at is not None and lead.decided_at.timestamp() + ttl > at:
            queued.append(lead)  # a queue's: no load, no clock, but its decision if it is not written yet
    for crm, (reps, queued) in by_crm.items():
        _check_crm(rt, crm, reps, queued, report, at, ttl, beat)
    if found.latest is not None:
        for crm in rt.crms:
            _unrecorded(rt, crm, found, report, found.latest - UNRECORDED_MARGIN, beat)
    report.seconds = time.monotonic() - started
    return report


def _check_crm(rt: Runtime, crm: str, leads: list[LeadHistory], queued: list[LeadHistory], report: RebuildReport,
               at: float, ttl: float, beat: Callable[[], None] | None) -> None:
    conn = rt.connector(crm)
    holders = report.holders.setdefault(crm, {})
    unwritten: list[LeadHistory] = list(queued)
    for start in range(0, len(leads), ACK_CHUNK):
        part = leads[start : start + ACK_CHUNK]
        acks = conn.read_acks([lead.lead.lead_id for lead in part])
        report.crm_calls += 1
        if beat is not None:
            beat()
        for lead in part:
            ack = acks.get(lead.lead.lead_id)
            owner = str(lead.owner)
            expected = rt.config.reps[owner].crm_ids.get(crm)
            if ack is None:
                report.left_out["deleted in the CRM"] += 1
            elif ack.closed:
                report.left_out["closed in the CRM"] += 1
            elif ack.acknowledged:
                report.left_out["acknowledged"] += 1
            elif expected and ack.owner_id == expected:
                holders[lead.lead.lead_id] = owner
                report.loads[owner] = report.loads.get(owner, 0) + 1
                if lead.clock is not None and lead.clock.owner == owner:
                    report.clocks.append((lead.clock, next_due(lead.clock, at)))
            else:
                unwritten.append(lead)
    for start in range(0, len(unwritten), ACK_CHUNK):
        part = unwritten[start : start + ACK_CHUNK]
        records = conn.fetch([lead.lead.lead_id for lead in part])
        report.crm_calls += 1
        if beat is not None:
            beat()
        for lead in part:
            record = records.get(lead.lead.lead_id)
            left = (lead.decided_at.timestamp() + ttl - at) if lead.decided_at is not None else 0.0
            if record is not None and record.needs_routing and lead.decision is not None and left > 0:
                owner = str(lead.owner)  # decided, not written yet: the next drain replays the decision
                report.decisions.append((lead.lead.at(lead.epoch), lead.decision, left))
                if owner in rt.config.reps:
                    report.loads[owner] = report.loads.get(owner, 0) + 1
            elif lead.owner not in rt.config.reps:
                report.left_out["written to a queue"] += 1
            else:
                report.left_out["owner changed in the CRM"] += 1


def _unrecorded(rt: Runtime, crm: str, found: History, report: RebuildReport, since: datetime,
                beat: Callable[[], None] | None) -> None:
    """Leads a rep owns in the CRM that changed after the ledger's newest event and that it does not know:
    routed in the seconds whose events were still in the Redis outbox when it was lost. They count
    towards their owner's load when open and unacknowledged, and their SLA clock starts again from
    when the CRM last changed them (their owner write)."""
    config = rt.config
    by_crm_id = {r.crm_ids[crm]: rep for rep, r in config.reps.items() if crm in r.crm_ids}
    known = {ref.lead_id for ref in found.leads if ref.crm == crm}
    conn = rt.connector(crm)
    changed: dict[str, datetime] = {}
    owners: dict[str, str] = {}
    for page in conn.changes(Watermark(since), intake_only=False):
        report.crm_calls += 1
        if beat is not None:
            beat()
        for record in page.records:
            rep = by_crm_id.get(record.owner_id or "")
            if rep is not None and record.id not in known:
                changed[record.id], owners[record.id] = record.modstamp, rep
    ids = list(changed)
    obj = rt.object_name(crm)
    holders = report.holders.setdefault(crm, {})
    for start in range(0, len(ids), ACK_CHUNK):
        part = ids[start : start + ACK_CHUNK]
        acks, records = conn.read_acks(part), conn.fetch(part)
        report.crm_calls += 2
        if beat is not None:
            beat()
        for lead_id in part:
            ack, record, rep = acks.get(lead_id), records.get(lead_id), owners[lead_id]
            if ack is None or record is None or ack.closed or ack.acknowledged or ack.owner_id != config.reps[rep].crm_ids[crm]:
                continue
            report.unrecorded += 1
            holders[lead_id] = rep
            report.loads[rep] = report.loads.get(rep, 0) + 1
            clock = _fresh_clock(config, LeadRef(crm, obj, lead_id), rep, record.lead, changed[lead_id])
            if clock is not None:
                report.started.append((clock, next_due(clock, time.time())))


def _fresh_clock(config: RoutingConfig, lead: LeadRef, owner: str, fields: Any, at: datetime) -> SlaRecord | None:
    """The clock :meth:`~worker.steps.sla_sweep.SlaService.start` would have started for ``owner`` at ``at``."""
    sla = config.sla
    if sla is None or not sla.tiers:
        return None
    tier = sla.tier_for(derive_facts(normalize_lead(fields), config))
    if tier is None:
        return None
    return open_record(lead, tier, owner, at, calendar_for(owner, config), away_policy=sla.away_policy(tier))


def _pools(found: History, config: RoutingConfig) -> dict[str, dict[str, object]]:
    """Rotation state per pool from its picks: what the claim script would hold after them."""
    out: dict[str, dict[str, object]] = {}
    for name, order in found.last_pick.items():
        pool = config.model.pools.get(name)
        if pool is None:
            continue
        if pool.strategy is Strategy.ROUND_ROBIN:
            fields: dict[str, object] = {"s": sum(found.picks[name].values())}
            fields.update({f"r:{rep}": seq for rep, seq in order.items() if rep})
            last = next(reversed(order), "")
            if last:
                fields["last"] = last
            out[name] = fields
        elif pool.strategy is Strategy.WEIGHTED_ROUND_ROBIN:
            weights = {rep: config.reps[rep].weight for rep in pool.members if rep in config.reps}
            total, n = sum(weights.values()), sum(found.picks[name].values())
            out[name] = {f"w:{rep}": n * w - total * found.picks[name][rep] for rep, w in weights.items()}
    return out


# ------------------------------------------------------------------------------------------- applying it


def rebuild(
    rt: Runtime, ledger: Ledger, *, dry_run: bool = False, since: datetime | None = None, now: datetime | None = None,
    token: str | None = None,
) -> RebuildReport:
    """Recompute the state (:func:`plan`) and, unless ``dry_run``, write it and stamp the state as rebuilt.

    Runs under the store lock ``rebuild`` (``token``: the caller holds it already); raises
    :class:`RebuildBusy` when another rebuild holds it.
    """
    own = token is None
    if own:
        token = rt.store.acquire_lock(REBUILD_LOCK, LOCK_TTL)
        if token is None:
            raise RebuildBusy("another rebuild is running (store lock 'rebuild')")
    assert token is not None
    held = token
    began = datetime.now(UTC)
    try:
        beat = lambda: rt.store.extend_lock(REBUILD_LOCK, held, LOCK_TTL)  # noqa: E731 - the lock's heartbeat
        report = plan(rt, ledger, since=since, now=now, dry_run=dry_run, beat=beat)
        if not dry_run:
            apply(rt, report)
            catch_up(rt, report, began - UNRECORDED_MARGIN, beat)
        return report
    finally:
        if own:
            rt.store.release_lock(REBUILD_LOCK, held)


def apply(rt: Runtime, report: RebuildReport) -> None:
    """Write a planned rebuild: loads, open-lead holders, rotations, clocks, decisions, epochs; then the marker."""
    store = rt.store
    store.set_loads(report.loads)
    for crm in rt.crms:
        store.restore_open(crm, report.holders.get(crm, {}))
    store.restore_pools(report.pools)
    store.restore_clocks([(r.timer_id, due, r.to_payload(), r.owner) for r, due in report.clocks], replace=True)
    if report.started:  # clocks the ledger never heard of start as the sweep's would, their sla.start to the ledger
        store.schedule_many([(r.timer_id, due, r.to_payload()) for r, due in report.started],
                            started={r.timer_id for r, _ in report.started}, config_version=rt.config.version_hash)
        store.index_timers(added=[(r.owner, r.timer_id) for r, _ in report.started])
    store.restore_decisions(report.decisions)
    store.restore_epochs(report.epochs)
    marker = store.stamp_state(ledger_fingerprint(), rebuilt=True)
    report.generation = marker.generation
    store.log_event("state_rebuilt", None, report.to_dict())


def catch_up(rt: Runtime, report: RebuildReport, since: datetime, beat: Callable[[], None] | None = None) -> int:
    """After :func:`apply`: the leads a batch already in flight when Redis lost its data wrote to the CRM
    while the rebuild read it. Each lead a rep owns, open and unacknowledged, that the ledger did not
    know, the rebuild did not count, and that has no decision in the new state (a batch routed since
    counted its own) is added to its owner's load and holders. Returns how many."""
    added = 0
    for crm in rt.crms:
        config = rt.config
        by_crm_id = {r.crm_ids[crm]: rep for rep, r in config.reps.items() if crm in r.crm_ids}
        counted = report.holders.get(crm, {})
        known = report.known.get(crm, set())
        owners = {record.id: rep for page in rt.connector(crm).changes(Watermark(since), intake_only=False)
                  for record in page.records
                  if (rep := by_crm_id.get(record.owner_id or "")) is not None
                  and record.id not in counted and record.id not in known}
        if beat is not None:
            beat()
        obj = rt.object_name(crm)
        ids = list(owners)
        for start in range(0, len(ids), ACK_CHUNK):
            part = ids[start : start + ACK_CHUNK]
            refs = [LeadRef(crm, obj, lead_id) for lead_id in part]
            decided = rt.store.decisions([ref.at(epoch) for ref, epoch in zip(refs, rt.store.epochs(refs), strict=True)])
            acks = rt.connector(crm).read_acks(part)
            for lead_id, recorded in zip(part, decided, strict=True):
                ack, rep = acks.get(lead_id), owners[lead_id]
                if recorded is not None or ack is None or ack.closed or ack.acknowledged:
                    continue
                rt.store.hold_open(crm, lead_id, rep)
                rt.store.adjust_load(rep, 1)
                report.holders.setdefault(crm, {})[lead_id] = rep
                report.loads[rep] = report.loads.get(rep, 0) + 1
                added += 1
    report.caught_up = added
    return added


# ------------------------------------------------------------------------------------------- the guard


def ledger_has_history(ledger: Ledger) -> bool:
    """Whether the ledger holds any decision: a state that is missing had something to lose."""
    events = ledger.between(None, None, DECISION_KINDS, batch_size=1)
    try:
        return next(iter(events), None) is not None
    finally:
        close = getattr(events, "close", None)
        if close is not None:
            close()


@dataclass
class StateCheck:
    """What :func:`ensure_state` found and did."""

    ready: bool
    status: str  # ok, stamped, rebuilt, busy, foreign, unknown
    report: RebuildReport | None = None


def ensure_state(rt: Runtime, ledger: Callable[[], Ledger] | None = None) -> StateCheck:
    """Check the state marker before routing: route on (``ready``) when it is ours; stamp a new state;
    rebuild a lost one (marker gone, ledger with history) under the lock; refuse a foreign one.

    Costs one read when the marker is there. ``ledger`` opens the ledger (default: the runtime's).
    """
    fingerprint = ledger_fingerprint()
    status, marker = rt.store.state_status(fingerprint)
    if status == "ok":
        return StateCheck(True, "ok")
    if status == "foreign":
        assert marker is not None
        log.error("state_foreign", prefix=marker.prefix, ledger=marker.ledger, ours=fingerprint,
                  fix="check REDIS_URL, LEADROUTE_PREFIX and DATABASE_URL; then `leadroute rebuild --force`")
        return StateCheck(False, "foreign")
    token = rt.store.acquire_lock(REBUILD_LOCK, LOCK_TTL)
    if token is None:
        return StateCheck(False, "busy")
    try:
        if rt.store.state_marker() is not None:
            return StateCheck(True, "ok")  # a rebuild finished between the two reads
        try:
            opened = ledger() if ledger is not None else rt.ledger
            lost = ledger_has_history(opened)
        except Exception as exc:  # SQL unreachable: whether there was a history to lose is unknown, so wait
            log.error("state_missing_ledger_unreachable", error=str(exc)[:300])
            return StateCheck(False, "unknown")
        if not lost:
            rt.store.stamp_state(fingerprint)
            log.info("state_stamped", prefix=rt.store.prefix)
            return StateCheck(True, "stamped")
        log.warning("state_lost_rebuilding", prefix=rt.store.prefix)
        report = rebuild(rt, opened, token=token)
        log.warning("state_rebuilt", **{k: v for k, v in report.to_dict().items() if k != "dry_run"})
        return StateCheck(True, "rebuilt", report)
    finally:
        rt.store.release_lock(REBUILD_LOCK, token)
