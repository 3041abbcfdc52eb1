"""The ledger's side of the steps: the event each thing the worker does leaves, and moving them to SQL.

**Events.** What each step does reaches the Redis outbox in the same atomic step that records it
(:mod:`worker.store.outbox`): a recorded decision as recorded (``record.lua``; the steps put in it
what the event needs beside the engine's answer, :func:`decision_extras`), a clock started as
its timer payload, and an SLA step, acknowledgement, refused owner or notification as a whole
:class:`~worker.ledger.events.LedgerEvent` built here. Routing never waits on SQL, and pays no
more than an ``XADD`` per decision: :func:`entry_event` builds the events of the first two off
the routing path, as they are moved. An event carries what explaining it needs, so nothing is
ever looked up in Redis later. Its id comes from what happened (kind, CRM, object, lead,
epoch, ladder step...), never from a clock or a random source: a replayed step yields the same
ids, and the ledger keeps one copy.

**Moving.** :func:`move_outbox` claims a batch from the outbox (under a lease), writes it with
``Ledger.write`` (one transaction, idempotent on ``event_id``) and acknowledges it only after
the commit; :func:`flush` repeats that until the outbox is empty or its time is up. A mover
killed between the commit and the acknowledgement leaves its batch claimed: after the lease the
next one writes it again and the ledger skips every event it already has. A SQL outage leaves
the events in the outbox, which grows until SQL is back; :func:`ledger_health` says so.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import TYPE_CHECKING, Any, Protocol

import structlog

from worker.domain.leads import DecisionKey, LeadRef
from worker.domain.normalize import NormalizedLead
from worker.ledger.events import MAX_EVENT_ID, InvalidEvent, LedgerEvent, loose_time
from worker.observability import metrics
from worker.sla.calendar import WorkCalendar, calendar_for, elapsed_business
from worker.sla.policy import SlaRecord, lead_of
from worker.store.outbox import OutboxEntry

if TYPE_CHECKING:
    from worker.config import RoutingConfig
    from worker.ledger.ledger import Ledger
    from worker.notify.channels import SendReport
    from worker.store.redis_store import RedisStore

log = structlog.get_logger("leadroute.ledger")

BATCH = 1000  # events per claim and per SQL transaction
LEASE_SECONDS = 60.0  # a claimed batch not acknowledged within this is claimable again (its mover died)
FLUSH_BUDGET_SECONDS = 20.0  # one flush task moves batches until the outbox is empty or this is spent
BUSINESS_SPAN_LIMIT = timedelta(days=366)  # longer waits get no business-time figure (it would cost a walk per day)


# ------------------------------------------------------------------------------------------- event ids


def event_id(kind: str, lead: LeadRef, epoch: int | None, *more: object) -> str:
    """``kind/crm/object/lead/epoch[/more...]``: what happened, never when it was noticed.

    ``decision/salesforce/Lead/00Q5e00000AbCdE/0``, ``sla.remind/salesforce/Lead/00Q5e00000AbCdE/0/1``.
    An id longer than the ledger's limit keeps its head and ends in a digest of the whole.
    """
    text = "/".join((kind, lead.crm, lead.object, lead.lead_id, "-" if epoch is None else str(epoch),
                     *(str(m) for m in more)))
    if len(text) <= MAX_EVENT_ID:
        return text
    digest = hashlib.sha256(text.encode()).hexdigest()[:32]
    return f"{text[: MAX_EVENT_ID - 33]}~{digest}"


def make_event(kind: str, lead: LeadRef, epoch: int | None, at: datetime, *id_more: object, **fields: Any) -> LedgerEvent:
    """One event about ``lead`` (``id_more`` tells apart several of one kind at one epoch; ``fields`` the rest)."""
    data = fields.pop("data", None) or {}
    return LedgerEvent(event_id=event_id(kind, lead, epoch, *id_more), kind=kind, crm=lead.crm, object=lead.object,
                       lead_id=lead.lead_id, epoch=epoch, at=at, data=plain(data), **fields)


def plain(value: Any) -> Any:
    """``value`` as JSON has it: date-times as ISO 8601 text, decimals as numbers, sets and tuples as lists."""
    if isinstance(value, Mapping):
        return {str(k): plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [plain(v) for v in value]
    if isinstance(value, set | frozenset):
        return sorted((plain(v) for v in value), key=str)
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, Decimal):
        return float(value)
    if value is None or isinstance(value, str | int | float | bool):
        return value
    return str(value)


# ------------------------------------------------------------------------------------------- decisions

_DECISION_DATA = (
    "reason", "target", "owner_kind", "strategy_state", "considered", "skipped", "unreadable", "routed_at", "via",
    "requested_by", "why", "excluded", "chain", "tie_breaks", "created_at", "experiment", "trigger",
)  # fmt: skip
_TERRITORY_FIELDS = ("country", "state", "postcode")


class Calendars:
    """Reps' work calendars for business-time figures, built once per rep and config version."""

    def __init__(self) -> None:
        self._made: dict[tuple[str, str], WorkCalendar] = {}

    def of(self, config: RoutingConfig, owner: str | None) -> WorkCalendar | None:
        if not owner or owner not in config.reps:
            return None
        key = (config.version_hash, owner)
        if key not in self._made:
            if len(self._made) > 10_000:
                self._made.clear()
            self._made[key] = calendar_for(owner, config)
        return self._made[key]


