"""Tell people about leads: Slack, email (SMTP) and a signed generic webhook.

A rep who is not told about a lead cannot call it back within the SLA, so every message
carries what they need to act without opening the CRM: who the lead is (name, company,
size, country, source, score), the SLA deadline in the rep's own time zone, and *why this
rep got it* (the decision's reason). One :class:`Message` model feeds every channel; one
template function builds each kind of message (:func:`assigned`, :func:`reminder`,
:func:`escalation`, :func:`reassigned_from`, :func:`parked`).

Delivery is at-least-once and never blocks routing: :class:`Notifier` sends to each enabled
channel independently and returns a result per channel, classified as *retriable* (Slack
``ratelimited`` with its Retry-After, HTTP 5xx/429, SMTP 4xx, connection errors, timeouts)
or *fatal* (bad token, unknown channel, SMTP 5xx, a TLS certificate that does not verify),
so the caller retries only what can succeed. :func:`send_once` makes a retried task skip the
channels that already succeeded.

Settings come from the ``notifications:`` section of the routing YAML
(:class:`NotificationsConfig`); secrets only from the environment: ``SLACK_BOT_TOKEN``,
``SMTP_HOST``, ``SMTP_PORT``, ``SMTP_USERNAME``, ``SMTP_PASSWORD``, ``SMTP_FROM``,
``LEADROUTE_WEBHOOK_SECRET``. The webhook signature recipe is in :func:`sign_webhook` and
``docs/operations.md``.
"""

from __future__ import annotations

import hashlib
import hmac
import html
import json
import os
import re
import smtplib
import ssl
import time
import urllib.error
import urllib.request
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.message import EmailMessage
from email.utils import formataddr, formatdate, parseaddr
from enum import StrEnum
from typing import Annotated, Any, Literal, Protocol
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, field_validator, model_validator
from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError, SlackClientError

from worker import logs, metrics

__all__ = [
    "SIGNATURE_HEADER",
    "TIMESTAMP_HEADER",
    "Channel",
    "ChannelResult",
    "EmailChannel",
    "EmailSettings",
    "Kind",
    "LeadSummary",
    "Message",
    "NotificationConfigError",
    "NotificationsConfig",
    "Notifier",
    "Outcome",
    "Recipient",
    "SendLedger",
    "SendReport",
    "SlackChannel",
    "SlackSettings",
    "WebhookChannel",
    "WebhookSettings",
    "assigned",
    "escalation",
    "parked",
    "reassigned_from",
    "reminder",
    "send_once",
    "sign_webhook",
    "verify_webhook",
]

log = logs.get_logger(__name__)

DAY = 86_400.0
SIGNATURE_HEADER = "X-Leadroute-Signature"
TIMESTAMP_HEADER = "X-Leadroute-Timestamp"
EVENT_HEADER = "X-Leadroute-Event-Id"
USER_AGENT = "leadroute-notify/1"

ENV_SLACK_TOKEN = "SLACK_BOT_TOKEN"
ENV_SMTP_HOST = "SMTP_HOST"
ENV_SMTP_PORT = "SMTP_PORT"
ENV_SMTP_USERNAME = "SMTP_USERNAME"
ENV_SMTP_PASSWORD = "SMTP_PASSWORD"
ENV_SMTP_FROM = "SMTP_FROM"
ENV_WEBHOOK_SECRET = "LEADROUTE_WEBHOOK_SECRET"


# =============================================================================== settings

_DURATION_RE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m)?\s*$")


def _seconds(value: Any) -> Any:
    if isinstance(value, str):
        match = _DURATION_RE.match(value)
        if not match:
            raise ValueError(f"{value!r} is not a duration (use seconds, or e.g. '10s', '500ms', '1m')")
        return float(match.group(1)) * {"ms": 0.001, "s": 1.0, "m": 60.0}[match.group(2) or "s"]
    return value


Seconds = Annotated[float, BeforeValidator(_seconds), Field(gt=0, le=300)]
ChannelName = Literal["slack", "email", "webhook"]
TlsMode = Literal["none", "starttls", "ssl"]


class _Settings(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, str_strip_whitespace=True)


