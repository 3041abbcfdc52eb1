"""Hand-off triggers in the config (issue 17): ``triggers:`` validated like the rest, with file:line errors,
and each trigger routing by its own rules or a named subset of the top-level ones."""

from __future__ import annotations

from pathlib import Path

from typer.testing import CliRunner

from tests.routing.test_config import BASE, errors_for, line_of
from worker.cli.commands import app
from worker.config import parse_config
from worker.domain.normalize import normalize_lead
from worker.routing.engine import Router
from worker.routing.state import InMemoryState
from worker.routing.triggers import takes, truths

TRIGGERS = BASE.replace("version: 1\n", "version: 1\nfields: [lifecycle_stage]\n") + (
    "triggers:\n"
    "  - name: mql\n"
    "    when: {score: {gte: 80}, lifecycle_stage: MQL}\n"
    "    use_rules: [emea, smb]\n"
    "  - name: big-account\n"
    "    when: {employees: {gte: 5000}}\n"
    "    refire: true\n"
    "    rules:\n"
    "      - {name: to-sarah, when: {territory: emea}, assign: {rep: sarah}}\n"
)


def test_triggers_load_with_their_own_rules_or_a_named_subset() -> None:
    config = parse_config(TRIGGERS, "config/routing.yaml")
    mql, big = config.triggers["mql"], config.triggers["big-account"]
    assert [r.name for r in mql.config.rules] == ["emea", "smb"] and mql.refire is False
    assert [r.name for r in big.config.rules] == ["to-sarah"] and big.refire is True
    assert config.triggers["mql"].config.version_hash == config.version_hash  # decisions carry the config's version
    assert [r.name for r in config.rules] == ["emea", "smb"]  # new leads route as before

    lead = normalize_lead({"id": "L1", "score": "85", "lifecycle_stage": "mql", "employees": "6,000", "country": "DE"})
    assert truths(config, lead) == {"mql": True, "big-account": True}
    assert truths(config, normalize_lead({"id": "L2", "score": 79, "lifecycle_stage": "MQL"})) == {
        "mql": False, "big-account": False}  # 80 is the line: 79 is under it
    assert takes(big.config, lead) is True
    assert takes(big.config, normalize_lead({"id": "L3", "employees": 6000, "country": "US"})) is False
    decision = Router(big.config, InMemoryState()).route(lead)
    assert (decision.owner, decision.rule) == ("sarah", "to-sarah")


def test_a_trigger_naming_an_unknown_rule_is_an_error_at_its_line() -> None:
    text = TRIGGERS.replace("use_rules: [emea, smb]", "use_rules: [emea, smbb]")
    assert errors_for(text) == [
        f"config/routing.yaml:{line_of(text, 'smbb')}: triggers[0].use_rules[1]: unknown rule 'smbb' (did you mean 'smb'?)"]


def test_trigger_conditions_and_targets_are_checked_like_rules() -> None:
    text = (TRIGGERS.replace("lifecycle_stage: MQL", "lifecycle_stag: MQL")
            .replace("assign: {rep: sarah}", "assign: {rep: sarha}"))
    assert errors_for(text) == [
        f"config/routing.yaml:{line_of(text, 'rep: sarha')}: triggers[1].rules[0].assign.rep: unknown rep 'sarha' "
        "(did you mean 'sarah'?)",
        f"config/routing.yaml:{line_of(text, 'lifecycle_stag:')}: triggers[0].when.lifecycle_stag: unknown lead field "
        "'lifecycle_stag' (did you mean 'lifecycle_stage'?); declare custom fields under 'fields:'",
    ]


