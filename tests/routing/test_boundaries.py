"""Exact boundaries: the values where a rule or a working day starts or stops.

These held before they were written down; they stay as tests so nobody moves a boundary by
accident. Thresholds are hard (`gte: 1000` takes 1,000 and not 999), working hours include
their start and exclude their end, and both are read on the rep's own clock, including on the
days that clock jumps.
"""

from __future__ import annotations

import textwrap
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from worker.config import parse_config
from worker.routing.engine import Router, absence, in_hours
from worker.routing.state import InMemoryState

# --- Thresholds ---------------------------------------------------------------------------------

THRESHOLDS = textwrap.dedent(
    """\
    version: 1
    reps: [{id: ent}, {id: smb}]
    queues: {triage: {}}
    rules:
      - {name: enterprise, when: {employees: {gte: 1000}}, assign: {rep: ent}}
      - {name: smb, when: {employees: {exists: true}}, assign: {rep: smb}}
    fallback: {queue: triage}
    """
)


@pytest.mark.parametrize(("employees", "rule"), [
    (999, "smb"), (1000, "enterprise"), (1001, "enterprise"),
    ("999", "smb"), ("1,000", "enterprise"), ("1,001", "enterprise"),
    (999.5, "smb"),  # a head count is whole: 999.5 reads as 999
    ("1k", "enterprise"), ("999-1000", "smb"),  # a range counts from its lower bound
])
def test_gte_1000_takes_1000_and_above_and_not_999(employees: object, rule: str) -> None:
    router = Router(parse_config(THRESHOLDS), InMemoryState())
    d = router.route({"id": "L", "employees": employees}, at=datetime(2026, 12, 1, tzinfo=UTC))
    assert d.rule == rule


@pytest.mark.parametrize(("matcher", "holds_for"), [
    ("{gte: 1000}", (1000, 1001)),
    ("{gt: 1000}", (1001,)),
    ("{lte: 1000}", (999, 1000)),
    ("{lt: 1000}", (999,)),
    ("{between: [999, 1000]}", (999, 1000)),
    ("{between: [1000, 1000]}", (1000,)),
    ("1000", (1000,)),
    ("{not_in: [1000]}", (999, 1001)),
])
def test_every_comparison_at_its_boundary(matcher: str, holds_for: tuple[int, ...]) -> None:
    router = Router(parse_config(THRESHOLDS.replace("{gte: 1000}", matcher)), InMemoryState())
    at = datetime(2026, 12, 1, tzinfo=UTC)
    matched = tuple(n for n in (999, 1000, 1001)
                    if router.route({"id": "L", "employees": n}, at=at).rule == "enterprise")
    assert matched == holds_for


# --- Working hours: start included, end excluded, on the rep's clock -------------------------------

TEAM = textwrap.dedent(
    """\
    version: 1
    reps:
      - {id: nyc, timezone: America/New_York, hours: {days: [mon, tue, wed, thu, fri, sat, sun], start: "09:00", end: "17:00"}}
      - {id: ber, timezone: Europe/Berlin, hours: {days: [mon, tue, wed, thu, fri, sat, sun], start: "09:00", end: "17:00"}}
      - {id: anytime}
    pools:
      desk: {members: [nyc, anytime], strategy: round_robin}
    queues: {triage: {}}
    rules: [{name: desk, assign: {pool: desk}}]
    fallback: {queue: triage}
    """
)
NY = ZoneInfo("America/New_York")
BERLIN = ZoneInfo("Europe/Berlin")


@pytest.fixture(scope="module")
def config():
    return parse_config(TEAM, "team.yaml", today=date(2026, 12, 1))


def local(zone: ZoneInfo, *args: int) -> datetime:
    return datetime(*args, tzinfo=zone).astimezone(UTC)


@pytest.mark.parametrize(("clock", "working"), [
    ((8, 59, 59), False),
    ((9, 0, 0), True),
    ((16, 59, 59), True),
    ((16, 59, 59, 999999), True),
    ((17, 0, 0), False),
])
def test_hours_include_the_start_and_exclude_the_end(config, clock: tuple[int, ...], working: bool) -> None:
    at = local(NY, 2026, 12, 1, *clock)
    assert in_hours(config.reps["nyc"], config, at) is working


def test_a_lead_at_exactly_17_00_passes_the_rep_over_as_outside_hours(config) -> None:
    router = Router(config, InMemoryState())
    at_end = router.route({"id": "a"}, at=local(NY, 2026, 12, 1, 17, 0))
    assert (at_end.owner, at_end.skipped) == ("anytime", {"nyc": "outside_hours"})
    router = Router(config, InMemoryState())
    just_before = router.route({"id": "b"}, at=local(NY, 2026, 12, 1, 16, 59, 59))
    assert (just_before.owner, just_before.skipped) == ("nyc", {})
    router = Router(config, InMemoryState())
    at_start = router.route({"id": "c", "created_at": "2026-12-01T09:00:00-05:00"}, at_created=True)
    assert (at_start.owner, at_start.skipped) == ("nyc", {})


