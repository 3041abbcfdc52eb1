"""The breach ladder as pure decisions: each step at its exact minute, once, in order."""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime, timedelta

import pytest

from worker.config import RoutingConfig
from worker.domain.leads import LeadRef
from worker.sla.calendar import calendar_for
from worker.sla.policy import Act, Seen, SlaRecord, decide, lead_of, open_record, reassigned, timer_id
from worker.sla.settings import CompiledSla, LadderAction, OnRepAway, Tier

from .conftest import T0

LEAD = LeadRef("salesforce", "Lead", "00Q000000000001")
OPEN = Seen(owner="sarah")  # unacknowledged, still sarah's


def minutes(n: float) -> datetime:
    return T0 + timedelta(minutes=n)


@pytest.fixture
def hot(sla: CompiledSla) -> Tier:
    tier = sla.tier("hot")
    assert tier is not None
    return tier


@pytest.fixture
def record(hot: Tier, config: RoutingConfig) -> SlaRecord:
    return open_record(LEAD, hot, "sarah", T0, calendar_for("sarah", config))


def kinds(plan_actions: tuple) -> list[str]:
    return [a.kind.value for a in plan_actions]


def test_a_new_clock_holds_absolute_instants(record: SlaRecord) -> None:
    assert record.deadline == minutes(15).timestamp()
    assert record.ladder == (
        (minutes(10).timestamp(), LadderAction.REMIND),
        (minutes(15).timestamp(), LadderAction.ESCALATE),
        (minutes(30).timestamp(), LadderAction.REASSIGN),
    )
    assert (record.step, record.breached, record.earlier, record.reassignments) == (0, False, (), 0)


def test_each_ladder_step_happens_at_its_exact_minute_and_only_once(record: SlaRecord) -> None:
    plan = decide(record, OPEN, minutes(10) - timedelta(seconds=1))
    assert plan.actions == () and plan.next_due == minutes(10).timestamp()

    plan = decide(record, OPEN, minutes(10))
    assert kinds(plan.actions) == ["remind"] and plan.actions[0].step == 0
    assert plan.next_due == minutes(15).timestamp()
    record = plan.record
    assert decide(record, OPEN, minutes(10)).actions == ()  # never twice

    assert decide(record, OPEN, minutes(15) - timedelta(seconds=1)).actions == ()
    plan = decide(record, OPEN, minutes(15))
    assert kinds(plan.actions) == ["breach", "escalate"]  # the window closes as the manager hears
    assert plan.next_due == minutes(30).timestamp()
    record = plan.record
    assert decide(record, OPEN, minutes(29)).actions == ()

    plan = decide(record, OPEN, minutes(30))
    assert kinds(plan.actions) == ["reassign"] and plan.actions[0].step == 2
    assert plan.next_due is None  # the sweep re-routes and starts the new owner's clock
    assert plan.record is not None and plan.record.step == 2  # the reassign itself stays pending until written


def test_a_late_sweep_still_does_every_passed_step_once_in_order(record: SlaRecord) -> None:
    plan = decide(record, OPEN, minutes(47))
    assert kinds(plan.actions) == ["remind", "breach", "escalate", "reassign"]
    assert [a.due_at for a in plan.actions] == [minutes(m).timestamp() for m in (10, 15, 15, 30)]
    assert plan.actions[0].late(minutes(47).timestamp()) == 37 * 60


def test_a_sweep_between_steps_catches_up_only_what_is_due(record: SlaRecord) -> None:
    plan = decide(record, OPEN, minutes(16))
    assert kinds(plan.actions) == ["remind", "breach", "escalate"]
    assert kinds(decide(plan.record, OPEN, minutes(16)).actions) == []


def test_acknowledged_in_the_meantime_stops_the_clock(record: SlaRecord) -> None:
    plan = decide(record, replace(OPEN, acknowledged=True), minutes(31))
    assert kinds(plan.actions) == ["stop"] and plan.record is None and plan.next_due is None


def test_an_owner_changed_by_a_human_is_respected(record: SlaRecord) -> None:
    plan = decide(record, replace(OPEN, owner="tom"), minutes(31))
    assert kinds(plan.actions) == ["manual_override"] and plan.record is None
    assert "from sarah to tom" in plan.actions[0].note


def test_our_own_pending_reassignment_is_not_a_human_change(record: SlaRecord) -> None:
    plan = decide(record, replace(OPEN, owner="tom"), minutes(31), pending_owner="tom")
    assert kinds(plan.actions)[-1] == "reassign"


def test_an_unknown_owner_is_never_taken_for_a_change(record: SlaRecord) -> None:
    assert kinds(decide(record, Seen(owner=None), minutes(10)).actions) == ["remind"]


@pytest.mark.parametrize(
    ("seen", "note"),
    [(Seen(exists=False), "deleted in the CRM"), (Seen(closed=True, owner="sarah"), "closed in the CRM (converted)")],
)
def test_deleted_or_converted_leads_close(record: SlaRecord, seen: Seen, note: str) -> None:
    plan = decide(record, seen, minutes(31))
    assert kinds(plan.actions) == ["close"] and plan.actions[0].note == note and plan.record is None


