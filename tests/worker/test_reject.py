"""Rejections (issue 17): a rep puts a lead back in the intake queue and leadroute routes it again,
never back to them, and records why; ``credit_back`` gives their turn back.

The worker's own steps (poll, drain) against the sandbox Salesforce and a real Redis; the rep's
hand-back is an owner change in the CRM, as a rep would make it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml
from typer.testing import CliRunner

from tests.worker.conftest import routing_test_config
from tests.worker.test_ledger_wiring import about
from tests.worker.test_pipeline import INTAKE_QUEUE, drain
from worker.cli.commands import app
from worker.devtools.synthetic import salesforce_lead, synthetic_leads
from worker.domain.leads import LeadRef
from worker.steps import route

TEAM = ["tom", "raj", "kim"]


def runtime(make_runtime: Any, credit_back: bool) -> Any:
    return make_runtime(routing_test_config({
        "pools": {"team": {"members": TEAM, "strategy": "round_robin"}},
        "rules": [{"name": "everyone", "assign": {"pool": "team"}}],
        "fallback": {"queue": "triage"},
        "rejections": {"credit_back": credit_back},
    })[1])


def new_leads(rt: Any, admin: Any, n: int, seed: int) -> list[str]:
    sf_map = dict(rt.config.model.connectors.salesforce.fields)
    return admin.sf_load("Lead", [salesforce_lead(lead, sf_map, INTAKE_QUEUE) for lead in synthetic_leads(n, seed=seed)])


def route_all(rt: Any) -> dict[str, route.Handled]:
    route.poll(rt, "salesforce")
    return {h.lead_id: h for h in drain(rt, "salesforce")}


def current(rt: Any, rid: str) -> dict[str, Any]:
    ref = LeadRef("salesforce", "Lead", rid)
    decided = rt.store.decision(rt.store.current_key(ref))
    assert decided is not None
    return decided.decision


@pytest.mark.parametrize("credit_back", [False, True])
def test_a_lead_put_back_in_the_intake_is_routed_again_never_to_the_rep_who_rejected_it(
    make_runtime: Any, admin: Any, credit_back: bool
) -> None:
    rt = runtime(make_runtime, credit_back)
    route_all(rt)  # the seed's waiting leads first, so the rotation below starts from a known place
    (rid,) = new_leads(rt, admin, 1, seed=3)
    assert route_all(rt)[rid].outcome == "written"
    first = current(rt, rid)["owner"]
    held = rt.store.loads([first])[first]

    admin.sf_change_owner(rid, INTAKE_QUEUE)  # the rep hands it back
    handled = route_all(rt)[rid]
    again = current(rt, rid)
    assert handled.outcome == "written" and handled.epoch == 1
    assert again["owner"] in TEAM and again["owner"] != first
    assert again["via"] == "rejection" and again["previous_owner"] == first and again["excluded"] == [first]
    assert again["skipped"] == {first: "rejected"}
    assert again["reason"].startswith(f"rejected by {first} (handed back to the intake (owner now {INTAKE_QUEUE})): ")
    assert admin.sf_record("Lead", rid)["OwnerId"] == route.owner_crm_id(rt.config, "salesforce", again["owner"])
    assert rt.store.loads([first]) == {first: held - 1}  # the lead left them
    rejected = [e for e in rt.store.log_for_lead(LeadRef("salesforce", "Lead", rid)) if e.kind == "rejected"]
    assert [(e.data["by"], e.data["to"], e.data["credit_back"]) for e in rejected] == [(first, again["owner"], credit_back)]
    ledger = [e for e in about(rt, rid) if e["kind"] == "decision"]
    assert [(e["epoch"], e.get("previous_owner"), e["data"].get("via")) for e in ledger] == [
        (0, None, None), (1, first, "rejection")]
    assert ledger[1]["data"]["why"].startswith("handed back to the intake")

    # the next new lead: with credit back the rejecting rep gets it (their turn given back), else the rotation goes on
    (nxt,) = new_leads(rt, admin, 1, seed=4)
    route_all(rt)
    following = TEAM[(TEAM.index(again["owner"]) + 1) % len(TEAM)]
    assert current(rt, nxt)["owner"] == (first if credit_back else following)
    assert rt.store.turns_owed("team") == {}


def test_a_lead_rejected_twice_avoids_both_reps_and_a_replayed_drain_gives_nothing_back_twice(
    make_runtime: Any, admin: Any
) -> None:
    rt = runtime(make_runtime, credit_back=True)
    route_all(rt)
    (rid,) = new_leads(rt, admin, 1, seed=5)
    route_all(rt)
    first = current(rt, rid)["owner"]
    admin.sf_change_owner(rid, INTAKE_QUEUE)
    route_all(rt)
    second = current(rt, rid)["owner"]
    admin.sf_change_owner(rid, INTAKE_QUEUE)
    route_all(rt)
    third = current(rt, rid)
    assert len({first, second, third["owner"]}) == 3 and third["excluded"] == [first, second]
    assert third["skipped"] == {first: "rejected", second: "rejected"}
    owed = rt.store.turns_owed("team")
    assert owed == {first: 1, second: 1}
    rt.pending.add("salesforce", [rid], "webhook")  # a duplicate event for the same change
    assert route_all(rt)[rid].outcome == "already_routed"
    assert rt.store.turns_owed("team") == owed


def test_leadroute_reject_hands_a_lead_back_from_the_command_line(
    make_runtime: Any, admin: Any, redis_url: str, redis_prefix: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    data, config = routing_test_config({"pools": {"team": {"members": TEAM, "strategy": "round_robin"}},
                                        "rules": [{"name": "everyone", "assign": {"pool": "team"}}]})
    path = tmp_path / "routing.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    for name, value in (("REDIS_URL", redis_url), ("LEADROUTE_PREFIX", redis_prefix), ("LEADROUTE_CONFIG", str(path)),
                        ("DATABASE_URL", f"sqlite:///{tmp_path / 'ledger.sqlite3'}")):
        monkeypatch.setenv(name, value)
    rt = make_runtime(config)
    (rid,) = new_leads(rt, admin, 1, seed=6)
    route_all(rt)
    first = current(rt, rid)["owner"]
    result = CliRunner().invoke(app, ["reject", rid, "--crm", "salesforce", "--reason", "not my territory"])
    assert result.exit_code == 0, result.output
    again = current(rt, rid)
    assert f"{rid}: rejected by {first} -> {again['owner']}" in result.output and again["owner"] != first
    assert again["why"] == "not my territory" and again["requested_by"].endswith("(cli)")
    assert admin.sf_record("Lead", rid)["OwnerId"] == route.owner_crm_id(rt.config, "salesforce", again["owner"])
    assert route_all(rt).get(rid) is None  # nothing left for the drain
    unknown = CliRunner().invoke(app, ["reject", "00Q000000000000", "--crm", "salesforce"])
    assert unknown.exit_code == 1 and "not found" in unknown.output


def test_rejections_in_the_config_are_checked() -> None:
    from worker.config import ConfigError

    with pytest.raises(ConfigError, match=r"rejections\.credit_bak: unknown key 'credit_bak' \(did you mean 'credit_back'\?\)"):
        routing_test_config({"rejections": {"credit_bak": True}})
