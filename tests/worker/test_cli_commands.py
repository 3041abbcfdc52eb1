"""The operator's commands against a live store and the sandbox: reroute, explain, reps, ooo, ack, sweep."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml
from typer.testing import CliRunner

from tests.worker.conftest import routing_test_config
from tests.worker.test_pipeline import drain, load_leads
from tests.worker.test_sla_wiring import route_hot_lead
from worker.cli.commands import app
from worker.domain.leads import LeadRef
from worker.sla.policy import timer_id
from worker.steps import route

runner = CliRunner()


@pytest.fixture
def live(make_runtime: Any, admin: Any, redis_url: str, redis_prefix: str, tmp_path: Path,
         monkeypatch: pytest.MonkeyPatch) -> tuple[Any, str, list[str]]:
    """One routed Salesforce lead, and the environment the CLI needs to find the same state."""
    data, config = routing_test_config()
    path = tmp_path / "routing.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    monkeypatch.setenv("REDIS_URL", redis_url)
    monkeypatch.setenv("LEADROUTE_PREFIX", redis_prefix)
    monkeypatch.setenv("LEADROUTE_CONFIG", str(path))
    monkeypatch.setenv("DATABASE_URL", f"sqlite:///{tmp_path / 'ledger.sqlite3'}")  # this test's ledger, none other's
    rt = make_runtime(config)
    ids = load_leads(rt, admin, 1)["salesforce"]["ids"]
    route.poll(rt, "salesforce")
    drain(rt, "salesforce")
    return rt, str(path), ids


def test_explain_prints_the_decision_trail(live: Any) -> None:
    rt, _, ids = live
    result = runner.invoke(app, ["explain", ids[0], "--crm", "salesforce"])
    assert result.exit_code == 0, result.output
    decision = rt.store.decision(LeadRef("salesforce", "Lead", ids[0]).at(0)).decision
    assert "epoch 0" in result.output
    assert f"owner:  {decision['owner']}" in result.output
    assert decision["reason"][:40] in result.output.replace("\n", " ")
    unknown = runner.invoke(app, ["explain", "00Q000000000000AAA", "--crm", "salesforce"])
    assert unknown.exit_code == 1 and "no decision recorded" in unknown.output


def test_reroute_now_moves_the_lead_and_explain_shows_both_epochs(live: Any, admin: Any) -> None:
    _, _, ids = live
    result = runner.invoke(app, ["reroute", ids[0], "--crm", "salesforce", "--to", "lee", "--reason", "asked", "--now"])
    assert result.exit_code == 0, result.output
    assert "-> lee (epoch 1)" in result.output
    assert admin.sf_record("Lead", ids[0])["OwnerId"] == "0055e000001LeEpAAK"
    trail = runner.invoke(app, ["explain", ids[0], "--crm", "salesforce"]).output
    assert "epoch 1" in trail and "epoch 0" in trail and "reroute" in trail


def test_reroute_enqueues_by_default_and_rejects_unknown_targets(live: Any) -> None:
    rt, _, ids = live
    result = runner.invoke(app, ["reroute", ids[0], "--crm", "salesforce", "--pool", "smb"])
    assert result.exit_code == 0, result.output
    assert "re-route enqueued (epoch 1)" in result.output
    assert rt.store.epoch(LeadRef("salesforce", "Lead", ids[0])) == 1
    bad = runner.invoke(app, ["reroute", ids[0], "--crm", "salesforce", "--to", "leee"])
    assert bad.exit_code == 1 and "unknown rep 'leee' (did you mean 'lee'?)" in bad.output
    bad_crm = runner.invoke(app, ["reroute", ids[0], "--crm", "pipedrive"])
    assert bad_crm.exit_code == 1 and "not configured" in bad_crm.output


def test_ooo_takes_a_rep_out_of_routing_and_reps_shows_it(live: Any) -> None:
    rt, _, _ = live
    result = runner.invoke(app, ["ooo", "tom", "--until", "2099-01-02", "--reason", "vacation"])
    assert result.exit_code == 0, result.output
    assert rt.store.unavailable() == {"tom": "vacation"}
    table = runner.invoke(app, ["reps"], env={"COLUMNS": "200"}).output
    assert "vacation" in table and "override" in table
    assert runner.invoke(app, ["ooo", "tom", "--back"]).exit_code == 0
    assert rt.store.unavailable() == {}


def test_ack_stops_the_clock_and_sweep_reports(live: Any, admin: Any) -> None:
    rt, _, _ = live
    lead_id, decision, _ = route_hot_lead(rt, admin)
    clock = timer_id(LeadRef("salesforce", "Lead", lead_id))
    assert rt.store.timer(clock) is not None
    dry = runner.invoke(app, ["sweep", "--dry-run"])
    assert dry.exit_code == 0, dry.output
    assert rt.store.timer(clock) is not None  # a dry run changes nothing
    result = runner.invoke(app, ["ack", lead_id, "--crm", "salesforce"])
    assert result.exit_code == 0, result.output
    assert f"acknowledged by {decision['owner']}" in result.output and "within SLA" in result.output
    assert rt.store.timer(clock) is None
    again = runner.invoke(app, ["ack", lead_id, "--crm", "salesforce"])
    assert again.exit_code == 1 and "no open SLA clock" in again.output
    assert runner.invoke(app, ["sweep"]).exit_code == 0


EXPLAIN_KEYS = {"crm", "object", "lead_id", "source", "decisions", "events"}
DECISION_KEYS = {"epoch", "at", "config_version", "kind", "via", "owner", "previous_owner", "rule", "reason",
                 "considered", "skipped", "unreadable", "actor", "why", "wait_seconds", "wait_business_seconds"}
EVENT_KEYS = {"at", "kind", "owner", "previous_owner", "actor", "tier", "status", "wait_seconds", "data"}
REP_KEYS = {"rep", "load", "capacity", "status", "available", "away", "in_hours", "override", "out_of_office"}
SWEEP_KEYS = {"at", "dry_run", "due", "actions", "errors", "rescheduled", "closed", "more_due", "seconds"}


def test_explain_json_has_the_documented_keys(live: Any) -> None:
    rt, _, ids = live
    result = runner.invoke(app, ["explain", ids[0], "--crm", "salesforce", "--json"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert set(data) == EXPLAIN_KEYS and data["lead_id"] == ids[0] and data["crm"] == "salesforce"
    assert data["source"] in ("ledger", "redis")
    (decision,) = data["decisions"]
    assert set(decision) == DECISION_KEYS
    recorded = rt.store.decision(LeadRef("salesforce", "Lead", ids[0]).at(0)).decision
    assert decision["epoch"] == 0 and decision["owner"] == recorded["owner"] and decision["reason"] == recorded["reason"]
    assert all(set(e) == EVENT_KEYS for e in data["events"])
    runner.invoke(app, ["reroute", ids[0], "--crm", "salesforce", "--to", "lee", "--reason", "asked", "--now"])
    again = json.loads(runner.invoke(app, ["explain", ids[0], "--crm", "salesforce", "--json"]).stdout)
    assert [d["epoch"] for d in again["decisions"]] == [1, 0] and again["decisions"][0]["owner"] == "lee"


def test_reps_json_has_the_documented_keys(live: Any) -> None:
    assert runner.invoke(app, ["ooo", "tom", "--until", "2099-01-02", "--reason", "vacation"]).exit_code == 0
    result = runner.invoke(app, ["reps", "--json"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert set(data) == {"at", "config_version", "reps"}
    assert data["reps"] and all(set(r) == REP_KEYS for r in data["reps"])
    tom = next(r for r in data["reps"] if r["rep"] == "tom")
    assert tom["available"] is False and tom["away"] == "vacation"
    assert tom["override"]["available"] is False and tom["override"]["reason"] == "vacation"
    assert tom["override"]["until"].startswith("2099-01-02")


def test_sweep_dry_run_json_has_the_documented_keys(live: Any, admin: Any) -> None:
    rt, _, _ = live
    route_hot_lead(rt, admin)
    result = runner.invoke(app, ["sweep", "--dry-run", "--json"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert set(data) == SWEEP_KEYS and data["dry_run"] is True
    assert all({"lead", "tier", "action", "owner", "status", "note", "due_at"} <= set(a) for a in data["actions"])
