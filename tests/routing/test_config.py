"""The config file is the RevOps user's main interface: every mistake gets file, line, field and a fix."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from worker.config import ConfigError, load_config, parse_config

BASE = textwrap.dedent(
    """\
    version: 1
    timezone: America/New_York
    reps:
      - id: sarah
        timezone: America/Los_Angeles
        hours: {days: [mon, tue, wed, thu, fri], start: "09:00", end: "17:30"}
        backup: tom
      - id: tom
      - id: raj
    territories:
      emea: {countries: [DE, FR]}
    pools:
      enterprise: {members: [sarah, tom], strategy: least_loaded}
      smb: {members: [tom, raj]}
    queues:
      triage: {salesforce: "00G000000000001", hubspot: "1"}
    rules:
      - name: emea
        when: {territory: emea, employees: {gte: 1000}}
        assign: {pool: enterprise}
      - name: smb
        when: {employees: {lt: 100}}
        assign: {pool: smb}
    fallback: {queue: triage}
    """
)


def line_of(text: str, needle: str) -> int:
    for number, line in enumerate(text.splitlines(), start=1):
        if needle in line:
            return number
    raise AssertionError(f"{needle!r} not in config")


def errors_for(text: str) -> list[str]:
    with pytest.raises(ConfigError) as caught:
        parse_config(text, "config/routing.yaml")
    return [str(p) for p in caught.value.problems]


def test_the_base_config_is_valid_and_versioned() -> None:
    config = parse_config(BASE, "config/routing.yaml")
    assert len(config.version_hash) == 12
    assert config.warnings == ()
    assert parse_config(BASE).version_hash == config.version_hash


def test_the_version_hash_changes_when_a_rule_changes() -> None:
    changed = BASE.replace("gte: 1000", "gte: 999")
    assert parse_config(changed).version_hash != parse_config(BASE).version_hash


def test_the_shape_from_the_issue_is_accepted_as_is() -> None:
    config = load_config(Path("config/routing.example.yaml"))
    assert config.pools["enterprise"].members == ("sarah", "mike")
    assert config.reps["sarah"].capacity == 25


def test_unknown_pool_names_the_line_and_suggests_the_nearest() -> None:
    text = BASE.replace("assign: {pool: enterprise}", "assign: {pool: enterprize}")
    assert errors_for(text) == [
        f"config/routing.yaml:{line_of(text, 'enterprize')}: rules[0].assign.pool: "
        "unknown pool 'enterprize' (did you mean 'enterprise'?)"
    ]


def test_unknown_rep_in_a_pool() -> None:
    text = BASE.replace("members: [tom, raj]", "members: [tom, rajj]")
    assert errors_for(text) == [
        f"config/routing.yaml:{line_of(text, 'rajj')}: pools.smb.members[1]: unknown rep 'rajj' (did you mean 'raj'?)"
    ]


def test_unknown_backup_rep() -> None:
    text = BASE.replace("backup: tom", "backup: tim")
    (error,) = errors_for(text)
    assert error.startswith(f"config/routing.yaml:{line_of(text, 'backup: tim')}: reps[0].backup: unknown rep 'tim'")
    assert "did you mean 'tom'" in error


def test_duplicate_rep_ids() -> None:
    text = BASE.replace("  - id: raj", "  - id: tom\n  - id: raj")
    third_rep_line = [i for i, line in enumerate(text.splitlines(), 1) if line == "  - id: tom"][1]
    assert errors_for(text) == [f"config/routing.yaml:{third_rep_line}: reps[2].id: duplicate rep id 'tom'"]


def test_backup_cycles_are_coverage_chains_and_load() -> None:
    pair = BASE.replace("  - id: tom\n", "  - id: tom\n    backup: sarah\n")
    assert parse_config(pair, "config/routing.yaml").reps["tom"].backup == "sarah"
    triangle = BASE.replace("  - id: tom\n", "  - id: tom\n    backup: raj\n").replace(
        "  - id: raj\n", "  - id: raj\n    backup: sarah\n"
    )
    assert parse_config(triangle, "config/routing.yaml").warnings == ()


def test_a_rep_cannot_be_their_own_backup() -> None:
    text = BASE.replace("  - id: raj\n", "  - id: raj\n    backup: raj\n")
    assert errors_for(text) == [
        f"config/routing.yaml:{line_of(text, 'backup: raj')}: reps[2].backup: rep 'raj' cannot be their own backup"
    ]


def test_unknown_time_zone_suggests_the_real_one() -> None:
    text = BASE.replace("America/Los_Angeles", "America/Los_Angles")
    assert errors_for(text) == [
        f"config/routing.yaml:{line_of(text, 'Los_Angles')}: reps[0].timezone: unknown time zone "
        "'America/Los_Angles' (did you mean 'America/Los_Angeles'?)"
    ]


def test_hours_must_start_before_they_end() -> None:
    text = BASE.replace('end: "17:30"', 'end: "08:00"')
    (error,) = errors_for(text)
    assert error.startswith(f"config/routing.yaml:{line_of(text, 'hours:')}: reps[0].hours: start 09:00 must be before end 08:00")


def test_empty_pools_are_rejected() -> None:
    text = BASE.replace("members: [tom, raj]", "members: []")
    assert errors_for(text) == [
        f"config/routing.yaml:{line_of(text, 'members: []')}: pools.smb.members: pool 'smb' has no members"
    ]


def test_a_missing_fallback_is_an_error_that_shows_the_fix() -> None:
    text = BASE.replace("fallback: {queue: triage}\n", "")
    (error,) = errors_for(text)
    assert error == (
        "config/routing.yaml:1: fallback: a fallback is required so no lead is ever unrouted, "
        "e.g. 'fallback: {queue: triage}'"
    )


def test_misspelt_keys_are_named_with_a_suggestion() -> None:
    text = BASE.replace("    backup: tom", "    bakup: tom")
    (error,) = errors_for(text)
    assert error == f"config/routing.yaml:{line_of(text, 'bakup')}: reps[0].bakup: unknown key 'bakup' (did you mean 'backup'?)"


def test_unknown_lead_field_in_a_rule() -> None:
    text = BASE.replace("when: {employees: {lt: 100}}", "when: {employes: {lt: 100}}")
    (error,) = errors_for(text)
    assert error.startswith(
        f"config/routing.yaml:{line_of(text, 'employes')}: rules[1].when.employes: unknown lead field 'employes' "
        "(did you mean 'employees'?)"
    )


def test_unknown_operator_and_bad_regex() -> None:
    text = BASE.replace("{lt: 100}", "{less_than: 100}")
    (error,) = errors_for(text)
    assert "rules[1].when.employees.less_than: unknown operator 'less_than'" in error
    text = BASE.replace("when: {employees: {lt: 100}}", "when: {title: {matches: '(unclosed'}}")
    (error,) = errors_for(text)
    assert "rules[1].when.title.matches: invalid regular expression '(unclosed'" in error


def test_unknown_territory_in_a_rule() -> None:
    text = BASE.replace("territory: emea", "territory: emae")
    (error,) = errors_for(text)
    assert error.endswith("rules[0].when.territory: unknown territory 'emae' (did you mean 'emea'?)")
    assert error.startswith(f"config/routing.yaml:{line_of(text, 'emae')}:")


def test_unknown_country_in_a_territory() -> None:
    text = BASE.replace("countries: [DE, FR]", "countries: [DE, Narnia]")
    assert errors_for(text) == [
        f"config/routing.yaml:{line_of(text, 'Narnia')}: territories.emea.countries[1]: unknown country 'Narnia'"
    ]


def test_unknown_queue_strategy_and_two_targets() -> None:
    text = BASE.replace("fallback: {queue: triage}", "fallback: {queue: triag}")
    assert errors_for(text)[0].endswith("fallback.queue: unknown queue 'triag' (did you mean 'triage'?)")
    text = BASE.replace("members: [tom, raj]}", "members: [tom, raj], strategy: round_robbin}")
    assert "pools.smb.strategy: 'round_robbin' is not a strategy" in errors_for(text)[0]
    text = BASE.replace("assign: {pool: smb}", "assign: {pool: smb, rep: tom}")
    assert "rules[1].assign: give exactly one target" in errors_for(text)[0]


def test_yaml_syntax_errors_name_the_line() -> None:
    text = BASE.replace("  emea: {countries: [DE, FR]}", "  emea: {countries: [DE, FR}")
    (error,) = errors_for(text)
    assert error.startswith(f"config/routing.yaml:{line_of(text, 'emea: {countries')}: invalid YAML")


def test_every_error_is_listed_not_just_the_first() -> None:
    text = BASE.replace("members: [tom, raj]", "members: [tom, rajj]").replace("{pool: enterprise}", "{pool: x}")
    assert len(errors_for(text)) == 2


def test_a_rule_after_an_unconditional_rule_is_a_warning() -> None:
    text = BASE.replace("when: {territory: emea, employees: {gte: 1000}}", "when: {}")
    config = parse_config(text, "config/routing.yaml")
    assert [str(w) for w in config.warnings] == [
        f"config/routing.yaml:{line_of(text, '- name: smb')}: rules[1]: rule 'smb' can never match: "
        "rule 'emea' above it has no conditions and matches every lead"
    ]


def test_a_missing_file_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as caught:
        load_config(tmp_path / "nope.yaml")
    assert "cannot read file" in str(caught.value)


def test_typos_deep_in_the_connectors_section_get_suggestions() -> None:
    text = BASE + "connectors:\n  salesforce:\n    objcet: Lead\n"
    (error,) = errors_for(text)
    assert error == (
        f"config/routing.yaml:{line_of(text, 'objcet')}: connectors.salesforce.objcet: "
        "unknown key 'objcet' (did you mean 'object'?)"
    )


def test_reps_and_queues_without_an_id_in_a_configured_crm_are_warned_about() -> None:
    text = BASE + "connectors:\n  hubspot: {}\n"
    config = parse_config(text, "config/routing.yaml")
    messages = [w.message for w in config.warnings]
    assert "rep 'tom' has no hubspot id: hubspot leads routed to them go to the fallback" in messages
    assert not any("queue 'triage'" in m for m in messages)  # it has a hubspot id
