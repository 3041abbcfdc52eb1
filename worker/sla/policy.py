"""The breach ladder as pure decisions: SLA record + fresh CRM state + now -> what to do, in order.

An :class:`SlaRecord` is everything the sweep knows about one assigned, unacknowledged lead.
It is self-contained: the deadline and the instant of every ladder step are computed when
the lead is assigned (on the tier's clock, in the owner's calendar) and stored, so deciding
needs no calendar and a config reload changes the ladder of new assignments only.

:func:`decide` is the whole policy. It looks at the CRM first (deleted or converted ->
close; owner changed by a human -> manual override; acknowledged -> stop), then at the
owner's absence, then at the ladder: every step whose instant has passed and that has not
been done yet happens now, once, in order, even if the sweep is late; a reassign ends the
list (the new owner starts the ladder again), and after ``max_reassignments`` a reassign
becomes a park. The record it returns has those steps marked done, so a later sweep never
repeats them.

:func:`open_record` starts a clock for an owner; :func:`reassigned` starts the next owner's
clock after the sweep has re-routed the lead (deadlines are recomputed in their calendar).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

from worker.domain.leads import LeadRef
from worker.sla.calendar import WorkCalendar, deadlines, next_day_off
from worker.sla.settings import LadderAction, OnRepAway, Tier, format_duration

__all__ = [
    "TIMER_PREFIX",
    "Act",
    "Action",
    "Plan",
    "Seen",
    "SlaRecord",
    "decide",
    "lead_of",
    "open_record",
    "reassigned",
    "timer_id",
]

TIMER_PREFIX = "sla"


class Act(StrEnum):
    """What the sweep does for a lead. Ladder actions carry their step; the rest end the clock."""

    BREACH = "breach"  # the acknowledge window passed: recorded (SLA compliance), no message
    REMIND = "remind"  # the owner again
    ESCALATE = "escalate"  # the owner's manager
    REASSIGN = "reassign"  # the next eligible rep, never an earlier owner
    PARK = "park"  # fallback queue + alert, after max_reassignments
    STOP = "stop"  # acknowledged in the CRM (or from the CLI)
    MANUAL_OVERRIDE = "manual_override"  # a human changed the owner in the CRM: respect it
    CLOSE = "close"  # deleted or converted

    @property
    def ends_clock(self) -> bool:
        return self in (Act.PARK, Act.STOP, Act.MANUAL_OVERRIDE, Act.CLOSE)

    @property
    def moves_owner(self) -> bool:
        return self in (Act.REASSIGN, Act.PARK)


_LADDER_ACT = {LadderAction.REMIND: Act.REMIND, LadderAction.ESCALATE: Act.ESCALATE, LadderAction.REASSIGN: Act.REASSIGN}


def timer_id(lead: LeadRef) -> str:
    """The store timer id of a lead's SLA clock (one clock per lead)."""
    return f"{TIMER_PREFIX}:{lead.crm}:{lead.object}:{lead.lead_id}"


def lead_of(timer: str) -> LeadRef | None:
    """The lead of an SLA timer id, or None for a timer that is not an SLA clock."""
    prefix, _, rest = timer.partition(":")
    crm, _, rest = rest.partition(":")
    obj, _, lead_id = rest.partition(":")
    if prefix != TIMER_PREFIX or not (crm and obj and lead_id):
        return None
    return LeadRef(crm, obj, lead_id)


