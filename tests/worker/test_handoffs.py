"""Hand-offs of owned leads (issue 17), through the worker's own steps against the sandbox and a real Redis.

* An MQL hand-off: ``triggers: [{name: mql, when: {score: {gte: 80}, lifecycle_stage: marketingqualifiedlead}}]``
  moves a HubSpot contact an SDR owns to the AE pool once when it crosses, not again while it stays
  qualified, and again after dropping below only with ``refire: true``.
* A rejection by CRM status: a rep sets a Salesforce lead's Status to ``Rejected - Not my territory``;
  the owned poll routes it again, never back to them, with the status as the reason, and sets the
  status back to open with the new owner.

The reps' changes are made in the CRM as a rep would make them (the sandbox's own API); no test
depends on the date or the time of day (no working hours, no absences: ``routing_test_config``).
"""

from __future__ import annotations

from typing import Any

import pytest

from tests.worker.conftest import routing_test_config
from tests.worker.test_ledger_wiring import about
from tests.worker.test_pipeline import INTAKE_QUEUE, drain
from worker.domain.leads import LeadRef
from worker.steps import handoffs, route

SDRS = ["tom", "raj"]
AES = ["kim", "sarah"]
REJECTED = "Rejected - Not my territory"


def with_lifecycle_stage(overrides: dict[str, Any]) -> Any:
    """The test config with HubSpot's ``lifecyclestage`` mapped to ``lifecycle_stage`` (which triggers read),
    and ``overrides`` on top."""
    data, _ = routing_test_config()
    hs = data["connectors"]["hubspot"]
    hs["fields"] = {**hs["fields"], "lifecyclestage": "lifecycle_stage"}
    return routing_test_config({"fields": [*data["fields"], "lifecycle_stage"], "connectors": data["connectors"],
                                **overrides})[1]


def hubspot_runtime(make_runtime: Any, refire: bool = False) -> Any:
    return make_runtime(with_lifecycle_stage({
        "pools": {"sdr": {"members": SDRS, "strategy": "round_robin"}, "ae": {"members": AES, "strategy": "round_robin"}},
        "rules": [{"name": "sdr", "assign": {"pool": "sdr"}}],
        "fallback": {"queue": "triage"},
        "triggers": [{"name": "mql", "when": {"score": {"gte": 80}, "lifecycle_stage": "marketingqualifiedlead"},
                      "rules": [{"name": "ae", "assign": {"pool": "ae"}}], "refire": refire}],
    }))


def current(rt: Any, crm: str, rid: str) -> dict[str, Any]:
    found = rt.store.decision(rt.store.current_key(LeadRef(crm, rt.object_name(crm), rid)))
    assert found is not None
    return found.decision


def route_all(rt: Any, crm: str) -> None:
    route.poll(rt, crm)
    drain(rt, crm)


def contact(admin: Any, n: int, score: int, stage: str) -> str:
    (rid,) = admin.hs_load([{"properties": {"email": f"buyer{n}@handoff{n}.example", "company": f"Handoff {n}",
                                            "hubspotscore": str(score), "lifecyclestage": stage}}])
    return rid


def fired(rt: Any, crm: str) -> list[tuple[str, str, str, str]]:
    return handoffs.poll_owned(rt, crm).handed_off