@pytest.mark.parametrize(("zone_rep", "day"), [
    ("nyc", date(2026, 3, 8)),    # New York springs forward: 02:00 EST -> 03:00 EDT
    ("nyc", date(2026, 11, 1)),   # and falls back: 02:00 EDT -> 01:00 EST
    ("ber", date(2026, 3, 29)),   # Berlin: 02:00 CET -> 03:00 CEST
    ("ber", date(2026, 10, 25)),  # 03:00 CEST -> 02:00 CET
])
def test_on_a_dst_change_day_hours_follow_the_reps_wall_clock(config, zone_rep: str, day: date) -> None:
    rep = config.reps[zone_rep]
    zone = config.zones[zone_rep]
    start = datetime.combine(day, time(9), zone)
    end = datetime.combine(day, time(17), zone)
    assert datetime.combine(day, time(0), zone).utcoffset() != datetime.combine(day, time(23), zone).utcoffset()
    assert in_hours(rep, config, start.astimezone(UTC))
    assert not in_hours(rep, config, (start - timedelta(seconds=1)).astimezone(UTC))
    assert in_hours(rep, config, (end - timedelta(seconds=1)).astimezone(UTC))
    assert not in_hours(rep, config, end.astimezone(UTC))


def test_the_same_utc_instant_is_in_hours_after_the_change_and_not_before(config) -> None:
    # 13:30 UTC is 08:30 EST on the Friday before and 09:30 EDT on the Monday after.
    assert not in_hours(config.reps["nyc"], config, datetime(2026, 3, 6, 13, 30, tzinfo=UTC))
    assert in_hours(config.reps["nyc"], config, datetime(2026, 3, 9, 13, 30, tzinfo=UTC))


def test_hours_across_the_missing_and_the_repeated_hour(config) -> None:
    text = TEAM.replace('start: "09:00", end: "17:00"}}\n  - {id: ber', 'start: "01:00", end: "03:00"}}\n  - {id: ber')
    night = parse_config(text, today=date(2026, 12, 1))
    rep = night.reps["nyc"]

    def minutes_in_hours(day: date) -> int:
        first = datetime.combine(day, time(0), NY).astimezone(UTC)
        last = datetime.combine(day + timedelta(days=1), time(0), NY).astimezone(UTC)
        minutes = int((last - first).total_seconds() // 60)
        return sum(in_hours(rep, night, first + timedelta(minutes=m)) for m in range(minutes))

    assert minutes_in_hours(date(2026, 3, 8)) == 60    # 01:00-02:00 EST, then the clock reads 03:00
    assert minutes_in_hours(date(2026, 11, 1)) == 180  # 01:00-02:00 twice (EDT, then EST), then 02:00-03:00
    assert minutes_in_hours(date(2026, 11, 2)) == 120


ZONES = ["America/New_York", "Europe/Berlin", "Australia/Sydney", "Asia/Tokyo", "America/Los_Angeles"]


@settings(max_examples=40, deadline=None)
@given(zone=st.sampled_from(ZONES), day=st.dates(min_value=date(2026, 1, 1), max_value=date(2027, 12, 31)),
       start=st.integers(4, 12), length=st.integers(1, 10))
def test_a_working_day_is_exactly_its_hours_long_on_any_day(zone: str, day: date, start: int, length: int) -> None:
    """Working hours that avoid the 02:00-03:00 jump last exactly end - start, every day of the year."""
    text = textwrap.dedent(f"""\
        version: 1
        reps: [{{id: r, timezone: {zone}, hours: {{days: [mon, tue, wed, thu, fri, sat, sun],
                 start: "{start:02d}:00", end: "{min(start + length, 23):02d}:00"}}}}]
        queues: {{q: {{}}}}
        fallback: {{queue: q}}
        """)
    config = parse_config(text, today=day)
    rep, tz = config.reps["r"], ZoneInfo(zone)
    first = datetime.combine(day, time(0), tz).astimezone(UTC)
    last = datetime.combine(day + timedelta(days=1), time(0), tz).astimezone(UTC)
    working = [m for m in range(int((last - first).total_seconds() // 60))
               if in_hours(rep, config, first + timedelta(minutes=m))]
    assert len(working) == (min(start + length, 23) - start) * 60
    assert working == list(range(working[0], working[0] + len(working)))  # one unbroken stretch
    assert (first + timedelta(minutes=working[0])).astimezone(tz).time() == time(start)


# --- Out-of-office dates: inclusive, on the rep's calendar ----------------------------------------


def test_out_of_office_ends_at_the_reps_midnight_even_on_a_dst_day() -> None:
    text = TEAM.replace("  - {id: anytime}", "  - {id: anytime}\n  - {id: away, timezone: America/New_York, "
                                             "out_of_office: [{start: 2026-03-07, end: 2026-03-08}]}")
    config = parse_config(text, today=date(2026, 3, 1))
    rep = config.reps["away"]
    assert absence(rep, config, local(NY, 2026, 3, 6, 23, 59, 59), {}) is None
    assert absence(rep, config, local(NY, 2026, 3, 7, 0, 0), {}) == "ooo"
    assert absence(rep, config, local(NY, 2026, 3, 8, 23, 59, 59), {}) == "ooo"   # EDT by then
    assert absence(rep, config, local(NY, 2026, 3, 9, 0, 0), {}) is None
    assert local(NY, 2026, 3, 9, 0, 0) == datetime(2026, 3, 9, 4, 0, tzinfo=UTC)  # not 05:00: the clock moved