def _http_url(value: str) -> str:
    if not re.match(r"^https?://[^\s/]+", value):
        raise ValueError(f"{value!r} is not an http(s) URL")
    return value


class SlackSettings(_Settings):
    """Slack Web API endpoint (point it at a proxy or a test server) and per-call timeout."""

    base_url: str = "https://slack.com/api/"
    timeout: Seconds = 10.0

    @field_validator("base_url")
    @classmethod
    def _check_url(cls, value: str) -> str:
        return _http_url(value)


class EmailSettings(_Settings):
    """SMTP transport security and timeout; host, port, credentials and sender come from the environment."""

    tls: TlsMode = "starttls"
    timeout: Seconds = 15.0
    subject_prefix: str = "[leadroute]"


class WebhookSettings(_Settings):
    """Where the signed JSON POST goes; the signing secret comes from ``LEADROUTE_WEBHOOK_SECRET``."""

    url: str | None = None
    timeout: Seconds = 10.0

    @field_validator("url")
    @classmethod
    def _check_url(cls, value: str | None) -> str | None:
        return None if value is None else _http_url(value)


class AlertSettings(_Settings):
    """Where operational alerts (a lead parked in the fallback queue) go: a Slack channel and/or an address."""

    slack_channel: str | None = None
    email: str | None = None
    name: str = "RevOps"