def test_a_trigger_needs_rules_or_use_rules_and_a_unique_name() -> None:
    neither = TRIGGERS.replace("    use_rules: [emea, smb]\n", "")
    assert errors_for(neither) == [f"config/routing.yaml:{line_of(neither, '- name: mql')}: triggers[0]: give the trigger's "
                                   "own rules or use_rules (names of top-level rules), one of them"]
    both = TRIGGERS.replace("    refire: true\n", "    use_rules: [smb]\n")
    assert "not both" in errors_for(both)[0]
    twice = TRIGGERS.replace("name: big-account", "name: mql")
    assert errors_for(twice) == [f"config/routing.yaml:{line_of(twice, 'name: mql') + 3}: triggers[1].name: "
                                 "duplicate trigger name 'mql'"]
    typo = TRIGGERS.replace("refire: true", "refires: true")
    assert "triggers[1].refires: unknown key 'refires' (did you mean 'refire'?)" in errors_for(typo)[0]


def test_leadroute_check_catches_a_trigger_referencing_an_unknown_rule(tmp_path: Path) -> None:
    path = tmp_path / "routing.yaml"
    path.write_text(TRIGGERS.replace("use_rules: [emea, smb]", "use_rules: [emea, nope]"))
    result = CliRunner().invoke(app, ["check", str(path), "--at", "2026-12-01T12:00:00Z"])
    assert result.exit_code == 1
    assert f"{path}:{line_of(path.read_text(), 'nope')}: triggers[0].use_rules[1]: unknown rule 'nope'" in result.output


def test_a_rep_only_a_triggers_own_rule_reaches_is_not_called_unreachable() -> None:
    from datetime import UTC, datetime

    from worker.routing.checks import UNREACHABLE_REP, run_checks

    text = TRIGGERS.replace("  - id: raj\n", "  - id: raj\n  - id: ava\n").replace(
        "assign: {rep: sarah}", "assign: {rep: ava}")
    findings = run_checks(parse_config(text, "config/routing.yaml"), text, datetime(2026, 12, 1, 12, tzinfo=UTC))
    assert [f for f in findings if f.kind == UNREACHABLE_REP and "ava" in f.problem.message] == []
    alone = text.replace("assign: {rep: ava}", "assign: {rep: sarah}")
    findings = run_checks(parse_config(alone, "config/routing.yaml"), alone, datetime(2026, 12, 1, 12, tzinfo=UTC))
    assert [f.problem.message for f in findings if f.kind == UNREACHABLE_REP] == [
        "rep 'ava' can never receive a lead: in no pool a rule uses, no rule's rep, not the fallback, nobody's backup"]


def test_a_trigger_reading_a_field_a_connector_does_not_map_is_a_warning() -> None:
    text = TRIGGERS + (
        "connectors:\n"
        "  hubspot:\n"
        "    fields: {hubspotscore: score, lifecyclestage: lifecycle_stage, email: email}\n"
        "  salesforce:\n"
        "    fields: {Id: id, Email: email}\n"
    )
    config = parse_config(text, "config/routing.yaml")
    line = line_of(text, "when: {score: {gte: 80}")
    assert [str(w) for w in config.warnings if "trigger" in w.message] == [
        f"config/routing.yaml:{line}: triggers[0].when: trigger 'mql' reads 'score', 'lifecycle_stage', which the "
        "salesforce connector does not read (map it under connectors.salesforce.fields): it never fires for salesforce leads",
        f"config/routing.yaml:{line_of(text, 'employees: {gte: 5000}')}: triggers[1].when: trigger 'big-account' reads "
        "'employees', which the salesforce connector does not read (map it under connectors.salesforce.fields): it never "
        "fires for salesforce leads",
        f"config/routing.yaml:{line_of(text, 'employees: {gte: 5000}')}: triggers[1].when: trigger 'big-account' reads "
        "'employees', which the hubspot connector does not read (map it under connectors.hubspot.fields): it never fires "
        "for hubspot leads",
    ]


def test_a_rejection_status_that_reopens_to_itself_is_an_error_at_its_line() -> None:
    text = BASE + (
        "connectors:\n"
        "  salesforce:\n"
        "    rejection: {field: Status, values: [Rejected], reopen: rejected}\n"
    )
    assert errors_for(text) == [
        f"config/routing.yaml:{line_of(text, 'rejection:')}: connectors.salesforce.rejection: reopen 'rejected' is one of "
        "the rejection values: the new owner would reject it at once"]


