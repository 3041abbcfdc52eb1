"""The SLA sweep and its neighbours, as plain functions with their dependencies passed in.

The Celery beat task only builds an :class:`SlaService` (store, compiled ``sla:`` section,
routing config, connectors by name, a notifier) and calls :meth:`SlaService.sweep`; the CLI
calls the same for ``leadroute sweep [--dry-run]``, :meth:`SlaService.acknowledge` for
``leadroute ack`` and :meth:`SlaService.rep_went_away` after ``leadroute ooo``; the routing
pipeline calls :meth:`SlaService.start` once an owner is written.

One sweep:

1. claims the timers due now from the store (earliest first, leased: a sweeper that dies
   loses nothing, and two overlapping sweeps never get the same timer), so its cost is in
   proportion to what is due, not to what is open;
2. reads the acknowledgement signal and current owner of those leads only, one batch per
   connector (``Connector.read_acks``);
3. asks the pure policy (:func:`worker.sla.policy.decide`) what is due for each;
4. carries it out: re-routes through the same rules with every earlier owner excluded under
   a new routing epoch (idempotent through ``decide_once``), writes owners and reasons in
   one batch per connector, moves load, notifies, and records every action in the decision
   log with its ladder step;
5. re-arms each lead's timer at its next instant, or closes it.

Side effects that must happen once (log entries, notifications, load changes) are guarded
by a per-action mark in Redis, so a sweep that dies half way and is re-run never repeats them.
Every clock started, ladder step and acknowledgement leaves a ledger event
(:mod:`worker.steps.ledger`), appended to the outbox in the same step as its log entry.
"""

from __future__ import annotations

import time as _time
from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any, Protocol

from connectors.base import OwnerUpdate
from worker.domain.leads import DecisionKey, LeadRef
from worker.domain.normalize import NormalizedLead, normalize_lead
from worker.ledger.events import LedgerEvent
from worker.routing.engine import Router, absence, derive_facts
from worker.routing.state import InMemoryState
from worker.sla.calendar import WorkCalendar, calendar_for, elapsed
from worker.sla.policy import Act, Action, Plan, Seen, SlaRecord, decide, lead_of, open_record, reassigned, timer_id
from worker.sla.settings import CompiledSla, OnRepAway, Tier, format_duration
from worker.steps import pipeline as pipeline_step
from worker.steps import rates as rates_step
from worker.steps.ledger import business_seconds, decision_extras, make_event
from worker.store.redis_store import RedisStore, Timer

if TYPE_CHECKING:
    from connectors.base import AckSignal, CrmRecord, WriteResult
    from worker.config import RoutingConfig

__all__ = [
    "AckResult",
    "Done",
    "Notice",
    "Notifier",
    "SlaCrm",
    "SlaService",
    "SweepReport",
    "sweep",
    "tier_of",
]

MARK_TTL = 2 * 86_400.0  # seconds "this action was done" marks are kept


class SlaCrm(Protocol):
    """The part of :class:`connectors.base.Connector` the sweep uses (real connectors satisfy it)."""

    def read_acks(self, ids: Sequence[str]) -> Mapping[str, AckSignal]: ...

    def fetch(self, ids: Sequence[str]) -> Mapping[str, CrmRecord]: ...

    def write_owners(self, updates: Sequence[OwnerUpdate]) -> Sequence[WriteResult]: ...

    def attach_reasons(self, reasons: Mapping[str, str]) -> Sequence[WriteResult]: ...


@dataclass(frozen=True, slots=True)
class Notice:
    """A message for ``worker.notify``: ``to`` is a rep id, or None for the alert channel.

    ``kind`` matches ``worker.notify.messages.Kind``: ``reminder`` (owner), ``escalation`` (manager),
    ``assigned`` (new owner after a reassignment), ``reassigned_from`` (previous owner and
    their manager), ``parked`` (manager and the alert channel). ``notice_id`` is unique per
    lead, epoch, ladder step and recipient role, and stable across retries: use it as the
    message's decision id so receivers de-duplicate. ``epoch`` is the routing epoch of the
    owner the notice is about (``store.decision(lead.at(epoch))`` has their decision and
    facts); ``decision`` is the new decision on a reassignment; ``fields`` the lead's raw
    fields when the sweep read them (reassign, park).
    """

    kind: str
    to: str | None
    role: str
    lead: LeadRef
    tier: str
    reason: str
    notice_id: str
    step: int | None = None
    deadline: datetime | None = None
    owner: str | None = None
    epoch: int = 0
    new_owner: str | None = None
    decision: Mapping[str, Any] | None = None
    fields: Mapping[str, Any] | None = None
    reassignments: int = 0

    def to_dict(self) -> dict[str, Any]:
        """A JSON-safe form for the task queue."""
        return {
            "kind": self.kind, "to": self.to, "role": self.role,
            "lead": [self.lead.crm, self.lead.object, self.lead.lead_id], "tier": self.tier,
            "reason": self.reason, "notice_id": self.notice_id, "step": self.step,
            "deadline": self.deadline.isoformat() if self.deadline else None, "owner": self.owner,
            "epoch": self.epoch, "new_owner": self.new_owner,
            "decision": dict(self.decision) if self.decision else None,
            "fields": {k: (v.isoformat() if isinstance(v, datetime) else v) for k, v in (self.fields or {}).items()},
            "reassignments": self.reassignments,
        }


Notifier = Callable[[Notice], None]


