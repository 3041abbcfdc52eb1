"""Relationships in the config and in the engine (issue 17); the worker path is tests/worker/test_relationship_e2e.py."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from connectors.base import DomainRecord
from worker.config import ConfigError, RoutingConfig, parse_config
from worker.routing.engine import Router
from worker.routing.state import InMemoryState
from worker.steps.relationships import _ago, _apply, _wanted, crm_lookback
from worker.store.relationships import LastOwner

BASE = """
version: 1
reps: [{id: ava, crm_ids: {salesforce: "005AVA"}}, {id: ben, crm_ids: {salesforce: "005BEN"}}]
pools: {team: {members: [ava, ben]}}
rules:
{rules}
fallback: {rep: ben}
relationships:
{relationships}
"""
NAMED = "  - {name: named-account, when: {account_owner: {exists: true}}, assign: {account_owner: true}}\n" \
        "  - {name: everyone, assign: {pool: team}}"


def config(relationships: str, rules: str = NAMED) -> RoutingConfig:
    return parse_config(BASE.replace("{rules}", rules).replace("{relationships}", relationships), "rel.yaml")


def test_a_related_owner_routes_like_an_account_owner_and_the_reason_names_the_relationship() -> None:
    router = Router(config("  - {match: recent_decision, lookback: 90d}"), InMemoryState())
    lead = {"id": "00Q2", "email": "x@acme.com", "account_owner": "ava",
            "relationship": "same-domain lead 00Q1 routed to ava (12 days ago)"}
    d = router.route(lead, at=datetime(2026, 12, 1, tzinfo=UTC))
    assert (d.owner, d.rule) == ("ava", "named-account")
    assert d.reason.startswith("named-account: same-domain lead 00Q1 routed to ava (12 days ago) -> account owner")
    assert d.facts["relationship"] == "same-domain lead 00Q1 routed to ava (12 days ago)"


def test_relationships_are_checked_with_their_lines() -> None:
    with pytest.raises(ConfigError) as err:
        config("  - {match: recent_decisions, lookback: 90d}\n  - {match: recent_decision, lookback: -1d}\n"
               "  - {match: recent_decision}")
    text = str(err.value)
    assert ("rel.yaml:10: relationships[0].match: 'recent_decisions' is not one of 'recent_decision' or "
            "'crm_recent_record' (did you mean 'recent_decision'?)") in text
    assert "rel.yaml:11: relationships[1].lookback:" in text
    assert "rel.yaml:12: relationships[2].lookback: required key 'lookback' is missing" in text


def test_relationships_without_a_rule_on_the_account_owner_warn() -> None:
    cfg = config("  - {match: recent_decision, lookback: 30d}", rules="  - {name: everyone, assign: {pool: team}}")
    assert [str(w) for w in cfg.warnings if "relationships" in str(w)] == [
        "rel.yaml:8: relationships: has no effect: no rule reads account_owner or assigns to it, "
        "and a relationship only fills in the account owner"]


@pytest.mark.parametrize(("seconds", "said"), [
    (59, "less than an hour ago"), (3600, "1 hour ago"), (86_399, "23 hours ago"), (86_400, "1 day ago"),
    (12 * 86_400 + 5, "12 days ago"),
])
def test_how_long_ago_is_said(seconds: float, said: str) -> None:
    assert _ago(seconds) == said


AT = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)
CRM_FIRST = "  - {match: crm_recent_record, lookback: 30d}\n  - {match: recent_decision, lookback: 90d}"


def record(rid: str, owner: str | None, days: float, kind: str = "lead") -> DomainRecord:
    return DomainRecord(rid, kind, owner, AT - timedelta(days=days), "acme.com")


def related(cfg: RoutingConfig, records: list[DomainRecord], last: LastOwner | None = None,
            lead_id: str = "00QNEW") -> dict[str, Any]:
    leads = [{"id": lead_id, "email": "ceo@acme.com"}]
    wanted = _wanted(cfg, leads)
    _apply(cfg, leads, wanted, {"acme.com": last} if last else {}, AT, {"acme.com": records})
    return leads[0]


def test_the_crm_record_owner_relates_the_lead_and_the_reason_says_which_record() -> None:
    lead = related(config(CRM_FIRST), [record("00QOLD", "005AVA", 12.2)])
    assert lead["account_owner"] == "ava"
    assert lead["relationship"] == "same-domain lead 00QOLD owned by ava (12 days ago)"
    contact = related(config(CRM_FIRST), [record("003C", "005BEN", 3, kind="contact")])
    assert contact["relationship"] == "same-domain contact 003C owned by ben (3 days ago)"


def test_relationships_are_tried_in_config_order() -> None:
    crm, ours = [record("00QOLD", "005AVA", 12)], LastOwner("ben", (AT - timedelta(days=2)).timestamp(), "00QOURS")
    assert related(config(CRM_FIRST), crm, ours)["account_owner"] == "ava"
    decision_first = "  - {match: recent_decision, lookback: 90d}\n  - {match: crm_recent_record, lookback: 30d}"
    lead = related(config(decision_first), crm, ours)
    assert (lead["account_owner"], lead["relationship"]) == ("ben", "same-domain lead 00QOURS routed to ben (2 days ago)")
    assert related(config(decision_first), crm)["account_owner"] == "ava"  # nothing of ours: the CRM's next


def test_the_lookback_is_per_relationship_entry() -> None:
    cfg = config("  - {match: crm_recent_record, lookback: 10d}\n  - {match: recent_decision, lookback: 90d}")
    assert crm_lookback(cfg) == 10 * 86_400
    ours = LastOwner("ben", (AT - timedelta(days=40)).timestamp(), "00QOURS")
    lead = related(cfg, [record("00QOLD", "005AVA", 10.5)], ours)  # past the CRM entry's 10 days
    assert (lead["account_owner"], lead["relationship"]) == ("ben", "same-domain lead 00QOURS routed to ben (40 days ago)")
    exactly = related(cfg, [record("00QOLD", "005AVA", 10)])  # exactly 10 days: still in
    assert exactly["account_owner"] == "ava"


def test_records_owned_by_a_queue_or_nobody_configured_or_the_lead_itself_do_not_relate() -> None:
    records = [record("00QNEW", "005BEN", 0), record("00QQ", "00G_INTAKE", 1), record("00QX", "005STRANGER", 2),
               record("00QNONE", None, 3), record("00QAVA", "005AVA", 4)]
    lead = related(config(CRM_FIRST), records)
    assert lead["relationship"] == "same-domain lead 00QAVA owned by ava (4 days ago)"
    assert "account_owner" not in related(config(CRM_FIRST), records[:4])


def test_free_mail_and_leads_with_an_owner_already_are_not_looked_up() -> None:
    cfg = config("  - {match: crm_recent_record, lookback: 30d}")
    leads = [{"id": "1", "email": "x@gmail.com"}, {"id": "2", "email": "y@acme.com"},
             {"id": "3", "email": "z@globex.com", "account_owner": "ben"}]
    assert _wanted(cfg, leads) == {1: "acme.com"}


def test_a_crm_relationship_without_a_crm_warns() -> None:
    cfg = config("  - {match: crm_recent_record, lookback: 30d}")
    assert [str(w) for w in cfg.warnings if "crm_recent_record" in str(w)] == [
        "rel.yaml:10: relationships[0]: crm_recent_record has no effect: no CRM connector is enabled to look records up in"]