@pytest.mark.parametrize("refire", [False, True])
def test_an_mql_hand_off_fires_once_per_crossing(make_runtime: Any, admin: Any, refire: bool) -> None:
    rt = hubspot_runtime(make_runtime, refire)
    route_all(rt, "hubspot")  # the seed's waiting contacts
    rid = contact(admin, 1, 10, "lead")
    already = contact(admin, 2, 95, "marketingqualifiedlead")  # qualified when it arrived: no crossing
    route_all(rt, "hubspot")
    sdr = current(rt, "hubspot", rid)["owner"]
    assert sdr in SDRS and current(rt, "hubspot", already)["owner"] in SDRS
    held = rt.store.loads([sdr])[sdr]
    assert fired(rt, "hubspot") == []  # everything owned seen once; nothing crossed

    admin.hs_edit(rid, {"hubspotscore": "85"})  # half the condition
    assert fired(rt, "hubspot") == []
    admin.hs_edit(rid, {"lifecyclestage": "marketingqualifiedlead"})  # now it holds
    ((lead_id, kind, name, ae),) = fired(rt, "hubspot")
    assert (lead_id, kind, name) == (rid, "trigger", "mql") and ae in AES
    d = current(rt, "hubspot", rid)
    assert (d["epoch"], d["via"], d["trigger"], d["previous_owner"], d["rule"]) == (1, "trigger", "mql", sdr, "ae")
    assert d["reason"].startswith(f"trigger mql (score, lifecycle_stage) from {sdr}: ae")
    assert admin.hs_record(rid)["properties"]["hubspot_owner_id"] == route.owner_crm_id(rt.config, "hubspot", ae)
    assert rt.store.loads([sdr])[sdr] == held - 1
    assert [e.data["trigger"] for e in rt.store.log_for_lead(LeadRef("hubspot", "contacts", rid)) if e.kind == "handoff"] \
        == ["mql"]
    ledger = [e for e in about(rt, rid, "hubspot", "contacts") if e["kind"] == "decision"]
    assert [(e["epoch"], e["data"].get("via"), e["data"].get("trigger")) for e in ledger] == [
        (0, None, None), (1, "trigger", "mql")]

    assert fired(rt, "hubspot") == []  # our own write, seen again: still qualified, nothing new
    admin.hs_edit(rid, {"hubspotscore": "90"})  # still above: no new crossing
    assert fired(rt, "hubspot") == []
    admin.hs_edit(rid, {"hubspotscore": "40"})  # drops below
    assert fired(rt, "hubspot") == []
    admin.hs_edit(rid, {"hubspotscore": "81"})  # and crosses again
    again = fired(rt, "hubspot")
    if refire:
        assert [(x[0], x[2]) for x in again] == [(rid, "mql")] and current(rt, "hubspot", rid)["epoch"] == 2
    else:
        assert again == [] and current(rt, "hubspot", rid)["epoch"] == 1
    assert rt.store.handoffs("hubspot") == {}


def test_a_hand_off_left_half_done_by_a_dead_worker_is_finished_in_the_same_epoch(make_runtime: Any, admin: Any) -> None:
    rt = hubspot_runtime(make_runtime)
    route_all(rt, "hubspot")
    rid = contact(admin, 3, 10, "lead")
    route_all(rt, "hubspot")
    sdr = current(rt, "hubspot", rid)["owner"]
    handoffs.poll_owned(rt, "hubspot")
    admin.hs_edit(rid, {"hubspotscore": "88", "lifecyclestage": "marketingqualifiedlead"})
    real = rt.connector("hubspot").write_owners

    def dies(updates: Any) -> Any:
        raise SystemExit("worker killed mid-write")

    rt.connector("hubspot").write_owners = dies
    with pytest.raises(SystemExit):
        handoffs.poll_owned(rt, "hubspot")
    ((_, pending),) = rt.store.handoffs("hubspot").items()
    assert pending["trigger"] == "mql" and pending["epoch"] == 1
    rt.connector("hubspot").write_owners = real
    ((lead_id, _, _, ae),) = fired(rt, "hubspot")  # the next poll finishes it: same epoch, same decision
    d = current(rt, "hubspot", rid)
    assert lead_id == rid and d["epoch"] == 1 and d["owner"] == ae and d["previous_owner"] == sdr
    assert fired(rt, "hubspot") == [] and rt.store.handoffs("hubspot") == {}


def salesforce_runtime(make_runtime: Any) -> Any:
    data, _ = routing_test_config()
    data["connectors"]["salesforce"]["rejection"] = {"field": "Status", "values": [REJECTED], "reopen": "Open - Not Contacted"}
    return make_runtime(routing_test_config({
        "connectors": data["connectors"],
        "pools": {"team": {"members": ["tom", "raj", "kim"], "strategy": "round_robin"}},
        "rules": [{"name": "everyone", "assign": {"pool": "team"}}],
        "fallback": {"queue": "triage"},
    })[1])


def routed_lead(make_runtime: Any, admin: Any, last_name: str, company: str, email: str) -> tuple[Any, str, str]:
    """A Salesforce runtime, the seed routed, then one new lead from the intake routed: (runtime, its id, its owner)."""
    rt = salesforce_runtime(make_runtime)
    route_all(rt, "salesforce")
    (rid,) = admin.sf_load("Lead", [{"LastName": last_name, "Company": company, "Email": email,
                                     "Status": "Open - Not Contacted", "OwnerId": INTAKE_QUEUE}])
    route_all(rt, "salesforce")
    return rt, rid, current(rt, "salesforce", rid)["owner"]


