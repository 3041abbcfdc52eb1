"""Relationships in the config and in the engine (issue 17); the worker path is tests/worker/test_relationship_e2e.py."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from worker.config import ConfigError, RoutingConfig, parse_config
from worker.routing.engine import Router
from worker.routing.state import InMemoryState
from worker.steps.relationships import _ago

BASE = """
version: 1
reps: [{id: ava}, {id: ben}]
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
    assert ("rel.yaml:10: relationships[0].match: 'recent_decisions' is not one of 'recent_decision' "
            "(did you mean 'recent_decision'?)") in text
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