def test_a_trigger_reading_the_account_owner_is_an_error_at_its_line() -> None:
    # routing fills in account_owner (lookup, relationships, accounts:) but the owned poll sees the CRM's lead
    # without it: such a trigger would compare two different versions of the lead, so it is refused
    text = TRIGGERS.replace("when: {employees: {gte: 5000}}", "when: {employees: {gte: 5000}, account_owner: {exists: false}}")
    assert errors_for(text) == [
        f"config/routing.yaml:{line_of(text, 'account_owner: {exists')}: triggers[1].when.account_owner: a trigger cannot "
        "read 'account_owner': the owned poll sees the lead as the CRM holds it, without the account-owner lookup or "
        "relationships routing fills in"]


def test_top_level_rules_a_trigger_uses_are_neither_shadowed_nor_leave_their_reps_unreachable() -> None:
    from datetime import UTC, datetime

    from worker.routing.checks import SHADOWED_RULE, UNREACHABLE_REP, run_checks

    # new leads all go to the SDRs (a rule without conditions first); the AE rules are only for the hand-off
    text = (TRIGGERS.replace("  - id: raj\n", "  - id: raj\n  - id: ava\n")
            .replace("rules:\n  - name: emea", "rules:\n  - name: sdr\n    assign: {pool: smb}\n  - name: emea")
            .replace("assign: {pool: enterprise}", "assign: {rep: ava}"))
    config = parse_config(text, "config/routing.yaml")
    assert [r.name for r in config.rules] == ["sdr", "emea", "smb"]
    assert [w.message for w in config.warnings if "can never match" in w.message] == []  # both used by 'mql'
    findings = run_checks(config, text, datetime(2026, 12, 1, 12, tzinfo=UTC))
    assert [f.problem.message for f in findings if f.kind in (SHADOWED_RULE, UNREACHABLE_REP)] == []
    unused = text.replace("use_rules: [emea, smb]", "use_rules: [smb]")  # 'emea' (and ava) now really are unused
    config = parse_config(unused, "config/routing.yaml")
    assert [w.message for w in config.warnings if "can never match" in w.message] == [
        "rule 'emea' can never match: rule 'sdr' above it has no conditions and matches every lead"]
    findings = run_checks(config, unused, datetime(2026, 12, 1, 12, tzinfo=UTC))
    assert [f.kind for f in findings if f.kind in (SHADOWED_RULE, UNREACHABLE_REP)] == [UNREACHABLE_REP]
    covering = text.replace("  - name: sdr\n    assign: {pool: smb}", "  - name: sdr\n    when: {employees: {gte: 0}}\n"
                            "    assign: {pool: smb}")  # takes every lead 'emea' would: shadowed for new leads only
    findings = run_checks(parse_config(covering, "config/routing.yaml"), covering, datetime(2026, 12, 1, 12, tzinfo=UTC))
    assert [f.problem.message for f in findings if f.kind in (SHADOWED_RULE, UNREACHABLE_REP)] == []


def test_a_trigger_reading_a_segment_that_reads_the_account_owner_is_an_error_at_its_line() -> None:
    text = (TRIGGERS.replace("rules:\n  - name: emea", "segments:\n  owned: {account_owner: {exists: true}}\n"
                             "rules:\n  - name: emea")
            .replace("when: {employees: {gte: 5000}}", "when: {segment: owned}"))
    assert errors_for(text) == [
        f"config/routing.yaml:{line_of(text, 'when: {segment: owned}')}: triggers[1].when.segment: a trigger cannot "
        "read 'segment': segment 'owned' reads 'account_owner', which the owned poll does not have (routing fills it in)"]
    fine = text.replace("account_owner: {exists: true}", "employees: {gte: 5000}")
    assert parse_config(fine, "config/routing.yaml").triggers["big-account"].refire is True