def test_after_max_reassignments_the_reassign_step_parks(record: SlaRecord) -> None:
    worn = replace(record, reassignments=2, earlier=("tom", "mike"))
    plan = decide(worn, OPEN, minutes(30))
    assert kinds(plan.actions) == ["remind", "breach", "escalate", "park"]
    assert "already reassigned 2 time(s), parked" in plan.actions[-1].note


def test_no_breach_is_recorded_when_the_lead_moved_on_before_the_deadline(hot: Tier, config: RoutingConfig) -> None:
    early = hot.model_copy(update={"ladder": (hot.ladder[2].model_copy(update={"after": timedelta(minutes=10)}),)})
    record = open_record(LEAD, early, "sarah", T0, calendar_for("sarah", config))
    assert kinds(decide(record, OPEN, minutes(20)).actions) == ["reassign"]


def test_an_away_owner_is_reassigned_at_once_or_left_to_the_ladder(record: SlaRecord) -> None:
    away = replace(OPEN, owner_away="ooo")
    plan = decide(record, away, minutes(2))
    assert kinds(plan.actions) == ["reassign"] and plan.actions[0].step is None
    assert "sarah is away (ooo)" in plan.actions[0].note
    waiting = decide(record, away, minutes(2), away_policy=OnRepAway.WAIT)
    assert waiting.actions == () and waiting.next_due == minutes(10).timestamp()


def test_a_ladder_without_reassign_keeps_watching_for_acknowledgement(sla: CompiledSla, config: RoutingConfig) -> None:
    tier = Tier.model_validate({"name": "nudge", "acknowledge_within": "1h", "ladder": [{"after": "1h", "action": "escalate"}]})
    record = open_record(LEAD, tier, "sarah", T0, calendar_for("sarah", config))
    plan = decide(record, OPEN, minutes(60), recheck_every=3600)
    assert kinds(plan.actions) == ["breach", "escalate"]
    assert plan.next_due == minutes(120).timestamp()
    assert decide(plan.record, OPEN, minutes(120)).actions == ()


def test_a_planned_absence_is_looked_at_when_it_begins(sla: CompiledSla, config: RoutingConfig) -> None:
    warm = sla.tier("warm")
    assert warm is not None
    friday = datetime.fromisoformat("2026-03-06T20:00:00+00:00")  # 14:00 in Chicago; ana is out on Monday
    record = open_record(LEAD, warm, "ana", friday, calendar_for("ana", config))
    assert record.away_at == datetime.fromisoformat("2026-03-09T05:00:00+00:00").timestamp()  # Monday 00:00 Chicago
    plan = decide(record, Seen(owner="ana"), friday + timedelta(hours=1))
    assert plan.next_due == record.away_at
    waiting = open_record(LEAD, warm, "ana", friday, calendar_for("ana", config), away_policy=OnRepAway.WAIT)
    assert waiting.away_at is None


def test_reassignment_recomputes_deadlines_in_the_new_owners_calendar(sla: CompiledSla, config: RoutingConfig) -> None:
    warm = sla.tier("warm")
    assert warm is not None
    start = datetime.fromisoformat("2026-03-04T15:00:00+00:00")  # 10:00 New York, 16:00 Berlin
    record = open_record(LEAD, warm, "sarah", start, calendar_for("sarah", config))
    assert record.deadline == datetime.fromisoformat("2026-03-04T19:00:00+00:00").timestamp()  # 14:00 New York
    moved = reassigned(record, "mike", start, warm, calendar_for("mike", config), epoch=1)
    # Mike in Berlin has one hour left today (16-17) and three tomorrow: 12:00 Berlin = 11:00 UTC.
    assert moved.deadline == datetime.fromisoformat("2026-03-05T11:00:00+00:00").timestamp()
    assert (moved.owner, moved.earlier, moved.reassignments, moved.epoch) == ("mike", ("sarah",), 1, 1)
    assert moved.opened_at == record.opened_at and moved.excluded() == frozenset({"sarah", "mike"})


def test_the_record_survives_its_stored_form(record: SlaRecord) -> None:
    busy = replace(record, step=2, breached=True, earlier=("tom",), reassignments=1, epoch=3, pending_epoch=4,
                   away_at=minutes(99).timestamp(), opened_at=minutes(-60).timestamp())
    assert SlaRecord.from_payload(LEAD, busy.to_payload()) == busy
    assert SlaRecord.from_payload(LEAD, record.to_payload()) == record
    assert len(str(record.to_payload())) < 200  # kept per open lead: small


def test_timer_ids_name_the_lead() -> None:
    assert timer_id(LEAD) == "sla:salesforce:Lead:00Q000000000001"
    assert lead_of(timer_id(LEAD)) == LEAD
    assert lead_of("other:thing") is None and lead_of("sla:salesforce") is None


def test_actions_that_end_the_clock() -> None:
    assert {a for a in Act if a.ends_clock} == {Act.PARK, Act.STOP, Act.MANUAL_OVERRIDE, Act.CLOSE}
    assert {a for a in Act if a.moves_owner} == {Act.REASSIGN, Act.PARK}
