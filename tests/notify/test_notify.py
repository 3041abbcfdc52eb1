"""Notifications: what a message says, and how each channel delivers or classifies failure, over real servers."""

from __future__ import annotations

import ssl
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import pytest
import redis
from prometheus_client import REGISTRY
from pydantic import ValidationError
from slack_sdk import WebClient

from tests.notify.conftest import Mailbox, ScriptedServer, TlsKit, json_reply
from worker.notify import channels, messages
from worker.notify.channels import (
    EmailChannel,
    Notifier,
    Outcome,
    SlackChannel,
    WebhookChannel,
    sign_webhook,
    verify_webhook,
)
from worker.notify.ledger import send_once
from worker.notify.messages import Kind, LeadSummary, Recipient
from worker.notify.settings import NotificationConfigError, NotificationsConfig
from worker.store.connection import free_port
from worker.store.redis_store import RedisStore

DECISION = {
    "lead_id": "00Q5g000001AbCd",
    "owner": "ana",
    "owner_kind": "rep",
    "rule": "enterprise-emea",
    "target": "pool:emea-enterprise",
    "config_version": "cfg-1",
    "routed_at": "2026-11-20T10:00:00+00:00",
    "reason": "enterprise-emea: DE, 1200 employees -> pool emea-enterprise, round robin (next after rep bo)",
    "facts": {"country": "DE", "employees": 1200},
}
LEAD = {
    "first_name": "Greta",
    "last_name": "Lindqvist",
    "email": "greta@nordwerk.de",
    "company": "Nordwerk GmbH",
    "employees": 1200,
    "country": "Germany",
    "lead_source": "Demo request",
    "score": 87.0,
}
DEADLINE = datetime(2026, 11, 20, 10, 15, tzinfo=UTC)
ANA = Recipient(id="ana", name="Ana Sousa", email="ana@example.com", slack_id="U0ANA", timezone="Europe/Berlin")
DECISION_ID = "salesforce:Lead:00Q5g000001AbCd#0"


def message(**overrides: Any) -> messages.Message:
    msg = messages.assigned(DECISION, LEAD, ANA, decision_id=DECISION_ID, sla_deadline=DEADLINE, crm="salesforce")
    return msg if not overrides else messages.Message(**{**msg.__dict__, **overrides})