class NotificationsConfig(_Settings):
    """The ``notifications:`` section: which channels are on and how to reach them (no secrets here)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    channels: tuple[ChannelName, ...] = ()
    slack: SlackSettings = SlackSettings()
    email: EmailSettings = EmailSettings()
    webhook: WebhookSettings = WebhookSettings()
    alerts: AlertSettings = AlertSettings()
    #: Per-CRM link to a record, with ``{id}``, e.g. ``https://acme.lightning.force.com/lightning/r/Lead/{id}/view``.
    record_urls: dict[str, str] = Field(default_factory=dict)

    @field_validator("channels", mode="before")
    @classmethod
    def _channel_list(cls, value: Any) -> Any:
        if isinstance(value, str):
            value = [value]
        if isinstance(value, list | tuple):
            seen: list[str] = []
            for item in value:
                name = str(item).strip().lower()
                if name in seen:
                    raise ValueError(f"channel {name!r} is listed twice")
                seen.append(name)
            return tuple(seen)
        return value

    @field_validator("record_urls")
    @classmethod
    def _templates(cls, value: dict[str, str]) -> dict[str, str]:
        for crm, template in value.items():
            if "{id}" not in template:
                raise ValueError(f"record_urls.{crm}: the template needs an {{id}} placeholder")
            _http_url(template)
        return value

    @model_validator(mode="after")
    def _webhook_needs_url(self) -> NotificationsConfig:
        if "webhook" in self.channels and not self.webhook.url:
            raise ValueError("the webhook channel is enabled but webhook.url is not set")
        return self

    def record_url(self, crm: str, lead_id: str) -> str:
        """A link to the lead in its CRM, or "" when no template is configured for that CRM."""
        template = self.record_urls.get(crm)
        return template.replace("{id}", lead_id) if template else ""

    def alert_recipient(self) -> Recipient:
        """The recipient for operational alerts (``parked``)."""
        return Recipient(
            id="alerts", name=self.alerts.name, email=self.alerts.email or "", slack_id=self.alerts.slack_channel or ""
        )


class NotificationConfigError(ValueError):
    """An enabled channel cannot work: a required environment variable is missing or invalid."""


# =============================================================================== message model


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


class Outcome(StrEnum):
    SENT = "sent"
    SKIPPED = "skipped"  # nothing to do on this channel (no address for the recipient)
    DUPLICATE = "duplicate"  # already sent by an earlier attempt (send_once)
    RETRIABLE = "retriable_error"
    FATAL = "fatal_error"


@dataclass(frozen=True)
class ChannelResult:
    channel: str
    outcome: Outcome
    detail: str = ""
    retry_after: float | None = None

    @property
    def ok(self) -> bool:
        """Nothing left to do on this channel."""
        return self.outcome in (Outcome.SENT, Outcome.SKIPPED, Outcome.DUPLICATE)


@dataclass(frozen=True)
class SendReport:
    """Per-channel results of one message; ``retry`` says whether trying again could help."""

    event_id: str
    results: dict[str, ChannelResult]

    @property
    def ok(self) -> bool:
        return all(r.ok for r in self.results.values())

    @property
    def retriable(self) -> tuple[str, ...]:
        return tuple(n for n, r in self.results.items() if r.outcome is Outcome.RETRIABLE)

    @property
    def fatal(self) -> tuple[str, ...]:
        return tuple(n for n, r in self.results.items() if r.outcome is Outcome.FATAL)

    @property
    def retry(self) -> bool:
        return bool(self.retriable)

    @property
    def retry_after(self) -> float | None:
        """The longest Retry-After any retriable channel asked for (None when none did)."""
        waits = [r.retry_after for r in self.results.values() if r.outcome is Outcome.RETRIABLE and r.retry_after]
        return max(waits) if waits else None


def _retry_after(value: Any) -> float | None:
    try:
        seconds = float(value)
    except (TypeError, ValueError):
        return None
    return seconds if seconds >= 0 else None


# =============================================================================== channels


class Channel(Protocol):
    """A way to reach people; ``send`` never raises for delivery problems, it classifies them."""

    name: str

    def send(self, message: Message) -> ChannelResult: ...


_MRKDWN_ESCAPES = str.maketrans({"&": "&amp;", "<": "&lt;", ">": "&gt;"})


def _clip(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _slack_escape(text: str) -> str:
    """Lead data is untrusted: ``<!channel>`` in a company name must not ping a workspace."""
    return text.translate(_MRKDWN_ESCAPES)


# Slack errors that another attempt may fix; everything else (invalid_auth, channel_not_found...) is fatal.
_SLACK_RETRIABLE = frozenset(
    {
        "ratelimited",
        "rate_limited",
        "internal_error",
        "fatal_error",
        "service_unavailable",
        "request_timeout",
        "team_added_to_org",
    }
)


class SlackChannel:
    """``chat.postMessage`` to the recipient's Slack id (a user id opens a DM), Block Kit plus fallback text."""

    name = "slack"

    def __init__(self, client: WebClient) -> None:
        self.client = client

    @classmethod
    def from_settings(cls, settings: SlackSettings, token: str) -> SlackChannel:
        # No built-in retries: the caller's task retries with backoff, honouring Retry-After.
        client = WebClient(token=token, base_url=settings.base_url, timeout=max(1, round(settings.timeout)), retry_handlers=[])
        return cls(client)

    @staticmethod
    def blocks(message: Message) -> list[dict[str, Any]]:
        """The Block Kit layout: headline, fact fields, why, identifiers, and a link to the record."""
        blocks: list[dict[str, Any]] = [
            {"type": "header", "text": {"type": "plain_text", "text": _clip(message.headline, 150), "emoji": False}},
        ]
        # Slack rejects the whole message (invalid_blocks) if a field is over 2,000 characters:
        # a lead with an absurdly long company name must still reach its rep.
        facts = [
            {"type": "mrkdwn", "text": f"*{label}*\n{_slack_escape(_clip(value, 300))}"} for label, value in message.lead.fields()
        ]
        if message.sla_deadline:
            facts.append({"type": "mrkdwn", "text": f"*SLA deadline*\n{_slack_escape(message.deadline_text())}"})
        if facts:
            blocks.append({"type": "section", "fields": facts[:10]})
        if message.reason:
            blocks.append(
                {"type": "section", "text": {"type": "mrkdwn", "text": f"*Why:* {_slack_escape(message.reason)}"[:3000]}}
            )
        if message.notes:
            blocks.append({"type": "section", "text": {"type": "mrkdwn", "text": _slack_escape("\n".join(message.notes))[:3000]}})
        if message.lead.url:
            blocks.append(
                {
                    "type": "actions",
                    "elements": [
                        {"type": "button", "text": {"type": "plain_text", "text": "Open in CRM"}, "url": message.lead.url},
                    ],
                }
            )
        ident = f"Lead {message.lead.lead_id} · rule {message.rule or '-'} · decision {message.decision_id}"
        blocks.append({"type": "context", "elements": [{"type": "mrkdwn", "text": _slack_escape(ident)}]})
        return blocks

    def send(self, message: Message) -> ChannelResult:
        target = message.recipient.slack_id
        if not target:
            return ChannelResult(self.name, Outcome.SKIPPED, f"no slack id for {message.recipient.id}")
        try:
            response = self.client.chat_postMessage(
                channel=target,
                text=_slack_escape(message.text())[:39_000],
                blocks=self.blocks(message),
                unfurl_links=False,
                unfurl_media=False,
            )
        except SlackApiError as exc:
            status = exc.response.status_code
            error = str(exc.response.get("error", "") or "")
            retry_after = _retry_after(exc.response.headers.get("Retry-After") or exc.response.headers.get("retry-after"))
            detail = f"slack {status} {error}".strip()
            if status == 429 or status >= 500 or error in _SLACK_RETRIABLE:
                return ChannelResult(self.name, Outcome.RETRIABLE, detail, retry_after)
            return ChannelResult(self.name, Outcome.FATAL, detail)
        except (SlackClientError, OSError, TimeoutError) as exc:  # connection refused, DNS, timeouts
            return ChannelResult(self.name, Outcome.RETRIABLE, f"slack unreachable: {type(exc).__name__}: {exc}")
        return ChannelResult(self.name, Outcome.SENT, f"ts={response.get('ts', '')}")


