"""Connector pieces that need no CRM: conditions, mapping, watermarks, registry, redaction, retries, outcomes."""

from __future__ import annotations

import random
import subprocess
import sys
from datetime import UTC, datetime, timedelta

import pytest
import structlog

from connectors.base import (
    ConnectorConfigError,
    CrmRecord,
    FatalError,
    Opportunity,
    Outcome,
    OutcomeState,
    RetriableError,
    Watermark,
    WriteResult,
    WriteStatus,
    available,
    get_connector_class,
)
from connectors.mapping import evaluate, to_lead
from connectors.redact import MASK, redact_event, redact_text, register_secret
from connectors.settings import Condition, ConnectorsConfig, DailyLimitSettings, RateLimitSettings, RetrySettings
from connectors.support import CallRunner, DailyUsage, get_logger


def cond(data: object) -> Condition:
    return Condition.model_validate(data)


# ----------------------------------------------------------------------------- conditions


@pytest.mark.parametrize(
    ("condition", "fields", "expected"),
    [
        ({"field": "Status", "not_in": ["Open - Not Contacted"]}, {"Status": "Working - Contacted"}, True),
        ({"field": "Status", "not_in": ["Open - Not Contacted"]}, {"Status": "open - not contacted"}, False),
        ({"field": "hs_lead_status", "not_in": ["NEW", ""]}, {}, False),
        ({"field": "hs_lead_status", "not_in": ["NEW", ""]}, {"hs_lead_status": ""}, False),
        ({"field": "hs_lead_status", "not_in": ["NEW", ""]}, {"hs_lead_status": "OPEN"}, True),
        ({"field": "IsConverted", "eq": False}, {"IsConverted": False}, True),
        ({"field": "IsConverted", "eq": False}, {"IsConverted": "false"}, True),
        ({"field": "IsConverted", "eq": False}, {"IsConverted": True}, False),
        ({"field": "notes_last_contacted", "exists": True}, {"notes_last_contacted": None}, False),
        ({"field": "notes_last_contacted", "exists": True}, {"notes_last_contacted": "2024-01-01"}, True),
        ({"field": "hubspot_owner_id", "exists": False}, {"hubspot_owner_id": ""}, True),
        ({"field": "OwnerId", "eq": None}, {}, True),
        ({"field": "score", "gte": 80}, {"score": "80"}, True),
        ({"field": "score", "gt": 80, "lt": 100}, {"score": 80.0}, False),
        ({"field": "score", "gte": 80}, {}, False),
        ({"field": "ownerid", "in": ["005A"]}, {"OwnerId": "005a"}, True),
        ([{"field": "a", "eq": 1}, {"any": [{"field": "b", "eq": "x"}, {"field": "c", "exists": True}]}],
         {"a": 1.0, "c": "y"}, True),
        ([{"field": "a", "eq": 1}, {"any": [{"field": "b", "eq": "x"}, {"field": "c", "exists": True}]}],
         {"a": 1, "b": "z"}, False),
    ],
)
def test_conditions(condition: object, fields: dict[str, object], expected: bool) -> None:
    assert evaluate(cond(condition), fields) is expected


def test_no_condition_always_holds() -> None:
    assert evaluate(None, {})


def test_condition_fields_are_collected_for_selects() -> None:
    c = cond({"any": [{"field": "hs_lead_status", "not_in": ["NEW"]}, {"field": "x", "exists": True}]})
    assert c.fields() == {"hs_lead_status", "x"}


@pytest.mark.parametrize(
    ("bad", "needle"),
    [
        ({"field": "Status"}, "no operator"),
        ({"field": "Status", "eqq": 1}, "eqq"),
        ({"all": [{"field": "a", "eq": 1}], "eq": 2}, "need a 'field'"),
        ({"field": "Bad Name", "eq": 1}, "not a CRM field name"),
        ({"all": []}, "at least 1"),
    ],
)
def test_bad_conditions_are_config_errors(bad: object, needle: str) -> None:
    with pytest.raises(ValueError, match=needle):
        ConnectorsConfig.model_validate({"salesforce": {"intake": bad}})


def test_defaults_follow_the_object() -> None:
    config = ConnectorsConfig.model_validate({"salesforce": {"object": "Contact"}, "hubspot": {}})
    assert config.salesforce is not None and config.hubspot is not None
    assert "MailingCountry" in config.salesforce.fields
    assert config.salesforce.intake is None
    assert config.salesforce.acknowledged_when == cond({"field": "LastActivityDate", "exists": True})
    assert config.hubspot.intake == cond({"field": "hubspot_owner_id", "exists": False})
    assert set(config.enabled()) == {"salesforce", "hubspot"}
    assert ConnectorsConfig().enabled() == {}


