"""`leadroute check` with the static checks, as CI runs it: `--json` tags every warning with its check,
`--strict` makes warnings fatal (exit 1), errors exit 1 as before, and the horizon is an option."""

from __future__ import annotations

import json
import shlex
import textwrap
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from tests.routing.test_checks import EXAMPLE, TEAM, line_of
from worker.cli.commands import app
from worker.routing.checks import COVERAGE_GAP, OVERLAPPING_TERRITORIES, SHADOWED_RULE, UNREACHABLE_REP


def config(rules: str) -> str:
    return TEAM + "rules:\n" + textwrap.indent(textwrap.dedent(rules), "  ")


runner = CliRunner()
CLEAN = config("""\
    - {name: web, when: {lead_source: Web}, assign: {rep: ann}}
    - {name: rest, assign: {pool: all}}
    """)


def write(tmp_path: Path, text: str) -> str:
    path = tmp_path / "routing.yaml"
    path.write_text(text)
    return str(path)


def test_check_json_tags_every_warning_with_its_check() -> None:
    result = runner.invoke(app, ["check", str(EXAMPLE), "--json", "--at", "2026-12-01T12:00:00Z"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert [w["check"] for w in data["warnings"]] == (
        [OVERLAPPING_TERRITORIES] * 2 + ["config"] * 3 + [COVERAGE_GAP] * 4 + [UNREACHABLE_REP])  # the manager, maria
    gap = data["warnings"][5]
    assert gap["line"] == 105 and gap["path"] == "territories.emea"
    assert gap["message"].startswith("emea leads with no other facts reach")


def test_strict_makes_warnings_fatal_in_text_and_json(tmp_path: Path) -> None:
    shadowed = write(tmp_path, config("""\
        - {name: web, when: {lead_source: [Web, Event]}, assign: {rep: ann}}
        - {name: event, when: {lead_source: Event}, assign: {rep: bob}}
        - {name: rest, assign: {pool: all}}
        """))
    relaxed = runner.invoke(app, ["check", shadowed])
    assert relaxed.exit_code == 0 and "rule 'event' can never match" in relaxed.output
    strict = runner.invoke(app, ["check", shadowed, "--strict"])
    assert strict.exit_code == 1 and "1 warning(s); --strict makes them fatal." in strict.output
    assert "OK" not in strict.output
    as_json = runner.invoke(app, ["check", shadowed, "--strict", "--json"])
    assert as_json.exit_code == 1
    line = line_of(Path(shadowed).read_text(), "name: event")
    assert [(w["check"], w["line"]) for w in json.loads(as_json.stdout)["warnings"]] == [(SHADOWED_RULE, line)]


def test_strict_passes_a_clean_config_and_errors_still_exit_1(tmp_path: Path) -> None:
    clean = runner.invoke(app, ["check", write(tmp_path, CLEAN), "--strict", "--json"])
    assert clean.exit_code == 0, clean.output
    assert json.loads(clean.stdout)["warnings"] == []
    broken = runner.invoke(app, ["check", write(tmp_path, CLEAN.replace("pool: all", "pool: al")), "--json"])
    assert broken.exit_code == 1 and json.loads(broken.stdout)["errors"][0]["check"] == "config"


@pytest.mark.parametrize("days", ["0", "x"])
def test_a_bad_horizon_is_refused(tmp_path: Path, days: str) -> None:
    assert runner.invoke(app, ["check", write(tmp_path, CLEAN), "--ooo-days", days]).exit_code == 2


# --- the example CI workflow ---------------------------------------------------------------------

WORKFLOW = EXAMPLE.parents[1] / "docs/ci/routing-check.yml"


def workflow_commands() -> list[list[str]]:
    """Every `leadroute ...` command line the workflow runs, as arguments."""
    steps = yaml.safe_load(WORKFLOW.read_text())["jobs"]["check-and-replay"]["steps"]
    lines = [line.strip() for step in steps for line in step.get("run", "").splitlines()]
    return [shlex.split(line.split(" 2>&1")[0].split(" >")[0].split(" ||")[0])[1:]
            for line in lines if line.startswith("leadroute ")]


def test_the_workflow_runs_on_pull_requests_changing_the_routing_config_and_may_comment() -> None:
    data = yaml.safe_load(WORKFLOW.read_text())
    assert data[True]["pull_request"]["paths"] == [data["env"]["ROUTING"]]  # YAML 1.1 reads the `on:` key as True
    assert data["permissions"]["pull-requests"] == "write"


def test_the_workflow_calls_check_strict_and_replay_with_options_they_accept() -> None:
    commands = workflow_commands()
    assert [c[0] for c in commands] == ["check", "check", "replay", "replay"]
    assert "--json" in commands[0] and "--strict" in commands[1]
    assert all(c[c.index("--against") + 1] == "base-routing.yaml" for c in commands[2:])
    for command in commands:
        helps = runner.invoke(app, [command[0], "--help"], env={"COLUMNS": "200"}).output
        assert all(option in helps for option in command if option.startswith("--")), command


def test_the_workflows_check_step_fails_on_warnings_and_passes_a_clean_config(tmp_path: Path) -> None:
    strict = workflow_commands()[1]
    for text, code in ((EXAMPLE.read_text(), 1), (CLEAN, 0)):
        args = [a.replace("$ROUTING", write(tmp_path, text)) for a in strict]
        assert runner.invoke(app, args).exit_code == code