class EmailChannel:
    """Plain-text plus HTML email over SMTP with no TLS, STARTTLS, or implicit TLS (``ssl``)."""

    name = "email"

    def __init__(
        self,
        *,
        host: str,
        sender: str,
        tls: TlsMode = "starttls",
        port: int | None = None,
        username: str | None = None,
        password: str | None = None,
        timeout: float = 15.0,
        subject_prefix: str = "[leadroute]",
        ssl_context: ssl.SSLContext | None = None,
    ) -> None:
        if (username is None) != (password is None):
            raise NotificationConfigError(f"set both {ENV_SMTP_USERNAME} and {ENV_SMTP_PASSWORD}, or neither")
        if tls == "none" and username is not None:
            # Refuse to send a password in clear text; a local relay needs no login.
            raise NotificationConfigError("SMTP credentials need TLS: set notifications.email.tls to starttls or ssl")
        self.host, self.sender, self.tls = host, sender, tls
        self.port = port or {"none": 25, "starttls": 587, "ssl": 465}[tls]
        self.username, self.password = username, password
        self.timeout, self.subject_prefix = timeout, subject_prefix
        self.ssl_context = ssl_context or ssl.create_default_context()

    def build(self, message: Message) -> EmailMessage:
        """The MIME message; its Message-ID is derived from the event id, so a resend is recognisable."""
        mail = EmailMessage()
        subject = _one_line(f"{self.subject_prefix} {message.subject}".strip())
        mail["Subject"] = subject[:250]
        mail["From"] = self.sender
        mail["To"] = formataddr((_one_line(message.recipient.name), message.recipient.email))
        mail["Date"] = formatdate(localtime=False)
        domain = parseaddr(self.sender)[1].rpartition("@")[2] or "leadroute.invalid"
        digest = hashlib.sha256(message.event_id.encode()).hexdigest()[:32]
        mail["Message-ID"] = f"<{digest}@{domain}>"
        mail[EVENT_HEADER] = message.event_id
        mail.set_content(message.text() + "\n")
        mail.add_alternative(self._html(message), subtype="html")
        return mail

    @staticmethod
    def _html(message: Message) -> str:
        esc = html.escape
        rows = "".join(f"<tr><th align='left'>{esc(k)}</th><td>{esc(v)}</td></tr>" for k, v in message.lead.fields())
        if message.sla_deadline:
            rows += f"<tr><th align='left'>SLA deadline</th><td>{esc(message.deadline_text())}</td></tr>"
        parts = [f"<p><strong>{esc(message.headline)}</strong></p>", f"<table>{rows}</table>"]
        if message.reason:
            parts.append(f"<p><strong>Why:</strong> {esc(message.reason)}</p>")
        parts += [f"<p>{esc(note)}</p>" for note in message.notes]
        if message.lead.url:
            parts.append(f'<p><a href="{esc(message.lead.url, quote=True)}">Open in CRM</a></p>')
        parts.append(
            f"<p style='color:#666'>Lead {esc(message.lead.lead_id)} · rule {esc(message.rule or '-')} · "
            f"decision {esc(message.decision_id)}</p>"
        )
        return "<html><body>" + "".join(parts) + "</body></html>\n"

    def send(self, message: Message) -> ChannelResult:
        if not message.recipient.email:
            return ChannelResult(self.name, Outcome.SKIPPED, f"no email address for {message.recipient.id}")
        try:
            mail = self.build(message)
            if self.tls == "ssl":
                smtp: smtplib.SMTP = smtplib.SMTP_SSL(self.host, self.port, timeout=self.timeout, context=self.ssl_context)
            else:
                smtp = smtplib.SMTP(self.host, self.port, timeout=self.timeout)
            with smtp:
                smtp.ehlo()
                if self.tls == "starttls":
                    smtp.starttls(context=self.ssl_context)  # raises SMTPNotSupportedError rather than go on in clear
                    smtp.ehlo()
                if self.username is not None and self.password is not None:
                    smtp.login(self.username, self.password)
                refused = smtp.send_message(mail)
        except smtplib.SMTPRecipientsRefused as exc:
            codes = [code for code, _ in exc.recipients.values()]
            return self._by_code(min(codes) if codes else 550, f"recipient refused: {exc.recipients}")
        except smtplib.SMTPNotSupportedError as exc:
            return ChannelResult(self.name, Outcome.FATAL, f"smtp server does not offer what tls={self.tls} needs: {exc}")
        except smtplib.SMTPResponseException as exc:  # incl. auth failures (535) and data/sender errors
            return self._by_code(exc.smtp_code, f"smtp {exc.smtp_code} {exc.smtp_error!r}")
        except ssl.SSLCertVerificationError as exc:
            return ChannelResult(self.name, Outcome.FATAL, f"smtp tls certificate rejected: {exc.verify_message}")
        except (smtplib.SMTPException, OSError, TimeoutError) as exc:  # disconnects, refused, DNS, TLS handshake
            return ChannelResult(self.name, Outcome.RETRIABLE, f"smtp unreachable: {type(exc).__name__}: {exc}")
        if refused:
            return ChannelResult(self.name, Outcome.FATAL, f"recipient refused: {refused}")
        return ChannelResult(self.name, Outcome.SENT, f"to {message.recipient.email}")

    def _by_code(self, code: int, detail: str) -> ChannelResult:
        # SMTP: 4xx are transient by definition (greylisting, mailbox busy), 5xx permanent.
        return ChannelResult(self.name, Outcome.RETRIABLE if 400 <= code < 500 else Outcome.FATAL, detail)