@dataclass(slots=True)
class Done:
    """One action of a sweep, as carried out (``status`` done / dry_run / retry / failed)."""

    lead: str
    tier: str
    action: str
    owner: str
    status: str
    note: str
    due_at: datetime
    late_seconds: float = 0.0
    step: int | None = None  # 1-based ladder step, as people count them
    to: str | None = None  # the new owner (reassign, park)

    def line(self) -> str:
        step = f" step {self.step}" if self.step is not None else ""
        to = f" -> {self.to}" if self.to else ""
        late = f" ({format_duration(self.late_seconds)} late)" if self.late_seconds >= 60 else ""
        flag = "" if self.status == "done" else f" [{self.status}]"
        return f"{self.lead} {self.tier}{step}: {self.action} {self.owner}{to}{late}: {self.note}{flag}"


@dataclass(slots=True)
class SweepReport:
    """What one sweep did (or, with ``dry_run``, would do); ``leadroute sweep`` prints it."""

    at: datetime
    dry_run: bool = False
    due: int = 0
    actions: list[Done] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    rescheduled: int = 0
    closed: int = 0
    more_due: bool = False
    seconds: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["at"] = self.at.isoformat()
        for item in out["actions"]:
            item["due_at"] = item["due_at"].isoformat()
        return out

    def lines(self) -> list[str]:
        verb = "would do" if self.dry_run else "did"
        head = (f"SLA sweep at {self.at:%Y-%m-%d %H:%M:%S}Z: {self.due} due, {verb} {len(self.actions)} action(s), "
                f"{self.rescheduled} re-armed, {self.closed} closed in {self.seconds:.3f}s"
                + (" (more due: run again)" if self.more_due else ""))
        return [head, *(f"  {a.line()}" for a in self.actions), *(f"  error: {e}" for e in self.errors)]


@dataclass(frozen=True, slots=True)
class AckResult:
    """An acknowledgement recorded: who, how fast (wall and on the tier's clock), within the SLA or not."""

    lead: LeadRef
    tier: str
    owner: str
    at: datetime
    since_assigned: timedelta
    since_assigned_on_clock: timedelta
    since_first_assigned: timedelta
    within_sla: bool


@dataclass
class _Item:
    """One claimed lead moving through a sweep."""

    timer: Timer
    record: SlaRecord
    seen: Seen | None = None
    signal: Any = None
    plan: Plan | None = None
    pending_owner: str | None = None
    decision: dict[str, Any] | None = None
    target: str | None = None  # new owner: rep id or queue:<name>
    write_error: str | None = None
    retry: bool = False
    new_record: SlaRecord | None = None
    fields: dict[str, Any] | None = None


def _now(now: datetime | None) -> datetime:
    if now is None:
        return datetime.now(UTC)
    if now.tzinfo is None:
        raise ValueError("naive datetime: give an aware datetime (UTC)")
    return now.astimezone(UTC)


def _dt(ts: float) -> datetime:
    return datetime.fromtimestamp(ts, UTC)


