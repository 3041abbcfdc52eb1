"""A pool's ``hold``: first routing waits for a member in hours with room instead of handing the lead to
someone who starts hours later, or to the fallback.

While the whole pool is off the lead waits for its first member's start; once the pool is open it waits
up to ``hold`` (from the opening, or from the lead's arrival if later) for a member in hours to have room,
then goes as it would without ``hold``. A held lead has no owner, claims nothing and says until when.
"""

from __future__ import annotations

import textwrap
from datetime import datetime, timedelta

import pytest

from worker.cli.simulate import route_rows
from worker.config import Assign, ConfigError, parse_config
from worker.routing.engine import HELD, Router
from worker.routing.state import InMemoryState

YAML = textwrap.dedent(
    """\
    version: 1
    reps:
      - {id: ny1, timezone: America/New_York, capacity: 2, hours: {start: "09:00", end: "17:00"}}
      - {id: ny2, timezone: America/New_York, capacity: 2, hours: {start: "09:00", end: "17:00"}}
      - {id: la1, timezone: America/Los_Angeles, capacity: 2, hours: {start: "09:00", end: "17:00"}}
    pools:
      team: {members: [ny1, ny2, la1], strategy: round_robin%s}
    queues: {triage: {}}
    rules:
      - {name: all, assign: {pool: team}}
    fallback: {queue: triage}
    """
)
HOLDING = parse_config(YAML % ", hold: 30m", today=datetime(2026, 12, 7).date())
PLAIN = parse_config(YAML % "", today=datetime(2026, 12, 7).date())


def ny(text: str) -> datetime:
    """A New York wall-clock time on Monday 7 December 2026 (EST, UTC-5)."""
    return datetime.fromisoformat(f"2026-12-07T{text}:00-05:00")


def lead(created: datetime, n: int = 1) -> dict[str, str]:
    return {"id": f"L{n}", "country": "US", "created_at": created.isoformat()}


def full(state: InMemoryState, *reps: str) -> InMemoryState:
    for rep in reps:
        state.adjust_load(rep, 2)
    return state


def test_a_lead_that_comes_while_the_whole_pool_is_off_waits_for_its_first_start() -> None:
    state = InMemoryState()
    d = Router(HOLDING, state).route(lead(ny("05:00")), at=ny("05:00"), hold=True)
    assert (d.owner_kind, d.owner, d.held) == (HELD, "", True)
    assert datetime.fromisoformat(str(d.retry_at)) == ny("09:00")  # ny1 and ny2 start first; la1 at 12:00
    assert d.skipped == {"ny1": "outside_hours", "ny2": "outside_hours", "la1": "outside_hours"}
    assert "pool team closed: held until its first member starts" in d.reason
    assert set(state.loads(["ny1", "ny2", "la1"]).values()) <= {0}  # nothing was claimed


def test_without_hold_the_same_lead_goes_to_whoever_starts_soonest() -> None:
    for config, hold in ((PLAIN, True), (HOLDING, False)):
        d = Router(config, InMemoryState()).route(lead(ny("05:00")), at=ny("05:00"), hold=hold)
        assert (d.owner_kind, d.owner, d.retry_at) == ("rep", "ny1", None)


def test_an_open_pool_whose_members_in_hours_are_full_holds_the_lead_a_minute_at_a_time() -> None:
    state = full(InMemoryState(), "ny1", "ny2")  # la1 starts at 12:00 New York time
    d = Router(HOLDING, state).route(lead(ny("09:10")), at=ny("09:10"), hold=True)
    assert d.held
    assert datetime.fromisoformat(str(d.retry_at)) == ny("09:11")
    assert "nobody in hours has room: held for a member who has (0 of 30 min waited)" in d.reason
    assert d.skipped == {"ny1": "at_capacity", "ny2": "at_capacity", "la1": "outside_hours"}


def test_the_wait_counts_from_the_pools_opening_for_a_lead_that_came_before_it() -> None:
    state = full(InMemoryState(), "ny1", "ny2")
    d = Router(HOLDING, state).route(lead(ny("06:00")), at=ny("09:20"), hold=True)
    assert d.held and "(20 of 30 min waited)" in d.reason
    late = Router(HOLDING, state).route(lead(ny("06:00")), at=ny("09:29:30"), hold=True)
    assert datetime.fromisoformat(str(late.retry_at)) == ny("09:30")  # never past the end of the wait