_calendars = Calendars()


def business_seconds(config: RoutingConfig | None, owner: str | None, start: datetime | None, end: datetime) -> float | None:
    """Seconds of ``owner``'s working time between two instants; None for a queue, or a span too long to count."""
    calendar = _calendars.of(config, owner) if config is not None else None
    if calendar is None or start is None or end - start > BUSINESS_SPAN_LIMIT:
        return None
    return round(elapsed_business(start, end, calendar).total_seconds(), 3)


def _rule_fields(config: RoutingConfig) -> tuple[str, ...]:
    """Every lead field the config's rules and segments read, and the ones territories are matched on."""
    cached = _RULE_FIELDS.get(config.version_hash)
    if cached is None:
        names = dict.fromkeys(_TERRITORY_FIELDS)
        for condition in config.compiled_rules:
            names.update(dict.fromkeys(condition.fields))
        for _, condition in config.compiled_segments:
            names.update(dict.fromkeys(condition.fields))
        cached = _RULE_FIELDS[config.version_hash] = tuple(names)
    return cached


_RULE_FIELDS: dict[str, tuple[str, ...]] = {}
_NATIVE = frozenset((str, int, float, bool))


def decision_extras(config: RoutingConfig, lead: NormalizedLead) -> dict[str, Any]:
    """What goes to the outbox beside a decision (the store's ``ledger=``), so that its ledger event needs
    no lead later: when the lead was created, its source, and the value of each field the rules read
    (``lead_facts``). Only the outbox keeps it: the decision in Redis stays as small as it was."""
    fields = lead.fields
    created = fields.get("created_at")
    facts = {name: value if type(value) in _NATIVE else plain(value)
             for name in _rule_fields(config) if (value := fields.get(name)) is not None}
    source = fields.get("lead_source")
    return {
        "created_at": created.isoformat() if isinstance(created, datetime) else None,
        "lead_source": str(source) if source not in (None, "") else None,
        "lead_facts": facts,
    }


def decision_event(lead: LeadRef, epoch: int, decision: Mapping[str, Any], at: datetime,
                   config: RoutingConfig | None = None, beside: Mapping[str, Any] | None = None) -> LedgerEvent:
    """The ledger event of a recorded decision (``at``: when it was recorded; ``beside``: :func:`decision_extras`).

    ``decision`` for a routing by the rules (the first, or an SLA reassignment's, ``data.via ==
    "sla"``), ``reroute`` for a manual re-route (``data.via == "manual"``: ``actor`` is who asked,
    ``data.why`` why). It carries the owner, rule, pool, target, the strategy's detail, the reps
    considered and why each was skipped, the facts the rules read, unreadable fields, the config
    version, the lead's creation time and source and, for a first routing, how long the lead
    waited from creation to its decision (wall clock, and the owner's working time when the
    config is at hand); the owner is written to the CRM right after.
    """
    beside = beside or {}
    manual = decision.get("via") == "manual"
    created = loose_time(beside.get("created_at"))
    owner = str(decision.get("owner") or "") or None
    first = epoch == 0 and not manual
    target = str(decision.get("target", ""))
    data = {name: decision[name] for name in _DECISION_DATA if name in decision}
    data["facts"] = {**(beside.get("lead_facts") or {}), **(decision.get("facts") or {})}
    return make_event(
        "reroute" if manual else "decision", lead, epoch, at,
        config_version=decision.get("config_version"),
        owner=owner,
        previous_owner=decision.get("previous_owner"),
        actor=decision.get("requested_by") if manual else None,
        rule=decision.get("rule"),
        pool=target.removeprefix("pool ") if target.startswith("pool ") else None,
        source=beside.get("lead_source"),
        arm=decision.get("arm"),  # the A/B arm (``data.experiment`` names the rule that split)
        lead_created_at=created,
        wait_seconds=round(max(0.0, (at - created).total_seconds()), 3) if first and created else None,
        wait_business_seconds=business_seconds(config, owner, created, at) if first and created else None,
        data=data,
    )