class SlaService:
    """SLA enforcement for one configuration: start clocks, sweep, acknowledge, react to absences.

    ``crms`` maps connector names (``salesforce``, ``hubspot``) to connectors; build them
    with :func:`worker.sla.settings.connectors_with_signals` so ``sla.acknowledged_when``
    is the signal they read. ``notify`` gets one :class:`Notice` per message (it must not
    raise; failures are reported, never block the sweep). ``lease``: how long a claimed timer
    stays hidden from other sweepers before it fires again (a sweeper that died).
    """

    def __init__(
        self,
        store: RedisStore,
        sla: CompiledSla,
        config: RoutingConfig,
        crms: Mapping[str, SlaCrm] | None = None,
        notify: Notifier | None = None,
        *,
        lease: float = 120.0,
        batch: int = 500,
    ) -> None:
        self.store = store
        self.sla = sla
        self.config = config
        self.crms = dict(crms or {})
        self.notify = notify
        self.lease = float(lease)
        self.batch = int(batch)
        self._queue_ids = {
            (crm, crm_id): f"queue:{name}" for name, ids in config.model.queues.items() for crm, crm_id in ids.items()
        }

    # ------------------------------------------------------------------ starting clocks

    def start(
        self,
        lead: LeadRef,
        owner: str,
        fields: Mapping[str, Any],
        at: datetime | None = None,
        *,
        epoch: int = 0,
    ) -> SlaRecord | None:
        """Start the SLA clock of a lead just assigned to ``owner`` (a rep id); None if no tier applies."""
        return self.start_many([(lead, owner, fields, at, epoch)])[0]

    def start_many(
        self,
        assignments: Sequence[tuple[LeadRef, str, Mapping[str, Any] | NormalizedLead, datetime | None, int]],
    ) -> list[SlaRecord | None]:
        """Start clocks for a batch of ``(lead, owner, raw or normalised lead fields, assigned at, epoch)`` in one transaction.

        Leads owned by a queue, or matching no tier, get no clock (and any old clock of theirs
        is closed: the lead was re-routed). The tier is chosen on the lead's derived facts
        (territory, segment...), like a rule.
        """
        out: list[SlaRecord | None] = []
        timers: list[tuple[str, float, Mapping[str, Any] | None]] = []
        stale: list[str] = []
        owners = sorted({owner for _, owner, _, _, _ in assignments if owner in self.config.reps})
        off = self._off_periods(owners, _now(None))
        calendars: dict[str, WorkCalendar | None] = {}
        opened: dict[tuple[str, str, datetime], SlaRecord] = {}  # a batch shares its clock times per (tier, owner)
        now = _now(None)
        # a re-routed lead leaves its old owner's index
        unindex = [(old_owner, tid) for tid, old_owner in self._owners_of([timer_id(a[0]) for a in assignments]).items()]
        index: list[tuple[str, str]] = []
        for lead, owner, fields, at, epoch in assignments:
            when = now if at is None else _now(at)
            tier = None
            if owner in self.config.reps and self.sla.tiers:
                lead_now = fields if isinstance(fields, NormalizedLead) else normalize_lead(fields)
                tier = self.sla.tier_for(derive_facts(lead_now, self.config))
            if tier is None:
                out.append(None)
                stale.append(timer_id(lead))
                continue
            template = opened.get((tier.name, owner, when))
            if template is None:
                if owner not in calendars:
                    calendars[owner] = self._calendar(owner, off)
                record = opened[(tier.name, owner, when)] = open_record(
                    lead, tier, owner, when, calendars[owner], epoch=epoch, away_policy=self.sla.away_policy(tier))
            else:
                record = replace(template, lead=lead, epoch=epoch)
            out.append(record)
            timers.append((record.timer_id, self._first_due(record), record.to_payload()))
            index.append((owner, record.timer_id))
        if stale:
            self._close([(tid, None) for tid in stale])
        if timers:  # each clock started goes to the ledger with it (worker.steps.ledger.clock_started_event)
            self.store.schedule_many(timers, started={tid for tid, _, _ in timers}, config_version=self.config.version_hash)
        self.store.index_timers(removed=unindex, added=index)
        return out

    def _owners_of(self, ids: Sequence[str]) -> dict[str, str]:
        """Current owners of the open clocks among ``ids``."""
        return {tid: str(payload.get("o")) for tid, payload in self.store.timer_payloads(ids).items()}

    def _first_due(self, record: SlaRecord) -> float:
        times = [record.deadline, *(t for t, _ in record.ladder)]
        if record.away_at is not None:
            times.append(record.away_at)
        return min(times)

    def _off_periods(self, reps: Iterable[str], now: datetime) -> dict[str, list[tuple[datetime, datetime]]]:
        """Absences set from the CLI with an end time: the business clock does not count them."""
        reps = list(reps)
        if not reps:
            return {}
        out: dict[str, list[tuple[datetime, datetime]]] = {}
        for rep, override in self.store.availability(reps, now).items():
            if not override.available and override.until is not None:
                out[rep] = [(override.set_at or now, override.until)]
        return out

    def _calendar(self, rep: str, off: Mapping[str, list[tuple[datetime, datetime]]]) -> WorkCalendar | None:
        if rep not in self.config.reps:
            return None
        return calendar_for(rep, self.config, off=off.get(rep, ()))

    # ------------------------------------------------------------------ the sweep

    def sweep(self, now: datetime | None = None, *, dry_run: bool = False, limit: int = 10_000) -> SweepReport:
        """Act on every SLA timer due at ``now`` (at most ``limit``); with ``dry_run``, only report."""
        started = _time.perf_counter()
        at = _now(now)
        report = SweepReport(at, dry_run)
        seen_ids: set[str] = set()
        while report.due < limit:
            size = limit if dry_run else min(self.batch, limit - report.due)
            timers = self.store.peek_due(at, size, skip=seen_ids) if dry_run else self.store.claim_due(at, size, lease=self.lease)
            if not timers:
                break
            report.due += len(timers)
            seen_ids.update(t.timer_id for t in timers)
            self._sweep_batch(timers, at, report)
            if len(timers) < size or dry_run:
                break
        first = self.store.next_due()
        report.more_due = first is not None and first <= at.timestamp() and not dry_run
        report.seconds = _time.perf_counter() - started
        return report

    def _sweep_batch(self, timers: Sequence[Timer], at: datetime, report: SweepReport) -> None:
        now = at.timestamp()
        items: list[_Item] = []
        broken: list[tuple[str, str | None]] = []
        for timer in timers:
            lead = lead_of(timer.timer_id)
            try:
                if lead is None:
                    raise ValueError("not an SLA timer")
                items.append(_Item(timer, SlaRecord.from_payload(lead, timer.payload)))
            except (KeyError, ValueError, TypeError) as exc:
                report.errors.append(f"{timer.timer_id}: unreadable SLA timer dropped ({exc})")
                broken.append((timer.timer_id, None))
        if broken and not report.dry_run:
            self._close(broken)
        retry_at = now + max(self.sla.settings.sweep_every.total_seconds(), 30.0)
        readable = self._read_crm(items, report, retry_at)
        self._plan(readable, at)
        self._move_owners(readable, at, report)
        self._attach_reasons(readable, report)
        self._finish(readable, at, report)

    def _read_crm(self, items: list[_Item], report: SweepReport, retry_at: float) -> list[_Item]:
        """Fresh acknowledgement, owner and existence, one batch per connector; unreadable ones wait."""
        by_crm: dict[str, list[_Item]] = defaultdict(list)
        for item in items:
            by_crm[item.record.lead.crm].append(item)
        readable: list[_Item] = []
        later: list[tuple[_Item, float]] = []
        for crm, group in by_crm.items():
            conn = self.crms.get(crm)
            if conn is None:
                report.errors.append(f"{crm}: no connector configured; {len(group)} lead(s) wait")
                later += [(item, retry_at) for item in group]
                continue
            try:
                signals = conn.read_acks([item.record.lead.lead_id for item in group])
            except Exception as exc:  # a connector error must never lose timers
                report.errors.append(f"{crm}: reading acknowledgements failed: {exc}; {len(group)} lead(s) wait")
                later += [(item, retry_at) for item in group]
                continue
            for item in group:
                signal = signals.get(item.record.lead.lead_id)
                item.signal = signal
                item.seen = self._seen(item.record, signal)
                readable.append(item)
        if later and not report.dry_run:
            self._rearm([(item.record, due) for item, due in later])
            report.rescheduled += len(later)
        return readable

    def _owner_id(self, crm: str, raw: str | None) -> str | None:
        if not raw:
            return None
        return self.config.owner_rep(raw) or self._queue_ids.get((crm, raw)) or raw

    def _seen(self, record: SlaRecord, signal: Any) -> Seen:
        if signal is None:
            return Seen(exists=False)
        return Seen(
            exists=True,
            acknowledged=bool(signal.acknowledged),
            closed=bool(signal.closed),
            owner=self._owner_id(record.lead.crm, signal.owner_id),
        )

    def _plan(self, items: list[_Item], at: datetime) -> None:
        owners = sorted({item.record.owner for item in items})
        overrides = self.store.unavailable(owners, at) if owners else {}
        pending = [item for item in items if item.record.pending_epoch is not None]
        if pending:
            found = self.store.decisions([i.record.lead.at(int(i.record.pending_epoch or 0)) for i in pending])
            for item, decided in zip(pending, found, strict=True):
                if decided is not None:
                    item.pending_owner = str(decided.decision.get("owner"))
        for item in items:
            record = item.record
            seen = item.seen or Seen(exists=False)
            rep = self.config.reps.get(record.owner)
            away = "no longer in the config" if rep is None else absence(rep, self.config, at, overrides)
            seen = replace(seen, owner_away=away)
            item.seen = seen
            tier = self.sla.tier(record.tier)
            policy = self.sla.away_policy(tier) if tier is not None else self.sla.settings.on_rep_away
            item.plan = decide(record, seen, at, away_policy=policy,
                               recheck_every=self.sla.settings.recheck_every.total_seconds(),
                               pending_owner=item.pending_owner)

    # ------------------------------------------------------------------ reassign and park

    def _move_owners(self, items: list[_Item], at: datetime, report: SweepReport) -> None:
        moving = [item for item in items if item.plan is not None and item.plan.moves_owner is not None]
        if not moving:
            return
        reassigning = [i for i in moving if _moving_kind(i) is Act.REASSIGN]
        if reassigning:
            self._route(reassigning, at, report)
        for item in moving:
            action = item.plan.moves_owner if item.plan else None
            if action is not None and action.kind is Act.PARK and item.target is None:
                item.target = self._fallback_owner()
        if report.dry_run:
            return
        by_crm: dict[str, list[_Item]] = defaultdict(list)
        for item in moving:
            if item.target is not None and item.write_error is None:
                by_crm[item.record.lead.crm].append(item)
        for crm, group in by_crm.items():
            conn = self.crms[crm]
            updates: list[OwnerUpdate] = []
            writable: list[_Item] = []
            for item in group:
                crm_owner = self._crm_owner(crm, item.target or "")
                if crm_owner is None:
                    item.write_error = f"{item.target} has no {crm} id in the config"
                    continue
                updates.append(OwnerUpdate(item.record.lead.lead_id, crm_owner, self._reason(item)))
                writable.append(item)
            if not updates:
                continue
            try:
                results = list(conn.write_owners(updates))
            except Exception as exc:  # call-level failure: the whole batch tries again next sweep
                report.errors.append(f"{crm}: writing owners failed: {exc}")
                for item in writable:
                    item.retry = True
                continue
            for item, result in zip(writable, results, strict=True):
                status = str(getattr(result.status, "value", result.status))
                if status == "retriable":
                    item.retry = True
                elif status != "ok":
                    item.write_error = f"{result.code or 'error'}: {result.message or 'refused by the CRM'}"

    def _route(self, items: list[_Item], at: datetime, report: SweepReport) -> None:
        """Re-route through the same rules and pools, every earlier owner excluded, under a new epoch."""
        if not report.dry_run:
            started: list[tuple[SlaRecord, float]] = []
            for item in items:
                if item.record.pending_epoch is None:
                    key = self.store.new_epoch(item.record.lead)
                    item.record = replace(item.record, pending_epoch=key.epoch)
                    started.append((item.record, at.timestamp() + self.lease))
            if started:  # remember the epoch first: a re-run replays the same pick
                self._rearm(started)
        by_crm: dict[str, list[_Item]] = defaultdict(list)
        for item in items:
            by_crm[item.record.lead.crm].append(item)
        overrides = self.store.unavailable(None, at)
        estimate = InMemoryState() if report.dry_run else None
        if estimate is not None:
            estimate.set_loads(self.store.all_loads())
            # what _decide routes with, so the estimate matches the real pick in weighted pools
            rates = rates_step.current(self.store, self.config)
            pipeline = pipeline_step.current(self.store, self.config)
        for crm, group in by_crm.items():
            try:
                records = self.crms[crm].fetch([i.record.lead.lead_id for i in group])
            except Exception as exc:
                report.errors.append(f"{crm}: fetching leads to re-route failed: {exc}")
                for item in group:
                    item.retry = True
                continue
            for item in group:
                fresh = records.get(item.record.lead.lead_id)
                if fresh is None:
                    item.plan = Plan((Action(Act.CLOSE, at.timestamp(), "deleted in the CRM"),), None, None)
                    continue
                lead = dict(fresh.lead)
                item.fields = lead
                exclude = item.record.excluded()
                if estimate is not None:
                    router = Router(self.config, estimate, rates=rates, pipeline=pipeline)
                    decision = router.route(lead, at=at, overrides=overrides, exclude=exclude).to_dict()
                else:
                    key = item.record.lead.at(int(item.record.pending_epoch or 0))
                    decision = self._decide(key, lead, exclude, overrides, at, item.record.owner)
                item.decision = decision
                item.target = str(decision["owner"])
                if decision.get("owner_kind") != "rep" and item.plan is not None:
                    # Nobody eligible: the engine fell back to a queue, which is a park.
                    moved = item.plan.moves_owner
                    note = f"{moved.note if moved else ''}; no eligible rep ({decision.get('reason', '')})"
                    park = Action(Act.PARK, moved.due_at if moved else at.timestamp(), note, moved.step if moved else None)
                    item.plan = replace(item.plan, actions=(*item.plan.actions[:-1], park))

    def _decide(
        self, key: DecisionKey, lead: dict[str, Any], exclude: frozenset[str], overrides: Mapping[str, str], at: datetime,
        previous: str,
    ) -> dict[str, Any]:
        """The new owner, decided once per epoch: a re-run replays the same pick instead of taking another."""
        normalized = normalize_lead(lead)
        beside = decision_extras(self.config, normalized) if self.store.ledger_outbox else None  # for the ledger

        rates = rates_step.current(self.store, self.config)  # performance_weighted pools' learned rates (None: none learn)
        pipeline = pipeline_step.current(self.store, self.config)  # cached open opportunities (None: none weighed)

        def compute(state: Any) -> dict[str, Any]:
            data = Router(self.config, state, rates=rates, pipeline=pipeline).route(normalized, at=at, overrides=overrides,
                                                                 exclude=exclude).to_dict()
            data.update(crm=key.crm, object=key.object, epoch=key.epoch, via="sla", previous_owner=previous,
                        excluded=sorted(exclude))
            return data

        return dict(self.store.decide_once(key, compute, ledger=beside).decision)

    def _fallback_owner(self) -> str:
        fb = self.config.fallback
        return f"queue:{fb.queue}" if fb.queue else str(fb.rep)

    def _crm_owner(self, crm: str, owner: str) -> str | None:
        if owner.startswith("queue:"):
            return self.config.model.queues.get(owner.removeprefix("queue:"), {}).get(crm)
        rep = self.config.reps.get(owner)
        return rep.crm_ids.get(crm) if rep is not None else None

    def _reason(self, item: _Item) -> str:
        assert item.plan is not None
        parts = [a.note for a in item.plan.actions if a.kind is not Act.BREACH]
        action = item.plan.moves_owner
        head = f"SLA {item.record.tier}: "
        if action is not None and action.kind is Act.PARK:
            return head + "; ".join(parts) + f" -> {item.target}"
        detail = item.decision.get("reason", "") if item.decision else ""
        return head + "; ".join(parts) + f" -> reassigned to {item.target}" + (f" ({detail})" if detail else "")

    def _attach_reasons(self, items: list[_Item], report: SweepReport) -> None:
        """The ladder actions (remind, escalate, breach) written to each record's reason, one batch per CRM."""
        if report.dry_run:
            return
        by_crm: dict[str, dict[str, str]] = defaultdict(dict)
        for item in items:
            plan = item.plan
            if plan is None or plan.moves_owner is not None or plan.record is None or not plan.actions:
                continue
            text = "; ".join(self._action_phrase(item.record, a) for a in plan.actions)
            by_crm[item.record.lead.crm][item.record.lead.lead_id] = f"SLA {item.record.tier}: {text}"
        for crm, reasons in by_crm.items():
            try:
                results = self.crms[crm].attach_reasons(reasons)
            except Exception as exc:
                report.errors.append(f"{crm}: writing SLA reasons failed: {exc}")
                continue
            failed = [r.id for r in results if not r.ok]
            if failed:
                report.errors.append(f"{crm}: SLA reason not written for {', '.join(failed[:10])}")

    def _action_phrase(self, record: SlaRecord, action: Action) -> str:
        if action.kind is Act.REMIND:
            return f"{action.note}: reminded {record.owner}"
        if action.kind is Act.ESCALATE:
            manager = self._manager(record.owner)
            return f"{action.note}: escalated to {manager or 'the alert channel'}"
        return action.note

    def _manager(self, rep: str) -> str | None:
        found = self.config.reps.get(rep)
        return found.manager if found is not None else None

    # ------------------------------------------------------------------ finishing

    def _finish(self, items: list[_Item], at: datetime, report: SweepReport) -> None:
        now = at.timestamp()
        retry_at = now + max(self.sla.settings.sweep_every.total_seconds(), 30.0)
        rearm: list[tuple[SlaRecord, float]] = []
        close: list[tuple[str, str | None]] = []
        moved_index: list[tuple[str, str, str]] = []
        effects: list[tuple[_Item, Action, str]] = []  # (item, action, status)
        off = self._off_periods([i.target for i in items if i.target and i.target in self.config.reps], at)
        for item in items:
            plan = item.plan
            if plan is None:
                continue
            moving = plan.moves_owner
            status = "dry_run" if report.dry_run else "done"
            if moving is not None and (item.retry or (report.dry_run and item.target is None)):
                # The steps before the move are done (the kept record says so); the move tries again.
                keep = plan.record or item.record
                rearm.append((replace(keep, pending_epoch=item.record.pending_epoch), retry_at))
                effects += [(item, a, "retry" if a is moving else status) for a in plan.actions]
                continue
            if moving is not None and item.write_error is not None:
                effects += [(item, a, "failed" if a is moving else status) for a in plan.actions]
                close.append((item.record.timer_id, item.record.owner))
                continue
            if moving is not None and moving.kind is Act.REASSIGN and item.target is not None:
                tier = self.sla.tier(item.record.tier)
                if tier is not None and not report.dry_run:
                    item.new_record = reassigned(
                        plan.record or item.record, item.target, at, tier, self._calendar(item.target, off),
                        epoch=int(item.record.pending_epoch or item.record.epoch + 1),
                        away_policy=self.sla.away_policy(tier),
                    )
                    rearm.append((item.new_record, self._first_due(item.new_record)))
                    moved_index.append((item.record.timer_id, item.record.owner, item.target))
                else:
                    close.append((item.record.timer_id, item.record.owner))
            elif plan.record is None or moving is not None:
                close.append((item.record.timer_id, item.record.owner))
            elif plan.next_due is not None:
                rearm.append((plan.record, plan.next_due))
            effects += [(item, a, status) for a in plan.actions]
        if report.dry_run:
            for item, action, status in effects:
                report.actions.append(self._done(item, action, status, now))
            return
        self._effects(effects, at, report)
        if rearm:
            self._rearm(rearm, moved_index)
            report.rescheduled += len(rearm)
        if close:
            self._close(close)
            report.closed += len(close)

    def _done(self, item: _Item, action: Action, status: str, now: float) -> Done:
        to = item.target if action.kind.moves_owner else None
        note = action.note
        if action.kind is Act.REASSIGN and status == "dry_run":
            note += " (owner estimated: the dry run does not advance rotations)"
        if status == "failed" and item.write_error:
            note += f"; CRM refused the owner: {item.write_error}"
        return Done(
            lead=str(item.record.lead),
            tier=item.record.tier,
            action=action.kind.value,
            owner=item.record.owner,
            status=status,
            note=note,
            due_at=_dt(action.due_at),
            late_seconds=round(action.late(now), 3),
            step=None if action.step is None else action.step + 1,
            to=to,
        )

    def _effects(self, effects: list[tuple[_Item, Action, str]], at: datetime, report: SweepReport) -> None:
        """Log, notify and move load for each action, once: marks make a re-run skip what was done."""
        now = at.timestamp()
        marks: list[tuple[str, int, str]] = []
        keyed: list[tuple[_Item, Action, str]] = []
        for item, action, status in effects:
            if status in ("done", "failed"):
                tag = f"{action.kind.value}:{'x' if action.step is None else action.step}:{status}"
                marks.append((item.record.timer_id, item.record.epoch, tag))
                keyed.append((item, action, status))
            else:
                report.actions.append(self._done(item, action, status, now))
        fresh = self.store.mark_once(marks, MARK_TTL)
        log: list[tuple[str, LeadRef, Mapping[str, Any], int]] = []
        ledger: list[LedgerEvent] = []
        notices: list[Notice] = []
        for (item, action, status), first in zip(keyed, fresh, strict=True):
            done = self._done(item, action, status, now)
            report.actions.append(done)
            if not first:
                done.status = "already_done"
                continue
            record = item.record
            data: dict[str, Any] = {
                "action": action.kind.value, "tier": record.tier, "owner": record.owner, "status": status,
                "ladder_step": done.step, "due_at": done.due_at.isoformat(), "late_s": done.late_seconds,
                "note": action.note, "reassignments": record.reassignments,
                "deadline": _dt(record.deadline).isoformat(), "assigned_at": _dt(record.assigned_at).isoformat(),
            }
            if action.kind.moves_owner:
                data["to"] = item.target
                data["excluded"] = sorted(record.excluded())
                if item.decision is not None:
                    data["decision"] = {k: item.decision.get(k) for k in ("rule", "reason", "target", "epoch")}
                if item.write_error:
                    data["error"] = item.write_error
            if action.kind is Act.STOP:
                data.update(self._ack_figures(record, item.signal, at))
            if status == "done" and (action.kind.ends_clock or action.kind is Act.REASSIGN):
                self.store.adjust_load(record.owner, -1)
            if status == "failed" and item.decision is not None and item.target in self.config.reps:
                self.store.adjust_load(str(item.target), -1)  # picked but never written
            log.append((f"sla.{action.kind.value}", record.lead, data, record.epoch))
            ledger += self._step_events(item, action, status, data, at)
            if status == "done":
                notices += self._notices(item, action)
            elif status == "failed":
                notices.append(self._notice(item, action, "parked", None, "alert",
                                            f"{action.note}; CRM refused the owner change: {item.write_error}"))
        self.store.log_events(log, ledger=ledger)  # one round trip per batch, the ledger's events in it
        self._send(notices, report)

    def _step_events(self, item: _Item, action: Action, status: str, data: Mapping[str, Any], at: datetime) -> list[LedgerEvent]:
        """The ledger events of one ladder action: ``sla.<action>``, and ``ack`` beside an acknowledgement's ``sla.stop``.

        Ids follow the action's once-mark (clock epoch, ladder step, failed or not), so a re-run
        sweep that gets past the mark never makes a second event. A breach happened at its
        deadline; the rest when the sweep carried them out (an acknowledgement: when the CRM
        says it was made, where it can tell).
        """
        record = item.record
        moved = action.kind.moves_owner and status == "done" and item.target is not None
        step = "x" if action.step is None else action.step
        extra = ("failed",) if status == "failed" else ()
        when = _dt(action.due_at) if action.kind is Act.BREACH else at
        assigned = _dt(record.assigned_at)
        common: dict[str, Any] = {"config_version": self.config.version_hash, "tier": record.tier}
        events = [make_event(
            f"sla.{action.kind.value}", record.lead, record.epoch, when, step, *extra, **common,
            owner=item.target if moved else record.owner, previous_owner=record.owner if moved else None,
            wait_seconds=round(max(0.0, (when - assigned).total_seconds()), 3),
            wait_business_seconds=business_seconds(self.config, record.owner, assigned, when), data=data,
        )]
        if action.kind is Act.STOP and status == "done":
            events.append(self._ack_event(record, datetime.fromisoformat(str(data["acknowledged_at"])), data, actor=None))
        return events

    def _ack_event(self, record: SlaRecord, acked: datetime, data: Mapping[str, Any], actor: str | None) -> LedgerEvent:
        """``ack``: the owner acknowledged; waited from owner written (the clock's start) to then, wall and working time."""
        assigned = _dt(record.assigned_at)
        keep = ("acknowledged_at", "observed", "time_to_ack_clock_s", "since_first_assigned_s", "within_sla", "deadline",
                "note", "by")
        return make_event(
            "ack", record.lead, record.epoch, acked, config_version=self.config.version_hash, owner=record.owner,
            actor=actor, tier=record.tier, wait_seconds=round(max(0.0, (acked - assigned).total_seconds()), 3),
            wait_business_seconds=business_seconds(self.config, record.owner, assigned, acked),
            data={k: data[k] for k in keep if k in data} | {"assigned_at": assigned},
        )

    def _notice(self, item: _Item, action: Action, kind: str, to: str | None, role: str, reason: str) -> Notice:
        """One message; an ``assigned`` notice carries the new owner's own deadline."""
        record = item.record
        step = "x" if action.step is None else str(action.step)
        deadline = item.new_record.deadline if kind == "assigned" and item.new_record else record.deadline
        return Notice(
            kind=kind, to=to, role=role, lead=record.lead, tier=record.tier, reason=reason,
            notice_id=f"{record.timer_id}#{record.epoch}:{action.kind.value}:{step}:{role}",
            step=None if action.step is None else action.step + 1,
            deadline=_dt(deadline), owner=record.owner, epoch=record.epoch,
            new_owner=item.target, decision=item.decision, fields=item.fields, reassignments=record.reassignments,
        )

    def _notices(self, item: _Item, action: Action) -> list[Notice]:
        record = item.record
        manager = self._manager(record.owner)
        if action.kind is Act.REMIND:
            return [self._notice(item, action, "reminder", record.owner, "owner", action.note)]
        if action.kind is Act.ESCALATE:
            return [self._notice(item, action, "escalation", manager, "manager" if manager else "alert", action.note)]
        if action.kind is Act.REASSIGN:
            why = self._reason(item)
            out = [
                self._notice(item, action, "assigned", item.target, "new_owner", why),
                self._notice(item, action, "reassigned_from", record.owner, "previous_owner", why),
            ]
            if manager:
                out.append(self._notice(item, action, "reassigned_from", manager, "manager", why))
            return out
        if action.kind is Act.PARK:
            why = self._reason(item)
            out = [self._notice(item, action, "parked", None, "alert", why)]
            if manager:
                out.append(self._notice(item, action, "parked", manager, "manager", why))
            return out
        return []

    def _send(self, notices: list[Notice], report: SweepReport) -> None:
        if self.notify is None:
            return
        for notice in notices:
            try:
                self.notify(notice)
            except Exception as exc:  # a failing channel never blocks the sweep
                report.errors.append(f"notify {notice.kind} to {notice.to or 'alerts'} failed: {exc}")

    def _ack_figures(self, record: SlaRecord, signal: Any, at: datetime) -> dict[str, Any]:
        """Time to acknowledge. The CRM's last-modified time bounds when it happened; else the sweep's time."""
        acked = at
        modstamp = getattr(signal, "modstamp", None)
        if isinstance(modstamp, datetime) and record.assigned_at <= modstamp.timestamp() <= at.timestamp():
            acked = modstamp
        result = self._ack_result(record, acked)
        return {
            "acknowledged_at": acked.isoformat(),
            "observed": "crm_modstamp" if acked is not at else "sweep",
            "time_to_ack_s": round(result.since_assigned.total_seconds(), 3),
            "time_to_ack_clock_s": round(result.since_assigned_on_clock.total_seconds(), 3),
            "since_first_assigned_s": round(result.since_first_assigned.total_seconds(), 3),
            "within_sla": result.within_sla,
        }

    def _ack_result(self, record: SlaRecord, at: datetime) -> AckResult:
        tier = self.sla.tier(record.tier)
        clock = tier.clock if tier is not None else "wall"
        start = _dt(record.assigned_at)
        return AckResult(
            lead=record.lead,
            tier=record.tier,
            owner=record.owner,
            at=at,
            since_assigned=max(timedelta(0), at - start),
            since_assigned_on_clock=elapsed(start, at, clock, self._calendar(record.owner, {})),
            since_first_assigned=max(timedelta(0), at - _dt(record.opened_at)),
            within_sla=at.timestamp() <= record.deadline,
        )

    # ------------------------------------------------------------------ timers and the per-rep index

    def _rearm(self, items: Sequence[tuple[SlaRecord, float]], moved: Sequence[tuple[str, str, str]] = ()) -> None:
        """Move claimed timers to their next instant, unless someone closed them meanwhile (an ack)."""
        self.store.rearm([(record.timer_id, due, record.to_payload()) for record, due in items], moved)

    def _close(self, items: Sequence[tuple[str, str | None]]) -> int:
        """Remove timers (and their per-rep index entries); returns how many were open."""
        return self.store.close_timers(items)

    # ------------------------------------------------------------------ acknowledgement and absence

    def acknowledge(self, lead: LeadRef, at: datetime | None = None, *, by: str = "cli") -> AckResult | None:
        """``leadroute ack``: stop the lead's clock, free the owner's load, record time-to-acknowledge.

        Returns None when the lead has no open clock (already acknowledged, parked or never
        under an SLA); acknowledging twice is harmless.
        """
        when = _now(at)
        timer = self.store.timer(timer_id(lead))
        if timer is None:
            return None
        record = SlaRecord.from_payload(lead, timer.payload)
        result = self._ack_result(record, when)
        data = {
            "action": "stop", "tier": record.tier, "owner": record.owner, "status": "done", "by": by,
            "note": f"acknowledged ({by})", "acknowledged_at": when.isoformat(), "observed": by,
            "time_to_ack_s": round(result.since_assigned.total_seconds(), 3),
            "time_to_ack_clock_s": round(result.since_assigned_on_clock.total_seconds(), 3),
            "since_first_assigned_s": round(result.since_first_assigned.total_seconds(), 3),
            "within_sla": result.within_sla, "deadline": _dt(record.deadline).isoformat(),
        }
        assigned = _dt(record.assigned_at)
        events = [
            make_event("sla.stop", lead, record.epoch, when, "x", config_version=self.config.version_hash,
                       owner=record.owner, actor=by, tier=record.tier,
                       wait_seconds=round(max(0.0, (when - assigned).total_seconds()), 3),
                       wait_business_seconds=business_seconds(self.config, record.owner, assigned, when), data=data),
            self._ack_event(record, when, data, actor=by),
        ]
        # the clock closes, the load drops, the log and the ledger hear of it in one step, or not at all
        if not self.store.acknowledge_clock(record.timer_id, record.owner, lead, record.epoch, ("sla.stop", data), events):
            return None  # a sweep closed it first
        return result

    def open_for(self, rep: str) -> list[SlaRecord]:
        """The open SLA clocks of a rep's leads (for ``leadroute reps`` and the OOO case)."""
        out = []
        for tid, payload in self.store.rep_timers(rep):
            lead = lead_of(tid)
            if lead is not None:
                record = SlaRecord.from_payload(lead, payload)
                if record.owner == rep:
                    out.append(record)
        return out

    def rep_went_away(self, rep: str, now: datetime | None = None) -> SweepReport:
        """A rep went out of office while holding unacknowledged leads: act on them now.

        Under ``on_rep_away: reassign_now`` (per tier, or the section default) their leads are
        due at once and this sweep reassigns them (or parks them past max_reassignments);
        under ``wait`` they keep their ladder. Call after recording the absence in the store.
        """
        at = _now(now)
        records = [r for r in self.open_for(rep) if self._away_policy(r) is OnRepAway.REASSIGN_NOW]
        if records:
            self._rearm([(r, min(at.timestamp(), self._first_due(r))) for r in records])
        return self.sweep(at)

    def _away_policy(self, record: SlaRecord) -> OnRepAway:
        tier = self.sla.tier(record.tier)
        return self.sla.away_policy(tier) if tier is not None else self.sla.settings.on_rep_away


def _moving_kind(item: _Item) -> Act | None:
    action = item.plan.moves_owner if item.plan is not None else None
    return action.kind if action is not None else None


def sweep(
    store: RedisStore,
    sla: CompiledSla,
    router: Router,
    crms: Mapping[str, SlaCrm],
    notify: Notifier | None = None,
    now: datetime | None = None,
    *,
    dry_run: bool = False,
    limit: int = 10_000,
    lease: float = 120.0,
) -> SweepReport:
    """One SLA sweep (see :class:`SlaService`); ``router`` supplies the routing config."""
    return SlaService(store, sla, router.config, crms, notify, lease=lease).sweep(now, dry_run=dry_run, limit=limit)


def tier_of(sla: CompiledSla, config: RoutingConfig, fields: Mapping[str, Any]) -> Tier | None:
    """The SLA tier a raw lead falls in (for ``simulate`` and notifications), or None."""
    return sla.tier_for(derive_facts(normalize_lead(fields), config))