def test_once_the_wait_is_over_the_lead_goes_as_it_would_without_hold() -> None:
    state = full(InMemoryState(), "ny1", "ny2")
    d = Router(HOLDING, state).route(lead(ny("09:05")), at=ny("09:35"), hold=True)  # waited 30 min since it came
    assert (d.owner, d.retry_at) == ("la1", None)
    assert "all eligible reps outside hours" in d.reason


def test_the_wait_counts_from_the_leads_arrival_when_the_pool_was_already_open() -> None:
    state = full(InMemoryState(), "ny1", "ny2")
    d = Router(HOLDING, state).route(lead(ny("10:00")), at=ny("10:20"), hold=True)
    assert d.held and "(20 of 30 min waited)" in d.reason


def test_a_member_with_room_gets_the_lead_at_once_and_a_held_lead_changed_no_rotation() -> None:
    state = full(InMemoryState(), "ny1")
    assert Router(HOLDING, state).route(lead(ny("05:00")), at=ny("05:00"), hold=True).held
    d = Router(HOLDING, state).route(lead(ny("09:01"), 2), at=ny("09:01"), hold=True)
    assert (d.owner, d.held) == ("ny2", False)
    state.adjust_load("ny1", -2)
    again = Router(HOLDING, state).route(lead(ny("09:02"), 3), at=ny("09:02"), hold=True)
    assert again.owner == "ny1"  # the rotation moved once, for the lead that was given


def test_a_pool_nobody_will_come_to_does_not_hold() -> None:
    overrides = {"ny1": "ooo", "ny2": "ooo", "la1": "ooo"}
    d = Router(HOLDING, InMemoryState()).route(lead(ny("05:00")), at=ny("05:00"), overrides=overrides, hold=True)
    assert (d.owner_kind, d.owner) == ("queue", "queue:triage")


def test_reroutes_and_reassignments_never_hold() -> None:
    state = full(InMemoryState(), "ny1", "ny2")
    d = Router(HOLDING, state).route_to(lead(ny("09:10")), Assign(pool="team"), "manual", at=ny("09:10"))
    assert (d.owner, d.held) == ("la1", False)


def test_a_performance_weighted_pool_holds_too() -> None:
    config = parse_config(YAML.replace("strategy: round_robin%s", "strategy: performance_weighted, hold: 30m"),
                          today=datetime(2026, 12, 7).date())
    d = Router(config, InMemoryState()).route(lead(ny("05:00")), at=ny("05:00"), hold=True)
    assert d.held and datetime.fromisoformat(str(d.retry_at)) == ny("09:00")
    assert d.to_dict()["retry_at"] == d.retry_at


@pytest.mark.parametrize("value", ["0s", "2d", "soon", -5, 90000])
def test_a_hold_that_is_not_a_duration_up_to_a_day_is_refused_with_its_line(value: object) -> None:
    with pytest.raises(ConfigError) as err:
        parse_config(YAML % f", hold: {value}", "routing.yaml")
    assert "hold" in str(err.value) and "routing.yaml:7" in str(err.value)


def test_decisions_without_a_hold_carry_no_retry_time() -> None:
    d = Router(HOLDING, InMemoryState()).route(lead(ny("10:00")), at=ny("10:00") + timedelta(minutes=1), hold=True)
    assert d.owner == "ny1" and "retry_at" not in d.to_dict()


def test_simulate_routes_a_held_lead_again_when_its_pool_opens_before_the_leads_that_came_after() -> None:
    rows = [(1, lead(ny("05:00"), 1)), (2, lead(ny("09:30"), 2)), (3, lead(ny("08:00"), 3))]
    out = list(route_rows(HOLDING, rows))
    assert [(line, d.owner, datetime.fromisoformat(d.routed_at)) for line, d in out] == [
        (1, "ny1", ny("09:00")),  # held from 05:00, routed when ny1 and ny2 start
        (2, "ny2", ny("09:30")),
        (3, "ny1", ny("09:00")),  # last in the file: held, routed at its pool's opening once the rows ran out
    ]
