"""Logs: one redacting pipeline for structlog and stdlib loggers, JSON or console, with bound context."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator

import pytest

from worker.observability import logs
from worker.observability.logs import MASK, configure_logging, redact_text, redact_value

# A stable fake credential per kind; none of them may ever appear in output.
SLACK = "xoxb-1234567890-0987654321-AbCdEfGhIjKlMnOpQrStUvWx"
HUBSPOT_PAT = "pat-na1-0a1b2c3d-4e5f-6a7b-8c9d-0e1f2a3b4c5d"
SF_SESSION = "00D5g000004ABCD!AQ0AQH4Xk3m1Yq8pWzR2vT5uN7.sL9bC0dE6fG"
BEARER = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJyZXAifQ.c2lnbmF0dXJl"


@pytest.fixture
def stream() -> Iterator[io.StringIO]:
    out = io.StringIO()
    configure_logging("DEBUG", "json", stream=out)
    yield out


def lines(out: io.StringIO) -> list[dict[str, object]]:
    return [json.loads(line) for line in out.getvalue().splitlines() if line.strip()]


# ------------------------------------------------------------------------------- redaction in text


@pytest.mark.parametrize(
    ("text", "secret"),
    [
        ("Authorization: Bearer " + BEARER, BEARER),
        ("sent with authorization=Basic dXNlcjpodW50ZXIy", "dXNlcjpodW50ZXIy"),
        ("calling API with bearer " + BEARER + " now", BEARER),
        ("https://login.example.com/cb?code=1&access_token=abc123def456&state=x", "abc123def456"),
        ("POST /token grant_type=password&password=hunter2hunter2&client_secret=s3cr3tvalue", "hunter2hunter2"),
        ("POST /token grant_type=password&password=hunter2hunter2&client_secret=s3cr3tvalue", "s3cr3tvalue"),
        ("redis://:r3dis-pass@redis.internal:6379/0", "r3dis-pass"),
        ("smtp://mailer:p%40ss-word@smtp.example.com:587", "p%40ss-word"),
        ('{"refresh_token": "rt-9f8e7d6c5b4a", "ok": true}', "rt-9f8e7d6c5b4a"),
        ("{'password': 'two words here'}", "two words here"),
        ('password="quoted value with spaces"', "quoted value with spaces"),
        ("sessionId: " + "abcdef0123456789", "abcdef0123456789"),
        ("x-api-key: k-123456789", "k-123456789"),
        ("HUBSPOT_ACCESS_TOKEN=" + HUBSPOT_PAT, HUBSPOT_PAT),
        ("slack said invalid_auth for " + SLACK, SLACK),
        ("hubspot token " + HUBSPOT_PAT + " expired", HUBSPOT_PAT),
        ("INVALID_SESSION_ID: " + SF_SESSION, SF_SESSION),
        ("login ok, sid=" + "0123456789abcdef", "0123456789abcdef"),
    ],
)
def test_secrets_inside_text_are_masked(text: str, secret: str) -> None:
    out = redact_text(text)
    assert secret not in out
    assert MASK in out


@pytest.mark.parametrize(
    "text",
    [
        "routed to rep-7: considered rep-1, rep-2; skipped rep-3 (out of office)",
        "rule enterprise-emea matched: employees >= 1000, country in [DE, FR]",
        "HTTP 503 from sandbox, status code: 503, retry after 2 s",
        "lead 00Q5g000001XyZa written, reason: round robin in pool emea",
        "inside sales team, signature_version v3",
    ],
)
def test_ordinary_text_is_left_alone(text: str) -> None:
    assert redact_text(text) == text


def test_redaction_keeps_the_shape_of_the_text() -> None:
    assert redact_text("Authorization: Bearer " + BEARER) == f"Authorization: Bearer {MASK}"
    assert redact_text("https://api.example.com/x?access_token=abc123def&page=2") == (
        f"https://api.example.com/x?access_token={MASK}&page=2"
    )
    assert redact_text("redis://:r3dis-pass@host:6379") == f"redis://:{MASK}@host:6379"
    assert redact_text('{"password": "pw d"}') == f'{{"password": "{MASK}"}}'


def test_nested_structures_mask_secret_keys_and_scrub_values() -> None:
    value = {
        "headers": {"Authorization": "Bearer " + BEARER, "X-HubSpot-Signature-v3": "abc=", "Accept": "application/json"},
        "body": {"client_secret": "cs-123456", "records": [{"id": "1", "note": "token=tk-98765432"}]},
        "url": "https://u:pw-123456@example.com/",
        "tokens": 17,
    }
    out = redact_value(value)
    assert out["headers"] == {"Authorization": MASK, "X-HubSpot-Signature-v3": MASK, "Accept": "application/json"}
    assert out["body"]["client_secret"] == MASK
    assert out["body"]["records"][0] == {"id": "1", "note": f"token={MASK}"}
    assert out["url"] == f"https://u:{MASK}@example.com/"
    assert out["tokens"] == 17  # a count, not a credential


def test_registered_and_environment_secrets_are_masked_anywhere(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SMTP_PASSWORD", "correct-horse-battery")
    out = io.StringIO()
    configure_logging("INFO", "json", stream=out)  # reads secret-looking env vars
    logs.register_secret("literal-secret-value")
    logs.get_logger("t").info("smtp login failed", detail="530 for correct-horse-battery / literal-secret-value")
    text = out.getvalue()
    assert "correct-horse-battery" not in text
    assert "literal-secret-value" not in text


# ------------------------------------------------------------------------------- one registry


@pytest.mark.parametrize("entry", ["connectors", "logs"])
def test_a_secret_registered_through_either_entry_point_is_masked_by_both(entry: str) -> None:
    from connectors import redact

    secret = f"registered-through-{entry}-0123456789"
    (redact if entry == "connectors" else logs).register_secret(secret)
    line = f"upstream said: {secret} is not valid"
    assert redact.redact_text(line) == logs.redact_text(line) == f"upstream said: {MASK} is not valid"
    event = {"event": "call failed", "detail": {"body": [line]}}
    assert redact.redact_event(None, "info", dict(event)) == logs.redact(None, "info", dict(event))
    assert secret not in repr(logs.redact(None, "info", dict(event)))


@pytest.mark.parametrize(
    ("key", "secret"),
    [
        ("signature", True),
        ("X-HubSpot-Signature-v3", True),
        ("webhook_signature", True),
        ("dsn", True),
        ("SENTRY_DSN", True),
        ("sid", True),
        ("sid_cookie", True),
        ("SALESFORCE_CLIENT_SECRET", True),
        ("SMTP_PASSWORD", True),
        ("assertion", True),
        ("signature_version", False),
        ("token_type", False),
        ("tokens", False),
        ("expires_in", False),
        ("considered", False),
        ("dsname", False),
        ("instance_url", False),
    ],
)
def test_both_entry_points_agree_on_which_keys_are_secret(key: str, secret: bool) -> None:
    from connectors import redact

    assert redact.is_secret_key(key) is logs.is_secret_key(key) is secret
    masked = {key: MASK} if secret else {key: "v-1234567"}
    assert redact.redact_value({key: "v-1234567"}) == logs.redact_value({key: "v-1234567"}) == masked


def test_signature_and_dsn_pairs_inside_text_are_masked_but_a_signature_version_is_not() -> None:
    from connectors import redact

    text = "verify failed: signature=3f9a8b7c6d5e4f, signature_version=v3, dsn=postgres://u@db/x"
    expected = f"verify failed: signature={MASK}, signature_version=v3, dsn={MASK}"
    assert redact.redact_text(text) == logs.redact_text(text) == expected


def test_redacting_twice_changes_nothing() -> None:
    """Connector loggers redact their events and the log pipeline redacts them again."""
    text = ("Authorization: Bearer " + BEARER + " then password=hunter2hunter2, token='a b c', "
            '"client_secret": "cs-123456" at redis://:r3dis-pass@host')
    once = redact_text(text)
    assert redact_text(once) == once
    assert MASK in once and "hunter2" not in once and "r3dis-pass" not in once


# ------------------------------------------------------------------------------- the pipeline


def test_structlog_lines_are_json_with_bound_context_and_masked_keys(stream: io.StringIO) -> None:
    log = logs.get_logger("worker.tasks")
    with logs.bound(lead_id="00Q1", crm="salesforce", task_id="t-1", config_version="cfg-abc"):
        log.info("owner written", owner="rep-7", access_token="at-1234567890", password="hunter2")
    log.info("after the block")
    first, second = lines(stream)
    assert list(first)[:4] == ["timestamp", "level", "event", "logger"]  # the same leading fields on every line
    assert first["event"] == "owner written"
    assert first["level"] == "info"
    assert first["logger"] == "worker.tasks"
    assert {k: first[k] for k in ("lead_id", "crm", "task_id", "config_version")} == {
        "lead_id": "00Q1",
        "crm": "salesforce",
        "task_id": "t-1",
        "config_version": "cfg-abc",
    }
    assert first["access_token"] == MASK
    assert first["password"] == MASK
    assert "timestamp" in first
    assert "lead_id" not in second  # context ends with the block


def test_bind_and_unbind(stream: io.StringIO) -> None:
    logs.bind(crm="hubspot")
    logs.get_logger().info("one")
    logs.unbind("crm")
    logs.get_logger().info("two")
    one, two = lines(stream)
    assert one["crm"] == "hubspot"
    assert "crm" not in two


@pytest.mark.parametrize("name", ["celery.worker", "urllib3.connectionpool", "uvicorn.error"])
def test_stdlib_loggers_go_through_the_same_redacting_json_pipeline(stream: io.StringIO, name: str) -> None:
    with logs.bound(task_id="t-9"):
        logging.getLogger(name).warning("GET %s with header Authorization: Bearer %s", "/crm/v3/owners", BEARER)
    (line,) = lines(stream)
    assert line["logger"] == name
    assert line["level"] == "warning"
    assert line["task_id"] == "t-9"
    assert BEARER not in line["event"]
    assert line["event"] == f"GET /crm/v3/owners with header Authorization: Bearer {MASK}"


def test_tracebacks_are_rendered_and_redacted(stream: io.StringIO) -> None:
    try:
        raise RuntimeError("login failed for https://u:pw-abcdef@login.example.com with password=hunter2hunter2")
    except RuntimeError:
        logs.get_logger("t").exception("crm call failed")
    (line,) = lines(stream)
    assert "RuntimeError" in line["exception"]
    assert "pw-abcdef" not in line["exception"]
    assert "hunter2hunter2" not in line["exception"]


def test_exception_objects_as_values_are_redacted(stream: io.StringIO) -> None:
    logs.get_logger("t").warning("retrying", error=ValueError("bad token=tk-123456789"))
    (line,) = lines(stream)
    assert line["error"] == f"ValueError: bad token={MASK}"


def test_console_format_is_human_readable_and_redacted() -> None:
    out = io.StringIO()
    configure_logging("INFO", "console", stream=out)
    logs.get_logger("t").info("hello", lead_id="L1", api_key="k-1234567")
    text = out.getvalue()
    assert "hello" in text and "lead_id" in text and "L1" in text
    assert "k-1234567" not in text
    with pytest.raises(json.JSONDecodeError):
        json.loads(text)


def test_format_defaults_to_json_off_a_terminal_and_follows_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(logs.ENV_FORMAT, raising=False)
    out = io.StringIO()  # not a TTY
    configure_logging(stream=out)
    logs.get_logger().info("x")
    assert json.loads(out.getvalue())["event"] == "x"

    class Tty(io.StringIO):
        def isatty(self) -> bool:
            return True

    tty = Tty()
    configure_logging(stream=tty)
    logs.get_logger().info("x")
    with pytest.raises(json.JSONDecodeError):
        json.loads(tty.getvalue())

    monkeypatch.setenv(logs.ENV_FORMAT, "json")
    tty = Tty()
    configure_logging(stream=tty)
    logs.get_logger().info("x")
    assert json.loads(tty.getvalue())["event"] == "x"


def test_level_filters_and_bad_settings_fail_loudly() -> None:
    out = io.StringIO()
    configure_logging("WARNING", "json", stream=out)
    logs.get_logger().info("hidden")
    logging.getLogger("celery").info("hidden too")
    logs.get_logger().warning("shown")
    assert [line["event"] for line in lines(out)] == ["shown"]
    with pytest.raises(ValueError, match="log level"):
        configure_logging("LOUD", "json", stream=out)
    with pytest.raises(ValueError, match="log format"):
        configure_logging("INFO", "xml", stream=out)


def test_reconfiguring_replaces_the_handler_instead_of_duplicating_lines() -> None:
    out = io.StringIO()
    configure_logging("INFO", "json", stream=io.StringIO())
    configure_logging("INFO", "json", stream=out)
    logs.get_logger().info("once")
    assert len(lines(out)) == 1