def sign_webhook(secret: str, timestamp: str, body: bytes) -> str:
    """``v1=`` + hex HMAC-SHA256(secret, timestamp + "." + body): the ``X-Leadroute-Signature`` value."""
    mac = hmac.new(secret.encode(), timestamp.encode() + b"." + body, hashlib.sha256)
    return "v1=" + mac.hexdigest()


def verify_webhook(
    secret: str, timestamp: str, body: bytes, signature: str, *, tolerance: float = 300.0, now: float | None = None
) -> bool:
    """The receiver's check: fresh timestamp (default 5 min) and a constant-time signature match."""
    try:
        sent = int(timestamp)
    except (TypeError, ValueError):
        return False
    if abs((time.time() if now is None else now) - sent) > tolerance:
        return False
    expected = sign_webhook(secret, timestamp, body)
    return any(hmac.compare_digest(expected, candidate.strip()) for candidate in signature.split(","))


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args: Any, **kwargs: Any) -> None:  # a POST must not silently become a GET elsewhere
        return None


class WebhookChannel:
    """A signed JSON POST to one URL (see :func:`sign_webhook`); 2xx is success, redirects are not followed."""

    name = "webhook"

    def __init__(self, url: str, secret: str, *, timeout: float = 10.0, ssl_context: ssl.SSLContext | None = None) -> None:
        if not secret:
            raise NotificationConfigError(f"the webhook channel needs {ENV_WEBHOOK_SECRET}")
        self.url, self.secret, self.timeout = url, secret, timeout
        handlers: list[urllib.request.BaseHandler] = [_NoRedirect()]
        if ssl_context is not None:
            handlers.append(urllib.request.HTTPSHandler(context=ssl_context))
        self._opener = urllib.request.build_opener(*handlers)

    def request(self, message: Message, *, now: float | None = None) -> urllib.request.Request:
        """The signed request (exposed so the signing is testable and documentable)."""
        body = json.dumps(message.to_payload(), separators=(",", ":"), sort_keys=True, default=str).encode()
        timestamp = str(int(time.time() if now is None else now))
        headers = {
            "Content-Type": "application/json",
            "User-Agent": USER_AGENT,
            TIMESTAMP_HEADER: timestamp,
            SIGNATURE_HEADER: sign_webhook(self.secret, timestamp, body),
            EVENT_HEADER: message.event_id,
        }
        return urllib.request.Request(self.url, data=body, headers=headers, method="POST")

    def send(self, message: Message) -> ChannelResult:
        try:
            with self._opener.open(self.request(message), timeout=self.timeout) as response:
                status = response.status
        except urllib.error.HTTPError as exc:
            status = exc.code
            exc.close()
            if status in (408, 425, 429) or status >= 500:
                return ChannelResult(
                    self.name, Outcome.RETRIABLE, f"webhook {status}", _retry_after(exc.headers.get("Retry-After"))
                )
            return ChannelResult(self.name, Outcome.FATAL, f"webhook {status}")
        except (urllib.error.URLError, OSError, TimeoutError) as exc:
            reason = getattr(exc, "reason", exc)
            if isinstance(reason, ssl.SSLCertVerificationError):
                return ChannelResult(self.name, Outcome.FATAL, f"webhook tls certificate rejected: {reason.verify_message}")
            return ChannelResult(self.name, Outcome.RETRIABLE, f"webhook unreachable: {type(exc).__name__}: {reason}")
        return ChannelResult(self.name, Outcome.SENT, f"webhook {status}")