def test_field_map_rejects_two_fields_for_one_canonical_name() -> None:
    with pytest.raises(ValueError, match="both map to 'email'"):
        ConnectorsConfig.model_validate({"hubspot": {"fields": {"email": "email", "work_email": "email"}}})


def test_durations_and_rate_sizing() -> None:
    section = {"hubspot": {"overlap": "2m", "rate_limit": {"requests": 190, "per_seconds": "10s"}}}
    config = ConnectorsConfig.model_validate(section)
    assert config.hubspot is not None
    assert config.hubspot.overlap == 120.0
    limit = config.hubspot.rate_limit
    # in any 10 s window the bucket hands out at most burst + rate * 10 <= requests * (1 - headroom)
    assert limit.burst + limit.rate * limit.per_seconds <= limit.requests * (1 - limit.headroom) + 1e-9
    with pytest.raises(ValueError, match="no steady rate"):
        RateLimitSettings(requests=5, per_seconds=1, burst=5)


def test_to_lead_maps_fields() -> None:
    field_map = {"Email": "email", "NumberOfEmployees": "employees"}
    lead = to_lead({"Email": "a@b.com", "NumberOfEmployees": 50, "Other": 1}, field_map, "00Q1")
    assert lead == {"email": "a@b.com", "employees": 50, "id": "00Q1"}


# ----------------------------------------------------------------------------- watermarks


def _record(rid: str, when: datetime) -> CrmRecord:
    return CrmRecord(id=rid, modstamp=when, owner_id=None, lead={"id": rid}, fields={}, needs_routing=True)


def test_watermark_round_trip_and_overlap_pruning() -> None:
    t0 = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)
    wm = Watermark(t0)
    wm = wm.advance([_record("a", t0 + timedelta(seconds=1)), _record("b", t0 + timedelta(seconds=100))], overlap=60)
    assert wm.at == t0 + timedelta(seconds=100)
    assert wm.seen == {f"b@{int((t0 + timedelta(seconds=100)).timestamp() * 1000)}"}  # a is outside the overlap
    assert Watermark.decode(wm.encode()) == wm
    assert wm.since(60) == t0 + timedelta(seconds=40)
    assert Watermark.decode(None) is None


def test_big_watermarks_are_compressed() -> None:
    t0 = datetime(2024, 5, 1, tzinfo=UTC)
    wm = Watermark(t0).advance([_record(f"00Q{i:015d}", t0) for i in range(5000)], overlap=60)
    text = wm.encode()
    assert text.startswith("z:") and len(text) < 60_000
    assert Watermark.decode(text) == wm


def test_bad_watermark_is_a_clear_error() -> None:
    with pytest.raises(ConnectorConfigError, match="unreadable watermark"):
        Watermark.decode("j:{nope")


# ----------------------------------------------------------------------------- registry, errors


def test_registry() -> None:
    assert available() == ["hubspot", "salesforce"]
    with pytest.raises(ConnectorConfigError, match=r"unknown connector 'pipedrive'.*known connectors: hubspot, salesforce"):
        get_connector_class("pipedrive")


def test_connectors_import_nothing_from_the_worker() -> None:
    """The connectors are a layer beside the worker: importing every one of them loads no ``worker`` module."""
    script = (
        "import pkgutil, importlib, sys, connectors\n"
        "for m in pkgutil.iter_modules(connectors.__path__): importlib.import_module(f'connectors.{m.name}')\n"
        "from connectors.domains import domain_of; domain_of(website='https://www.globex.com')\n"
        "print(sorted(n for n in sys.modules if n == 'worker' or n.startswith('worker.')))\n"
    )
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_the_worker_serves_the_connectors_crm_series_and_domain_normaliser() -> None:
    """One implementation each: the worker names the connectors' objects, it does not define its own."""
    from connectors import domains
    from connectors import metrics as crm_metrics
    from worker.domain import normalize
    from worker.observability import metrics as worker_metrics

    for name in ("CRM_CALLS", "CRM_CALL_SECONDS", "RATE_LIMIT_WAITS", "RATE_LIMIT_WAIT_SECONDS", "observe_crm_call",
                 "rate_limit_wait", "crm_call"):
        assert getattr(worker_metrics, name) is getattr(crm_metrics, name), name
    assert normalize.domain_of is domains.domain_of and normalize.is_free_mail is domains.is_free_mail


def test_write_result_from_error() -> None:
    err = RetriableError("locked", code="UNABLE_TO_LOCK_ROW", status=200)
    result = WriteResult.failure("1", err)
    assert result.status is WriteStatus.RETRIABLE and result.code == "UNABLE_TO_LOCK_ROW" and not result.ok
    fatal = WriteResult.failure("2", code="INVALID_CROSS_REFERENCE_KEY", message="bad owner", retriable=False)
    assert fatal.status is WriteStatus.FATAL
    assert WriteResult.success("3").ok


