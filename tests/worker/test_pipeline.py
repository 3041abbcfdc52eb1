"""The sync pipeline against the sandbox CRM over HTTPS and a real Redis, without Celery.

Leads are created in both CRMs, polled, routed, and written back; every lead must end with
the owner the config dictates, the reason on the record, and its decision in the log.
"""

from __future__ import annotations

import os
import time
from collections import Counter
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import yaml

from connectors.base import RetriableError
from tests.worker.conftest import routing_test_config
from worker.app.runtime import Runtime
from worker.config import parse_config
from worker.devtools.synthetic import hubspot_contact, salesforce_lead, synthetic_leads
from worker.domain.leads import LeadRef
from worker.routing.engine import Router
from worker.routing.state import InMemoryState
from worker.steps import after_route, route

INTAKE_QUEUE = "00G5e000000InTkEAK"


def load_leads(rt: Runtime, admin: Any, n: int, seed: int = 7) -> dict[str, dict[str, list[str]]]:
    """Create ``n`` leads in each CRM; returns the ids and the canonical leads behind them."""
    leads = list(synthetic_leads(n, seed=seed))
    sf_map = dict(rt.config.model.connectors.salesforce.fields)
    hs_map = dict(rt.config.model.connectors.hubspot.fields)
    sf_ids = admin.sf_load("Lead", [salesforce_lead(lead, sf_map, INTAKE_QUEUE) for lead in leads])
    hs_ids = admin.hs_load([{"properties": hubspot_contact(lead, hs_map)} for lead in leads])
    return {"salesforce": {"ids": sf_ids}, "hubspot": {"ids": hs_ids}}


def drain(rt: Runtime, crm: str) -> list[route.Handled]:
    """Route everything pending as the drain task does, follow-ups (SLA clocks, notify tasks) included."""
    handled: list[route.Handled] = []
    for _ in range(1000):
        report = route.route_pending(rt, crm, on_batch=lambda name, written: after_route.after_batch(rt, name, written))
        if not report.handled:
            return handled
        handled.extend(report.handled)
    raise AssertionError("pending set never drained")


def poll_and_drain(rt: Runtime, crm: str = "salesforce") -> None:
    """What beat's poll and the drain it starts do: read the CRM's intake, then route all of it."""
    route.poll(rt, crm)
    drain(rt, crm)


def current_decision(rt: Runtime, record_id: str, crm: str = "salesforce", obj: str = "Lead") -> dict[str, Any]:
    """The decision the store holds for the record's current epoch."""
    found = rt.store.decision(rt.store.current_key(LeadRef(crm, obj, record_id)))
    assert found is not None, f"{record_id} has no decision"
    return found.decision


def crm_owner(rt: Runtime, crm: str, owner: str) -> str:
    return route.owner_crm_id(rt.config, crm, owner)


def test_polled_leads_in_both_crms_end_with_the_owner_the_config_dictates(make_runtime: Any, admin: Any) -> None:
    rt = make_runtime()
    created = load_leads(rt, admin, 60)
    for crm in ("salesforce", "hubspot"):
        polled = route.poll(rt, crm)
        assert polled >= 60  # ours, plus the seed's leads waiting in intake
        assert route.poll(rt, crm) == 0  # the watermark moved: nothing is handed out twice
        handled = drain(rt, crm)
        assert Counter(h.outcome for h in handled) == {"written": polled}
        conn = rt.connector(crm)
        records = conn.fetch(created[crm]["ids"])
        pools: Counter[str] = Counter()
        for rid in created[crm]["ids"]:
            decided = rt.store.decision(LeadRef(crm, rt.object_name(crm), rid).at(0))
            assert decided is not None, f"no decision logged for {rid}"
            decision = decided.decision
            record = records[rid]
            assert record.owner_id == crm_owner(rt, crm, decision["owner"])
            reason_field = "Routing_Reason__c" if crm == "salesforce" else "leadroute_reason"
            assert record.fields.get(reason_field) or admin_reason(admin, crm, rid, reason_field) == decision["reason"][:255]
            lead = dict(record.lead, account_owner=decision["facts"].get("account_owner"))
            expected = Router(rt.config, InMemoryState()).route(lead, at=datetime.fromisoformat(decision["routed_at"]))
            assert decision["rule"] == expected.rule, rid
            if decision["target"].startswith("pool "):
                pools[decision["target"]] += 1
                assert decision["owner"] in rt.config.pools[decision["target"].removeprefix("pool ")].members
            else:
                assert decision["owner"] == expected.owner, rid
        assert sum(pools.values()) > 0