# =============================================================================== notifier


class Notifier:
    """Sends a message to every configured channel and reports per channel; never raises for delivery."""

    def __init__(self, channels: Sequence[Channel]) -> None:
        self.channels: dict[str, Channel] = {}
        for channel in channels:
            if channel.name in self.channels:
                raise ValueError(f"two channels named {channel.name!r}")
            self.channels[channel.name] = channel

    @classmethod
    def from_config(
        cls,
        config: NotificationsConfig,
        environ: Mapping[str, str] | None = None,
        *,
        ssl_context: ssl.SSLContext | None = None,
    ) -> Notifier:
        """Build the enabled channels, reading secrets from the environment; names every missing variable."""
        env = os.environ if environ is None else environ
        missing: list[str] = []

        def need(name: str, why: str) -> str:
            value = (env.get(name) or "").strip()
            if not value:
                missing.append(f"{name} ({why})")
            return value

        channels: list[Channel] = []
        if "slack" in config.channels:
            token = need(ENV_SLACK_TOKEN, "slack channel enabled")
            if token:
                logs.register_secret(token)
                channels.append(SlackChannel.from_settings(config.slack, token))
        if "email" in config.channels:
            host = need(ENV_SMTP_HOST, "email channel enabled")
            sender = need(ENV_SMTP_FROM, "email channel enabled")
            port_text = (env.get(ENV_SMTP_PORT) or "").strip()
            port: int | None = None
            if port_text:
                if not port_text.isdigit() or not 0 < int(port_text) < 65536:
                    raise NotificationConfigError(f"{ENV_SMTP_PORT}={port_text!r} is not a TCP port")
                port = int(port_text)
            username = (env.get(ENV_SMTP_USERNAME) or "").strip() or None
            password = env.get(ENV_SMTP_PASSWORD) or None
            logs.register_secret(password)
            if host and sender:
                channels.append(
                    EmailChannel(
                        host=host,
                        sender=sender,
                        tls=config.email.tls,
                        port=port,
                        username=username,
                        password=password,
                        timeout=config.email.timeout,
                        subject_prefix=config.email.subject_prefix,
                        ssl_context=ssl_context,
                    )
                )
        if "webhook" in config.channels:
            secret = need(ENV_WEBHOOK_SECRET, "webhook channel enabled; receivers verify the signature with it")
            if secret and config.webhook.url:
                logs.register_secret(secret)
                channels.append(
                    WebhookChannel(config.webhook.url, secret, timeout=config.webhook.timeout, ssl_context=ssl_context)
                )
        if missing:
            raise NotificationConfigError("missing environment variables: " + ", ".join(missing))
        return cls(channels)

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(self.channels)

    def send_one(self, channel_name: str, message: Message) -> ChannelResult:
        """Send on one channel, record the metric and log line; an unexpected exception is a fatal result."""
        channel = self.channels[channel_name]
        try:
            result = channel.send(message)
        except Exception as exc:  # a bug in a channel must not take the other channels or the task down
            log.exception("notification channel crashed", channel=channel_name, event_id=message.event_id)
            result = ChannelResult(channel_name, Outcome.FATAL, f"{type(exc).__name__}: {exc}")
        metrics.record_notification(channel_name, message.kind.value, result.outcome.value)
        level = "info" if result.ok else "warning"
        getattr(log, level)(
            "notification",
            channel=channel_name,
            kind=message.kind.value,
            outcome=result.outcome.value,
            detail=result.detail,
            event_id=message.event_id,
            recipient=message.recipient.id,
            lead_id=message.lead.lead_id,
            retry_after=result.retry_after,
        )
        return result

    def send(self, message: Message, *, only: Iterable[str] | None = None) -> SendReport:
        """Send on every channel (or ``only`` those named, e.g. the ones a retry still owes)."""
        names = self.names if only is None else tuple(n for n in self.names if n in set(only))
        return SendReport(message.event_id, {name: self.send_one(name, message) for name in names})