def clock_started_event(timer: str, payload: Mapping[str, Any], config_version: str | None, at: datetime
                        ) -> LedgerEvent:
    """``sla.start``: a lead's SLA clock started for its owner, with the deadline and the ladder."""
    lead = lead_of(timer)
    if lead is None:
        raise InvalidEvent(f"{timer!r} is not an SLA clock")
    record = SlaRecord.from_payload(lead, payload)
    return make_event(
        "sla.start", lead, record.epoch, datetime.fromtimestamp(record.assigned_at, UTC),
        config_version=config_version or None, owner=record.owner, tier=record.tier,
        data={"deadline": datetime.fromtimestamp(record.deadline, UTC),
              "ladder": [{"at": datetime.fromtimestamp(when, UTC), "action": str(action.value)}
                         for when, action in record.ladder],
              "max_reassignments": record.max_reassignments, "reassignments": record.reassignments,
              "earlier_owners": list(record.earlier), "recorded_at": at},
    )


def entry_event(entry: OutboxEntry, config: RoutingConfig | None = None) -> LedgerEvent:
    """The ledger event an outbox entry stands for (see :mod:`worker.store.outbox` for the forms)."""
    fields = entry.fields
    if entry.kind == "event":
        return LedgerEvent.from_dict(json.loads(fields["e"]))
    if entry.kind == "decision":
        crm, obj, lead_id = fields["lead"].split(":", 2)
        return decision_event(LeadRef(crm, obj, lead_id), int(fields["epoch"]), json.loads(fields["d"]), entry.at, config,
                              json.loads(fields.get("x") or "{}"))
    if entry.kind == "clock":
        return clock_started_event(fields["t"], json.loads(fields["s"]), fields.get("cv"), entry.at)
    raise InvalidEvent(f"an outbox entry of no known form: {sorted(fields)}")


def refusal_event(key: DecisionKey, decision: Mapping[str, Any], replaced: Mapping[str, Any], why: str) -> LedgerEvent:
    """The CRM refused the decided owner for good and the lead went to the fallback: a ``reroute`` nobody asked
    for (no ``actor``; ``data.via == "refused"``). The refused rep never held the lead, so it is in
    ``data.refused_owner``, not ``previous_owner``."""
    return make_event(
        "reroute", key.lead, key.epoch, datetime.now(UTC), "refused",
        config_version=decision.get("config_version"), owner=replaced.get("owner"), rule=replaced.get("rule"),
        data={"via": "refused", "why": why, "refused_owner": decision.get("owner"), "reason": replaced.get("reason"),
              "target": replaced.get("target"), "owner_kind": replaced.get("owner_kind")},
    )


# ------------------------------------------------------------------------------------------- notifications


def notification_events(lead: LeadRef, epoch: int | None, notice_id: str, kind: str, recipient: str | None,
                        report: SendReport) -> list[LedgerEvent]:
    """One ``notification`` event per channel that sent (``sent``) or gave up (``failed``) a message.

    Channels that had nothing to send, already sent it, or will retry leave none; the id is the
    message's, so a retried task that sends on the remaining channel adds only that one.
    """
    at = datetime.now(UTC)
    out = []
    for channel, result in report.results.items():
        outcome = str(getattr(result.outcome, "value", result.outcome))
        status = {"sent": "sent", "fatal_error": "failed"}.get(outcome)
        if status is None:
            continue
        data = {"channel": channel, "message": kind, "recipient": recipient or "alerts", "notice_id": notice_id}
        if status == "failed":
            data["error"] = result.detail
        out.append(make_event("notification", lead, epoch, at, kind, hashlib.sha1(notice_id.encode()).hexdigest()[:12],
                              channel, owner=recipient, status=status, data=data))
    return out


# ------------------------------------------------------------------------------------------- moving the outbox


