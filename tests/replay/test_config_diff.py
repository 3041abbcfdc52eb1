"""The config diff in words (worker/config/diff.py): each kind of edit reads as one sentence a reviewer understands."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from tests.replay.conftest import config_a, edited, rule_index
from worker.config import load_config, parse_config
from worker.config.diff import Change, diff_configs, summary


def texts(changes: list[Change]) -> list[str]:
    return [c.text for c in changes]


def test_a_config_compared_with_itself_has_no_changes() -> None:
    example = load_config(Path("config/routing.example.yaml"))
    assert diff_configs(example, example) == []
    assert summary([]) == "no routing changes"


def test_a_threshold_moved_reads_as_the_field_the_operator_and_both_values() -> None:
    def lower(doc: dict[str, Any]) -> None:
        doc["rules"][rule_index(doc, "enterprise")]["when"]["employees"] = {"gte": 500}

    _, candidate = edited(lower)
    assert diff_configs(config_a(), candidate) == [
        Change("rule.changed", "enterprise", "rule enterprise: employees gte 1000 -> 500")]


def test_two_rules_swapped_read_as_one_move() -> None:
    def swap(doc: dict[str, Any]) -> None:
        i, j = rule_index(doc, "enterprise"), rule_index(doc, "dach")
        doc["rules"][i], doc["rules"][j] = doc["rules"][j], doc["rules"][i]

    _, candidate = edited(swap)
    assert texts(diff_configs(config_a(), candidate)) == ["rule enterprise moved from #2 to #3 (now before smb)"]


def test_rules_added_and_removed_name_their_position_condition_and_target() -> None:
    def edit(doc: dict[str, Any]) -> None:
        del doc["rules"][rule_index(doc, "partners")]
        doc["rules"].append({"name": "hot", "when": {"score": {"gte": 90}}, "assign": {"rep": "eve"}})

    _, candidate = edited(edit)
    assert texts(diff_configs(config_a(), candidate)) == [
        'rule partners removed (was #1: {"lead_source": "Partner Referral"} -> queue partners)',
        'rule hot added at #4: {"score": {"gte": 90}} -> rep eve',
    ]


def test_pool_members_rep_settings_territories_and_the_fallback_are_each_one_line() -> None:
    def edit(doc: dict[str, Any]) -> None:
        doc["pools"]["smb"]["members"] = ["ana", "ben", "gus"]
        doc["pools"]["dach"]["strategy"] = "least_loaded"
        doc["reps"].append({"id": "gus"})
        next(r for r in doc["reps"] if r["id"] == "dora")["capacity"] = 1
        doc["territories"] = {"emea": {"countries": ["DE", "FR"]}}
        doc["fallback"] = {"rep": "eve"}
        doc["accounts"]["company3.com"] = "fay"

    _, candidate = edited(edit)
    assert texts(diff_configs(config_a(), candidate)) == [
        "pool dach: strategy round_robin -> least_loaded",
        "pool smb: members: added gus; removed cara",
        'territory emea added: {"countries": ["DE", "FR"], "postcodes": [], "states": []}',
        "rep gus added",
        "rep dora: capacity added (1)",
        "fallback: queue triage -> rep eve",
        "1 account owner(s) changed: company3.com eve -> fay",
    ]
    assert summary(diff_configs(config_a(), candidate)) == (
        "2 pools changed, 1 territory added, 1 rep added, 1 rep changed, 1 fallback changed, 1 accounts changed")


def test_settings_that_do_not_route_are_left_out_and_a_target_change_is_named() -> None:
    doc = yaml.safe_load(Path("config/routing.example.yaml").read_text())
    old = parse_config(yaml.safe_dump(doc), "old.yaml")
    doc.setdefault("worker", {})["poll_every"] = "30s"
    doc["rules"][2]["assign"] = {"pool": "mid-market", "require_skills": ["fintech"]}
    doc["hours"]["end"] = "18:00"
    new = parse_config(yaml.safe_dump(doc), "new.yaml")
    assert texts(diff_configs(old, new)) == [
        "rule enterprise-emea: target pool enterprise -> pool mid-market (skills: fintech)",
        "hours.end: 17:00:00 -> 18:00:00",
    ]