def test_a_rejection_by_crm_status_is_routed_again_away_from_the_rep_who_rejected_it(make_runtime: Any, admin: Any) -> None:
    rt, rid, first = routed_lead(make_runtime, admin, "Reject", "Rejectco", "a@rejectco.example")
    assert fired(rt, "salesforce") == []

    admin.sf_edit("Lead", rid, {"Status": REJECTED})  # the rep hands it back by status
    ((lead_id, kind, why, new),) = fired(rt, "salesforce")
    assert (lead_id, kind, why) == (rid, "rejection", f"status {REJECTED}") and new != first
    d = current(rt, "salesforce", rid)
    assert (d["epoch"], d["via"], d["previous_owner"], d["excluded"], d["why"]) == (1, "rejection", first, [first],
                                                                                     f"status {REJECTED}")
    assert d["skipped"] == {first: "rejected"}
    assert d["reason"].startswith(f"rejected by {first} (status {REJECTED}): everyone")
    record = admin.sf_record("Lead", rid)
    assert record["OwnerId"] == route.owner_crm_id(rt.config, "salesforce", new)
    assert record["Status"] == "Open - Not Contacted"  # reopened for the new owner
    rejected = [e for e in rt.store.log_for_lead(LeadRef("salesforce", "Lead", rid)) if e.kind == "rejected"]
    assert [(e.data["by"], e.data["to"]) for e in rejected] == [(first, new)]
    assert fired(rt, "salesforce") == []  # once: our write seen again changes nothing
    route_all(rt, "salesforce")
    assert current(rt, "salesforce", rid)["epoch"] == 1

    admin.sf_edit("Lead", rid, {"Status": REJECTED})  # the second rep rejects it too
    ((_, _, _, third),) = fired(rt, "salesforce")
    assert third not in (first, new) and current(rt, "salesforce", rid)["excluded"] == [first, new]


def test_a_trigger_also_moves_a_lead_leadroute_never_routed_and_one_no_trigger_rule_takes_stays(
    make_runtime: Any, admin: Any
) -> None:
    rt = make_runtime(with_lifecycle_stage({
        "pools": {"sdr": {"members": SDRS, "strategy": "round_robin"}, "ae": {"members": AES, "strategy": "round_robin"}},
        "rules": [{"name": "sdr", "assign": {"pool": "sdr"}}, {"name": "us-ae", "when": {"country": "US"},
                                                              "assign": {"pool": "ae"}}],
        "fallback": {"queue": "triage"},
        "triggers": [{"name": "mql", "when": {"lifecycle_stage": "marketingqualifiedlead"}, "use_rules": ["us-ae"]}],
    }))
    tom = route.owner_crm_id(rt.config, "hubspot", "tom")
    us, de = admin.hs_load([  # given to tom by hand, never routed by leadroute
        {"properties": {"email": f"x@hand{n}.example", "country": country, "lifecyclestage": "lead", "hubspot_owner_id": tom}}
        for n, country in ((1, "United States"), (2, "Germany"))])
    held = rt.store.loads(["tom"])["tom"]
    assert fired(rt, "hubspot") == []  # first sight is the baseline
    for rid in (us, de):
        admin.hs_edit(rid, {"lifecyclestage": "marketingqualifiedlead"})
    report = handoffs.poll_owned(rt, "hubspot")
    ((lead_id, _, name, ae),) = report.handed_off
    assert (lead_id, name) == (us, "mql") and ae in AES and report.unmatched == [de]
    assert current(rt, "hubspot", us)["previous_owner"] == "tom" and current(rt, "hubspot", us)["rule"] == "us-ae"
    assert admin.hs_record(de)["properties"]["hubspot_owner_id"] == tom  # no trigger rule takes it: it stays
    assert [e.data["trigger"] for e in rt.store.log_for_lead(LeadRef("hubspot", "contacts", de))
            if e.kind == "trigger_unmatched"] == ["mql"]
    assert rt.store.loads(["tom"])["tom"] == held  # it was never open in tom's load: nothing to give back


