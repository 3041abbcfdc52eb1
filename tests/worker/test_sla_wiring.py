"""The SLA clock as the worker runs it: started on owner write, swept, notified, reassigned in the CRM."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from tests.worker.test_pipeline import INTAKE_QUEUE, drain
from worker.devtools.synthetic import salesforce_lead
from worker.domain.leads import LeadRef
from worker.sla.policy import timer_id
from worker.steps import route

HOT = {"first_name": "Hana", "last_name": "Ito", "email": "hana@tinyshop.io", "company": "TinyShop",
       "country": "US", "state": "FL", "postcode": "33101", "employees": "20", "lead_source": "Demo Request",
       "score": "90"}


def route_hot_lead(rt: Any, admin: Any) -> tuple[str, dict[str, Any], datetime]:
    """Route one hot lead (and the seed's waiting leads); returns it, its decision and its clock's start."""
    sf_map = dict(rt.config.model.connectors.salesforce.fields)
    (lead_id,) = admin.sf_load("Lead", [salesforce_lead(HOT, sf_map, INTAKE_QUEUE)])
    route.poll(rt, "salesforce")
    before = datetime.now(UTC)
    drain(rt, "salesforce")
    decision = rt.store.decision(LeadRef("salesforce", "Lead", lead_id).at(0)).decision
    assert decision["rule"] == "demo-requests-smb"
    deadline = datetime.fromisoformat(rt.enqueue.assigned_items()[lead_id]["sla_deadline"])
    assert before + timedelta(minutes=2) <= deadline <= datetime.now(UTC) + timedelta(minutes=2)  # hot: 2m, wall
    return lead_id, decision, deadline - timedelta(minutes=2)


def about(notices: list[dict[str, Any]], lead_id: str) -> list[tuple[str, str | None]]:
    return [(n["kind"], n["to"]) for n in notices if n["lead"][2] == lead_id]


def test_an_unacknowledged_hot_lead_climbs_the_ladder_once_per_step(make_runtime: Any, admin: Any) -> None:
    rt = make_runtime()
    notices = rt.enqueue.sla_notices
    lead_id, decision, routed = route_hot_lead(rt, admin)
    owner = decision["owner"]
    rt.sla.sweep(routed + timedelta(seconds=59))
    assert about(notices, lead_id) == []
    rt.sla.sweep(routed + timedelta(seconds=61))
    assert about(notices, lead_id) == [("reminder", owner)]
    rt.sla.sweep(routed + timedelta(seconds=62))  # nothing new until the next step's minute
    assert about(notices, lead_id) == [("reminder", owner)]
    rt.sla.sweep(routed + timedelta(seconds=121))
    assert ("escalation", "maria") in about(notices, lead_id)
    rt.sla.sweep(routed + timedelta(seconds=181))
    new_owner = admin.sf_record("Lead", lead_id)["OwnerId"]
    assert new_owner != rt.config.reps[owner].crm_ids["salesforce"]
    assert new_owner != INTAKE_QUEUE
    kinds = [kind for kind, _ in about(notices, lead_id)]
    assert kinds.count("reminder") == 1 and kinds.count("escalation") == 1
    assert "assigned" in kinds and "reassigned_from" in kinds
    epochs = [d.key.epoch for d in rt.store.decisions_for_lead(LeadRef("salesforce", "Lead", lead_id))]
    assert epochs == [1, 0]  # the reassignment opened a new epoch


def test_an_acknowledged_lead_stops_its_clock_and_frees_the_load(make_runtime: Any, admin: Any) -> None:
    rt = make_runtime()
    notices = rt.enqueue.sla_notices
    lead_id, decision, routed = route_hot_lead(rt, admin)
    owner = decision["owner"]
    before = rt.store.loads([owner])[owner]
    admin.sf_set_status(lead_id, "Working - Contacted")  # the rep picks it up in the CRM
    rt.sla.sweep(routed + timedelta(seconds=61))
    assert about(notices, lead_id) == []
    assert rt.store.loads([owner])[owner] == before - 1
    rt.sla.sweep(routed + timedelta(minutes=10))
    assert about(notices, lead_id) == []
    assert rt.store.timer(timer_id(LeadRef("salesforce", "Lead", lead_id))) is None  # the clock is stopped
