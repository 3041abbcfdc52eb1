"""Business-hours and wall clocks: deadlines are absolute instants, right across weekends,
holidays, daylight-saving changes (US and EU dates) and out-of-office days."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from types import SimpleNamespace
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from worker.config import Hours, RoutingConfig
from worker.sla.calendar import (
    WorkCalendar,
    add_business,
    add_business_many,
    calendar_for,
    country_for_zone,
    deadline,
    deadlines,
    elapsed,
    elapsed_business,
    is_holiday,
    next_day_off,
)

NY = ZoneInfo("America/New_York")
BERLIN = ZoneInfo("Europe/Berlin")
NINE_TO_FIVE = Hours(start=time(9), end=time(17))
WEEKDAYS = frozenset(NINE_TO_FIVE.days)


def cal(zone: ZoneInfo = NY, country: str | None = "US", **kw: object) -> WorkCalendar:
    return WorkCalendar(zone=zone, hours=NINE_TO_FIVE, days=WEEKDAYS, country=country, **kw)  # type: ignore[arg-type]


def local(zone: ZoneInfo, *args: int) -> datetime:
    return datetime(*args, tzinfo=zone)  # type: ignore[misc]


def test_wall_clock_counts_every_minute() -> None:
    start = local(NY, 2026, 3, 6, 16, 50)  # a Friday, ten minutes before close
    assert deadline(start, timedelta(minutes=15), "wall", cal()) == start.astimezone(UTC) + timedelta(minutes=15)


def test_within_one_working_day() -> None:
    assert add_business(local(NY, 2026, 3, 4, 10), timedelta(hours=4), cal()) == local(NY, 2026, 3, 4, 14)


def test_across_a_weekend() -> None:
    # Friday 16:00 + 4h: one hour on Friday, three on Monday morning.
    due = add_business(local(NY, 2026, 2, 27, 16), timedelta(hours=4), cal())
    assert due == local(NY, 2026, 3, 2, 12)
    assert due.tzinfo is UTC


def test_starting_outside_hours_starts_at_the_next_opening() -> None:
    assert add_business(local(NY, 2026, 2, 28, 10), timedelta(hours=1), cal()) == local(NY, 2026, 3, 2, 10)  # Saturday
    assert add_business(local(NY, 2026, 3, 4, 7), timedelta(hours=1), cal()) == local(NY, 2026, 3, 4, 10)  # early
    assert add_business(local(NY, 2026, 3, 4, 18), timedelta(hours=1), cal()) == local(NY, 2026, 3, 5, 10)  # late


def test_a_window_ending_exactly_at_closing_time_ends_there() -> None:
    assert add_business(local(NY, 2026, 3, 4, 13), timedelta(hours=4), cal()) == local(NY, 2026, 3, 4, 17)


def test_across_a_us_public_holiday() -> None:
    # Friday 3 July 2026 is Independence Day (observed) in the US.
    assert is_holiday("US", date(2026, 7, 3))
    due = add_business(local(NY, 2026, 7, 2, 15), timedelta(hours=4), cal())
    assert due == local(NY, 2026, 7, 6, 11)


def test_holidays_are_the_reps_countrys() -> None:
    # 1 May 2026 (a Friday) is Labour Day in Germany but a working day in the US.
    start = datetime(2026, 4, 30, 14, 0, tzinfo=UTC)  # 16:00 in Berlin, 10:00 in New York
    assert add_business(start, timedelta(hours=4), cal(BERLIN, "DE")) == local(BERLIN, 2026, 5, 4, 12)
    assert add_business(start, timedelta(hours=8), cal(NY, "US")) == local(NY, 2026, 5, 1, 10)


def test_us_dst_spring_forward() -> None:
    # US clocks go forward on Sunday 8 March 2026. Friday 15:00 EST + 4h -> Monday 11:00 EDT,
    # which is 15:00 UTC, not the 16:00 UTC that adding in UTC would give.
    due = add_business(local(NY, 2026, 3, 6, 15), timedelta(hours=4), cal())
    assert due == datetime(2026, 3, 9, 15, 0, tzinfo=UTC)
    assert due.astimezone(NY).hour == 11


def test_us_dst_fall_back() -> None:
    # US clocks go back on Sunday 1 November 2026: Friday 15:00 EDT + 4h -> Monday 11:00 EST (16:00 UTC).
    due = add_business(local(NY, 2026, 10, 30, 15), timedelta(hours=4), cal())
    assert due == datetime(2026, 11, 2, 16, 0, tzinfo=UTC)


def test_eu_dst_spring_forward() -> None:
    # EU clocks go forward on Sunday 29 March 2026: Friday 15:00 CET + 4h -> Monday 11:00 CEST (09:00 UTC).
    due = add_business(local(BERLIN, 2026, 3, 27, 15), timedelta(hours=4), cal(BERLIN, "DE"))
    assert due == datetime(2026, 3, 30, 9, 0, tzinfo=UTC)


def test_eu_dst_fall_back() -> None:
    # EU clocks go back on Sunday 25 October 2026: Friday 15:00 CEST + 4h -> Monday 11:00 CET (10:00 UTC).
    due = add_business(local(BERLIN, 2026, 10, 23, 15), timedelta(hours=4), cal(BERLIN, "DE"))
    assert due == datetime(2026, 10, 26, 10, 0, tzinfo=UTC)


def test_dst_between_the_us_and_eu_switches() -> None:
    # 9-27 March 2026 the US is on summer time and Europe is not: Berlin's 09:00 is New York's 04:00.
    berlin = cal(BERLIN, "DE")
    due = add_business(local(NY, 2026, 3, 16, 10), timedelta(hours=3), berlin)  # 15:00 in Berlin: 2h + 1h
    assert due == local(BERLIN, 2026, 3, 17, 10)


def test_all_day_hours_count_real_time_on_a_dst_day() -> None:
    # Without working hours the business clock runs all day, every day; on the 23-hour
    # spring-forward day, 24 hours of work end an hour later on the wall clock.
    always = WorkCalendar(zone=NY, hours=None, country=None)
    due = add_business(local(NY, 2026, 3, 7, 12), timedelta(hours=24), always)
    assert due == local(NY, 2026, 3, 8, 13)
    assert due - local(NY, 2026, 3, 7, 12) == timedelta(hours=24)


def test_out_of_office_days_are_skipped() -> None:
    ooo_monday = cal(days_off=((date(2026, 3, 2), date(2026, 3, 2)),))
    due = add_business(local(NY, 2026, 2, 27, 16), timedelta(hours=4), ooo_monday)
    assert due == local(NY, 2026, 3, 3, 12)  # Friday 1h, Monday off, Tuesday 3h


def test_an_absence_set_from_the_cli_is_not_counted() -> None:
    away = (local(NY, 2026, 3, 4, 11), local(NY, 2026, 3, 4, 15))
    due = add_business(local(NY, 2026, 3, 4, 10), timedelta(hours=2), cal(off=(away,)))
    assert due == local(NY, 2026, 3, 4, 16)


def test_no_working_time_at_all_falls_back_to_the_wall_clock() -> None:
    never = cal(days_off=((date(2026, 1, 1), date(2028, 1, 1)),))
    start = local(NY, 2026, 3, 4, 10)
    assert add_business(start, timedelta(hours=4), never) == start + timedelta(hours=4)


def test_elapsed_business_time_for_time_to_acknowledge() -> None:
    friday_4pm, monday_10am = local(NY, 2026, 3, 6, 16), local(NY, 2026, 3, 9, 10)  # across the US DST switch
    assert elapsed_business(friday_4pm, monday_10am, cal()) == timedelta(hours=2)
    assert elapsed(friday_4pm, monday_10am, "business_hours", cal()) == timedelta(hours=2)
    assert elapsed(friday_4pm, monday_10am, "wall", cal()) == monday_10am - friday_4pm
    assert elapsed_business(monday_10am, friday_4pm, cal()) == timedelta(0)


@pytest.mark.parametrize("minutes", [1, 59, 60, 61, 479, 480, 481, 2000, 10_000])
def test_elapsed_inverts_add(minutes: int) -> None:
    start = local(NY, 2026, 3, 6, 16, 30)
    due = add_business(start, timedelta(minutes=minutes), cal())
    assert elapsed_business(start, due, cal()) == timedelta(minutes=minutes)


def test_country_from_the_time_zone() -> None:
    assert country_for_zone("Europe/Berlin") == "DE"
    assert country_for_zone(ZoneInfo("America/Chicago")) == "US"
    assert country_for_zone("Asia/Kolkata") == "IN"
    assert country_for_zone("US/Eastern") == "US"
    assert country_for_zone("UTC") is None
    assert not is_holiday(None, date(2026, 12, 25))
    assert not is_holiday("XX", date(2026, 12, 25))


def test_calendar_for_a_configured_rep(config: RoutingConfig) -> None:
    mike = calendar_for("mike", config)
    assert mike.zone.key == "Europe/Berlin" and mike.country == "DE"
    assert mike.hours is not None and mike.hours.start == time(9)  # the config's default hours
    ana = calendar_for("ana", config)
    assert ana.country == "US" and ana.days_off == ((date(2026, 3, 9), date(2026, 3, 9)),)
    assert not ana.works_on(date(2026, 3, 9))


def test_an_explicit_rep_country_wins_over_the_time_zone(config: RoutingConfig) -> None:
    # A rep in Europe/Berlin who works under UK holidays: ``country: GB`` on the rep.
    rep = SimpleNamespace(**{**config.reps["mike"].__dict__, "country": "GB"})
    stub = SimpleNamespace(reps={"mike": rep}, zones=config.zones, model=config.model)
    assert calendar_for("mike", stub).country == "GB"  # type: ignore[arg-type]


def test_next_day_off_finds_a_planned_absence() -> None:
    calendar = cal(days_off=((date(2026, 3, 9), date(2026, 3, 10)),))
    assert next_day_off(calendar, local(NY, 2026, 3, 6, 10), local(NY, 2026, 3, 12)) == local(NY, 2026, 3, 9)
    assert next_day_off(calendar, local(NY, 2026, 3, 6, 10), local(NY, 2026, 3, 8)) is None


def test_naive_datetimes_are_refused() -> None:
    with pytest.raises(ValueError, match="naive"):
        add_business(datetime(2026, 3, 4, 10), timedelta(hours=1), cal())


@settings(max_examples=60, deadline=None)
@given(
    start_minutes=st.integers(min_value=0, max_value=60 * 24 * 30),
    durations=st.lists(st.integers(min_value=-60, max_value=60 * 24 * 20), min_size=1, max_size=5),
    zone=st.sampled_from([NY, BERLIN]),
    away=st.booleans(),
)
def test_several_deadlines_at_once_are_the_same_instants_as_one_at_a_time(
    start_minutes: int, durations: list[int], zone: ZoneInfo, away: bool
) -> None:
    """A clock's deadline and its ladder come from one walk of the calendar (across DST, holidays, absences)."""
    start = local(zone, 2026, 2, 20, 0) + timedelta(minutes=start_minutes)
    absences = ((local(zone, 2026, 3, 4, 11), local(zone, 2026, 3, 6, 15)),) if away else ()
    calendar = cal(zone, "US" if zone is NY else "DE", days_off=((date(2026, 3, 9), date(2026, 3, 10)),), off=absences)
    spans = [timedelta(minutes=m) for m in durations]
    assert add_business_many(start, spans, calendar) == [add_business(start, d, calendar) for d in spans]
    assert deadlines(start, spans, "business_hours", calendar) == [deadline(start, d, "business_hours", calendar)
                                                                   for d in spans]
    assert deadlines(start, spans, "wall", calendar) == [deadline(start, d, "wall", calendar) for d in spans]
