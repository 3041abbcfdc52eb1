"""The sweep against a real Redis: every action happens once, at its minute, and leaves a trail.

The CRM is the in-memory double from ``conftest`` (same data types and condition evaluator
as the real connectors); tests act as reps by editing its records.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from datetime import datetime, timedelta
from typing import Any

import pytest
import redis
import time_machine

from worker.config import RoutingConfig, parse_config
from worker.domain.leads import LeadRef
from worker.routing.engine import Router
from worker.sla.policy import SlaRecord, timer_id
from worker.sla.settings import CompiledSla
from worker.steps.sla_sweep import Notice, SlaService, sweep
from worker.store.redis_store import RedisStore

from .conftest import CONFIG, HOT, T0, FakeCrm


def minutes(n: float) -> datetime:
    return T0 + timedelta(minutes=n)


@pytest.fixture
def store(redis_client: redis.Redis, redis_prefix: str) -> RedisStore:
    return RedisStore(redis_client, prefix=redis_prefix)


@pytest.fixture
def notices() -> list[Notice]:
    return []


@pytest.fixture
def svc(store: RedisStore, sla: CompiledSla, config: RoutingConfig, crm: FakeCrm, notices: list[Notice]) -> SlaService:
    return SlaService(store, sla, config, {"salesforce": crm}, notices.append)


def assign(svc: SlaService, crm: FakeCrm, lead_id: str, at: datetime = T0, **fields: Any) -> tuple[LeadRef, str]:
    """Route a lead as the worker does (decide once, load +1), put it in the CRM, start its clock."""
    ref = LeadRef("salesforce", "Lead", lead_id)
    raw = {**HOT, **fields}
    crm.add(lead_id, "", **raw)
    lead = crm.fetch([lead_id])[lead_id].lead
    decided = svc.store.decide_once(ref.at(0), lambda state: Router(svc.config, state).route(lead, at=at).to_dict())
    owner = decided.decision["owner"]
    crm.records[lead_id]["OwnerId"] = svc.config.reps[owner].crm_ids["salesforce"]
    svc.start(ref, owner, lead, at)
    return ref, owner


def log(store: RedisStore, lead: LeadRef | None = None) -> list[tuple[str, dict[str, Any]]]:
    entries = [e for e in store.log_range() if e.kind.startswith("sla.") and (lead is None or e.lead == str(lead))]
    return [(e.kind, e.data) for e in entries]


def acts(report: Any) -> list[tuple[str, str, str | None]]:
    return [(a.action, a.owner, a.to) for a in report.actions]


@pytest.fixture
def clock() -> Iterator[Any]:
    with time_machine.travel(T0, tick=False) as traveller:
        yield traveller


def test_the_whole_ladder_on_the_clock_each_step_at_its_minute(
    svc: SlaService, crm: FakeCrm, store: RedisStore, notices: list[Notice], clock: Any
) -> None:
    lead, owner = assign(svc, crm, "00Q1")
    assert owner == "sarah" and store.loads(["sarah"]) == {"sarah": 1}
    assert store.timer(timer_id(lead)).due_at == minutes(10).timestamp()

    clock.move_to(minutes(10) - timedelta(seconds=1))
    assert svc.sweep().actions == []

    clock.move_to(minutes(10))
    report = svc.sweep()
    assert acts(report) == [("remind", "sarah", None)]
    assert [(n.kind, n.to, n.step) for n in notices] == [("reminder", "sarah", 1)]
    assert crm.records["00Q1"]["Routing_Reason__c"] == "SLA hot: not acknowledged after 10m (hot, step 1): reminded sarah"

    clock.move_to(minutes(15))
    assert acts(svc.sweep()) == [("breach", "sarah", None), ("escalate", "sarah", None)]
    assert [(n.kind, n.to, n.role) for n in notices[1:]] == [("escalation", "maria", "manager")]

    clock.move_to(minutes(29))
    assert svc.sweep().actions == []
    clock.move_to(minutes(30))
    report = svc.sweep()
    assert acts(report) == [("reassign", "sarah", "tom")]
    assert crm.records["00Q1"]["OwnerId"] == "005TOM"
    assert crm.records["00Q1"]["Routing_Reason__c"] == (
        "SLA hot: not acknowledged after 30m (hot, step 3) -> reassigned to tom (everyone -> pool sales (round robin: tom 1))"
    )
    assert store.loads(["sarah", "tom"]) == {"sarah": 0, "tom": 1}
    assert [(n.kind, n.to, n.role) for n in notices[2:]] == [
        ("assigned", "tom", "new_owner"), ("reassigned_from", "sarah", "previous_owner"), ("reassigned_from", "maria", "manager"),
    ]
    assert notices[2].deadline == minutes(45) and notices[3].deadline == minutes(15)  # each owner's own deadline
    tom = SlaRecord.from_payload(lead, store.timer(timer_id(lead)).payload)
    assert (tom.owner, tom.earlier, tom.reassignments, tom.epoch) == ("tom", ("sarah",), 1, 1)
    assert tom.deadline == minutes(45).timestamp()  # recomputed from the reassignment
    assert store.decision(lead.at(1)).decision["owner"] == "tom"

    clock.move_to(minutes(60))  # tom ignores it too: remind, breach, escalate, reassign, all due now
    # Next in the rotation is mike, but it is 17:00 in Berlin: ana, in hours, gets it.
    assert acts(svc.sweep()) == [
        ("remind", "tom", None), ("breach", "tom", None), ("escalate", "tom", None), ("reassign", "tom", "ana"),
    ]
    clock.move_to(minutes(90))  # and ana: after two reassignments the lead is parked
    report = svc.sweep()
    assert acts(report)[-1] == ("park", "ana", "queue:triage")
    assert crm.records["00Q1"]["OwnerId"] == "00GTRIAGE"
    assert store.timer(timer_id(lead)) is None and store.open_timers() == 0
    assert store.loads(["sarah", "tom", "ana"]) == {"sarah": 0, "tom": 0, "ana": 0}
    assert [(n.kind, n.to) for n in notices if n.kind == "parked"] == [("parked", None)]  # ana has no manager

    trail = [(kind, d["owner"], d["ladder_step"]) for kind, d in log(store, lead)]
    assert trail == [
        ("sla.remind", "sarah", 1), ("sla.breach", "sarah", None), ("sla.escalate", "sarah", 2), ("sla.reassign", "sarah", 3),
        ("sla.remind", "tom", 1), ("sla.breach", "tom", None), ("sla.escalate", "tom", 2), ("sla.reassign", "tom", 3),
        ("sla.remind", "ana", 1), ("sla.breach", "ana", None), ("sla.escalate", "ana", 2), ("sla.park", "ana", 3),
    ]
    _, last = log(store, lead)[-1]
    assert last["excluded"] == ["ana", "sarah", "tom"] and last["to"] == "queue:triage"


def test_acknowledged_in_the_crm_stops_the_clock_and_records_time_to_acknowledge(
    svc: SlaService, crm: FakeCrm, store: RedisStore, notices: list[Notice]
) -> None:
    lead, _ = assign(svc, crm, "00Q1")
    crm.touch("00Q1", minutes(7), Status="Working - Contacted")
    report = svc.sweep(minutes(10))
    assert acts(report) == [("stop", "sarah", None)]
    assert notices == [] and store.timer(timer_id(lead)) is None and store.loads(["sarah"]) == {"sarah": 0}
    [(kind, data)] = log(store, lead)
    assert kind == "sla.stop" and data["time_to_ack_s"] == 420 and data["within_sla"] is True
    assert data["observed"] == "crm_modstamp"
    assert "Routing_Reason__c" not in crm.records["00Q1"]  # nothing written to a lead a rep is working


def test_an_owner_changed_by_a_human_is_respected(svc: SlaService, crm: FakeCrm, store: RedisStore) -> None:
    lead, _ = assign(svc, crm, "00Q1")
    crm.touch("00Q1", minutes(5), OwnerId="005MARIA")
    assert acts(svc.sweep(minutes(10))) == [("manual_override", "sarah", None)]
    assert crm.records["00Q1"]["OwnerId"] == "005MARIA" and store.timer(timer_id(lead)) is None
    assert store.loads(["sarah"]) == {"sarah": 0}
    assert "from sarah to maria" in log(store, lead)[0][1]["note"]


def test_converted_or_deleted_leads_close(svc: SlaService, crm: FakeCrm, store: RedisStore) -> None:
    assign(svc, crm, "00Q1")
    assign(svc, crm, "00Q2")
    crm.touch("00Q1", minutes(5), IsConverted=True)
    del crm.records["00Q2"]
    report = svc.sweep(minutes(10))
    assert sorted((a.lead, a.action, a.note) for a in report.actions) == [
        ("salesforce:Lead:00Q1", "close", "closed in the CRM (converted)"),
        ("salesforce:Lead:00Q2", "close", "deleted in the CRM"),
    ]
    assert store.open_timers() == 0 and store.loads(["sarah", "tom"]) == {"sarah": 0, "tom": 0}


def test_a_late_sweep_does_each_passed_step_once_in_order(svc: SlaService, crm: FakeCrm, notices: list[Notice]) -> None:
    assign(svc, crm, "00Q1")
    report = svc.sweep(minutes(47))
    assert [(a.action, a.step, a.late_seconds) for a in report.actions] == [
        ("remind", 1, 37 * 60), ("breach", None, 32 * 60), ("escalate", 2, 32 * 60), ("reassign", 3, 17 * 60),
    ]
    assert [n.kind for n in notices] == ["reminder", "escalation", "assigned", "reassigned_from", "reassigned_from"]
    assert svc.sweep(minutes(47)).actions == []


def test_the_sweep_reads_only_the_due_leads(svc: SlaService, crm: FakeCrm, store: RedisStore) -> None:
    for i in range(3):
        assign(svc, crm, f"00QDUE{i}", at=minutes(-12))
    batch = []
    for i in range(500):
        lead_id = f"00QOPEN{i}"
        crm.add(lead_id, "005TOM", **HOT)
        batch.append((LeadRef("salesforce", "Lead", lead_id), "tom", crm.fetch([lead_id])[lead_id].lead, T0, 0))
    svc.start_many(batch)
    crm.calls.clear()
    report = svc.sweep(T0)
    assert report.due == 3 and [a.action for a in report.actions] == ["remind"] * 3
    assert crm.calls == [("read_acks", 3), ("attach_reasons", 3)]
    assert store.open_timers() == 503


def test_dry_run_reports_and_changes_nothing(svc: SlaService, crm: FakeCrm, store: RedisStore, notices: list[Notice]) -> None:
    lead, _ = assign(svc, crm, "00Q1")
    before = store.timer(timer_id(lead))
    log_before = store.log_length()
    report = svc.sweep(minutes(31), dry_run=True)
    assert report.dry_run and [(a.action, a.status) for a in report.actions] == [
        ("remind", "dry_run"), ("breach", "dry_run"), ("escalate", "dry_run"), ("reassign", "dry_run"),
    ]
    assert report.actions[-1].to == "tom" and "owner estimated" in report.actions[-1].note
    assert store.timer(timer_id(lead)) == before and store.log_length() == log_before and notices == []
    assert {name for name, _ in crm.calls} <= {"read_acks", "fetch"}
    assert store.loads(["sarah", "tom"]) == {"sarah": 1, "tom": 0} and store.epoch(lead) == 0
    assert "would do 4 action(s)" in report.lines()[0]
    assert [a.action for a in svc.sweep(minutes(31)).actions] == ["remind", "breach", "escalate", "reassign"]


def test_overlapping_sweeps_act_on_each_lead_once(
    store: RedisStore, sla: CompiledSla, config: RoutingConfig, crm: FakeCrm, notices: list[Notice]
) -> None:
    lock = threading.Lock()

    def notify(n: Notice) -> None:
        with lock:
            notices.append(n)

    services = [SlaService(store, sla, config, {"salesforce": crm}, notify, batch=7) for _ in range(4)]
    for i in range(60):
        assign(services[0], crm, f"00Q{i:03}")
    reports: list[Any] = []
    threads = [threading.Thread(target=lambda s=s: reports.append(s.sweep(minutes(10)))) for s in services]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    done = [a.lead for r in reports for a in r.actions]
    assert sorted(done) == sorted(f"salesforce:Lead:00Q{i:03}" for i in range(60))
    assert len(notices) == 60 and len(log(store)) == 60


def test_a_sweep_that_died_half_way_is_rerun_without_repeats(
    svc: SlaService, crm: FakeCrm, store: RedisStore, notices: list[Notice]
) -> None:
    lead, _ = assign(svc, crm, "00Q1")
    before = store.timer(timer_id(lead))
    svc.sweep(minutes(16))
    # As if the sweeper died after acting but before re-arming: the lease brings the old timer back.
    store.schedule(before.timer_id, before.due_at, before.payload)
    report = svc.sweep(minutes(16))
    assert [(a.action, a.status) for a in report.actions] == [
        ("remind", "already_done"), ("breach", "already_done"), ("escalate", "already_done"),
    ]
    assert [n.kind for n in notices] == ["reminder", "escalation"] and len(log(store)) == 3


def test_a_retriable_write_is_retried_with_the_same_pick(svc: SlaService, crm: FakeCrm, store: RedisStore) -> None:
    lead, _ = assign(svc, crm, "00Q1")
    svc.sweep(minutes(16))
    crm.fail["00Q1"] = "retriable"
    report = svc.sweep(minutes(30))
    assert [(a.action, a.status, a.to) for a in report.actions] == [("reassign", "retry", "tom")]
    assert crm.records["00Q1"]["OwnerId"] == "005SARAH" and store.loads(["tom"]) == {"tom": 1}
    assign(svc, crm, "00Q2", at=minutes(30))  # another lead takes the next turn meanwhile (mike)
    report = svc.sweep(minutes(30.5))
    assert [(a.action, a.status, a.to) for a in report.actions] == [("reassign", "done", "tom")]
    assert crm.records["00Q1"]["OwnerId"] == "005TOM"
    assert store.loads(["sarah", "tom", "mike"]) == {"sarah": 0, "tom": 1, "mike": 1}
    assert store.epoch(lead) == 1
    assert [kind for kind, _ in log(store, lead)].count("sla.reassign") == 1


def test_a_refused_write_is_reported_and_alerted(
    svc: SlaService, crm: FakeCrm, store: RedisStore, notices: list[Notice]
) -> None:
    lead, _ = assign(svc, crm, "00Q1")
    svc.sweep(minutes(16))
    notices.clear()
    crm.fail["00Q1"] = "fatal"
    report = svc.sweep(minutes(30))
    assert [(a.action, a.status) for a in report.actions] == [("reassign", "failed")]
    assert "INVALID_CROSS_REFERENCE_KEY" in report.actions[0].note
    assert [(n.kind, n.to, n.role) for n in notices] == [("parked", None, "alert")]
    assert store.timer(timer_id(lead)) is None
    assert store.loads(["sarah", "tom"]) == {"sarah": 1, "tom": 0}  # the CRM still has it with sarah


def test_a_crm_outage_loses_nothing(svc: SlaService, crm: FakeCrm, store: RedisStore) -> None:
    lead, _ = assign(svc, crm, "00Q1")
    crm.down = True
    report = svc.sweep(minutes(10))
    assert report.actions == [] and "503" in report.errors[0]
    assert store.timer(timer_id(lead)).due_at == minutes(10.5).timestamp()
    crm.down = False
    assert acts(svc.sweep(minutes(10.5))) == [("remind", "sarah", None)]


def test_acknowledge_from_the_cli(svc: SlaService, crm: FakeCrm, store: RedisStore) -> None:
    lead, _ = assign(svc, crm, "00Q1")
    result = svc.acknowledge(lead, minutes(20))
    assert result is not None and result.owner == "sarah" and result.tier == "hot"
    assert result.since_assigned == timedelta(minutes=20) and result.within_sla is False
    assert store.timer(timer_id(lead)) is None and store.loads(["sarah"]) == {"sarah": 0}
    assert svc.acknowledge(lead, minutes(21)) is None  # twice is harmless
    [(kind, data)] = log(store, lead)
    assert kind == "sla.stop" and data["by"] == "cli" and data["time_to_ack_s"] == 1200
    assert svc.open_for("sarah") == []


def test_a_rep_who_goes_away_hands_their_leads_on_at_once(
    svc: SlaService, crm: FakeCrm, store: RedisStore, notices: list[Notice]
) -> None:
    first, _ = assign(svc, crm, "00Q1")
    assign(svc, crm, "00Q2")  # tom
    assign(svc, crm, "00Q3")  # mike
    assign(svc, crm, "00Q4")  # ana
    assign(svc, crm, "00Q5")  # sarah again
    assert [r.lead.lead_id for r in svc.open_for("sarah")] == ["00Q1", "00Q5"]
    with time_machine.travel(minutes(2), tick=False):
        store.set_availability("sarah", False, until=minutes(60 * 24 * 7), reason="ooo")
        report = svc.rep_went_away("sarah", minutes(2))
    assert sorted((a.lead, a.action, a.to) for a in report.actions) == [
        ("salesforce:Lead:00Q1", "reassign", "tom"), ("salesforce:Lead:00Q5", "reassign", "mike"),
    ]
    assert all("sarah is away (ooo)" in a.note for a in report.actions)
    assert svc.open_for("sarah") == [] and {r.lead for r in svc.open_for("tom")} >= {first}
    assert store.loads(["sarah"]) == {"sarah": 0}


def test_a_business_hours_tier_waits_for_working_time(svc: SlaService, crm: FakeCrm, store: RedisStore) -> None:
    friday = datetime.fromisoformat("2026-03-06T21:00:00+00:00")  # 16:00 Friday in New York
    lead, owner = assign(svc, crm, "00Q1", at=friday, LeadSource="Web", Score__c=50)
    assert owner == "sarah"
    monday_noon = datetime.fromisoformat("2026-03-09T16:00:00+00:00")  # 12:00 EDT: 1h Friday + 3h Monday
    assert store.timer(timer_id(lead)).due_at == monday_noon.timestamp()
    assert svc.sweep(monday_noon - timedelta(seconds=1)).actions == []
    assert [(a.action, a.to) for a in svc.sweep(monday_noon).actions] == [("breach", None), ("reassign", "tom")]


def test_nobody_eligible_means_parked_in_the_fallback_queue(svc: SlaService, crm: FakeCrm, store: RedisStore) -> None:
    lead, _ = assign(svc, crm, "00Q1")
    for rep in ("tom", "mike", "ana"):
        store.set_availability(rep, False, reason="ooo")
    report = svc.sweep(minutes(30))
    assert acts(report)[-1] == ("park", "sarah", "queue:triage")
    assert "no eligible rep" in report.actions[-1].note
    assert crm.records["00Q1"]["OwnerId"] == "00GTRIAGE" and store.timer(timer_id(lead)) is None


def test_escalation_without_a_manager_goes_to_the_alert_channel(
    svc: SlaService, crm: FakeCrm, notices: list[Notice]
) -> None:
    for i in range(4):
        assign(svc, crm, f"00Q{i}")  # the fourth goes to ana, who has no manager
    svc.sweep(minutes(15))
    escalations = {n.owner: (n.to, n.role) for n in notices if n.kind == "escalation"}
    assert escalations["ana"] == (None, "alert") and escalations["sarah"] == ("maria", "manager")
    assert crm.records["00Q3"]["Routing_Reason__c"].endswith("escalated to the alert channel")


def test_leads_in_no_tier_or_owned_by_a_queue_get_no_clock(svc: SlaService, crm: FakeCrm, store: RedisStore) -> None:
    cold = LeadRef("salesforce", "Lead", "00QCOLD")
    assert svc.start(cold, "sarah", {"lead_source": "Web", "score": 5}, T0) is None
    assert svc.start(LeadRef("salesforce", "Lead", "00QQ"), "queue:triage", HOT, T0) is None
    assert store.open_timers() == 0


def test_a_reroute_moves_the_clock_to_the_new_owner(svc: SlaService, crm: FakeCrm) -> None:
    lead, _ = assign(svc, crm, "00Q1")
    svc.start(lead, "tom", {"lead_source": "Demo Request", "score": 90}, minutes(3), epoch=1)
    assert svc.open_for("sarah") == [] and [r.owner for r in svc.open_for("tom")] == ["tom"]


def test_unreadable_timers_are_dropped_with_an_error(svc: SlaService, store: RedisStore) -> None:
    store.schedule("sla:salesforce:Lead:00QBAD", T0, {"garbage": 1})
    store.schedule("not-an-sla-timer", T0, {})
    report = svc.sweep(minutes(1))
    assert len(report.errors) == 2 and store.open_timers() == 0


def test_a_missing_connector_leaves_the_timers_for_later(
    store: RedisStore, sla: CompiledSla, config: RoutingConfig, crm: FakeCrm
) -> None:
    with_crm = SlaService(store, sla, config, {"salesforce": crm})
    lead, _ = assign(with_crm, crm, "00Q1")
    report = SlaService(store, sla, config, {}).sweep(minutes(10))
    assert "salesforce: no connector configured" in report.errors[0]
    assert store.timer(timer_id(lead)).due_at > minutes(10).timestamp()


def test_the_plain_function_and_the_printed_report(
    store: RedisStore, sla: CompiledSla, config: RoutingConfig, crm: FakeCrm, svc: SlaService
) -> None:
    assign(svc, crm, "00Q1")
    report = sweep(store, sla, Router(config, store), {"salesforce": crm}, None, minutes(12))
    line = "  salesforce:Lead:00Q1 hot step 1: remind sarah (2m late): not acknowledged after 10m (hot, step 1)"
    assert report.lines()[1] == line
    data = json.loads(json.dumps(report.to_dict()))
    assert data["actions"][0]["action"] == "remind" and data["due"] == 1 and data["more_due"] is False


def test_a_reassignment_when_everyone_is_outside_hours_goes_to_whoever_starts_first(
    svc: SlaService, crm: FakeCrm, store: RedisStore
) -> None:
    # Wednesday 18:30 in New York, 17:30 in Chicago, 00:30 Thursday in Berlin: nobody works. Mike starts first
    # (09:00 in Berlin is 03:00 in New York); without him, sarah and tom (09:00 New York) before ana (10:00).
    evening = datetime.fromisoformat("2026-03-04T23:30:00+00:00")
    lead, owner = assign(svc, crm, "00Q1", at=evening)
    assert owner == "mike"
    report = svc.sweep(evening + timedelta(minutes=30))
    action, old, new = acts(report)[-1]
    assert (action, old) == ("reassign", "mike") and new in ("sarah", "tom")  # not the queue, not ana
    assert crm.records["00Q1"]["Routing_Reason__c"].endswith(
        f"(round robin: {new} 1; first on: sarah, tom; all eligible reps outside hours))")
    assert store.timer(timer_id(lead)) is not None  # the new owner's clock runs


def test_a_reassignment_prefers_a_rep_in_hours_over_the_rotation(svc: SlaService, crm: FakeCrm) -> None:
    # 16:30 in New York: sarah and tom work; half an hour later only ana (Chicago, 16:00) does.
    afternoon = datetime.fromisoformat("2026-03-04T21:30:00+00:00")
    _, owner = assign(svc, crm, "00Q1", at=afternoon)
    assert owner == "sarah"
    report = svc.sweep(afternoon + timedelta(minutes=30))
    assert acts(report)[-1] == ("reassign", "sarah", "ana")
    reason = crm.records["00Q1"]["Routing_Reason__c"]
    assert "outside hours" not in reason and "round robin: ana" in reason


def test_a_dry_run_estimates_a_weighted_pools_reassignment_as_the_real_one_decides(
    store: RedisStore, sla: CompiledSla, config: RoutingConfig, crm: FakeCrm
) -> None:
    # sarah, tom, mike and ana carry 0, 10, 20 and 3 open opportunities: the lead goes to sarah, and its
    # reassignment (sarah excluded) to ana, whose weighted load 0 + 3 is the lowest, not to tom, first in the pool
    # on leads alone.
    weighted = parse_config(CONFIG.replace("strategy: round_robin", "strategy: least_loaded, load: {leads: 1, opportunities: 1}")
                            + "connectors: {salesforce: {}}\n", "routing.yaml")
    store.save_pipeline("salesforce", {"sarah": 0, "tom": 10, "mike": 20, "ana": 3},
                        T0.timestamp())
    svc = SlaService(store, sla, weighted, {"salesforce": crm}, lambda _: None)
    _, owner = assign(svc, crm, "00Q1")
    assert owner == "sarah"
    estimate = svc.sweep(minutes(31), dry_run=True).actions[-1]
    real = svc.sweep(minutes(31)).actions[-1]
    assert (estimate.action, estimate.to) == (real.action, real.to) == ("reassign", "ana")