# ----------------------------------------------------------------------------- redaction


def test_secrets_never_reach_messages_reprs_or_logs() -> None:
    token = "pat-na1-11111111-2222-3333-4444-555555555555"
    register_secret(token)
    err = FatalError(f"call failed with Authorization: Bearer {token} and password=hunter2hunter2")
    assert token not in str(err) and token not in repr(err)
    assert "hunter2" not in str(err)
    assert redact_text(f"x {token} y") == f"x {MASK} y"
    assert redact_text('{"access_token": "abcdefghijkl", "instance_url": "https://x"}') == (
        f'{{"access_token": "{MASK}", "instance_url": "https://x"}}'
    )
    event = redact_event(None, "info", {"event": f"saw {token}", "client_secret": "s3cr3t!", "tokens": 3})
    assert event == {"event": f"saw {MASK}", "client_secret": MASK, "tokens": 3}


def test_logger_redacts_before_the_app_processors() -> None:
    token = "00Dxx0000000001!AQ0AQHzFAKESESSIONIDVALUE"
    register_secret(token)
    with structlog.testing.capture_logs() as logs:
        get_logger("salesforce").warning(f"refreshed {token}", session_id=token, note=token)
    assert logs and token not in repr(logs)


# ----------------------------------------------------------------------------- retries


class _Clock:
    def __init__(self) -> None:
        self.slept: list[float] = []

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)


def _runner(clock: _Clock, **retry: object) -> CallRunner:
    log = get_logger("test")
    return CallRunner(
        "test",
        retry=RetrySettings.model_validate({"attempts": 4, "initial_wait": 0.1, "max_wait": 1, **retry}),
        daily=DailyUsage("test", DailyLimitSettings(), log),
        classify=lambda exc: FatalError(str(exc)),
        log=log,
        sleep=clock.sleep,
        rng=random.Random(1),
    )


def test_retriable_errors_are_retried_and_honour_retry_after() -> None:
    clock = _Clock()
    calls = iter([RetriableError("slow down", status=429, retry_after=2.0), RetriableError("503", status=503), "ok"])

    def fn() -> str:
        item = next(calls)
        if isinstance(item, Exception):
            raise item
        return item

    assert _runner(clock, max_wait=5).call("x", fn) == "ok"
    assert 2.0 <= clock.slept[0] <= 2.25  # the hint, plus a little jitter
    assert 0.05 <= clock.slept[1] <= 0.2  # exponential backoff with jitter


def test_retries_are_bounded_and_the_error_stays_retriable() -> None:
    clock = _Clock()

    def fn() -> None:
        raise RetriableError("down", status=503)

    with pytest.raises(RetriableError):
        _runner(clock).call("x", fn)
    assert len(clock.slept) == 3  # 4 attempts


class _Longest(random.Random):
    """Jitter that always draws the longest pause allowed."""

    def uniform(self, a: float, b: float) -> float:
        return b


def test_a_crm_that_stays_down_is_tried_again_at_least_every_max_backoff() -> None:
    # A CRM down for a while (503s, dropped connections): the pauses between tries grow from initial_wait but
    # stop at max_backoff (1 s by default), so a call still retrying when the CRM comes back sends its next try
    # within 1 s; doubling on (4 s, 8 s, ...) left a drain asleep up to 8 s after a 15 s outage had ended
    clock = _Clock()
    runner = CallRunner("test", retry=RetrySettings(), daily=DailyUsage("test", DailyLimitSettings(), get_logger("test")),
                        classify=lambda exc: FatalError(str(exc)), log=get_logger("test"), sleep=clock.sleep,
                        rng=_Longest())

    def fn() -> None:
        raise RetriableError("down", status=503)

    with pytest.raises(RetriableError):
        runner.call("x", fn)
    assert clock.slept == [0.5, 1.0, 1.0, 1.0, 1.0]  # 6 attempts, each pause as long as allowed
    assert [runner.backoff(n) for n in (1, 2, 5, 20)] == [0.5, 1.0, 1.0, 1.0]  # lock-contention retries too


def test_max_backoff_is_a_setting_and_a_hint_is_still_slept_as_given() -> None:
    clock = _Clock()
    calls = iter([RetriableError("503", status=503), RetriableError("slow down", status=429, retry_after=4.0),
                  RetriableError("503", status=503), "ok"])

    def fn() -> str:
        item = next(calls)
        if isinstance(item, Exception):
            raise item
        return item

    runner = _runner(clock, max_backoff="150ms", max_wait=5, initial_wait=0.1)
    runner.rng = _Longest()
    assert runner.call("x", fn) == "ok"
    assert clock.slept[0] == 0.1  # our own backoff: initial_wait ...
    assert 4.0 <= clock.slept[1] <= 4.25  # ... the CRM's Retry-After, within max_wait: honoured as given ...
    assert clock.slept[2] == 0.15  # ... and our own backoff again, doubled but no further than max_backoff