@dataclass(frozen=True, slots=True)
class SlaRecord:
    """One lead's SLA clock for its current owner. Instants are epoch seconds (UTC).

    ``ladder`` lists ``(instant, action)`` for this owner; ``step`` how many of them are
    done; ``breached`` whether the acknowledge deadline has been recorded as passed;
    ``earlier`` every previous owner (never reassigned back to them); ``away_at`` when the
    owner's next planned absence begins (looked at then, under ``on_rep_away: reassign_now``);
    ``pending_epoch`` the routing epoch of a reassignment that has started but whose CRM
    write has not been confirmed (a retry reuses it, so the pick is never repeated).
    """

    lead: LeadRef
    tier: str
    owner: str
    assigned_at: float
    deadline: float
    ladder: tuple[tuple[float, LadderAction], ...]
    max_reassignments: int
    step: int = 0
    breached: bool = False
    earlier: tuple[str, ...] = ()
    reassignments: int = 0
    epoch: int = 0
    opened_at: float = 0.0
    away_at: float | None = None
    pending_epoch: int | None = None

    @property
    def timer_id(self) -> str:
        return timer_id(self.lead)

    def to_payload(self) -> dict[str, Any]:
        """The compact form stored with the timer (short keys: it is kept per open lead)."""
        out: dict[str, Any] = {
            "t": self.tier, "o": self.owner, "a": round(self.assigned_at, 3), "d": round(self.deadline, 3),
            "l": [[round(at, 3), action.value] for at, action in self.ladder], "m": self.max_reassignments,
        }
        optional = {
            "s": self.step, "b": int(self.breached), "e": list(self.earlier), "n": self.reassignments,
            "ep": self.epoch, "away": self.away_at, "pend": self.pending_epoch,
        }
        out.update({k: v for k, v in optional.items() if v not in (0, None, [])})
        if self.opened_at != self.assigned_at:
            out["o0"] = round(self.opened_at, 3)
        return out

    @classmethod
    def from_payload(cls, lead: LeadRef, data: Mapping[str, Any]) -> SlaRecord:
        """Rebuild a record from a timer payload; raises KeyError/ValueError on a damaged one."""
        assigned = float(data["a"])
        return cls(
            lead=lead,
            tier=str(data["t"]),
            owner=str(data["o"]),
            assigned_at=assigned,
            deadline=float(data["d"]),
            ladder=tuple((float(at), LadderAction(action)) for at, action in data.get("l", ())),
            max_reassignments=int(data.get("m", 0)),
            step=int(data.get("s", 0)),
            breached=bool(data.get("b", 0)),
            earlier=tuple(str(x) for x in data.get("e", ())),
            reassignments=int(data.get("n", 0)),
            epoch=int(data.get("ep", 0)),
            opened_at=float(data.get("o0", assigned)),
            away_at=float(data["away"]) if data.get("away") is not None else None,
            pending_epoch=int(data["pend"]) if data.get("pend") is not None else None,
        )

    def excluded(self) -> frozenset[str]:
        """Everyone who must not get this lead on reassignment: earlier owners and the current one."""
        return frozenset((*self.earlier, self.owner))


@dataclass(frozen=True, slots=True)
class Seen:
    """The lead as the CRM has it now (read at sweep time), plus whether the owner is away.

    ``owner`` is the current owner as a rep id (or ``queue:<name>``, or the raw CRM id when it
    is nobody we know); None when the CRM did not say, which is never taken as a change.
    """

    exists: bool = True
    acknowledged: bool = False
    closed: bool = False
    owner: str | None = None
    owner_away: str | None = None


@dataclass(frozen=True, slots=True)
class Action:
    """One thing to do for a lead: ``step`` is the 0-based ladder step (None off the ladder)."""

    kind: Act
    due_at: float
    note: str
    step: int | None = None

    def late(self, now: float) -> float:
        """Seconds between when it was due and ``now`` (a late sweep)."""
        return max(0.0, now - self.due_at)


@dataclass(frozen=True, slots=True)
class Plan:
    """What :func:`decide` says: the actions in order, the record to keep, and when to look again.

    ``record`` is None when the clock ends (stop, close, manual override, park). When the
    last action is a reassign, ``next_due`` is None: the sweep re-routes and starts the new
    owner's clock with :func:`reassigned`; if the CRM write fails it keeps ``record`` (whose
    step still points at the reassign) and tries again.
    """

    actions: tuple[Action, ...]
    record: SlaRecord | None
    next_due: float | None

    @property
    def moves_owner(self) -> Action | None:
        return next((a for a in self.actions if a.kind.moves_owner), None)


def _ts(at: datetime | float) -> float:
    if isinstance(at, datetime):
        if at.tzinfo is None:
            raise ValueError("naive datetime: give an aware datetime (UTC)")
        return at.timestamp()
    return float(at)


def _dt(at: datetime | float) -> datetime:
    return at.astimezone(UTC) if isinstance(at, datetime) else datetime.fromtimestamp(at, UTC)


def open_record(
    lead: LeadRef,
    tier: Tier,
    owner: str,
    at: datetime | float,
    calendar: WorkCalendar | None,
    *,
    epoch: int = 0,
    earlier: Sequence[str] = (),
    reassignments: int = 0,
    opened_at: datetime | float | None = None,
    away_policy: OnRepAway = OnRepAway.REASSIGN_NOW,
) -> SlaRecord:
    """Start ``owner``'s clock on ``lead`` at ``at``: the deadline and every ladder instant, on the tier's clock."""
    start = _dt(at)
    due, *steps = deadlines(start, [tier.acknowledge_within, *(s.after for s in tier.ladder)], tier.clock, calendar)
    ladder = tuple((when.timestamp(), s.action) for when, s in zip(steps, tier.ladder, strict=True))
    away_at = None
    if away_policy is OnRepAway.REASSIGN_NOW and calendar is not None:
        last = max([due.timestamp(), *(t for t, _ in ladder)])
        found = next_day_off(calendar, start, _dt(last))
        away_at = found.timestamp() if found else None
    return SlaRecord(
        lead=lead,
        tier=tier.name,
        owner=owner,
        assigned_at=start.timestamp(),
        deadline=due.timestamp(),
        ladder=ladder,
        max_reassignments=tier.max_reassignments,
        earlier=tuple(earlier),
        reassignments=reassignments,
        epoch=epoch,
        opened_at=_ts(opened_at) if opened_at is not None else start.timestamp(),
        away_at=away_at,
    )