def sample(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


# =============================================================================== the message


def test_an_assigned_message_names_the_lead_its_facts_the_deadline_and_why_this_rep() -> None:
    msg = message()
    assert msg.kind is Kind.ASSIGNED
    assert msg.recipient is ANA
    assert msg.headline == "New lead for you: Greta Lindqvist (Nordwerk GmbH)"
    text = msg.text()
    for expected in (
        "Company: Nordwerk GmbH",
        "Size: 1,200 employees",
        "Country: Germany",
        "Source: Demo request",
        "Score: 87",
        "SLA deadline: Fri 20 Nov 11:15 CET",  # the rep's own time zone
        "Why: enterprise-emea: DE, 1200 employees -> pool emea-enterprise, round robin (next after rep bo)",
        f"decision {DECISION_ID}",
    ):
        assert expected in text
    assert msg.event_id == f"{DECISION_ID}:assigned"


def test_the_deadline_is_optional_and_unknown_facts_are_left_out() -> None:
    msg = messages.assigned({"lead_id": "L9", "reason": "fallback: no rule matched"}, {"email": "x@y.io"}, ANA, decision_id="d")
    assert msg.headline == "New lead for you: x@y.io"
    assert "SLA deadline" not in msg.text()
    assert "Company" not in msg.text()
    assert msg.lead.fields() == [("Email", "x@y.io")]


def test_lead_facts_come_from_the_decision_and_the_lead_record() -> None:
    summary = LeadSummary.from_facts({"name": "Kai", "company": "Kai", "employees": "51-200", "source": "web"}, lead_id="7")
    assert summary.display == "Kai"  # company equal to the name is not repeated
    assert summary.size == "51-200"
    assert summary.source == "web"
    msg = messages.assigned(DECISION, None, ANA, decision_id="d")
    assert msg.lead.country == "DE" and msg.lead.size == "1,200 employees"  # from decision["facts"]


def test_one_template_per_kind() -> None:
    manager = Recipient(id="mia", name="Mia Manager", email="mia@example.com")
    bo = Recipient(id="bo", name="Bo")
    alerts = NotificationsConfig(alerts={"slack_channel": "C0REVOPS", "email": "revops@example.com"}).alert_recipient()

    rem = messages.reminder(DECISION, LEAD, ANA, decision_id="d", sla_deadline=DEADLINE)
    assert rem.kind is Kind.REMINDER and "is waiting for you (SLA Fri 20 Nov 11:15 CET)" in rem.headline

    esc = messages.escalation(DECISION, LEAD, manager, owner=ANA, decision_id="d", sla_deadline=DEADLINE)
    assert esc.kind is Kind.ESCALATION and esc.recipient is manager
    assert esc.headline == "SLA breached: Ana Sousa has not acknowledged Greta Lindqvist (Nordwerk GmbH)"

    moved = messages.reassigned_from(DECISION, LEAD, ANA, new_owner=bo, decision_id="d")
    assert moved.kind is Kind.REASSIGNED_FROM and moved.recipient is ANA
    assert moved.headline == "Greta Lindqvist (Nordwerk GmbH) was reassigned from you to Bo (SLA missed)"

    park = messages.parked(DECISION, LEAD, alerts, queue="triage", reassignments=2, decision_id="d")
    assert park.kind is Kind.PARKED and park.recipient.slack_id == "C0REVOPS"
    assert "moved to queue triage after 2 reassignment(s)" in park.headline
    assert {m.event_id for m in (rem, esc, moved, park)} == {"d:reminder", "d:escalation", "d:reassigned_from", "d:parked"}


def test_recipient_from_a_config_rep() -> None:
    from worker.config import Rep

    rep = Rep(id="ana", name="Ana", email="ana@example.com", slack_id="U1", timezone="Europe/Lisbon")
    assert Recipient.from_rep(rep) == Recipient("ana", "Ana", "ana@example.com", "U1", "Europe/Lisbon")


# =============================================================================== settings


def test_notifications_config_is_strict_frozen_and_reads_durations() -> None:
    config = NotificationsConfig.model_validate(
        {
            "channels": ["slack", "webhook"],
            "slack": {"base_url": "http://127.0.0.1:9/api/", "timeout": "5s"},
            "webhook": {"url": "https://hooks.example.com/leadroute", "timeout": "500ms"},
            "record_urls": {"salesforce": "https://acme.lightning.force.com/lightning/r/Lead/{id}/view"},
        }
    )
    assert config.slack.timeout == 5 and config.webhook.timeout == 0.5
    assert config.record_url("salesforce", "00Q1") == "https://acme.lightning.force.com/lightning/r/Lead/00Q1/view"
    assert config.record_url("hubspot", "1") == ""
    with pytest.raises(ValidationError):
        config.channels = ()  # type: ignore[misc]
    for bad in (
        {"slack": {"token": "xoxb-nope"}},  # secrets never live in the YAML
        {"channels": ["pager"]},
        {"channels": ["slack", "slack"]},
        {"channels": ["webhook"]},  # no url
        {"email": {"tls": "maybe"}},
        {"slack": {"base_url": "slack.com"}},
        {"record_urls": {"hubspot": "https://app.hubspot.com/contacts/1/contact/"}},
    ):
        with pytest.raises(ValidationError):
            NotificationsConfig.model_validate(bad)


def test_notifier_from_config_reads_secrets_from_the_environment_and_names_what_is_missing() -> None:
    config = NotificationsConfig(channels=("slack", "email", "webhook"), webhook={"url": "https://h.example.com/x"})
    with pytest.raises(NotificationConfigError) as err:
        Notifier.from_config(config, environ={})
    for name in ("SLACK_BOT_TOKEN", "SMTP_HOST", "SMTP_FROM", "LEADROUTE_WEBHOOK_SECRET"):
        assert name in str(err.value)
    env = {
        "SLACK_BOT_TOKEN": "xoxb-test-token-123",
        "SMTP_HOST": "127.0.0.1",
        "SMTP_FROM": "leadroute@example.com",
        "SMTP_USERNAME": "u",
        "SMTP_PASSWORD": "p-123456",
        "LEADROUTE_WEBHOOK_SECRET": "whsec-123456",
    }
    notifier = Notifier.from_config(config, environ=env)
    assert notifier.names == ("slack", "email", "webhook")
    email = notifier.channels["email"]
    assert isinstance(email, EmailChannel) and email.port == 587  # STARTTLS submission port by default
    with pytest.raises(NotificationConfigError, match="SMTP_PORT"):
        Notifier.from_config(config, environ={**env, "SMTP_PORT": "smtp"})
    assert Notifier.from_config(NotificationsConfig(), environ={}).names == ()


# =============================================================================== Slack


def slack_channel(server: ScriptedServer, timeout: int = 5) -> SlackChannel:
    return SlackChannel(WebClient(token="xoxb-test-token", base_url=server.url + "/api/", timeout=timeout, retry_handlers=[]))


def test_slack_posts_block_kit_and_fallback_text_to_the_reps_slack_id(http_server: ScriptedServer) -> None:
    config = NotificationsConfig(slack={"base_url": http_server.url + "/api/"})
    channel = SlackChannel.from_settings(config.slack, "xoxb-test-token")
    result = channel.send(message())
    assert result.outcome is Outcome.SENT
    (req,) = http_server.requests
    assert req.path == "/api/chat.postMessage"
    assert req.headers["authorization"] == "Bearer xoxb-test-token"
    body = req.json()
    assert body["channel"] == "U0ANA"
    assert body["text"].startswith("New lead for you: Greta Lindqvist (Nordwerk GmbH)")
    blocks = body["blocks"]
    assert blocks[0] == {"type": "header", "text": {"type": "plain_text", "text": message().headline, "emoji": False}}
    fields = [f["text"] for f in blocks[1]["fields"]]
    assert "*Company*\nNordwerk GmbH" in fields and "*SLA deadline*\nFri 20 Nov 11:15 CET" in fields
    assert blocks[2]["text"]["text"].startswith("*Why:* enterprise-emea")


def test_slack_escapes_untrusted_lead_data(http_server: ScriptedServer) -> None:
    hostile = messages.assigned(DECISION, {**LEAD, "company": "<!channel> & <https://evil.example|click>"}, ANA, decision_id="d")
    assert slack_channel(http_server).send(hostile).ok
    body = http_server.requests[0].json()

    def mrkdwn(node: Any) -> list[str]:  # every text Slack parses for mentions and links
        if isinstance(node, dict):
            own = [node["text"]] if node.get("type") == "mrkdwn" else []
            return own + [t for v in node.values() for t in mrkdwn(v)]
        return [t for v in node for t in mrkdwn(v)] if isinstance(node, list) else []

    parsed = [body["text"], *mrkdwn(body["blocks"])]
    assert not any("<!channel>" in text or "<https://" in text for text in parsed)
    assert "*Company*\n&lt;!channel&gt; &amp; &lt;https://evil.example|click&gt;" in parsed
    assert body["blocks"][0]["text"]["type"] == "plain_text"  # shown literally, never parsed


def test_absurdly_long_lead_data_is_clipped_to_what_slack_accepts(http_server: ScriptedServer) -> None:
    msg = messages.assigned(DECISION, {**LEAD, "company": "A" * 5000}, ANA, decision_id="d")
    assert slack_channel(http_server).send(msg).ok
    blocks = http_server.requests[0].json()["blocks"]
    assert len(blocks[0]["text"]["text"]) <= 150
    assert all(len(f["text"]) <= 2000 for f in blocks[1]["fields"])


def test_a_link_to_the_crm_record_becomes_a_button(http_server: ScriptedServer) -> None:
    url = "https://acme.lightning.force.com/lightning/r/Lead/00Q5g000001AbCd/view"
    msg = messages.assigned(DECISION, LEAD, ANA, decision_id="d", url=url)
    slack_channel(http_server).send(msg)
    actions = [b for b in http_server.requests[0].json()["blocks"] if b["type"] == "actions"]
    assert actions[0]["elements"][0]["url"] == url


@pytest.mark.parametrize(
    ("reply", "outcome", "retry_after"),
    [
        (json_reply({"ok": False, "error": "ratelimited"}, 429, **{"Retry-After": "7"}), Outcome.RETRIABLE, 7.0),
        ((503, {"Content-Type": "text/html"}, b"<html>upstream unavailable</html>"), Outcome.RETRIABLE, None),
        (json_reply({"ok": False, "error": "internal_error"}), Outcome.RETRIABLE, None),
        (json_reply({"ok": False, "error": "channel_not_found"}), Outcome.FATAL, None),
        (json_reply({"ok": False, "error": "invalid_auth"}), Outcome.FATAL, None),
        (json_reply({"ok": False, "error": "account_inactive"}), Outcome.FATAL, None),
    ],
)
def test_slack_failures_are_classified(
    http_server: ScriptedServer, reply: tuple[int, dict[str, str], bytes], outcome: Outcome, retry_after: float | None
) -> None:
    http_server.script.append(reply)
    result = slack_channel(http_server).send(message())
    assert result.outcome is outcome
    assert result.retry_after == retry_after
    assert len(http_server.requests) == 1  # no hidden retries: the task decides


def test_slack_unreachable_is_retriable() -> None:
    channel = SlackChannel(
        WebClient(token="xoxb-t", base_url=f"http://127.0.0.1:{free_port()}/api/", timeout=2, retry_handlers=[])
    )
    result = channel.send(message())
    assert result.outcome is Outcome.RETRIABLE
    assert "unreachable" in result.detail


def test_slack_skips_a_recipient_without_a_slack_id(http_server: ScriptedServer) -> None:
    result = slack_channel(http_server).send(message(recipient=Recipient(id="bo", email="bo@example.com")))
    assert result.outcome is Outcome.SKIPPED and result.ok
    assert http_server.requests == []


# =============================================================================== email


def email_channel(box: Mailbox, tls: str, context: ssl.SSLContext | None = None, **kwargs: Any) -> EmailChannel:
    return EmailChannel(
        host=box.host,
        port=box.port,
        sender="Leadroute <leadroute@example.com>",
        tls=tls,  # type: ignore[arg-type]
        timeout=5,
        ssl_context=context,
        **kwargs,
    )


def test_email_without_tls_to_a_local_relay(smtp_server: Callable[..., Mailbox]) -> None:
    box = smtp_server("none")
    result = email_channel(box, "none").send(message())
    assert result.outcome is Outcome.SENT
    ((sender, rcpts, mail),) = box.messages
    assert sender == "leadroute@example.com" and rcpts == ["ana@example.com"]
    assert mail["To"] == "Ana Sousa <ana@example.com>"
    assert mail["Subject"] == "[leadroute] New lead: Greta Lindqvist (Nordwerk GmbH)"
    assert mail["X-Leadroute-Event-Id"] == f"{DECISION_ID}:assigned"
    text = mail.get_body(("plain",)).get_content()
    html = mail.get_body(("html",)).get_content()
    assert "Why: enterprise-emea" in text and "SLA deadline: Fri 20 Nov 11:15 CET" in text
    assert "<strong>Why:</strong> enterprise-emea" in html


def test_email_resends_carry_the_same_message_id(smtp_server: Callable[..., Mailbox]) -> None:
    box = smtp_server("none")
    channel = email_channel(box, "none")
    channel.send(message())
    channel.send(message())
    first, second = (m["Message-ID"] for _, _, m in box.messages)
    assert first == second and first.endswith("@example.com>")


def test_email_over_starttls_with_login(smtp_server: Callable[..., Mailbox], tls: TlsKit) -> None:
    box = smtp_server("starttls", users={"mailer": "s3cret-pass"})
    result = email_channel(box, "starttls", tls.client, username="mailer", password="s3cret-pass").send(message())
    assert result.outcome is Outcome.SENT, result.detail
    assert box.logins == ["mailer"] and len(box.messages) == 1


@pytest.mark.filterwarnings("ignore:Requiring AUTH while not requiring TLS")  # the socket itself is TLS
def test_email_over_implicit_tls(smtp_server: Callable[..., Mailbox], tls: TlsKit) -> None:
    box = smtp_server("ssl", users={"mailer": "s3cret-pass"})
    result = email_channel(box, "ssl", tls.client, username="mailer", password="s3cret-pass").send(message())
    assert result.outcome is Outcome.SENT, result.detail
    assert len(box.messages) == 1


def test_email_refuses_an_untrusted_certificate(smtp_server: Callable[..., Mailbox]) -> None:
    box = smtp_server("starttls")
    result = email_channel(box, "starttls", ssl.create_default_context()).send(message())
    assert result.outcome is Outcome.FATAL
    assert "certificate" in result.detail
    assert box.messages == []


def test_email_never_falls_back_to_clear_text_when_starttls_is_asked_for(smtp_server: Callable[..., Mailbox]) -> None:
    box = smtp_server("none")  # offers no STARTTLS
    result = email_channel(box, "starttls").send(message())
    assert result.outcome is Outcome.FATAL
    assert box.messages == []


def test_email_wrong_password_is_fatal(smtp_server: Callable[..., Mailbox], tls: TlsKit) -> None:
    box = smtp_server("starttls", users={"mailer": "right"})
    result = email_channel(box, "starttls", tls.client, username="mailer", password="wrong").send(message())
    assert result.outcome is Outcome.FATAL
    assert "535" in result.detail


@pytest.mark.parametrize(
    ("reply", "outcome"), [("451 4.7.1 greylisted, try later", Outcome.RETRIABLE), ("550 5.1.1 no such user", Outcome.FATAL)]
)
def test_email_recipient_errors_follow_smtp_codes(smtp_server: Callable[..., Mailbox], reply: str, outcome: Outcome) -> None:
    box = smtp_server("none")
    box.rcpt_replies["ana@example.com"] = reply
    result = email_channel(box, "none").send(message())
    assert result.outcome is outcome
    assert box.messages == []


def test_email_server_down_is_retriable() -> None:
    channel = EmailChannel(host="127.0.0.1", port=free_port(), sender="l@example.com", tls="none", timeout=2)
    assert channel.send(message()).outcome is Outcome.RETRIABLE


def test_email_subject_cannot_be_used_for_header_injection(smtp_server: Callable[..., Mailbox]) -> None:
    box = smtp_server("none")
    evil = messages.assigned(DECISION, {**LEAD, "first_name": "Eve\r\nBcc: victim@example.com\r\n"}, ANA, decision_id="d")
    assert email_channel(box, "none").send(evil).outcome is Outcome.SENT
    ((_, rcpts, mail),) = box.messages
    assert rcpts == ["ana@example.com"] and mail["Bcc"] is None
    assert "\n" not in mail["Subject"]


def test_email_skips_recipients_without_an_address_and_refuses_clear_text_passwords() -> None:
    channel = EmailChannel(host="127.0.0.1", sender="l@example.com", tls="none")
    assert channel.send(message(recipient=Recipient(id="x", slack_id="U1"))).outcome is Outcome.SKIPPED
    with pytest.raises(NotificationConfigError, match="TLS"):
        EmailChannel(host="h", sender="l@example.com", tls="none", username="u", password="p")
    with pytest.raises(NotificationConfigError, match="both"):
        EmailChannel(host="h", sender="l@example.com", username="u")


# =============================================================================== generic webhook

SECRET = "whsec-test-0123456789"


def test_webhook_posts_signed_json_that_a_receiver_can_verify(http_server: ScriptedServer) -> None:
    http_server.default = (204, {}, b"")
    result = WebhookChannel(http_server.url + "/hooks/leadroute", SECRET, timeout=5).send(message())
    assert result.outcome is Outcome.SENT
    (req,) = http_server.requests
    assert req.path == "/hooks/leadroute"
    assert req.headers["content-type"] == "application/json"
    assert req.headers["x-leadroute-event-id"] == f"{DECISION_ID}:assigned"
    timestamp, signature = req.headers["x-leadroute-timestamp"], req.headers["x-leadroute-signature"]
    assert signature.startswith("v1=")
    assert verify_webhook(SECRET, timestamp, req.body, signature)
    payload = req.json()
    assert payload["type"] == "lead.assigned" and payload["id"] == f"{DECISION_ID}:assigned"
    assert payload["lead"]["company"] == "Nordwerk GmbH" and payload["lead"]["score"] == "87"
    assert payload["sla_deadline"] == "2026-11-20T10:15:00+00:00"
    assert payload["reason"] == DECISION["reason"]
    assert payload["recipient"]["slack_id"] == "U0ANA"


def test_the_signature_recipe_is_hmac_sha256_over_timestamp_dot_body() -> None:
    import hashlib
    import hmac

    body = b'{"id":"d:assigned"}'
    expected = "v1=" + hmac.new(SECRET.encode(), b"1700000000." + body, hashlib.sha256).hexdigest()
    assert sign_webhook(SECRET, "1700000000", body) == expected
    assert verify_webhook(SECRET, "1700000000", body, expected, now=1700000100)
    assert not verify_webhook(SECRET, "1700000000", body + b" ", expected, now=1700000100)  # tampered body
    assert not verify_webhook("other-secret", "1700000000", body, expected, now=1700000100)
    assert not verify_webhook(SECRET, "1700000000", body, expected, now=1700000000 + 301)  # stale
    assert not verify_webhook(SECRET, "soon", body, expected)
    assert verify_webhook(SECRET, "1700000000", body, "v1=00," + expected, now=1700000000)  # secret rotation lists two


@pytest.mark.parametrize(
    ("reply", "outcome", "retry_after"),
    [
        ((503, {"Retry-After": "30"}, b"busy"), Outcome.RETRIABLE, 30.0),
        ((429, {}, b""), Outcome.RETRIABLE, None),
        ((400, {}, b"bad"), Outcome.FATAL, None),
        ((410, {}, b"gone"), Outcome.FATAL, None),
        ((302, {"Location": "http://127.0.0.1:1/elsewhere"}, b""), Outcome.FATAL, None),  # never followed
    ],
)
def test_webhook_failures_are_classified(
    http_server: ScriptedServer, reply: tuple[int, dict[str, str], bytes], outcome: Outcome, retry_after: float | None
) -> None:
    http_server.script.append(reply)
    result = WebhookChannel(http_server.url + "/h", SECRET, timeout=5).send(message())
    assert (result.outcome, result.retry_after) == (outcome, retry_after)
    assert len(http_server.requests) == 1


def test_webhook_unreachable_is_retriable_and_a_secret_is_required() -> None:
    result = WebhookChannel(f"http://127.0.0.1:{free_port()}/h", SECRET, timeout=2).send(message())
    assert result.outcome is Outcome.RETRIABLE
    with pytest.raises(NotificationConfigError, match="LEADROUTE_WEBHOOK_SECRET"):
        WebhookChannel("https://h.example.com", "")


# =============================================================================== notifier


class Exploding:
    name = "pager"

    def send(self, message: messages.Message) -> channels.ChannelResult:
        raise RuntimeError("bug in channel")


def test_notifier_sends_on_every_channel_and_one_failure_does_not_block_the_others(
    http_server: ScriptedServer, smtp_server: Callable[..., Mailbox]
) -> None:
    box = smtp_server("none")
    http_server.script.append(json_reply({"ok": False, "error": "ratelimited"}, 429, **{"Retry-After": "3"}))
    before = sample("leadroute_notifications_total", channel="slack", kind="assigned", status="retriable_error")
    notifier = Notifier([slack_channel(http_server), email_channel(box, "none"), Exploding()])
    report = notifier.send(message())
    assert {n: r.outcome for n, r in report.results.items()} == {
        "slack": Outcome.RETRIABLE,
        "email": Outcome.SENT,
        "pager": Outcome.FATAL,
    }
    assert not report.ok and report.retry and report.retry_after == 3
    assert report.retriable == ("slack",) and report.fatal == ("pager",)
    assert len(box.messages) == 1
    assert sample("leadroute_notifications_total", channel="slack", kind="assigned", status="retriable_error") == before + 1

    retry = notifier.send(message(), only=report.retriable)
    assert list(retry.results) == ["slack"] and retry.ok


# =============================================================================== send once


@pytest.fixture
def store(redis_client: redis.Redis, redis_prefix: str) -> RedisStore:
    return RedisStore(redis_client, prefix=redis_prefix)


def test_send_once_never_resends_a_channel_that_already_succeeded(
    store: RedisStore, http_server: ScriptedServer, smtp_server: Callable[..., Mailbox]
) -> None:
    box = smtp_server("none")
    notifier = Notifier([slack_channel(http_server), email_channel(box, "none")])
    http_server.script.append(json_reply({"ok": False, "error": "ratelimited"}, 429, **{"Retry-After": "1"}))

    first = send_once(store, DECISION_ID, notifier, message())  # slack rate limited, email delivered
    assert {n: r.outcome for n, r in first.results.items()} == {"slack": Outcome.RETRIABLE, "email": Outcome.SENT}

    second = send_once(store, DECISION_ID, notifier, message())  # the task's retry
    assert {n: r.outcome for n, r in second.results.items()} == {"slack": Outcome.SENT, "email": Outcome.DUPLICATE}
    assert second.ok

    third = send_once(store, DECISION_ID, notifier, message())  # a redelivered task after success
    assert {r.outcome for r in third.results.values()} == {Outcome.DUPLICATE}
    assert len(box.messages) == 1
    assert len(http_server.requests) == 2  # one rate-limited attempt, one delivery

    # Another kind for the same decision (e.g. the SLA reminder) is a different notification.
    rem = messages.reminder(DECISION, LEAD, ANA, decision_id=DECISION_ID, sla_deadline=DEADLINE)
    assert {r.outcome for r in send_once(store, DECISION_ID, notifier, rem).results.values()} == {Outcome.SENT}


def test_send_once_does_not_send_while_another_worker_is_sending(store: RedisStore, http_server: ScriptedServer) -> None:
    notifier = Notifier([slack_channel(http_server)])
    token = store.acquire_lock(f"notify:{DECISION_ID}:assigned:slack:inflight", 30)
    assert token
    report = send_once(store, DECISION_ID, notifier, message())
    assert report.results["slack"].outcome is Outcome.RETRIABLE
    assert "another worker" in report.results["slack"].detail
    assert http_server.requests == []
    store.release_lock(f"notify:{DECISION_ID}:assigned:slack:inflight", token)  # that worker died or failed
    assert send_once(store, DECISION_ID, notifier, message()).ok
    assert len(http_server.requests) == 1