def admin_reason(admin: Any, crm: str, rid: str, field: str) -> Any:
    if crm == "salesforce":
        return admin.sf_record("Lead", rid).get(field)
    return admin.hs_record(rid)["properties"].get(field)


def test_a_lead_already_taken_by_a_human_is_left_alone(make_runtime: Any, admin: Any) -> None:
    rt = make_runtime()
    ids = load_leads(rt, admin, 3)["salesforce"]["ids"]
    route.poll(rt, "salesforce")
    admin.sf_change_owner(ids[0], "0055e000001KiMnAAK")  # kim grabbed it in the CRM
    handled = {h.lead_id: h.outcome for h in drain(rt, "salesforce")}
    assert {i: handled[i] for i in ids} == {ids[0]: "not_intake", ids[1]: "written", ids[2]: "written"}
    assert admin.sf_record("Lead", ids[0])["OwnerId"] == "0055e000001KiMnAAK"


def fail_a_batch(rt: Runtime, admin: Any, endpoint: str, n: int = 20) -> tuple[list[str], int]:
    """Load ``n`` HubSpot contacts, poll them, and route one batch while ``endpoint`` answers 503 (the connector's
    own retries give up); the contacts' ids and how many leads were due before."""
    ids = load_leads(rt, admin, n)["hubspot"]["ids"]
    route.poll(rt, "hubspot")
    due = rt.pending.due("hubspot")
    admin.script_fault("503", api="hubspot", endpoint=endpoint, count=50)
    with pytest.raises(RetriableError):
        route.route_pending(rt, "hubspot", limit=100)
    return ids, due