def test_a_contact_put_back_unowned_is_routed_again_away_from_its_rep(make_runtime: Any, admin: Any) -> None:
    rt = hubspot_runtime(make_runtime)
    route_all(rt, "hubspot")
    rid = contact(admin, 4, 10, "lead")
    route_all(rt, "hubspot")
    first = current(rt, "hubspot", rid)["owner"]
    admin.hs_edit(rid, {"hubspot_owner_id": ""})  # the rep hands it back: nobody owns it (HubSpot's intake)
    route_all(rt, "hubspot")
    again = current(rt, "hubspot", rid)
    assert (again["epoch"], again["via"], again["previous_owner"]) == (1, "rejection", first)
    assert again["owner"] in SDRS and again["owner"] != first
    assert fired(rt, "hubspot") == []  # the owned poll sees the new owner's lead: nothing more to do


def two_workers_and_a_routed_lead(make_runtime: Any, admin: Any, name: str) -> tuple[Any, Any, str]:
    """Two runtimes on the same store (two worker processes) and a new Salesforce lead routed by the first."""
    rt, other = salesforce_runtime(make_runtime), salesforce_runtime(make_runtime)
    route_all(rt, "salesforce")
    (rid,) = admin.sf_load("Lead", [{"LastName": name, "Company": f"{name}co", "Email": f"a@{name.lower()}co.example",
                                     "Status": "Open - Not Contacted", "OwnerId": INTAKE_QUEUE}])
    route_all(rt, "salesforce")
    return rt, other, rid