def reassigned(
    record: SlaRecord,
    new_owner: str,
    at: datetime | float,
    tier: Tier,
    calendar: WorkCalendar | None,
    *,
    epoch: int,
    away_policy: OnRepAway = OnRepAway.REASSIGN_NOW,
) -> SlaRecord:
    """The new owner's clock after a reassignment: deadlines recomputed in their calendar, history kept."""
    return open_record(
        record.lead,
        tier,
        new_owner,
        at,
        calendar,
        epoch=epoch,
        earlier=(*record.earlier, record.owner),
        reassignments=record.reassignments + 1,
        opened_at=record.opened_at,
        away_policy=away_policy,
    )


def _move(record: SlaRecord, due_at: float, why: str, step: int | None) -> Action:
    if record.reassignments >= record.max_reassignments:
        return Action(Act.PARK, due_at, f"{why}; already reassigned {record.reassignments} time(s), parked", step)
    return Action(Act.REASSIGN, due_at, why, step)


def decide(
    record: SlaRecord,
    seen: Seen,
    now: datetime | float,
    *,
    away_policy: OnRepAway = OnRepAway.REASSIGN_NOW,
    recheck_every: float = 3600.0,
    pending_owner: str | None = None,
) -> Plan:
    """The actions due for one lead at ``now``, in order, and the record and timer to keep.

    ``pending_owner`` is the owner chosen by a reassignment still being written to the CRM:
    finding them as the CRM owner is our own write, not a human's change.
    """
    t = _ts(now)
    if not seen.exists:
        return Plan((Action(Act.CLOSE, t, "deleted in the CRM"),), None, None)
    if seen.closed:
        return Plan((Action(Act.CLOSE, t, "closed in the CRM (converted)"),), None, None)
    if seen.owner is not None and seen.owner not in (record.owner, pending_owner):
        note = f"owner changed in the CRM from {record.owner} to {seen.owner}"
        return Plan((Action(Act.MANUAL_OVERRIDE, t, note),), None, None)
    if seen.acknowledged:
        return Plan((Action(Act.STOP, t, "acknowledged"),), None, None)

    breach: Action | None = None
    if not record.breached and record.deadline <= t:
        within = format_duration(record.deadline - record.assigned_at)
        breach = Action(Act.BREACH, record.deadline, f"not acknowledged within {within} ({record.tier})")
    if seen.owner_away and away_policy is OnRepAway.REASSIGN_NOW:
        move = _move(record, t, f"{record.owner} is away ({seen.owner_away})", None)
        kept = replace(record, breached=record.breached or breach is not None)
        return Plan((*((breach,) if breach else ()), move), kept, None)

    step = record.step
    ladder_actions: list[Action] = []
    for index in range(record.step, len(record.ladder)):
        at, action = record.ladder[index]
        if at > t:
            break
        waited = format_duration(at - record.assigned_at)
        why = f"not acknowledged after {waited} ({record.tier}, step {index + 1})"
        if action is LadderAction.REASSIGN:
            ladder_actions.append(_move(record, at, why, index))
            break
        ladder_actions.append(Action(_LADDER_ACT[action], at, why, index))
        step = index + 1
    moving = ladder_actions[-1] if ladder_actions and ladder_actions[-1].kind.moves_owner else None
    if breach is not None and moving is not None and breach.due_at > moving.due_at:
        breach = None  # the lead left this owner before their deadline
    # In time order; a breach goes before a ladder step due at the same instant.
    merged = sorted([*ladder_actions, *((breach,) if breach else ())], key=lambda a: (a.due_at, a.kind is not Act.BREACH))
    kept = replace(record, step=step, breached=record.breached or breach is not None)
    if merged and merged[-1].kind.moves_owner:
        return Plan(tuple(merged), kept, None)
    upcoming = [at for at, _ in kept.ladder[kept.step:]]
    if not kept.breached:
        upcoming.append(kept.deadline)
    if away_policy is OnRepAway.REASSIGN_NOW and kept.away_at is not None and kept.away_at > t:
        upcoming.append(kept.away_at)
    next_due = min(upcoming) if upcoming else t + recheck_every
    return Plan(tuple(merged), kept, next_due)