def test_a_retried_batch_replays_decisions_and_never_claims_twice(
    make_runtime: Any, admin: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(route, "RETRY_DELAY", 0.0)  # failed ids are due again at once
    rt = make_runtime()
    ids, _ = fail_a_batch(rt, admin, "POST /crm/v3/objects/contacts/batch/update")
    refs = [LeadRef("hubspot", "contacts", rid).at(0) for rid in ids]
    before = [d.decision["owner"] for d in rt.store.decisions(refs)]
    loads_after_failure = rt.store.all_loads()
    admin.clear_faults()
    handled = drain(rt, "hubspot")
    assert Counter(h.outcome for h in handled) == {"written": len(handled)}
    assert set(ids) <= {h.lead_id for h in handled}
    assert [d.decision["owner"] for d in rt.store.decisions(refs)] == before  # replayed, not re-decided
    assert rt.store.all_loads() == loads_after_failure  # and not re-claimed
    assert sum(loads_after_failure.values()) == sum(1 for h in handled if not h.owner.startswith("queue:"))


@pytest.mark.skipif("LEADROUTE_RETRY_DELAY" in os.environ, reason="the default retry delay is under test")
def test_leads_whose_write_gave_up_are_claimable_again_within_seconds_by_default(make_runtime: Any, admin: Any) -> None:
    # After the connector's own retries, failed leads go back to the pending set; a CRM that comes back right
    # after must see them again within seconds (the default delay was 15 s: up to 15 s of stall after an outage)
    rt = make_runtime()
    _, due = fail_a_batch(rt, admin, "POST /crm/v3/objects/contacts/batch/update", n=10)
    gave_up = time.time()
    assert rt.pending.due("hubspot", now=gave_up) == 0  # not claimed again at once: a short pause first ...
    assert rt.pending.due("hubspot", now=gave_up + 1.0) == due  # ... of at most 1 s


def test_a_batch_whose_account_lookup_gives_up_is_claimable_after_the_retry_delay_not_its_lease(
    make_runtime: Any, admin: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The CRM down while a batch looks up account owners: the batch goes back like one whose fetch or write failed,
    # not left leased until its lease (LEADROUTE_PENDING_LEASE, 15 s) runs out
    monkeypatch.setattr(route, "RETRY_DELAY", 0.0)  # failed ids are due again at once
    rt = make_runtime()
    ids, due = fail_a_batch(rt, admin, "POST /crm/v3/objects/companies/search")
    assert rt.pending.due("hubspot") == due  # every id claimable again, none waiting for its lease
    admin.clear_faults()
    handled = drain(rt, "hubspot")
    assert set(ids) <= {h.lead_id for h in handled if h.outcome == "written"}


def test_a_record_the_crm_refuses_goes_to_the_fallback_with_the_error_and_an_alert(make_runtime: Any, admin: Any) -> None:
    data, _ = routing_test_config()
    kim = next(r for r in data["reps"] if r["id"] == "kim")
    kim["crm_ids"]["salesforce"] = "0055e000001FoRmAAK"  # a deactivated user: Salesforce refuses it as owner
    rt = make_runtime(parse_config(yaml.safe_dump(data, sort_keys=False)))
    manhattan = {"first_name": "Sam", "last_name": "Lee", "email": "sam@bigapple.nyc", "company": "Big Apple",
                 "country": "US", "state": "NY", "postcode": "10001", "employees": "60"}
    other = next(iter(synthetic_leads(1, seed=3)))
    sf_map = dict(rt.config.model.connectors.salesforce.fields)
    ids = admin.sf_load("Lead", [salesforce_lead(lead, sf_map, INTAKE_QUEUE) for lead in (manhattan, other)])
    route.poll(rt, "salesforce")
    handled = {h.lead_id: h for h in drain(rt, "salesforce")}
    alerts = rt.enqueue.sla_notices
    assert [(a["kind"], a["to"], a["lead"][2]) for a in alerts] == [("parked", None, ids[0])]  # the alert channel
    assert after_route.send_sla_notice(rt, alerts[0]) is not None  # it renders as a park alert
    refused = handled[ids[0]]
    assert refused.outcome == "fallback_after_refusal"
    assert refused.owner == "queue:triage"
    assert "INACTIVE_OWNER_OR_USER" in refused.reason
    assert admin.sf_record("Lead", ids[0])["OwnerId"] == "00G5e000000TrIaEAK"
    assert rt.store.all_loads().get("kim", 0) == 0  # the refused claim was released
    assert handled[ids[1]].outcome == "written"


def test_manual_reroute_opens_a_new_epoch_and_moves_the_load(make_runtime: Any, admin: Any) -> None:
    rt = make_runtime()
    ids = load_leads(rt, admin, 1)["salesforce"]["ids"]
    route.poll(rt, "salesforce")
    first = next(h for h in drain(rt, "salesforce") if h.lead_id == ids[0])
    before = rt.store.all_loads()
    result = route.reroute(rt, "salesforce", ids[0], to_rep="lee", why="customer asked", requested_by="ops")
    assert (result.epoch, result.owner, result.previous_owner) == (1, "lee", first.owner)
    assert admin.sf_record("Lead", ids[0])["OwnerId"] == "0055e000001LeEpAAK"
    loads = rt.store.all_loads()
    if first.owner != "lee":
        assert loads.get("lee", 0) == before.get("lee", 0) + 1
        if not first.owner.startswith("queue:"):
            assert loads.get(first.owner, 0) == before[first.owner] - 1
    events = [e.kind for e in rt.store.log_for_lead(LeadRef("salesforce", "Lead", ids[0]))]
    assert "reroute" in events


def test_a_write_that_landed_before_the_worker_died_is_finished_not_redone(make_runtime: Any, admin: Any) -> None:
    rt = make_runtime()
    ids = load_leads(rt, admin, 1)["salesforce"]["ids"]
    route.poll(rt, "salesforce")
    first = next(h for h in drain(rt, "salesforce") if h.lead_id == ids[0])
    key = LeadRef("salesforce", "Lead", ids[0]).at(0)
    rt.store.client.delete(rt.store.key("written", "salesforce", "Lead", ids[0], 0))  # died before noting it
    loads = rt.store.all_loads()
    admin.clear_counters()
    rt.pending.add("salesforce", [ids[0]], "reconcile")
    rt.enqueue.assigned_batches.clear()
    (again,) = drain(rt, "salesforce")
    assert (again.outcome, again.owner) == ("written", first.owner)
    if not first.owner.startswith("queue:"):
        assert list(rt.enqueue.assigned_items()) == [ids[0]]  # the notification and SLA clock still happen
    assert rt.store.all_loads() == loads
    calls = admin.counters()["endpoints"]
    assert "salesforce PATCH /composite/sobjects" not in calls  # no second owner write
    assert calls  # (the counters did record the fetch)
    assert rt.store.decision(key) is not None


def test_a_poll_waits_while_a_backlog_drains_but_never_longer_than_the_deferral(make_runtime: Any, admin: Any) -> None:
    rt = make_runtime()
    crm = "salesforce"
    load_leads(rt, admin, 3, seed=41)
    pages: list[int] = []
    first = route.poll(rt, crm, on_page=pages.append)
    assert first >= 3 and sum(pages) == first  # each page reports what it added, as it goes

    backlog = route.POLL_BACKLOG_BATCHES * rt.connector(crm).write_batch_max + 1
    rt.pending.add(crm, [f"00Q5e00000Bk{i:06d}" for i in range(backlog)], "test")
    later = load_leads(rt, admin, 2, seed=42)["salesforce"]["ids"]
    assert route.poll(rt, crm) == 0  # the drain has the API budget; the new leads wait
    assert not set(later) & set(rt.pending.client.zrange(f"{rt.pending.prefix}:pending:{crm}", 0, -1))

    deferral = rt.config.model.worker.poll_backlog_deferral
    rt.store.client.set(rt.store.key("polled", crm), repr(time.time() - deferral - 1))
    assert route.poll(rt, crm) == 2  # deferred long enough: polled despite the backlog


def test_after_a_batch_decisions_are_counted_clocks_started_and_one_notify_task_queued(make_runtime: Any, admin: Any) -> None:
    from prometheus_client import REGISTRY

    def counted(rule: str, outcome: str) -> float:
        return REGISTRY.get_sample_value("leadroute_decisions_total", {"rule": rule, "outcome": outcome}) or 0.0

    rt = make_runtime()
    crm = "salesforce"
    load_leads(rt, admin, 40, seed=43)
    route.poll(rt, crm)
    written: list[Any] = []
    before: dict[tuple[str, str], float] = {}

    def on_batch(crm_name: str, batch: list[Any]) -> None:
        for _, decision, handled in batch:
            before.setdefault((decision["rule"], handled.outcome), counted(decision["rule"], handled.outcome))
        written.extend(batch)
        after_route.after_batch(rt, crm_name, batch)

    route.route_pending(rt, crm, limit=200, on_batch=on_batch)
    assert len(written) >= 40
    per_rule = Counter((decision["rule"], handled.outcome) for _, decision, handled in written)
    for (rule, outcome), n in per_rule.items():
        assert counted(rule, outcome) == before[(rule, outcome)] + n
    [(task_crm, obj, items)] = rt.enqueue.assigned_batches  # one notify task for the whole batch, reps only
    assert (task_crm, obj) == (crm, "Lead")
    assert [i["lead_id"] for i in items] == [r.id for r, d, _ in written if d["owner_kind"] == "rep"]
    clocks = [i for i in items if i["sla_deadline"]]
    assert clocks and rt.store.open_timers() == len(clocks)


def test_the_worker_routes_a_lead_at_the_moment_it_decides_not_at_its_created_at(make_runtime: Any, admin: Any) -> None:
    """tom is away this week (the dates are built around today, two days either side, so any day and
    hour will do); a lead created in January, when he was at work, still must not go to him now."""
    today = datetime.now(UTC).date()
    data, _ = routing_test_config()
    tom = next(r for r in data["reps"] if r["id"] == "tom")
    tom["out_of_office"] = [{"start": (today - timedelta(days=2)).isoformat(), "end": (today + timedelta(days=2)).isoformat()}]
    data["rules"] = [{"name": "everyone", "assign": {"pool": "smb"}}]  # tom, raj, kim in rotation: tom first
    rt = make_runtime(parse_config(yaml.safe_dump(data, sort_keys=False)))
    january = f"{today.year}-01-05T15:00:00Z" if today.month > 1 else f"{today.year - 1}-01-05T15:00:00Z"
    sf_map = dict(rt.config.model.connectors.salesforce.fields)
    lead = next(iter(synthetic_leads(1, seed=3)))
    (rid,) = admin.sf_load("Lead", [{**salesforce_lead(lead, sf_map, INTAKE_QUEUE), "CreatedDate": january}])
    rt.pending.add("salesforce", [rid], "webhook")
    (handled,) = drain(rt, "salesforce")
    decision = rt.store.decision(LeadRef("salesforce", "Lead", rid).at(0)).decision
    assert (handled.outcome, handled.owner) == ("written", "raj")
    assert decision["skipped"] == {"tom": "ooo"}
    assert datetime.fromisoformat(decision["created_at"]) == datetime.fromisoformat(january)
    assert datetime.fromisoformat(decision["routed_at"]).date() >= today - timedelta(days=1)  # decided now


def test_a_lead_its_pool_holds_stays_in_the_intake_until_a_member_has_room(make_runtime: Any, admin: Any) -> None:
    """Every member of the pool is at capacity (reps here are available at any hour): with ``hold`` the lead
    is not given to the fallback but waits, unowned and undecided, and is routed once someone has room."""
    data, _ = routing_test_config()
    data["rules"] = [{"name": "everyone", "assign": {"pool": "smb"}}]
    data["pools"]["smb"]["hold"] = "10m"
    members = data["pools"]["smb"]["members"]
    for rep in data["reps"]:
        if rep["id"] in members:
            rep["capacity"] = 1
    rt = make_runtime(parse_config(yaml.safe_dump(data, sort_keys=False)))
    for rep in members:
        rt.store.adjust_load(rep, 1)
    sf_map = dict(rt.config.model.connectors.salesforce.fields)
    (rid,) = admin.sf_load("Lead", [salesforce_lead(next(iter(synthetic_leads(1, seed=5))), sf_map, INTAKE_QUEUE)])
    rt.pending.add("salesforce", [rid], "webhook")
    before = time.time()
    (handled,) = drain(rt, "salesforce")
    assert handled.outcome == "held"
    assert rt.connector("salesforce").fetch([rid])[rid].owner_id == INTAKE_QUEUE  # nothing written
    assert rt.store.decision(LeadRef("salesforce", "Lead", rid).at(0)) is None  # nothing decided either
    due = rt.pending.client.zscore(rt.pending.keys.pending("salesforce"), rid)
    assert before + 55 <= due <= time.time() + 60  # tried again in a minute
    (event,) = [e for e in rt.store.log_for_lead(LeadRef("salesforce", "Lead", rid)) if e.kind == "held"]
    assert "nobody in hours has room" in event.data["reason"] and event.data["until"]
    rt.store.adjust_load(members[1], -1)
    rt.pending.retry_later("salesforce", [rid], 0)  # a minute later
    (handled,) = drain(rt, "salesforce")
    assert (handled.outcome, handled.owner) == ("written", members[1])
    assert rt.connector("salesforce").fetch([rid])[rid].owner_id == crm_owner(rt, "salesforce", members[1])
    assert rt.pending.depth("salesforce") == 0
