"""Caps per period: a rep gets at most N leads a day, week or month, counted in the rep's own calendar.

The engine against the in-memory state; the same claims against Redis are in tests/store/test_caps.py.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from worker.config import ConfigError, RoutingConfig, parse_config
from worker.routing.caps import window
from worker.routing.engine import Router
from worker.routing.state import InMemoryState

BERLIN = ZoneInfo("Europe/Berlin")
TUESDAY = datetime(2026, 12, 1, 10, 0, tzinfo=UTC)  # 11:00 in Berlin


def config(reps: str, pools: str = "", rules: str = "  - {name: inbound, assign: {pool: team}}",
           fallback: str = "{queue: triage}") -> RoutingConfig:
    return parse_config(f"""
version: 1
timezone: Europe/Berlin
reps:
{reps}
pools:
{pools or "  team: {members: [ava, ben], strategy: round_robin}"}
queues:
  triage: {{}}
rules:
{rules}
fallback: {fallback}
""", "caps.yaml")


def route(router: Router, n: int, at: datetime = TUESDAY, **lead: object) -> list[tuple[str, dict[str, str]]]:
    out = []
    for i in range(n):
        d = router.route({"id": f"L{at:%j%H%M}-{i}", "email": f"p{i}@buyer{i}.com", **lead}, at=at)
        out.append((d.owner, d.skipped))
    return out


def test_a_rep_at_their_daily_cap_is_skipped_as_daily_cap_and_the_next_member_takes_the_lead() -> None:
    router = Router(config("  - {id: ava, caps: {daily: 2}}\n  - {id: ben}"), InMemoryState())
    owners = [owner for owner, _ in route(router, 6)]
    assert owners == ["ava", "ben", "ava", "ben", "ben", "ben"]
    decision = router.route({"id": "L7", "email": "x@seven.com"}, at=TUESDAY)
    assert decision.owner == "ben" and decision.skipped == {"ava": "daily_cap"}


def test_when_every_member_is_capped_the_lead_goes_to_the_fallback_naming_the_caps() -> None:
    router = Router(config("  - {id: ava, caps: {daily: 1}}\n  - {id: ben, caps: {daily: 1}}"), InMemoryState())
    route(router, 2)
    decision = router.route({"id": "L3", "email": "x@three.com"}, at=TUESDAY)
    assert decision.owner == "queue:triage" and decision.rule == "fallback"
    assert decision.skipped == {"ava": "daily_cap", "ben": "daily_cap"}
    assert "pool team had nobody available (ava daily_cap, ben daily_cap)" in decision.reason


def test_the_day_is_the_reps_own_calendar_day_and_a_new_day_starts_at_zero() -> None:
    router = Router(config("  - {id: ava, caps: {daily: 1}, timezone: America/Los_Angeles}\n  - {id: ben}"), InMemoryState())
    late = datetime(2026, 12, 2, 7, 59, tzinfo=UTC)  # 23:59 on Tuesday in Los Angeles
    assert [o for o, _ in route(router, 3, at=late)] == ["ava", "ben", "ben"]
    midnight = datetime(2026, 12, 2, 8, 0, tzinfo=UTC)  # 00:00 on Wednesday there (Wednesday 09:00 in Berlin already)
    assert [o for o, _ in route(router, 2, at=midnight)] == ["ava", "ben"]


def test_weekly_and_monthly_caps_name_their_period() -> None:
    router = Router(config("  - {id: ava, caps: {weekly: 1}}\n  - {id: ben, caps: {monthly: 1}}\n  - {id: cal}",
                           "  team: {members: [ava, ben, cal], strategy: round_robin}"), InMemoryState())
    route(router, 3)
    thursday = TUESDAY + timedelta(days=2)
    decision = router.route({"id": "L9", "email": "x@nine.com"}, at=thursday)
    assert decision.owner == "cal" and decision.skipped == {"ava": "weekly_cap", "ben": "monthly_cap"}
    next_monday = datetime(2026, 12, 7, 9, tzinfo=UTC)
    assert [o for o, _ in route(router, 2, at=next_monday)] == ["ava", "cal"]  # a new ISO week; ben's month goes on


def test_a_pool_cap_counts_only_that_pools_leads_and_a_reps_own_cap_counts_them_all() -> None:
    cfg = config(
        "  - {id: ava, caps: {daily: 3}}\n  - {id: ben}",
        "  team: {members: [ava, ben], strategy: round_robin, caps: {daily: 1}}\n"
        "  vip: {members: [ava], strategy: round_robin}",
        "  - {name: vip, when: {lead_source: vip}, assign: {pool: vip}}\n  - {name: inbound, assign: {pool: team}}",
    )
    router = Router(cfg, InMemoryState())
    routed = route(router, 3)
    assert [o for o, _ in routed] == ["ava", "ben", "queue:triage"]  # one each from team: the pool's cap, per member
    assert routed[2][1] == {"ava": "daily_cap", "ben": "daily_cap"}
    assert [o for o, _ in route(router, 3, lead_source="vip")] == ["ava", "ava", "queue:triage"]  # her own cap: 3 in all


def test_a_capped_named_rep_hands_the_lead_to_their_backup() -> None:
    cfg = config("  - {id: ava, backup: ben, caps: {daily: 1}}\n  - {id: ben, backup: ava}",
                 rules="  - {name: named, assign: {rep: ava}}")
    router = Router(cfg, InMemoryState())
    first, second = (router.route({"id": f"N{i}", "email": f"x@n{i}.com"}, at=TUESDAY) for i in range(2))
    assert first.owner == "ava"
    assert second.owner == "ben" and second.skipped == {"ava": "daily_cap"} and second.chain == ["ava", "ben"]
    assert "backup for ava: ava daily_cap -> ben" in second.reason


def test_the_fallback_rep_takes_a_lead_past_their_caps_rather_than_leave_it_unrouted() -> None:
    cfg = config("  - {id: ava, caps: {daily: 1}}\n  - {id: ben}", rules="  - {name: named, assign: {rep: ava}}",
                 fallback="{rep: ava}")
    assert any("is the fallback" in str(w) for w in cfg.warnings)
    router = Router(cfg, InMemoryState())
    owners = [router.route({"id": f"F{i}", "email": f"x@f{i}.com"}, at=TUESDAY).owner for i in range(3)]
    assert owners == ["ava", "ava", "ava"]


def test_at_capacity_is_said_before_a_cap() -> None:
    state = InMemoryState()
    router = Router(config("  - {id: ava, capacity: 5, caps: {daily: 1}}\n  - {id: ben}"), state)
    assert [o for o, _ in route(router, 2)] == ["ava", "ben"]
    state.set_loads({"ava": 5})
    assert router.route({"id": "C", "email": "x@c.com"}, at=TUESDAY).skipped == {"ava": "at_capacity"}


@pytest.mark.parametrize(("local", "period", "expected_id", "expected_end"), [
    (datetime(2026, 12, 1, 23, 59, tzinfo=BERLIN), "daily", "2026-12-01", datetime(2026, 12, 2, tzinfo=BERLIN)),
    (datetime(2026, 12, 6, 23, 59, tzinfo=BERLIN), "weekly", "2026-W49", datetime(2026, 12, 7, tzinfo=BERLIN)),
    (datetime(2026, 12, 7, 0, 0, tzinfo=BERLIN), "weekly", "2026-W50", datetime(2026, 12, 14, tzinfo=BERLIN)),
    (datetime(2027, 1, 1, 0, 0, tzinfo=BERLIN), "weekly", "2026-W53", datetime(2027, 1, 4, tzinfo=BERLIN)),  # ISO year
    (datetime(2026, 12, 31, 12, tzinfo=BERLIN), "monthly", "2026-12", datetime(2027, 1, 1, tzinfo=BERLIN)),
    (datetime(2026, 3, 29, 12, tzinfo=BERLIN), "daily", "2026-03-29", datetime(2026, 3, 30, tzinfo=BERLIN)),  # 23 hours
])
def test_windows_are_calendar_periods_in_the_reps_zone(local, period, expected_id, expected_end) -> None:
    assert window(period, local) == (expected_id, expected_end)


def test_a_dst_day_is_one_window_however_long_it_is() -> None:
    router = Router(config("  - {id: ava, caps: {daily: 1}}\n  - {id: ben}", rules="  - {name: named, assign: {rep: ava}}"),
                    InMemoryState())
    start = datetime(2026, 3, 28, 23, 0, tzinfo=UTC)  # 00:00 on the 23-hour Sunday in Berlin
    assert route(router, 1, at=start)[0][0] == "ava"
    assert route(router, 1, at=datetime(2026, 3, 29, 21, 59, tzinfo=UTC))[0] == ("queue:triage", {"ava": "daily_cap"})
    assert route(router, 1, at=datetime(2026, 3, 29, 22, 0, tzinfo=UTC))[0][0] == "ava"  # Monday 00:00


def test_caps_are_checked_with_their_lines() -> None:
    with pytest.raises(ConfigError) as err:
        config("  - {id: ava, caps: {daily: 0}}\n  - {id: ben, caps: {dayly: 3}}\n  - {id: cal, caps: {}}")
    text = str(err.value)
    assert "caps.yaml:5: reps[0].caps.daily: Input should be greater than or equal to 1" in text
    assert "caps.yaml:6: reps[1].caps.dayly: unknown key 'dayly' (did you mean 'daily'?)" in text
    assert "caps.yaml:7: reps[2].caps: give at least one of daily, weekly or monthly" in text


def test_a_cap_that_a_shorter_periods_lower_cap_makes_unreachable_is_a_warning() -> None:
    cfg = config("  - {id: ava, caps: {daily: 30, weekly: 20}}\n  - {id: ben}")
    assert [str(w) for w in cfg.warnings if "cap" in str(w)] == [
        "caps.yaml:5: reps[0].caps.daily: the daily cap 30 is never reached: the weekly cap 20 is lower"]


def test_caps_in_a_performance_weighted_pool_are_counted_and_need_no_warning() -> None:
    # fair_claim.lua checks and counts them with the pick (tests/routing/test_perf.py, tests/store/test_fairness.py)
    cfg = config("  - {id: ava, caps: {daily: 2}}\n  - {id: ben}",
                 "  team: {members: [ava, ben], strategy: performance_weighted}")
    assert [str(w) for w in cfg.warnings if "performance_weighted" in str(w)] == []