class LedgerWriter(Protocol):
    """What the mover needs of :class:`worker.ledger.Ledger`."""

    def write(self, batch: Iterable[LedgerEvent | Mapping[str, Any]]) -> int: ...


@dataclass
class Moved:
    """What a move did: events claimed, new in the ledger, already there (a replayed batch), refused as invalid."""

    claimed: int = 0
    written: int = 0
    duplicates: int = 0
    refused: int = 0
    batches: int = 0

    def __iadd__(self, other: Moved) -> Moved:
        self.claimed += other.claimed
        self.written += other.written
        self.duplicates += other.duplicates
        self.refused += other.refused
        self.batches += other.batches
        return self


def move_outbox(store: RedisStore, ledger: LedgerWriter, limit: int = BATCH, *, lease: float = LEASE_SECONDS,
                config: RoutingConfig | None = None) -> Moved:
    """Claim up to ``limit`` events from the outbox, write them to the ledger, then acknowledge them.

    The acknowledgement comes only after the SQL commit, so a mover that dies in between leaves
    the batch to the next one (after ``lease``), and the ledger's idempotent write keeps one
    copy. If the write fails (SQL down), the batch is given back for the next attempt and the
    error raised: nothing is lost, the outbox keeps it. An event the ledger would never take
    (invalid) goes to the outbox's dead letters, so it cannot block those behind it. ``config``
    (the routing config) adds the business-time figure to first decisions.
    """
    entries = store.outbox_claim(limit, lease)
    if not entries:
        return Moved()
    events: list[LedgerEvent] = []
    ids: list[str] = []
    refused = []
    for entry in entries:
        try:
            events.append(entry_event(entry, config))
            ids.append(entry.entry_id)
        except (InvalidEvent, ValueError, TypeError, KeyError) as exc:
            refused.append((entry, f"{type(exc).__name__}: {exc}"))
    try:
        written = ledger.write(events) if events else 0
    except BaseException:
        try:
            store.outbox_release([entry.entry_id for entry in entries])
        except Exception as exc:  # the lease gives them back anyway; the write's error is the one to report
            log.warning("ledger_release_failed", error=str(exc))
        raise
    if refused:
        store.outbox_dead_letter(refused)
        log.error("ledger_events_refused", count=len(refused), first=refused[0][1][:300])
    store.outbox_ack(ids)
    return Moved(len(entries), written, len(events) - written, len(refused), 1)


def flush(
    store: RedisStore,
    ledger: LedgerWriter,
    *,
    limit: int = BATCH,
    budget: float = FLUSH_BUDGET_SECONDS,
    lease: float = LEASE_SECONDS,
    config: RoutingConfig | None = None,
    on_batch: Callable[[Moved], None] | None = None,
) -> Moved:
    """Move batches until the outbox is empty or ``budget`` seconds are spent; the totals."""
    total = Moved()
    deadline = time.monotonic() + budget
    while True:
        moved = move_outbox(store, ledger, limit, lease=lease, config=config)
        total += moved
        if on_batch is not None and moved.claimed:
            on_batch(moved)
        if moved.claimed < limit or time.monotonic() >= deadline:
            return total


def ledger_max_age(config: RoutingConfig) -> float:
    """How old the oldest outbox event may be before the ledger counts as behind: a dozen flushes, at least a minute."""
    return max(60.0, 12 * config.model.worker.ledger_flush_every)


def ledger_health(store: RedisStore, max_age: float) -> dict[str, Any]:
    """The ledger as ``/healthz`` shows it (and the outbox gauges, set from the same reading).

    ``degraded`` when the oldest event waiting has waited longer than ``max_age`` seconds:
    SQL is down or the ledger task is not running, and the outbox keeps growing meanwhile.
    """
    stats = store.outbox_stats()
    age = stats.oldest_age()
    metrics.set_ledger_outbox(stats.depth, age)
    return {
        "status": "ok" if age <= max_age else "degraded",
        "outbox_depth": stats.depth,
        "oldest_age_s": round(age, 1),
        "max_age_s": max_age,
        "claimed": stats.claimed,
        "refused": stats.dead,
    }


def apply_retention(ledger: Ledger, keep_seconds: float | None, *, now: datetime | None = None) -> int:
    """Delete ledger events older than ``keep_seconds`` (``worker.ledger_retention``); none when it is unset."""
    if not keep_seconds:
        return 0
    return ledger.prune((now or datetime.now(UTC)) - timedelta(seconds=keep_seconds))
