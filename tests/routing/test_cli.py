"""`leadroute check` and `leadroute simulate`, as a RevOps user runs them."""

from __future__ import annotations

import json
from pathlib import Path

from typer.testing import CliRunner

from worker.cli.commands import app

EXAMPLE = "config/routing.example.yaml"
LEADS = "config/leads.example.csv"
runner = CliRunner()


def jsonl(output: str) -> list[dict]:
    return [json.loads(line) for line in output.splitlines() if line.startswith("{")]


def test_check_accepts_the_shipped_example() -> None:
    result = runner.invoke(app, ["check", EXAMPLE])
    assert result.exit_code == 0, result.output
    assert "OK" in result.output and "8 reps" in result.output


def test_check_lists_every_error_and_exits_1(tmp_path: Path) -> None:
    bad = Path(EXAMPLE).read_text().replace("members: [sarah, mike]", "members: [sarah, mikey]")
    bad = bad.replace("assign: {pool: smb}", "assign: {pool: smbb}", 1)
    path = tmp_path / "routing.yaml"
    path.write_text(bad)
    result = runner.invoke(app, ["check", str(path)])
    assert result.exit_code == 1
    assert "unknown rep 'mikey' (did you mean 'mike'?)" in result.output
    assert "unknown pool 'smbb' (did you mean 'smb'?)" in result.output
    assert "2 error(s)" in result.output


def test_simulate_routes_the_example_export_as_json_lines() -> None:
    result = runner.invoke(app, ["simulate", "--config", EXAMPLE, "--leads", LEADS, "--format", "jsonl"])
    assert result.exit_code == 0, result.output
    rows = jsonl(result.output)
    assert len(rows) == 36
    assert {"lead_id", "owner", "rule", "reason", "skipped"} <= set(rows[0])
    by_id = {r["lead_id"]: r for r in rows}
    assert by_id["L001"]["owner"] == "sarah"  # named account by domain
    assert by_id["L002"]["owner"] == "queue:triage"  # account owner out of office, no backup
    assert by_id["L005"]["skipped"] == {"mike": "at_capacity"}
    assert by_id["L022"]["unreadable"] == ["country"]
    assert by_id["L024"]["rule"] == "demo-requests-smb"  # free-mail domain matches no account
    assert by_id["L026"]["owner"] == "queue:partners"


def test_simulate_table_prints_the_summary_first_with_pool_balance_among_the_eligible() -> None:
    result = runner.invoke(app, ["simulate", "-c", EXAMPLE, "-l", LEADS], env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    assert "36 leads" in result.output
    assert "Leads per owner" in result.output and "Leads per rule" in result.output
    # raj is out of office for every smb lead and kim outside hours for one: neither is owed those leads
    assert ("pool smb (round_robin): 12 leads; tom 6 of 12 eligible (expected 6.5), raj 0 of 0 eligible, "
            "kim 6 of 11 eligible (expected 5.5); max/min 1.18, gini 0.042") in result.output
    assert "passed over (not counted against them): raj ooo 12; kim outside_hours 1" in result.output
    assert "[unreadable: country]" in result.output
    assert result.output.index("Leads per rule") < result.output.index("Decisions") < result.output.index("L001")


def test_unreadable_rows_are_reported_by_line_and_the_rest_routed(tmp_path: Path) -> None:
    leads = tmp_path / "leads.csv"
    leads.write_text(
        "id,country,employees,lead_source\n"
        "A,US,10,Demo Request\n"
        "B,US,10,Demo Request,extra\n"
        "C,DE,5000,Web\n"
    )
    result = runner.invoke(app, ["simulate", "-c", EXAMPLE, "-l", str(leads), "-f", "jsonl"])
    assert result.exit_code == 2
    assert [r["lead_id"] for r in jsonl(result.output)] == ["A", "C"]
    assert "leads.csv:3: expected 4 columns as in the header, found 5" in result.output


def test_json_lines_input_with_a_broken_line(tmp_path: Path) -> None:
    leads = tmp_path / "leads.jsonl"
    leads.write_text('{"id": "A", "country": "DE", "employees": 4000}\n{not json\n[1, 2]\n')
    result = runner.invoke(app, ["simulate", "-c", EXAMPLE, "-l", str(leads), "-f", "jsonl", "--at", "2026-12-01T17:00:00Z"])
    assert result.exit_code == 2
    assert [r["owner"] for r in jsonl(result.output)] == ["sarah"]
    assert "leads.jsonl:2: invalid JSON" in result.output and "leads.jsonl:3: expected a JSON object" in result.output


def test_starting_loads_and_routing_time_are_honoured(tmp_path: Path) -> None:
    leads = tmp_path / "leads.csv"
    leads.write_text("id,country,employees\nA,DE,4000\n")
    loads = tmp_path / "loads.json"
    loads.write_text('{"sarah": 25, "mike": 0}')
    args = ["simulate", "-c", EXAMPLE, "-l", str(leads), "-f", "jsonl", "--at", "2026-12-01T17:00:00Z"]
    (row,) = jsonl(runner.invoke(app, args).output)
    assert row["owner"] == "sarah" and row["routed_at"] == "2026-12-01T17:00:00+00:00"  # tie: file order
    (row,) = jsonl(runner.invoke(app, [*args, "--loads", str(loads)]).output)
    assert row["owner"] == "mike" and row["skipped"] == {"sarah": "at_capacity"}


def test_a_missing_lead_file_is_a_clear_error() -> None:
    result = runner.invoke(app, ["simulate", "-c", EXAMPLE, "-l", "nope.csv"])
    assert result.exit_code == 1
    assert "nope.csv: no such file" in result.output
