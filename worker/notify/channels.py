"""The transports (Slack, SMTP email, a signed webhook) and the notifier that fans a message out to them.

Each channel returns a result classified retriable or fatal, so callers retry only what can succeed."""

from __future__ import annotations

import hashlib
import hmac
import html
import json
import os
import smtplib
import ssl
import time
import urllib.error
import urllib.request
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from email.message import EmailMessage
from email.utils import formataddr, formatdate, parseaddr
from enum import StrEnum
from typing import Any, Protocol

from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError, SlackClientError

from worker.notify.messages import Message, _one_line
from worker.notify.settings import (
    ENV_SLACK_TOKEN,
    ENV_SMTP_FROM,
    ENV_SMTP_HOST,
    ENV_SMTP_PASSWORD,
    ENV_SMTP_PORT,
    ENV_SMTP_USERNAME,
    ENV_WEBHOOK_SECRET,
    EVENT_HEADER,
    SIGNATURE_HEADER,
    TIMESTAMP_HEADER,
    USER_AGENT,
    NotificationConfigError,
    NotificationsConfig,
    SlackSettings,
    TlsMode,
)
from worker.observability import logs, metrics

log = logs.get_logger(__name__)

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