def test_a_hint_longer_than_we_wait_hands_the_work_back() -> None:
    clock = _Clock()

    def fn() -> None:
        raise RetriableError("daily limit", status=403, code="REQUEST_LIMIT_EXCEEDED", retry_after=3600)

    with pytest.raises(RetriableError, match="daily limit"):
        _runner(clock).call("x", fn)
    assert clock.slept == []


def test_fatal_errors_are_not_retried() -> None:
    clock = _Clock()
    calls = []

    def fn() -> None:
        calls.append(1)
        raise ValueError("boom")

    with pytest.raises(FatalError, match="boom"):
        _runner(clock).call("x", fn)
    assert calls == [1] and clock.slept == []


def test_daily_usage_slow_down() -> None:
    usage = DailyUsage("test", DailyLimitSettings(slow_down_at=0.9, slow_down_factor=0.25), get_logger("test"))
    assert usage.factor() == 1.0
    with structlog.testing.capture_logs() as logs:
        usage.update(91, 100)
        usage.update(92, 100)
    assert usage.factor() == 0.25 and usage.slowed
    assert [e["event"] for e in logs] == ["crm daily allocation nearly used up: slowing down"]
    usage.update(10, 100)
    assert usage.factor() == 1.0


# ----------------------------------------------------------------------------- outcomes

DAY = datetime(2026, 3, 2, tzinfo=UTC)


def opp(key: str, *, created: int, won: bool = False, closed: bool = False, closed_on: int | None = None,
        amount: float | None = None) -> Opportunity:
    return Opportunity(key, DAY + timedelta(days=created), "stage", won, closed or won,
                       DAY + timedelta(days=closed_on) if closed_on is not None else None, amount, "EUR")


def test_an_outcome_without_opportunities_is_open_or_converted() -> None:
    assert Outcome.of("L1", converted=False, converted_at=DAY).status is OutcomeState.OPEN
    assert Outcome.of("L1", converted=False, converted_at=DAY).converted_at is None  # no date without a conversion
    converted = Outcome.of("L1", converted=True, converted_at=DAY, fields={"IsConverted": True})
    assert (converted.status, converted.reached, converted.converted_at) == (
        OutcomeState.CONVERTED, (OutcomeState.CONVERTED,), DAY)
    assert converted.fields == {"IsConverted": True} and converted.opportunities == 0


def test_the_opportunity_that_stands_for_a_lead_is_won_else_open_else_the_last_lost() -> None:
    lost_early = opp("a", created=0, closed=True, closed_on=3, amount=10)
    lost_late = opp("b", created=1, closed=True, closed_on=9, amount=20)
    open_late = opp("c", created=5, amount=30)
    open_early = opp("d", created=2, amount=40)
    won_late = opp("e", created=3, won=True, closed_on=20, amount=50)
    won_early = opp("f", created=4, won=True, closed_on=12, amount=60)
    every = [lost_early, lost_late, open_late, open_early, won_late, won_early]
    assert Outcome.of("L", converted=True, opportunities=every).opportunity_id == "f"
    assert Outcome.of("L", converted=True, opportunities=every[:4]).opportunity_id == "d"
    assert Outcome.of("L", converted=True, opportunities=every[:2]).opportunity_id == "b"
    won = Outcome.of("L", converted=False, opportunities=every)
    assert won.converted and won.converted_at == DAY  # an opportunity means a conversion, dated by the first one
    assert (won.status, won.amount, won.currency, won.closed_at, won.opportunities) == (
        OutcomeState.WON, 60, "EUR", DAY + timedelta(days=12), 6)
    assert won.reached == (OutcomeState.CONVERTED, OutcomeState.OPPORTUNITY, OutcomeState.WON)
    lost = Outcome.of("L", converted=True, converted_at=DAY - timedelta(days=1), opportunities=[lost_early])
    assert lost.reached[-1] is OutcomeState.LOST and lost.converted_at == DAY - timedelta(days=1)


def test_an_open_opportunity_has_no_close_date_even_when_the_crm_has_an_expected_one() -> None:
    expected = Opportunity("o", DAY, "Prospecting", False, False, DAY + timedelta(days=90), 100.0, "USD")
    outcome = Outcome.of("L", converted=True, opportunities=[expected])
    assert outcome.status is OutcomeState.OPPORTUNITY and outcome.closed_at is None
