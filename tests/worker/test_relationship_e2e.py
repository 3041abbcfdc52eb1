"""Relationship matching beyond accounts (issue 17), through the worker's route step against the sandbox.

With ``relationships: [{match: recent_decision, lookback: 30d}]`` a lead without an account owner
goes to the rep our routing last gave a lead from the same company domain, within the lookback,
by the rule that reads ``account_owner``; the reason says which relationship won. With
``crm_recent_record`` it goes to the owner of the newest open lead or contact from the domain created
in the CRM within the lookback.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from typing import Any

from tests.worker.conftest import routing_test_config
from tests.worker.test_pipeline import INTAKE_QUEUE, current_decision, poll_and_drain
from worker.steps import route

DAY = 86_400.0
TEAM = ["tom", "raj", "kim"]


def runtime(make_runtime: Any, relationships: list[dict[str, Any]] | None = None) -> Any:
    return make_runtime(routing_test_config({
        "pools": {"team": {"members": TEAM, "strategy": "round_robin"}},
        "rules": [{"name": "named-account", "when": {"account_owner": {"exists": True}}, "assign": {"account_owner": True}},
                  {"name": "everyone", "assign": {"pool": "team"}}],
        "fallback": {"queue": "triage"},
        "relationships": [{"match": "recent_decision", "lookback": "30d"}] if relationships is None else relationships,
    })[1])


def lead(admin: Any, email: str, n: int) -> str:
    (rid,) = admin.sf_load("Lead", [{"LastName": f"Rel {n}", "Company": f"Relco {n}", "Email": email,
                                     "Status": "Open - Not Contacted", "OwnerId": INTAKE_QUEUE}])
    return rid


def test_a_same_domain_lead_from_10_days_ago_brings_the_new_lead_to_its_rep(make_runtime: Any, admin: Any) -> None:
    rt = runtime(make_runtime)
    poll_and_drain(rt)  # the seed's waiting leads
    rt.store.note_domains([("relco-ten.com", "raj", "00Q5e00000OldLd", time.time() - 10 * DAY - 60)], 30 * DAY, time.time())
    rid = lead(admin, "ceo@relco-ten.com", 1)
    poll_and_drain(rt)
    d = current_decision(rt, rid)
    assert (d["owner"], d["rule"]) == ("raj", "named-account")
    assert d["reason"].startswith("named-account: same-domain lead 00Q5e00000OldLd routed to raj (10 days ago) -> account owner")
    assert d["facts"]["relationship"] == "same-domain lead 00Q5e00000OldLd routed to raj (10 days ago)"
    assert admin.sf_record("Lead", rid)["OwnerId"] == route.owner_crm_id(rt.config, "salesforce", "raj")


def test_the_worker_keeps_the_index_itself_and_the_lookback_and_free_mail_hold(make_runtime: Any, admin: Any) -> None:
    rt = runtime(make_runtime)
    poll_and_drain(rt)
    first = lead(admin, "a@relco-two.com", 2)
    poll_and_drain(rt)
    owner = current_decision(rt, first)["owner"]
    assert current_decision(rt, first)["rule"] == "everyone"
    assert rt.store.last_owners(["relco-two.com"])["relco-two.com"].rep_id == owner  # noted as it was decided
    second = lead(admin, "b@relco-two.com", 3)
    poll_and_drain(rt)
    d = current_decision(rt, second)
    assert d["owner"] == owner and d["rule"] == "named-account"
    assert f"same-domain lead {first} routed to {owner} (less than an hour ago)" in d["reason"]

    rt.store.note_domains([("relco-old.com", "raj", "00Q5e00000AncNt", time.time() - 31 * DAY)], 60 * DAY, time.time())
    old = lead(admin, "c@relco-old.com", 4)
    for n, email in enumerate(["x1@gmail.com", "x2@gmail.com"]):  # free mail: no company domain, never related
        lead(admin, email, 10 + n)
    poll_and_drain(rt)
    assert current_decision(rt, old)["rule"] == "everyone"  # past the 30-day lookback
    gmail = rt.store.last_owners(["gmail.com"])
    assert gmail == {}


def test_without_relationships_the_index_is_not_kept(make_runtime: Any, admin: Any) -> None:
    rt = runtime(make_runtime, relationships=[])
    rid = lead(admin, "a@relco-none.com", 5)
    poll_and_drain(rt)
    assert current_decision(rt, rid)["rule"] == "everyone" and rt.store.last_owners(["relco-none.com"]) == {}


def test_the_worker_settles_a_least_loaded_tie_by_the_domains_most_recent_contact(make_runtime: Any, admin: Any) -> None:
    rt = make_runtime(routing_test_config({
        "pools": {"team": {"members": TEAM, "strategy": "least_loaded", "tie_break": ["most_recent_contact"]}},
        "rules": [{"name": "everyone", "assign": {"pool": "team"}}],
        "fallback": {"queue": "triage"},
    })[1])
    poll_and_drain(rt)
    rt.store.set_loads({})  # all three tie on load
    rt.store.note_domains([("relco-tie.com", "kim", "00Q5e00000KimLd", time.time() - 5 * DAY)], 365 * DAY, time.time())
    known, unknown = lead(admin, "a@relco-tie.com", 20), lead(admin, "a@relco-new.com", 21)
    poll_and_drain(rt)
    d = current_decision(rt, known)
    assert d["owner"] == "kim" and d["tie_breaks"] == {"pool": "most_recent_contact"}
    assert "broken by most_recent_contact" in d["reason"]
    other = current_decision(rt, unknown)
    assert other["owner"] != "kim" and other["tie_breaks"] == {"pool": "file_order"}


def test_a_same_domain_crm_lead_from_10_days_ago_brings_the_new_lead_to_its_owner(make_runtime: Any, admin: Any) -> None:
    rt = runtime(make_runtime, relationships=[{"match": "crm_recent_record", "lookback": "30d"},
                                              {"match": "recent_decision", "lookback": "30d"}])
    poll_and_drain(rt)  # the seed's waiting leads
    raj = route.owner_crm_id(rt.config, "salesforce", "raj")
    kim = route.owner_crm_id(rt.config, "salesforce", "kim")
    now = datetime.now(UTC)
    (ten,) = admin.sf_load("Lead", [{"LastName": "Earlier", "Company": "Crmrel", "Email": "cfo@crmrel-ten.com",
                                     "Status": "Working - Contacted", "OwnerId": raj,
                                     "CreatedDate": (now - timedelta(days=10, minutes=1)).isoformat()}])
    admin.sf_load("Lead", [{"LastName": "Ancient", "Company": "Crmrel", "Email": "cto@crmrel-old.com",
                            "Status": "Working - Contacted", "OwnerId": kim,
                            "CreatedDate": (now - timedelta(days=31)).isoformat()}])
    rt.store.note_domains([("crmrel-ten.com", "kim", "00Q5e00000OursLd", time.time() - 2 * DAY)], 30 * DAY, time.time())
    rid, old, free = lead(admin, "ceo@crmrel-ten.com", 30), lead(admin, "ceo@crmrel-old.com", 31), lead(admin, "z@gmail.com", 32)
    poll_and_drain(rt)
    d = current_decision(rt, rid)
    assert (d["owner"], d["rule"]) == ("raj", "named-account")  # the CRM entry comes first in the config
    assert d["facts"]["relationship"] == f"same-domain lead {ten} owned by raj (10 days ago)"
    assert d["reason"].startswith(f"named-account: same-domain lead {ten} owned by raj (10 days ago) -> account owner")
    assert admin.sf_record("Lead", rid)["OwnerId"] == raj
    assert current_decision(rt, old)["rule"] == "everyone"  # its only CRM lead is 31 days old, and we never routed the domain
    assert current_decision(rt, free)["rule"] == "everyone"  # free mail never matches