# =============================================================================== send once


class SendLedger(Protocol):
    """What :func:`send_once` needs from the store (``worker.store.RedisStore`` has it)."""

    def acquire_lock(self, name: str, ttl: float, token: str | None = None) -> str | None: ...

    def release_lock(self, name: str, token: str) -> bool: ...

    def extend_lock(self, name: str, token: str, ttl: float) -> bool: ...


def send_once(
    store: SendLedger,
    decision_id: str,
    notifier: Notifier,
    message: Message,
    *,
    claim_ttl: float = 120.0,
    done_ttl: float = 7 * DAY,
) -> SendReport:
    """Send ``message`` on each channel that has not already delivered it for ``decision_id``.

    A retried task (Celery redelivery, a retry after one channel failed) calls this again
    with the same ``decision_id``; channels that succeeded before report ``duplicate`` and
    are not sent twice, while failed ones are tried again. ``decision_id`` must be unique per
    message the caller means to send once (the decision key; add a suffix such as
    ``:reminder-2`` for a repeated ladder step); the kind is part of the key already.

    Per channel, two store keys: a short *in-flight* claim, so two workers never send at
    once (a worker that dies mid-send lets it lapse after ``claim_ttl``), and a *done* marker
    kept for ``done_ttl`` after success. Only a crash between a channel accepting the message
    and the marker being written can cause a repeat (at-least-once, never at-most-once).
    """
    results: dict[str, ChannelResult] = {}
    for name in notifier.names:
        base = f"notify:{decision_id}:{message.kind.value}:{name}"
        claim = store.acquire_lock(base + ":inflight", claim_ttl)
        if claim is None:
            results[name] = ChannelResult(name, Outcome.RETRIABLE, "being sent by another worker", claim_ttl)
            metrics.record_notification(name, message.kind.value, Outcome.RETRIABLE.value)
            continue
        try:
            done = store.acquire_lock(base + ":done", claim_ttl)
            if done is None:  # we hold the in-flight claim, so only a finished send can hold this
                results[name] = ChannelResult(name, Outcome.DUPLICATE, "already sent")
                metrics.record_notification(name, message.kind.value, Outcome.DUPLICATE.value)
                continue
            result = notifier.send_one(name, message)
            if result.outcome is Outcome.SENT:
                store.extend_lock(base + ":done", done, done_ttl)
            else:
                store.release_lock(base + ":done", done)
            results[name] = result
        finally:
            store.release_lock(base + ":inflight", claim)
    return SendReport(message.event_id, results)