def test_two_workers_polling_owned_records_at_once_reject_a_lead_once(make_runtime: Any, admin: Any) -> None:
    import threading

    rt, other, rid = two_workers_and_a_routed_lead(make_runtime, admin, "Race")
    admin.sf_edit("Lead", rid, {"Status": REJECTED})
    records = list(rt.connector("salesforce").fetch([rid]).values())  # the same change, seen by both
    barrier = threading.Barrier(2)
    done: list[list[tuple[str, str, str, str]]] = []

    def run(runtime: Any) -> None:  # past the poll's lock (as if it had expired): the store alone decides
        report = handoffs.HandoffReport("salesforce")
        barrier.wait()
        handoffs._finish(runtime, "salesforce", handoffs._started(runtime, "salesforce", records), report)
        done.append(report.handed_off)

    threads = [threading.Thread(target=run, args=(r,)) for r in (rt, other)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert sorted(len(d) for d in done) == [0, 1]
    assert current(rt, "salesforce", rid)["epoch"] == 1
    assert [len(d) for d in (fired(other, "salesforce"), fired(rt, "salesforce"))] == [0, 0]


def test_a_hand_off_the_crm_refuses_or_cannot_take_goes_to_the_fallback(make_runtime: Any, admin: Any) -> None:
    data, _ = routing_test_config()
    hs = data["connectors"]["hubspot"]
    hs["fields"] = {**hs["fields"], "lifecyclestage": "lifecycle_stage"}
    for rep in data["reps"]:
        if rep["id"] == "kim":
            rep["crm_ids"] = {**rep["crm_ids"], "hubspot": "99999999"}  # no such HubSpot owner: refused for good
        if rep["id"] == "sarah":
            rep["crm_ids"] = {k: v for k, v in rep["crm_ids"].items() if k != "hubspot"}  # no HubSpot id at all
    rt = make_runtime(routing_test_config({
        "fields": [*data["fields"], "lifecycle_stage"], "connectors": data["connectors"], "reps": data["reps"],
        "pools": {"sdr": {"members": SDRS, "strategy": "round_robin"}},
        "rules": [{"name": "sdr", "assign": {"pool": "sdr"}}],
        "fallback": {"queue": "triage"},
        "triggers": [{"name": "mql", "when": {"lifecycle_stage": "marketingqualifiedlead"}, "rules": [
            {"name": "to-kim", "when": {"country": "US"}, "assign": {"rep": "kim"}},
            {"name": "to-sarah", "assign": {"rep": "sarah"}}]}],
    })[1])
    route_all(rt, "hubspot")
    us, de = (contact(admin, n, 10, "lead") for n in (5, 6))
    admin.hs_edit(us, {"country": "United States"})
    route_all(rt, "hubspot")
    assert fired(rt, "hubspot") == []
    for rid in (us, de):
        admin.hs_edit(rid, {"lifecyclestage": "marketingqualifiedlead"})
    assert sorted(fired(rt, "hubspot")) == sorted([(rid, "trigger", "mql", "queue:triage") for rid in (us, de)])
    triage = rt.config.model.queues["triage"]["hubspot"]
    for rid, rep in ((us, "kim"), (de, "sarah")):
        d = current(rt, "hubspot", rid)
        assert (d["epoch"], d["owner"], d["via"], d["trigger"]) == (1, rep, "trigger", "mql")  # as decided
        assert admin.hs_record(rid)["properties"]["hubspot_owner_id"] == triage  # as written
        events = rt.store.log_for_lead(LeadRef("hubspot", "contacts", rid))
        (moved,) = [e.data for e in events if e.kind == "fallback_after_refusal"]
        assert (moved["from"], moved["to"]) == (rep, "queue:triage")
    assert "INVALID_OWNER_ID" in moved_why(rt, us) and "no hubspot id" in moved_why(rt, de)
    assert rt.store.handoffs("hubspot") == {}


def moved_why(rt: Any, rid: str) -> str:
    events = rt.store.log_for_lead(LeadRef("hubspot", "contacts", rid))
    return next(str(e.data["why"]) for e in events if e.kind == "fallback_after_refusal")


def test_a_lead_put_back_in_the_intake_with_a_rejection_status_is_rejected_once_and_never_acknowledged(
    make_runtime: Any, admin: Any
) -> None:
    rt, rid, first = routed_lead(make_runtime, admin, "Both", "Bothco", "a@bothco.example")
    admin.sf_edit("Lead", rid, {"Status": REJECTED})
    (ack,) = rt.connector("salesforce").read_acks([rid]).values()
    assert ack.acknowledged is False  # a status that leaves "Open - Not Contacted" but says rejected is no acknowledgement
    admin.sf_change_owner(rid, INTAKE_QUEUE)  # and back in the intake queue: the drain takes it
    route_all(rt, "salesforce")
    d = current(rt, "salesforce", rid)
    assert (d["epoch"], d["via"], d["previous_owner"]) == (1, "rejection", first) and d["owner"] != first
    assert admin.sf_record("Lead", rid)["Status"] == "Open - Not Contacted"  # reopened with the new owner
    assert fired(rt, "salesforce") == []  # so the owned poll sees no rejection by the new owner
    assert current(rt, "salesforce", rid)["epoch"] == 1


def test_a_trigger_whose_rules_pick_the_current_owner_counts_the_lead_once_and_does_not_notify_again(
    make_runtime: Any, admin: Any
) -> None:
    rt = make_runtime(with_lifecycle_stage({
        "pools": {"sdr": {"members": ["tom"], "strategy": "round_robin"}},
        "rules": [{"name": "sdr", "assign": {"pool": "sdr"}}],
        "fallback": {"queue": "triage"},
        "triggers": [{"name": "mql", "when": {"lifecycle_stage": "marketingqualifiedlead"}, "use_rules": ["sdr"]}],
    }))
    route_all(rt, "hubspot")
    rid = contact(admin, 7, 10, "lead")
    route_all(rt, "hubspot")
    assert current(rt, "hubspot", rid)["owner"] == "tom" and rt.store.holder("hubspot", rid) == "tom"
    held = rt.store.loads(["tom"])["tom"]
    assert fired(rt, "hubspot") == []
    notified = len(rt.enqueue.assigned)
    admin.hs_edit(rid, {"lifecyclestage": "marketingqualifiedlead"})
    assert fired(rt, "hubspot") == [(rid, "trigger", "mql", "tom")]  # the trigger's rules pick tom again
    assert current(rt, "hubspot", rid)["epoch"] == 1
    assert rt.store.loads(["tom"])["tom"] == held  # the same open lead: it counts once, not twice
    assert len(rt.enqueue.assigned) == notified  # tom already has it: no second "new lead" message


def test_a_rejection_by_status_with_no_decision_left_in_the_store_goes_by_the_crm_owner(
    make_runtime: Any, admin: Any
) -> None:
    rt, rid, first = routed_lead(make_runtime, admin, "Old", "Oldco", "a@oldco.example")
    assert fired(rt, "salesforce") == []
    ref = LeadRef("salesforce", "Lead", rid)
    rt.store.client.delete(rt.store.keys.decision(ref.at(0)))  # expired after its TTL (or lost with Redis)

    admin.sf_edit("Lead", rid, {"Status": REJECTED})
    ((lead_id, kind, why, new),) = fired(rt, "salesforce")  # the CRM owner, a configured rep, rejected it
    assert (lead_id, kind, why) == (rid, "rejection", f"status {REJECTED}") and new != first
    d = current(rt, "salesforce", rid)
    assert (d["epoch"], d["via"], d["previous_owner"], d["excluded"]) == (1, "rejection", first, [first])
    assert admin.sf_record("Lead", rid)["Status"] == "Open - Not Contacted"


def test_a_rejection_by_status_from_someone_leadroute_did_not_give_the_lead_to_is_skipped_with_a_reason(
    make_runtime: Any, admin: Any
) -> None:
    rt, rid, first = routed_lead(make_runtime, admin, "Moved", "Movedco", "a@movedco.example")
    other = next(r for r in ("tom", "raj", "kim") if r != first)
    assert fired(rt, "salesforce") == []
    admin.sf_edit("Lead", rid, {"OwnerId": route.owner_crm_id(rt.config, "salesforce", other), "Status": REJECTED})
    assert fired(rt, "salesforce") == []  # moved by hand: not a rejection of leadroute's decision ...
    skipped = [e.data["why"] for e in rt.store.log_for_lead(LeadRef("salesforce", "Lead", rid)) if e.kind == "skipped"]
    assert skipped == [f"rejection by status {REJECTED} ignored: leadroute gave the lead to {first}, "  # ... and says so
                       f"the CRM owner is {other}"]


def test_the_owned_poll_keeps_its_lock_while_it_finishes_the_hand_offs_left_in_progress(
    make_runtime: Any, admin: Any
) -> None:
    rt = hubspot_runtime(make_runtime)
    route_all(rt, "hubspot")
    rid = contact(admin, 8, 10, "lead")
    route_all(rt, "hubspot")
    handoffs.poll_owned(rt, "hubspot")
    admin.hs_edit(rid, {"hubspotscore": "88", "lifecyclestage": "marketingqualifiedlead"})
    conn = rt.connector("hubspot")
    real_fetch, real_write = conn.fetch, conn.write_owners

    def dies(updates: Any) -> Any:
        raise SystemExit("worker killed mid-write")

    conn.write_owners = dies
    with pytest.raises(SystemExit):
        handoffs.poll_owned(rt, "hubspot")
    assert list(rt.store.handoffs("hubspot")) == [rid]  # the backlog the next poll finishes first
    lock = rt.store.keys.lock("owned:hubspot")
    left: list[int] = []

    def slow_fetch(ids: Any) -> Any:
        found = real_fetch(ids)
        rt.store.client.pexpire(lock, 10_000)  # as if reading a long backlog took all but 10 s of the lock
        return found

    def write(updates: Any) -> Any:
        left.append(rt.store.client.pttl(lock))
        return real_write(updates)

    conn.fetch, conn.write_owners = slow_fetch, write
    ((lead_id, _, _, _),) = fired(rt, "hubspot")
    assert lead_id == rid
    assert left[0] > 60_000  # renewed before the write: no second poll can take the same backlog meanwhile


def test_two_workers_finishing_the_same_hand_off_at_once_open_one_epoch(make_runtime: Any, admin: Any) -> None:
    import threading

    rt, other, rid = two_workers_and_a_routed_lead(make_runtime, admin, "Twice")
    first = current(rt, "salesforce", rid)["owner"]
    admin.sf_edit("Lead", rid, {"Status": REJECTED})
    records = list(rt.connector("salesforce").fetch([rid]).values())
    assert list(handoffs._started(rt, "salesforce", records)) == [rid]  # in progress, no epoch yet
    barrier = threading.Barrier(2)
    done: list[list[tuple[str, str, str, str]]] = []

    def run(runtime: Any) -> None:  # both take up the same backlog, past the poll's lock
        report = handoffs.HandoffReport("salesforce")
        backlog = runtime.store.handoffs("salesforce")
        barrier.wait()
        handoffs._finish(runtime, "salesforce", backlog, report)
        done.append(report.handed_off)

    threads = [threading.Thread(target=run, args=(r,)) for r in (rt, other)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    owners = {x[3] for d in done for x in d}
    assert len(owners) == 1 and first not in owners  # one decision, whoever wrote it
    assert rt.store.epochs([LeadRef("salesforce", "Lead", rid)]) == [1]  # one epoch opened, not two
    assert current(rt, "salesforce", rid)["epoch"] == 1 and rt.store.handoffs("salesforce") == {}
