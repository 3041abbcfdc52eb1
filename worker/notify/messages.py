"""One message model for every channel, and the templates for each kind of message.

Every message carries what a rep needs to act without opening the CRM, and why they got the lead."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError


class Kind(StrEnum):
    ASSIGNED = "assigned"
    REMINDER = "reminder"
    ESCALATION = "escalation"
    REASSIGNED_FROM = "reassigned_from"
    PARKED = "parked"


@dataclass(frozen=True)
class Recipient:
    """Who a message is for; channels without an address for them skip it."""

    id: str
    name: str = ""
    email: str = ""
    slack_id: str = ""
    timezone: str | None = None

    @classmethod
    def from_rep(cls, rep: Any) -> Recipient:
        """From a config ``Rep`` (or anything with id, name, email, slack_id, timezone)."""
        return cls(
            id=str(rep.id),
            name=getattr(rep, "name", "") or "",
            email=getattr(rep, "email", "") or "",
            slack_id=getattr(rep, "slack_id", "") or "",
            timezone=getattr(rep, "timezone", None),
        )

    @property
    def display(self) -> str:
        return self.name or self.id


def _first(facts: Mapping[str, Any], *keys: str) -> Any:
    for key in keys:
        value = facts.get(key)
        if value not in (None, "", [], {}):
            return value
    return None


@dataclass(frozen=True)
class LeadSummary:
    """The lead facts a rep needs to act, as display strings (empty when unknown)."""

    lead_id: str
    crm: str = ""
    name: str = ""
    email: str = ""
    company: str = ""
    size: str = ""
    country: str = ""
    source: str = ""
    score: str = ""
    title: str = ""
    url: str = ""

    @classmethod
    def from_facts(cls, facts: Mapping[str, Any], *, lead_id: str, crm: str = "", url: str = "") -> LeadSummary:
        """From canonical lead fields (``company``, ``employees``, ``country``, ``lead_source``, ``score``...)."""
        name = _first(facts, "name", "full_name")
        if name is None:
            parts = [str(facts[k]).strip() for k in ("first_name", "firstname", "last_name", "lastname") if facts.get(k)]
            name = " ".join(parts) or None
        employees = _first(facts, "employees", "employee_count", "size")
        size = ""
        if isinstance(employees, int | float) and not isinstance(employees, bool):
            size = f"{int(employees):,} employees"
        elif employees is not None:
            size = str(employees)
        score = _first(facts, "score", "lead_score")
        if isinstance(score, float) and score.is_integer():
            score = int(score)
        return cls(
            lead_id=lead_id,
            crm=crm,
            name=str(name or ""),
            email=str(_first(facts, "email") or ""),
            company=str(_first(facts, "company", "company_name") or ""),
            size=size,
            country=str(_first(facts, "country_name", "country") or ""),
            source=str(_first(facts, "lead_source", "source") or ""),
            score="" if score is None else str(score),
            title=str(_first(facts, "title") or ""),
            url=url,
        )

    @property
    def display(self) -> str:
        """How the lead is named in a headline: name, else email, else company, else id."""
        who = self.name or self.email or self.lead_id
        return f"{who} ({self.company})" if self.company and self.company != who else who

    def fields(self) -> list[tuple[str, str]]:
        """(label, value) pairs for the facts that are known, in display order."""
        pairs = [
            ("Company", self.company),
            ("Size", self.size),
            ("Country", self.country),
            ("Source", self.source),
            ("Score", self.score),
            ("Title", self.title),
            ("Email", self.email),
        ]
        return [(label, value) for label, value in pairs if value]


def format_deadline(deadline: datetime, tz: str | None = None) -> str:
    """``Tue 21 Nov 14:30 CET`` in the recipient's time zone (UTC when unknown)."""
    if deadline.tzinfo is None:
        deadline = deadline.replace(tzinfo=UTC)
    try:
        zone = ZoneInfo(tz) if tz else UTC
    except (ZoneInfoNotFoundError, ValueError):
        zone = UTC
    local = deadline.astimezone(zone)
    return f"{local:%a %d %b %H:%M} {local.tzname() or 'UTC'}"


@dataclass(frozen=True)
class Message:
    """One notification, independent of channel; channels render it (Block Kit, email, JSON)."""

    kind: Kind
    decision_id: str
    recipient: Recipient
    lead: LeadSummary
    subject: str
    headline: str
    reason: str = ""
    rule: str = ""
    sla_deadline: datetime | None = None
    notes: tuple[str, ...] = ()
    extra: Mapping[str, Any] = field(default_factory=dict)

    @property
    def event_id(self) -> str:
        """Stable id of this notification (decision + kind): receivers de-duplicate on it."""
        return f"{self.decision_id}:{self.kind.value}"

    def deadline_text(self) -> str:
        return format_deadline(self.sla_deadline, self.recipient.timezone) if self.sla_deadline else ""

    def lines(self) -> list[str]:
        """The body as plain lines (email text part, Slack fallback, webhook ``text``)."""
        out = [self.headline, ""]
        out += [f"{label}: {value}" for label, value in self.lead.fields()]
        if self.sla_deadline:
            out.append(f"SLA deadline: {self.deadline_text()}")
        if self.reason:
            out += ["", f"Why: {self.reason}"]
        out += list(self.notes)
        if self.lead.url:
            out += ["", f"Open: {self.lead.url}"]
        out += ["", f"Lead {self.lead.lead_id} ({self.lead.crm or 'crm'}), rule {self.rule or '-'}, decision {self.decision_id}"]
        return out

    def text(self) -> str:
        return "\n".join(self.lines()).strip()

    def to_payload(self) -> dict[str, Any]:
        """The JSON document the generic webhook posts."""
        return {
            "id": self.event_id,
            "type": f"lead.{self.kind.value}",
            "decision_id": self.decision_id,
            "kind": self.kind.value,
            "headline": self.headline,
            "subject": self.subject,
            "reason": self.reason,
            "rule": self.rule,
            "sla_deadline": self.sla_deadline.astimezone(UTC).isoformat() if self.sla_deadline else None,
            "notes": list(self.notes),
            "recipient": {
                "id": self.recipient.id,
                "name": self.recipient.name,
                "email": self.recipient.email,
                "slack_id": self.recipient.slack_id,
            },
            "lead": {
                "id": self.lead.lead_id,
                "crm": self.lead.crm,
                "name": self.lead.name,
                "email": self.lead.email,
                "company": self.lead.company,
                "size": self.lead.size,
                "country": self.lead.country,
                "source": self.lead.source,
                "score": self.lead.score,
                "title": self.lead.title,
                "url": self.lead.url,
            },
            "extra": dict(self.extra),
            "text": self.text(),
        }


