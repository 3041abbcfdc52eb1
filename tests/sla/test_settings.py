"""The ``sla:`` section: what a RevOps user may write, and the errors they get when it is wrong."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
import yaml
from pydantic import ValidationError

from connectors.settings import ConnectorsConfig
from worker.config import RoutingConfig
from worker.sla.settings import (
    ClockKind,
    LadderAction,
    OnRepAway,
    SlaSettings,
    compile_sla,
    connectors_with_signals,
    format_duration,
    parse_duration,
)

from .conftest import SLA


def _raw() -> dict[str, Any]:
    return yaml.safe_load(SLA)


def test_the_issue_example_is_valid(config: RoutingConfig) -> None:
    check = compile_sla(_raw(), config)
    assert check.ok and check.compiled is not None
    hot, warm = check.compiled.tiers
    assert hot.acknowledge_within == timedelta(minutes=15) and hot.clock is ClockKind.WALL
    assert [(s.after, s.action) for s in hot.ladder] == [
        (timedelta(minutes=10), LadderAction.REMIND),
        (timedelta(minutes=15), LadderAction.ESCALATE),
        (timedelta(minutes=30), LadderAction.REASSIGN),
    ]
    assert hot.max_reassignments == 2
    assert warm.clock is ClockKind.BUSINESS_HOURS and warm.acknowledge_within == timedelta(hours=4)
    assert check.compiled.settings.sweep_every == timedelta(seconds=30)
    assert check.compiled.settings.on_rep_away is OnRepAway.REASSIGN_NOW


def test_first_matching_tier_wins_and_leads_matching_none_get_no_sla(config: RoutingConfig) -> None:
    compiled = compile_sla(_raw(), config).compiled
    assert compiled is not None
    assert compiled.tier_for({"lead_source": "Demo Request", "score": 95}).name == "hot"
    assert compiled.tier_for({"lead_source": "Demo Request", "score": 50}).name == "warm"
    assert compiled.tier_for({"lead_source": "Webinar", "score": 10}) is None


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("30s", 30), ("15m", 900), ("4h", 14400), ("1d", 86400), ("1h30m", 5400), ("1.5h", 5400), (" 2 m ", 120)],
)
def test_durations_are_written_with_a_unit(text: str, seconds: int) -> None:
    assert parse_duration(text) == timedelta(seconds=seconds)


@pytest.mark.parametrize("bad", [15, "15", "15 minutes", "", "m", True])
def test_durations_without_a_unit_are_refused_with_a_hint(bad: Any) -> None:
    with pytest.raises(ValueError, match=r"unit|not a duration"):
        parse_duration(bad)


def test_format_duration_is_the_short_form() -> None:
    assert [format_duration(timedelta(seconds=s)) for s in (0, 90, 900, 14400, 93600)] == ["0s", "1m30s", "15m", "4h", "1d2h"]


def _errors(raw: dict[str, Any], config: RoutingConfig) -> list[tuple[tuple[str | int, ...], str]]:
    check = compile_sla(raw, config)
    assert not check.ok and check.compiled is None
    return check.errors


def test_ladder_steps_must_be_in_increasing_after_and_the_error_points_at_the_step(config: RoutingConfig) -> None:
    raw = _raw()
    raw["tiers"][0]["ladder"][2]["after"] = "12m"
    [(path, message)] = _errors(raw, config)
    assert path == ("sla", "tiers", 0, "ladder", 2, "after")
    assert "after 12m must be later than the step before it (after 15m)" in message


def test_unknown_action_suggests_the_nearest(config: RoutingConfig) -> None:
    raw = _raw()
    raw["tiers"][0]["ladder"][2]["action"] = "reasign"
    [(path, message)] = _errors(raw, config)
    assert path == ("sla", "tiers", 0, "ladder", 2, "action")
    assert "did you mean 'reassign'?" in message and "remind, escalate, reassign" in message


def test_steps_after_a_reassign_are_refused(config: RoutingConfig) -> None:
    raw = _raw()
    raw["tiers"][0]["ladder"].append({"after": "45m", "action": "remind"})
    [(path, message)] = _errors(raw, config)
    assert path == ("sla", "tiers", 0, "ladder", 3)
    assert "make reassign the last step" in message


def test_unknown_keys_get_suggestions_at_every_level(config: RoutingConfig) -> None:
    raw = _raw()
    raw["sweep_evry"] = "30s"
    raw["tiers"][1]["clok"] = "wall"
    raw["acknowledged_when"]["hubspt"] = {"field": "hs_lead_status", "exists": True}
    errors = dict(_errors(raw, config))
    assert errors[("sla", "sweep_evry")] == "unknown key 'sweep_evry' (did you mean 'sweep_every'?)"
    assert errors[("sla", "tiers", 1, "clok")] == "unknown key 'clok' (did you mean 'clock'?)"
    assert errors[("sla", "acknowledged_when", "hubspt")] == "unknown key 'hubspt' (did you mean 'hubspot'?)"


def test_unitless_window_and_unknown_clock(config: RoutingConfig) -> None:
    raw = _raw()
    raw["tiers"][0]["acknowledge_within"] = 15
    raw["tiers"][1]["clock"] = "office"
    errors = dict(_errors(raw, config))
    assert "has no unit; write e.g. '15m'" in errors[("sla", "tiers", 0, "acknowledge_within")]
    assert "'office' is not one of 'wall' or 'business_hours'" in errors[("sla", "tiers", 1, "clock")]


def test_tier_conditions_are_checked_against_the_routing_config(config: RoutingConfig) -> None:
    raw = _raw()
    raw["tiers"][0]["when"] = {"lead_sorce": "Demo Request"}
    raw["tiers"][1]["when"] = {"territory": "emea"}
    errors = dict(_errors(raw, config))
    assert "did you mean 'lead_source'?" in errors[("sla", "tiers", 0, "when", "lead_sorce")]
    assert "unknown territory 'emea'" in errors[("sla", "tiers", 1, "when", "territory")]


def test_duplicate_tier_names(config: RoutingConfig) -> None:
    raw = _raw()
    raw["tiers"][1]["name"] = "hot"
    [(path, message)] = _errors(raw, config)
    assert path == ("sla", "tiers", 1, "name") and "duplicate tier name 'hot'" in message


def test_a_section_that_is_not_a_mapping(config: RoutingConfig) -> None:
    [(path, _)] = _errors(["hot"], config)  # type: ignore[arg-type]
    assert path == ("sla",)


def test_warnings_do_not_stop_loading(config: RoutingConfig) -> None:
    raw = _raw()
    raw["tiers"].insert(0, {"name": "all", "acknowledge_within": "1d", "ladder": [{"after": "1d", "action": "escalate"}]})
    check = compile_sla(raw, config)
    assert check.ok
    warnings = dict(check.warnings)
    assert "tier 'hot' can never match" in warnings[("sla", "tiers", 1)]
    assert "max_reassignments is never used" in warnings[("sla", "tiers", 0, "max_reassignments")]
    assert "reps without a manager (ana, maria)" in warnings[("sla", "tiers", 0, "ladder")]


def test_no_section_means_no_sla(config: RoutingConfig) -> None:
    check = compile_sla(None, config)
    assert check.ok and check.compiled is not None and check.compiled.tiers == ()
    assert check.compiled.tier_for({"score": 100}) is None


def test_models_are_frozen_and_strict() -> None:
    settings = SlaSettings.model_validate(_raw())
    with pytest.raises(ValidationError):
        settings.sweep_every = timedelta(seconds=1)  # type: ignore[misc]
    with pytest.raises(ValidationError):
        SlaSettings.model_validate({"tiers": [{"name": "x", "acknowledge_within": "0s"}]})


def test_the_sla_signal_replaces_the_connector_signal() -> None:
    connectors = ConnectorsConfig.model_validate({"salesforce": {}, "hubspot": {}})
    settings = SlaSettings.model_validate(
        {"acknowledged_when": {"salesforce": {"field": "First_Touch__c", "exists": True}}}
    )
    merged = connectors_with_signals(connectors, settings)
    assert merged.salesforce is not None and merged.salesforce.acknowledged_when is not None
    assert merged.salesforce.acknowledged_when.field == "First_Touch__c"
    assert merged.hubspot == connectors.hubspot  # untouched: its own default signal stays
    assert connectors_with_signals(connectors, None) is connectors
