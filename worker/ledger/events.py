"""One ledger event: what happened to which lead, when, and the context to explain it later.

Plain data, no SQLAlchemy: the code that produces events (routing, the SLA sweep, the
outbox) imports this module alone. An event crosses a Redis outbox as JSON, so it turns
into a JSON-ready dict (:meth:`LedgerEvent.to_dict`) and back (:meth:`LedgerEvent.from_dict`)
unchanged.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

DECISION_KINDS = ("decision", "reroute")
SLA_KINDS = (
    "sla.start", "sla.remind", "sla.breach", "sla.escalate", "sla.reassign", "sla.park", "sla.stop", "sla.close",
    "sla.manual_override", "ack",
)  # fmt: skip
NOTIFICATION_KINDS = ("notification",)
OUTCOME_KINDS = ("outcome",)
SHADOW_KINDS = ("shadow",)  # a candidate config's decision in shadow mode (docs/shadow.md): reports leave it out
# a person marked a rep away or back (leadroute ooo, the dashboard): crm "-", object "rep", lead_id the rep's id
AVAILABILITY_KINDS = ("rep.away", "rep.back")
KINDS: frozenset[str] = frozenset((*DECISION_KINDS, *SLA_KINDS, *NOTIFICATION_KINDS, *OUTCOME_KINDS, *SHADOW_KINDS,
                                   *AVAILABILITY_KINDS))

MAX_EVENT_ID = 200  # indexed: PostgreSQL's btree entries are bounded, and a key needs no more

_TIMES = ("at", "lead_created_at", "recorded_at")
_FLOATS = ("wait_seconds", "wait_business_seconds", "amount")


class InvalidEvent(ValueError):
    """An event the ledger would not store as it stands: the message names the field."""


@dataclass(frozen=True, slots=True)
class LedgerEvent:
    """One row of the ledger. The typed fields are what reports group and filter by; ``data`` is the rest.

    ``event_id`` is the idempotency key: derive it from what happened (kind, lead, epoch, step),
    never from a clock or a random source, so a replayed batch yields the same ids and writes
    nothing twice. ``at`` is when it happened, timezone-aware (stored and returned in UTC).
    ``recorded_at`` is set by the ledger when the row is written; it is ignored on write.
    """

    event_id: str
    kind: str
    crm: str
    object: str
    lead_id: str
    at: datetime
    epoch: int | None = None
    config_version: str | None = None
    owner: str | None = None  # the lead's owner once this event applies: a rep id or queue:NAME
    previous_owner: str | None = None  # who held it before (re-route, reassign, park)
    actor: str | None = None  # who made it happen, when a person did: a manual re-route, an ack, an override
    rule: str | None = None
    pool: str | None = None
    tier: str | None = None
    source: str | None = None  # the lead's source (web form, list import, ...)
    arm: str | None = None  # the experiment arm the lead was routed under
    status: str | None = None  # notification: sent/failed; outcome: converted/opportunity/won/lost
    wait_seconds: float | None = None  # how long the lead waited for what this event marks (wall clock)
    wait_business_seconds: float | None = None  # the same in the owner's working time
    amount: float | None = None  # outcome: the opportunity's amount, where the CRM has one
    currency: str | None = None
    lead_created_at: datetime | None = None
    data: Mapping[str, Any] = field(default_factory=dict)
    recorded_at: datetime | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.event_id, str) or not self.event_id.strip():
            raise InvalidEvent("event_id: must be a non-empty string")
        if len(self.event_id) > MAX_EVENT_ID:
            raise InvalidEvent(f"event_id: {len(self.event_id)} characters, at most {MAX_EVENT_ID}")
        if self.kind not in KINDS:
            raise InvalidEvent(f"kind: {self.kind!r} is not one of {', '.join(sorted(KINDS))}")
        for name in ("crm", "object", "lead_id"):
            if not isinstance(getattr(self, name), str) or not getattr(self, name):
                raise InvalidEvent(f"{name}: must be a non-empty string")
        if self.epoch is not None and (not isinstance(self.epoch, int) or isinstance(self.epoch, bool)):
            raise InvalidEvent(f"epoch: must be an integer, not {self.epoch!r}")
        for name in _TIMES:
            value = getattr(self, name)
            if value is not None or name == "at":
                object.__setattr__(self, name, _utc(name, value))
        for name in _FLOATS:
            value = getattr(self, name)
            if value is not None:
                object.__setattr__(self, name, _finite(name, value))
        if not isinstance(self.data, Mapping):
            raise InvalidEvent(f"data: must be a mapping, not {type(self.data).__name__}")

    @classmethod
    def from_dict(cls, raw: Mapping[str, Any]) -> LedgerEvent:
        """An event from a dict of its field names (times as datetimes, ISO 8601 strings or epoch seconds).

        An unknown key is an error rather than silently dropped: it is most likely a misspelt column.
        """
        unknown = sorted(set(raw) - _FIELD_NAMES)
        if unknown:
            raise InvalidEvent(f"unknown field(s) {', '.join(unknown)}; the fields are {', '.join(sorted(_FIELD_NAMES))}")
        missing = sorted(_REQUIRED - set(raw))
        if missing:
            raise InvalidEvent(f"missing field(s) {', '.join(missing)}")
        return cls(**raw)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready: times as ISO 8601 strings in UTC; ``None`` fields left out."""
        out: dict[str, Any] = {}
        for name in _FIELD_NAMES_ORDERED:
            value = getattr(self, name)
            if value is None:
                continue
            if isinstance(value, datetime):
                value = value.isoformat()
            elif name == "data":
                value = dict(value)
            out[name] = value
        return out

    @classmethod
    def from_row(cls, row: Mapping[str, Any]) -> LedgerEvent:
        """An event as the ledger stored it, not validated again.

        A reader must not refuse history: a row written by a newer worker (a kind this code
        does not know yet) still reads. Columns the event has no field for are ignored.
        """
        event = object.__new__(cls)
        for name in _FIELD_NAMES_ORDERED:
            object.__setattr__(event, name, row.get(name))
        if event.data is None:
            object.__setattr__(event, "data", {})
        return event


