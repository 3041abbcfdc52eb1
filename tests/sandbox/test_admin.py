"""The admin API: full state, acting as a rep would in the CRM's UI, seeding, and how to start it."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from hubspot import HubSpot
from simple_salesforce import Salesforce

from sandbox.client import AdminClient, AdminError
from sandbox.run import ENV_VARS, SandboxInfo, running

from .conftest import MIKE_HS, SARAH_SF, TRIAGE_SF


def first_lead(sf: Salesforce) -> dict[str, object]:
    return sf.query("SELECT Id, Status, OwnerId, SystemModstamp, LastModifiedDate FROM Lead "
                    "ORDER BY CreatedDate LIMIT 1")["records"][0]


def test_rep_changes_a_status_and_the_poller_sees_it(sf: Salesforce, admin: AdminClient) -> None:
    before = first_lead(sf)
    watermark = sf.query("SELECT SystemModstamp FROM Lead ORDER BY SystemModstamp DESC LIMIT 1")["records"][0]
    time.sleep(0.002)
    admin.sf_set_status(str(before["Id"]), "Working - Contacted")
    after = sf.query(f"SELECT Id, Status, SystemModstamp FROM Lead WHERE SystemModstamp > "
                     f"{watermark['SystemModstamp'].replace('+0000', 'Z')}")["records"]
    assert [(r["Id"], r["Status"]) for r in after] == [(before["Id"], "Working - Contacted")]
    with pytest.raises(AdminError) as info:
        admin.sf_set_status(str(before["Id"]), "Daydreaming")
    assert info.value.status == 400


def test_rep_logs_an_activity(sf: Salesforce, admin: AdminClient) -> None:
    lead_id = str(first_lead(sf)["Id"])
    admin.sf_change_owner(lead_id, SARAH_SF)
    logged = admin.sf_log_activity(lead_id, type="Call", subject="Intro call")
    assert logged["task"]["OwnerId"] == SARAH_SF and logged["task"]["Status"] == "Completed"
    tasks = sf.query(f"SELECT Id, Subject, Owner.Name FROM Task WHERE WhoId = '{lead_id}'")["records"]
    assert tasks[0]["Subject"] == "Intro call" and tasks[0]["Owner"]["Name"] == "Sarah Chen"
    assert sf.Lead.get(lead_id)["LastActivityDate"] is not None


def test_rep_changes_owner_converts_and_deletes(sf: Salesforce, admin: AdminClient) -> None:
    lead_id = str(first_lead(sf)["Id"])
    assert admin.sf_change_owner(lead_id, TRIAGE_SF)["OwnerId"] == TRIAGE_SF
    admin.sf_change_owner(lead_id, SARAH_SF)
    converted = admin.sf_convert(lead_id)
    lead = sf.Lead.get(lead_id)
    assert lead["IsConverted"] is True and lead["Status"] == "Closed - Converted"
    contact = sf.Contact.get(converted["contact_id"])
    assert contact["OwnerId"] == SARAH_SF and contact["AccountId"] == converted["account_id"]
    admin.sf_delete("Lead", lead_id)
    assert sf.query(f"SELECT COUNT() FROM Lead WHERE Id = '{lead_id}'")["totalSize"] == 0


def test_hubspot_rep_actions(hs: HubSpot, admin: AdminClient) -> None:
    admin.hs_change_owner("1001", MIKE_HS)
    admin.hs_set_status("1001", "CONNECTED")
    logged = admin.hs_log_activity("1001", type="CALL", body="Spoke to Jane")
    contact = hs.crm.contacts.basic_api.get_by_id("1001", properties=[
        "hubspot_owner_id", "hs_lead_status", "notes_last_contacted", "num_notes"])
    assert contact.properties["hubspot_owner_id"] == MIKE_HS
    assert contact.properties["hs_lead_status"] == "CONNECTED"
    assert contact.properties["notes_last_contacted"] and contact.properties["num_notes"] == "1"
    assert logged["note"]["associations"] == {"contacts": ["1001"]}
    assert admin.hs_convert("1001")["properties"]["lifecyclestage"] == "opportunity"
    admin.hs_delete("1001")
    assert hs.crm.contacts.basic_api.get_by_id("1001", archived=True).archived is True


def test_state_reset_and_generate(admin: AdminClient) -> None:
    state = admin.state()
    assert len(state["salesforce"]["records"]["Lead"]) == 8
    assert {u["Id"] for u in state["salesforce"]["records"]["User"]} >= {SARAH_SF}
    assert {o["id"] for o in state["hubspot"]["owners"]} >= {"51234567", "51230000"}
    assert admin.generate(salesforce={"Lead": 50}, hubspot={"contacts": 20}) == {
        "created": {"salesforce.Lead": 50, "hubspot.contacts": 20}}
    assert len(admin.sf_records("Lead")) == 58
    admin.reset()
    assert len(admin.sf_records("Lead")) == 8


def test_bulk_load_and_custom_seed(sf: Salesforce, admin: AdminClient) -> None:
    ids = admin.sf_load("Lead", [{"LastName": f"L{i}", "Company": "Bulk", "OwnerId": SARAH_SF} for i in range(3)])
    assert len(ids) == 3 and sf.Lead.get(ids[0])["OwnerId"] == SARAH_SF
    admin.reset({"salesforce": {"records": {"Lead": [{"LastName": "Only", "Company": "One"}]}}})
    assert [r["LastName"] for r in admin.sf_records("Lead")] == ["Only"]


def test_limits_are_adjustable_and_validated(admin: AdminClient) -> None:
    assert admin.set_limits(salesforce={"daily_api_requests": 500})["limits"]["salesforce"][
        "daily_api_requests"] == 500
    with pytest.raises(AdminError):
        admin.set_limits(salesforce={"daily_api_requests": -1})
    with pytest.raises(AdminError):
        admin.set_limits(zendesk={"x": 1})


def test_unknown_admin_paths_and_records(admin: AdminClient) -> None:
    with pytest.raises(AdminError) as info:
        admin.request("GET", "/nope")
    assert info.value.status == 404
    with pytest.raises(AdminError) as info:
        admin.sf_record("Lead", "00Q5e00000NotHereAA")
    assert info.value.status == 404


def test_env_names_and_values(sandbox: SandboxInfo) -> None:
    env = sandbox.env()
    assert tuple(env) == ENV_VARS
    assert env["SALESFORCE_INSTANCE_URL"].startswith("https://127.0.0.1:")
    assert env["HUBSPOT_API_BASE"] == env["SALESFORCE_INSTANCE_URL"]
    assert Path(env["LEADROUTE_CA_BUNDLE"]).read_text().startswith("-----BEGIN CERTIFICATE-----")
    assert env["LEADROUTE_SANDBOX_ADMIN"].endswith("/__sandbox")


def test_foreground_serve_writes_the_env_file(tmp_path: Path) -> None:
    env_file = tmp_path / "sandbox.env"
    proc = subprocess.Popen([sys.executable, "-m", "sandbox", "--env-file", str(env_file)],
                            cwd=Path(__file__).resolve().parents[2], stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 30
        while not env_file.exists() and time.monotonic() < deadline:
            time.sleep(0.05)
        values = dict(line.split("=", 1) for line in env_file.read_text().splitlines())
        assert set(values) == set(ENV_VARS)
        admin = AdminClient(values["LEADROUTE_SANDBOX_ADMIN"], values["LEADROUTE_CA_BUNDLE"])
        assert admin.request("GET", "/health") == {"ok": True}
    finally:
        proc.terminate()
        _, err = proc.communicate(timeout=20)
    assert proc.returncode == 0
    assert "listening on https://127.0.0.1:" in err


def test_process_mode_runs_the_same_sandbox(tmp_path: Path) -> None:
    seed = {"hubspot": {"access_token": "pat-test", "owners": [{"id": "1", "email": "a@b.c"}]}}
    with running(seed, mode="process") as info:
        assert info.hubspot_access_token == "pat-test"
        hs = HubSpot(access_token="pat-test", host=info.hubspot_base_url, ssl_ca_cert=str(info.ca_bundle))
        assert [o.id for o in hs.crm.owners.owners_api.get_page().results] == ["1"]
        assert json.loads(json.dumps(info.env()))["HUBSPOT_ACCESS_TOKEN"] == "pat-test"
    assert not os.path.exists(info.ca_bundle)