# =============================================================================== templates

LeadInput = Mapping[str, Any] | LeadSummary


def _summary(decision: Mapping[str, Any], lead: LeadInput | None, crm: str, url: str) -> LeadSummary:
    if isinstance(lead, LeadSummary):
        return lead
    facts: dict[str, Any] = dict(decision.get("facts") or {})
    facts.update(lead or {})
    lead_id = str(decision.get("lead_id") or facts.get("id") or "")
    return LeadSummary.from_facts(facts, lead_id=lead_id, crm=crm or str(facts.get("crm") or ""), url=url)


def _one_line(text: str) -> str:
    return " ".join(str(text).split())


def _message(
    kind: Kind,
    decision: Mapping[str, Any],
    decision_id: str,
    to: Recipient,
    summary: LeadSummary,
    subject: str,
    headline: str,
    sla_deadline: datetime | None = None,
    notes: tuple[str, ...] = (),
    extra: Mapping[str, Any] | None = None,
) -> Message:
    """Every template's common part: the decision's reason and rule travel with each message."""
    return Message(kind, decision_id, to, summary, _one_line(subject), headline, str(decision.get("reason") or ""),
                   str(decision.get("rule") or ""), sla_deadline, notes, dict(extra or {}))


def assigned(
    decision: Mapping[str, Any],
    lead: LeadInput | None,
    rep: Recipient,
    *,
    decision_id: str,
    sla_deadline: datetime | None = None,
    crm: str = "",
    url: str = "",
) -> Message:
    """A new lead for ``rep``: the facts, the deadline and why they got it."""
    summary = _summary(decision, lead, crm, url)
    headline = f"New lead for you: {summary.display}"
    return _message(Kind.ASSIGNED, decision, decision_id, rep, summary, f"New lead: {summary.display}", headline,
                    sla_deadline)


def reminder(
    decision: Mapping[str, Any],
    lead: LeadInput | None,
    rep: Recipient,
    *,
    decision_id: str,
    sla_deadline: datetime,
    crm: str = "",
    url: str = "",
) -> Message:
    """The owner has not acknowledged yet and the SLA deadline is near (or just passed)."""
    summary = _summary(decision, lead, crm, url)
    due = format_deadline(sla_deadline, rep.timezone)
    headline = f"Reminder: {summary.display} is waiting for you (SLA {due})"
    return _message(Kind.REMINDER, decision, decision_id, rep, summary, f"Reminder: {summary.display} (SLA {due})",
                    headline, sla_deadline)


def escalation(
    decision: Mapping[str, Any],
    lead: LeadInput | None,
    manager: Recipient,
    *,
    owner: Recipient,
    decision_id: str,
    sla_deadline: datetime,
    crm: str = "",
    url: str = "",
) -> Message:
    """To the owner's manager: the SLA was breached and the owner has not acknowledged."""
    summary = _summary(decision, lead, crm, url)
    headline = f"SLA breached: {owner.display} has not acknowledged {summary.display}"
    return _message(Kind.ESCALATION, decision, decision_id, manager, summary, f"SLA breached: {summary.display}",
                    headline, sla_deadline, (f"Owner: {owner.display}",), {"owner": owner.id})


def reassigned_from(
    decision: Mapping[str, Any],
    lead: LeadInput | None,
    previous_owner: Recipient,
    *,
    new_owner: Recipient,
    decision_id: str,
    why: str = "SLA missed",
    crm: str = "",
    url: str = "",
) -> Message:
    """To the previous owner: the lead has moved on, so they stop working it."""
    summary = _summary(decision, lead, crm, url)
    headline = f"{summary.display} was reassigned from you to {new_owner.display} ({why})"
    return _message(Kind.REASSIGNED_FROM, decision, decision_id, previous_owner, summary,
                    f"Reassigned: {summary.display}", headline, None, (f"New owner: {new_owner.display}",),
                    {"new_owner": new_owner.id})


def parked(
    decision: Mapping[str, Any],
    lead: LeadInput | None,
    alert: Recipient,
    *,
    queue: str,
    reassignments: int,
    decision_id: str,
    crm: str = "",
    url: str = "",
) -> Message:
    """An alert: nobody acknowledged after ``reassignments`` reassignments, so the lead sits in a queue."""
    summary = _summary(decision, lead, crm, url)
    headline = f"Lead parked: {summary.display} moved to queue {queue} after {reassignments} reassignment(s)"
    return _message(Kind.PARKED, decision, decision_id, alert, summary, f"Lead parked in {queue}: {summary.display}",
                    headline, None, (f"Queue: {queue}", f"Reassignments: {reassignments}"),
                    {"queue": queue, "reassignments": reassignments})


# =============================================================================== results


