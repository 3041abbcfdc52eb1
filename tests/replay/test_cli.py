"""``leadroute replay`` end to end: the ledger or export files in, table, JSON or HTML out."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from tests.replay.conftest import CONFIG_A, T0, edited, rule_index
from worker.cli import app

WINDOW = ["--since", T0.isoformat(), "--until", "2026-03-03"]
TOP = {"replay", "changes", "config_diff", "volume", "fairness", "fallback", "unreadable", "unrecorded_fields",
       "sla_exposure", "fidelity"}


def lower_threshold(doc: dict[str, Any]) -> None:
    doc["rules"][rule_index(doc, "enterprise")]["when"]["employees"] = {"gte": 500}


@pytest.fixture
def configs(tmp_path: Path) -> tuple[Path, Path]:
    """(config A, the candidate with the enterprise threshold at 500) as files."""
    a, candidate = tmp_path / "a.yaml", tmp_path / "candidate.yaml"
    a.write_text(CONFIG_A, encoding="utf-8")
    candidate.write_text(edited(lower_threshold)[0], encoding="utf-8")
    return a, candidate


def run(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(app, ["replay", *args], env={"LEADROUTE_PROGRESS": "0"})
    return result.exit_code, result.stdout, result.stderr


def test_json_has_the_documented_shape_and_the_changes(ledger_url: str, configs: tuple[Path, Path]) -> None:
    a, candidate = configs
    code, out, err = run("--config", str(candidate), "--against", str(a), "--ledger", ledger_url, "--format", "json",
                         *WINDOW)
    assert code == 0, err
    data = json.loads(out)
    assert set(data) == TOP
    assert {"source", "since", "until", "baseline", "candidate", "events_read", "decisions_skipped", "start_state",
            "leads", "first_routed_at", "last_routed_at"} == set(data["replay"])
    assert data["replay"]["leads"] == 42 and data["replay"]["source"] == "the ledger"
    assert {"leads", "share", "owner", "owner_only", "rule", "pool", "samples"} == set(data["changes"])
    assert data["changes"]["rule"] == 11  # the non-partner leads of 600 or 800 employees (test_replay works them out)
    sample = data["changes"]["samples"]["rule"][0]
    assert set(sample) == {"lead", "routed_at", "before", "after"}
    assert set(sample["before"]) == {"owner", "rule", "pool", "reason"}
    assert (sample["before"]["rule"], sample["after"]["rule"]) in (("dach", "enterprise"), ("smb", "enterprise"))
    assert data["config_diff"] == [{"kind": "rule.changed", "subject": "enterprise",
                                    "text": "rule enterprise: employees gte 1000 -> 500"}]
    assert {r["pool"] for r in data["volume"]["per_pool"]} == {"enterprise", "dach", "smb"}
    assert sum(r["before"] for r in data["volume"]["per_rep"]) == 42 == sum(r["after"] for r in data["volume"]["per_rep"])
    assert set(data["fairness"]["before"]["smb"]) == {"decisions", "strategy", "gini", "max_min", "members"}
    assert data["fallback"]["before"]["leads"] == data["fallback"]["after"]["leads"] > 0
    assert data["unreadable"]["fields"] == {"employees": 6}
    assert set(data["sla_exposure"]["after"]) == {"outside_hours", "over_capacity", "passed_over_at_capacity"}
    assert data["fidelity"]["owner_agreement"] == 1.0


def test_against_current_is_the_config_in_force_so_a_config_against_itself_changes_nothing(
        ledger_url: str, configs: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch) -> None:
    a, _ = configs
    monkeypatch.setenv("LEADROUTE_CONFIG", str(a))
    code, out, err = run("--config", str(a), "--ledger", ledger_url, "--json", *WINDOW)
    assert code == 0, err
    data = json.loads(out)
    assert data["replay"]["baseline"]["file"] == str(a)
    assert (data["changes"]["leads"], data["config_diff"], data["fidelity"]["owner_differs"]) == (0, [], 0)


def test_export_files_replay_as_the_ledger_does(ledger_url: str, configs: tuple[Path, Path], tmp_path: Path) -> None:
    a, candidate = configs
    decisions, sla = tmp_path / "decisions.csv", tmp_path / "sla.csv"
    for dataset, path in (("decisions", decisions), ("sla", sla)):
        done = CliRunner().invoke(app, ["export", dataset, "--out", str(path), "--database-url", ledger_url])
        assert done.exit_code == 0, done.stderr
    code, out, err = run("--config", str(candidate), "--against", str(a), "--leads", str(decisions), "--leads", str(sla),
                         "--json")
    assert code == 0, err
    from_files = json.loads(out)
    code, out, err = run("--config", str(candidate), "--against", str(a), "--ledger", ledger_url, "--json", *WINDOW)
    from_ledger = json.loads(out)
    assert from_files["replay"]["source"] == f"{decisions}, {sla}"
    for key in ("changes", "volume", "fairness", "fallback", "unreadable", "sla_exposure", "fidelity", "config_diff"):
        assert from_files[key] == from_ledger[key], key


def test_a_file_that_is_not_an_export_is_refused_and_a_bad_row_is_reported_with_its_line(
        configs: tuple[Path, Path], tmp_path: Path) -> None:
    a, candidate = configs
    plain = tmp_path / "leads.csv"
    plain.write_text("id,country\nL1,DE\n", encoding="utf-8")
    code, _, err = run("--config", str(candidate), "--against", str(a), "--leads", str(plain))
    assert code == 1 and "not a `leadroute export` CSV" in err
    broken = tmp_path / "broken.csv"
    broken.write_text("kind,crm,object,lead_id,at,data\ndecision,salesforce,Lead,L1,yesterday,{}\n", encoding="utf-8")
    code, _, err = run("--config", str(candidate), "--against", str(a), "--leads", str(broken), "--json")
    assert code == 2 and f"{broken}:2:" in err


def test_the_table_names_the_changes_the_diff_and_the_fairness(ledger_url: str, configs: tuple[Path, Path]) -> None:
    a, candidate = configs
    code, out, err = run("--config", str(candidate), "--against", str(a), "--ledger", ledger_url, *WINDOW)
    assert code == 0, err
    assert "of 42 leads" in out and "rule 11," in out
    assert "rule enterprise: employees gte 1000 -> 500" in out
    assert "Leads that change rule" in out and "Fairness per pool" in out
    assert "fidelity: the baseline re-enacts 42 of 42 recorded owners (100.0%)" in out


def test_html_is_one_self_contained_page(ledger_url: str, configs: tuple[Path, Path], tmp_path: Path) -> None:
    a, candidate = configs
    page = tmp_path / "replay.html"
    code, _, err = run("--config", str(candidate), "--against", str(a), "--ledger", ledger_url, "--format", "html",
                       "--out", str(page), *WINDOW)
    assert code == 0, err
    text = page.read_text(encoding="utf-8")
    assert text.startswith("<!DOCTYPE html>") and 'id="chart-reps"' in text and 'id="chart-pools"' in text
    assert "rule enterprise: employees gte 1000 -&gt; 500" in text
    assert "<script src=" not in text and "Plotly.newPlot" in text  # plotly.js inlined, nothing fetched


def test_bad_options_exit_2_and_a_missing_ledger_exits_1(configs: tuple[Path, Path], tmp_path: Path) -> None:
    a, candidate = configs
    assert run("--config", str(candidate), "--against", str(a), "--format", "pdf")[0] == 2
    assert run("--config", str(candidate), "--against", str(a), "--since", "whenever")[0] == 2
    code, _, err = run("--config", str(candidate), "--against", str(a), "--ledger",
                       f"sqlite:///{tmp_path / 'none.sqlite3'}")
    assert code == 1 and "no ledger here" in err
    code, _, err = run("--config", str(tmp_path / "missing.yaml"), "--against", str(a))
    assert code == 1


def test_a_baseline_other_than_the_config_the_leads_were_routed_under_is_pointed_out(
        ledger_url: str, configs: tuple[Path, Path]) -> None:
    _, candidate = configs
    code, out, err = run("--config", str(candidate), "--against", str(candidate), "--ledger", ledger_url, *WINDOW)
    assert code == 0, err
    assert "0 of 42 leads (0.0%) change" in out
    assert "the fidelity compares the baseline with another config" in out


def test_every_changed_lead_can_go_to_a_json_lines_file(ledger_url: str, configs: tuple[Path, Path], tmp_path: Path) -> None:
    a, candidate = configs
    changes = tmp_path / "changes.jsonl"
    code, out, err = run("--config", str(candidate), "--against", str(a), "--ledger", ledger_url, "--json",
                         "--changes", str(changes), *WINDOW)
    assert code == 0, err
    lines = [json.loads(line) for line in changes.read_text(encoding="utf-8").splitlines()]
    assert len(lines) == json.loads(out)["changes"]["leads"] > 5
    assert sum(line["before"]["rule"] != line["after"]["rule"] for line in lines) == 11
    assert set(lines[0]) == {"lead", "routed_at", "before", "after"}


def test_a_replay_over_the_ledger_keeps_its_summary_there_unless_told_not_to(
        ledger: Any, ledger_url: str, configs: tuple[Path, Path]) -> None:
    a, candidate = configs
    before = len(ledger.recent_replays(100))
    code, out, err = run("--config", str(candidate), "--against", str(a), "--ledger", ledger_url, "--format", "json",
                         *WINDOW)
    assert code == 0, err
    data = json.loads(out)
    kept = ledger.recent_replays(100)
    assert len(kept) == before + 1
    assert kept[0]["candidate_version"] == data["replay"]["candidate"]["version"]
    assert kept[0]["baseline_version"] == data["replay"]["baseline"]["version"]
    assert kept[0]["leads"] == 42 and kept[0]["headline"].startswith(f"{data['changes']['leads']:,} of 42 leads")
    code, _, err = run("--config", str(candidate), "--against", str(a), "--ledger", ledger_url, "--format", "json",
                       "--no-record", *WINDOW)
    assert code == 0, err
    assert len(ledger.recent_replays(100)) == before + 1