def coerce(event: LedgerEvent | Mapping[str, Any]) -> LedgerEvent:
    """Accept either shape at the ledger's door: an event, or a dict of its fields."""
    return event if isinstance(event, LedgerEvent) else LedgerEvent.from_dict(event)


def loose_time(value: Any) -> datetime | None:
    """A time as decision data and CRM fields carry it (datetime or ISO text, naive read as UTC), or None if absent or unreadable.

    Unlike the strict checks at the ledger's door, a time that cannot be read here is a missing fact, not bad input.
    """
    if not value:
        return None
    if not isinstance(value, datetime):
        try:
            value = datetime.fromisoformat(str(value))
        except ValueError:
            return None
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)


def _utc(name: str, value: Any) -> datetime:
    if isinstance(value, str):
        try:
            value = datetime.fromisoformat(value)
        except ValueError:
            raise InvalidEvent(f"{name}: {value!r} is not an ISO 8601 date-time") from None
    elif isinstance(value, int | float) and not isinstance(value, bool):
        return datetime.fromtimestamp(value, UTC)
    if not isinstance(value, datetime):
        raise InvalidEvent(f"{name}: must be a datetime, an ISO 8601 string or epoch seconds, not {value!r}")
    if value.tzinfo is None or value.utcoffset() is None:
        raise InvalidEvent(f"{name}: {value.isoformat()} has no time zone; the ledger stores UTC and will not guess")
    return value.astimezone(UTC)


def _finite(name: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float | Decimal) or not math.isfinite(value):
        raise InvalidEvent(f"{name}: must be a finite number, not {value!r}")
    return float(value)


_FIELD_NAMES_ORDERED = tuple(f.name for f in fields(LedgerEvent))
_FIELD_NAMES = frozenset(_FIELD_NAMES_ORDERED)
_REQUIRED = frozenset(("event_id", "kind", "crm", "object", "lead_id", "at"))
