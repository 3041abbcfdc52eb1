"""History for a replay: ledger events turned into the leads to route again and the moments their load ends.

Pure: it reads :class:`~worker.ledger.events.LedgerEvent` values handed to it (from
``Ledger.between`` or an export file) and touches no database.

A lead is its *first* routing decision (a ``decision`` event not made by hand): the facts as the
engine read them then (``data.facts``: every field the rules read, the account owner found,
the domain), its original ``created_at``, when it was routed (``data.routed_at``) and what was
decided (owner, rule, pool, reason). What the engine *derived* from those facts under the old
config (territory, segment) is dropped so the config under test derives its own.

Its load on its owner ends at the first later event that takes the lead off that owner:
an acknowledgement, an SLA clock closed, parked or reassigned, a manual override or re-route,
or a later routing decision (an SLA reassignment). A lead with none of those keeps its load to
the end of the window, as it did in the live system until a load reconciliation.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime

from worker.domain.normalize import NormalizedLead
from worker.ledger.events import LedgerEvent, loose_time

# The events read for a replay: the decisions, and those that end a lead's load on its owner.
RELEASE_KINDS = ("ack", "sla.close", "sla.park", "sla.reassign", "sla.manual_override", "reroute")
READ_KINDS = ("decision", *RELEASE_KINDS)
DERIVED = ("territory", "segment")  # worked out from the facts by the config: each config works out its own


@dataclass(frozen=True, slots=True)
class Recorded:
    """What the live system decided for a lead (the ledger's decision event)."""

    owner: str | None
    rule: str | None
    pool: str | None
    reason: str
    config_version: str | None


@dataclass(slots=True)
class HistoricalLead:
    """One lead as it was first routed: enough to route it again and to compare with what happened."""

    crm: str
    object: str
    lead_id: str
    routed_at: datetime
    lead: NormalizedLead
    recorded: Recorded | None = None
    released_at: datetime | None = None  # when its load left its owner; None: not within the history read
    source_line: int | None = None  # the row of a --leads file it came from

    @property
    def key(self) -> tuple[str, str, str]:
        return self.crm, self.object, self.lead_id

    @property
    def label(self) -> str:
        return f"{self.crm}/{self.object}/{self.lead_id}"


@dataclass
class History:
    """The leads first routed in the window, oldest first, and those routed before it (the starting state)."""

    leads: list[HistoricalLead] = field(default_factory=list)
    earlier: list[HistoricalLead] = field(default_factory=list)
    events: int = 0  # how many events were read
    skipped: int = 0  # decisions that could not be turned into a lead (no facts, no time)


def _time(value: object) -> datetime | None:
    """:func:`loose_time`, without its work for a time already aware (most of a ledger's)."""
    if type(value) is datetime and value.tzinfo is not None:
        return value
    return loose_time(value)


def lead_of(event: LedgerEvent) -> HistoricalLead | None:
    """The lead a first-routing ``decision`` event records, or None when it records no facts to route on."""
    data = event.data or {}
    facts = data.get("facts")
    if not isinstance(facts, Mapping):
        return None
    fields: dict[str, object] = {k: v for k, v in facts.items() if v is not None and k not in DERIVED}
    fields["id"] = event.lead_id
    created = _time(event.lead_created_at) or _time(data.get("created_at"))
    if created is not None:
        fields["created_at"] = created
    routed = _time(data.get("routed_at")) or _time(event.at)
    if routed is None:
        return None
    unreadable = data.get("unreadable") or ()
    recorded = Recorded(event.owner, event.rule, event.pool, str(data.get("reason") or ""), event.config_version)
    return HistoricalLead(event.crm, event.object, event.lead_id, routed,
                          NormalizedLead(fields, tuple(str(u) for u in unreadable)), recorded)


def _is_first_routing(event: LedgerEvent) -> bool:
    """A routing by the rules as the lead came in: not a re-route by hand, an SLA reassignment or a refusal."""
    return event.kind == "decision" and (event.data or {}).get("via") in (None, "", "rules")


def read_history(events: Iterable[LedgerEvent], since: datetime | None, until: datetime | None = None) -> History:
    """Group ``events`` (any order, any kinds) into the leads first routed in ``[since, until)`` and before ``since``.

    A lead counts once, by its first routing decision (the earliest by routing time; a later one
    for the same lead ends the first one's load, like any other routing of it); its load ends at
    the first releasing event after that decision (see the module's docstring).
    """
    firsts: dict[tuple[str, str, str], HistoricalLead] = {}
    ends: dict[tuple[str, str, str], list[datetime]] = {}
    history = History()
    count = skipped = 0
    for event in events:
        count += 1
        key = (event.crm, event.object, event.lead_id)
        kind = event.kind
        if kind == "decision" and (event.data or {}).get("via") in (None, "", "rules"):  # _is_first_routing
            lead = lead_of(event)
            if lead is None:
                skipped += 1
                continue
            seen = firsts.get(key)
            if seen is not None and seen.routed_at <= lead.routed_at:
                ends.setdefault(key, []).append(lead.routed_at)
                continue
            if seen is not None:
                ends.setdefault(key, []).append(seen.routed_at)
            firsts[key] = lead
        elif kind in RELEASE_KINDS or kind == "decision":
            at = event.at if kind != "decision" else (event.data or {}).get("routed_at") or event.at
            at = _time(at)
            if at is not None:
                ends.setdefault(key, []).append(at)
    history.events, history.skipped = count, skipped
    for key, lead in firsts.items():
        later = [at for at in ends.get(key, ()) if at > lead.routed_at]
        lead.released_at = min(later) if later else None
        if since is not None and lead.routed_at < since:
            history.earlier.append(lead)
        elif until is None or lead.routed_at < until:
            history.leads.append(lead)
    history.leads.sort(key=lambda lead: (lead.routed_at, lead.key))
    history.earlier.sort(key=lambda lead: (lead.routed_at, lead.key))
    return history
