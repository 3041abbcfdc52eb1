"""The ``notifications:`` section of the routing YAML: channels, their settings, the alert recipient.

Pure pydantic: the config imports it, so it must not pull in any transport.
"""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, field_validator, model_validator

from worker.notify.messages import Recipient

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


