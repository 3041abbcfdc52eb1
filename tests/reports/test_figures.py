"""The report's figures on the hand-built history of ``conftest.py``, on SQLite and on PostgreSQL.

Every expected number is worked out by hand from the events listed there; percentiles are
the continuous kind (linear between the two nearest ranks, as PostgreSQL's percentile_cont),
and the Wilson intervals are computed here from the formula, independently of the code.
"""

from __future__ import annotations

import json
import math
from datetime import timedelta

import pytest

from tests.reports.conftest import NOW, PERIOD, SETTINGS, T0, h
from worker.ledger.ledger import Ledger
from worker.reports import Report, build_report
from worker.reports.model import Percentiles, Rate


def wilson_by_hand(k: int, n: int) -> tuple[float, float]:
    """(p + z^2/2n -+ z sqrt(p(1-p)/n + z^2/4n^2)) / (1 + z^2/n), z = 1.959964."""
    z, p = 1.959964, k / n
    centre, spread = p + z * z / (2 * n), z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n))
    return (centre - spread) / (1 + z * z / n), (centre + spread) / (1 + z * z / n)


def assert_rate(rate: Rate | None, k: int, n: int) -> None:
    assert rate is not None
    assert (rate.k, rate.n) == (k, n)
    assert rate.value == pytest.approx(k / n)
    low, high = wilson_by_hand(k, n)
    assert (rate.low, rate.high) == (pytest.approx(low, abs=1e-5), pytest.approx(min(high, 1.0), abs=1e-5))


def assert_pct(p: Percentiles, n: int, p50: float, p90: float, p95: float) -> None:
    assert p.n == n
    assert (p.p50, p.p90, p.p95) == (pytest.approx(p50), pytest.approx(p90), pytest.approx(p95))


@pytest.fixture
def report(history: Ledger) -> Report:
    return build_report(history, PERIOD, by="rule", settings=SETTINGS, now=NOW)


def test_only_the_leads_first_routed_in_the_period_count(report: Report) -> None:
    assert report.leads == 5  # L1..L5; not L0 (the day before), L9 (the day after) nor L2's second routing
    assert report.database in ("sqlite", "postgresql")


def test_speed_to_owner_percentiles_overall_by_path_and_by_rep(report: Report) -> None:
    owner = report.speed.to_owner
    assert_pct(owner.overall.wall, 5, 30, 76, 88)  # 10 20 30 40 100: p90 at rank 3.6 -> 40 + .6 * 60
    assert_pct(owner.overall.business, 5, 15, 38, 44)  # 5 10 15 20 50
    by_rule = {w.key: w for w in owner.by_group}
    assert_pct(by_rule["emea"].wall, 3, 20, 28, 29)
    assert_pct(by_rule["us"].wall, 1, 40, 40, 40)
    assert_pct(by_rule["fallback"].business, 1, 50, 50, 50)
    by_rep = {w.key: w for w in owner.by_rep}
    assert_pct(by_rep["ann"].wall, 2, 20, 28, 29)  # 10 and 30
    assert_pct(by_rep["queue:triage"].wall, 1, 100, 100, 100)
    counts = {(b.low, b.high): b.count for b in owner.histogram}
    assert counts[(10.0, 30.0)] == 2 and counts[(30.0, 60.0)] == 2 and counts[(60.0, 120.0)] == 1
    assert sum(counts.values()) == 5


def test_speed_to_first_touch_reads_the_path_from_the_first_routing(report: Report) -> None:
    ack = report.speed.to_ack
    assert_pct(ack.overall.wall, 3, 1200, 6000, 6600)  # 600 1200 7200
    assert_pct(ack.overall.business, 3, 600, 1560, 1680)  # 300 600 1800
    assert [w.key for w in ack.by_group] == ["emea"]  # the acks carry no rule: it is the leads' first routing's
    by_rep = {w.key: w for w in ack.by_rep}
    assert_pct(by_rep["ann"].wall, 2, 3900, 6540, 6870)  # 600 and 7200
    assert_pct(by_rep["bob"].wall, 1, 1200, 1200, 1200)


def test_grouping_by_source_groups_every_figure_by_that_column(history: Ledger) -> None:
    report = build_report(history, PERIOD, by="source", settings=SETTINGS, now=NOW)
    assert {w.key: w.wall.n for w in report.speed.to_owner.by_group} == {"web": 3, "event": 1, "import": 1}
    assert {w.key: w.wall.n for w in report.speed.to_ack.by_group} == {"web": 2, "event": 1}
    rows = {r.key: r for r in report.outcomes.rows}
    assert_rate(rows["web"].conversion, 3, 3)  # L1 L2 L4
    assert_rate(rows["import"].conversion, 0, 1)


def test_sla_compliance_per_tier(report: Report) -> None:
    tiers = {t.tier: t for t in report.sla.tiers}
    hot, warm = tiers["hot"], tiers["warm"]
    assert (hot.clocks, hot.acknowledged, hot.breaches, hot.reminders, hot.escalations, hot.reassignments, hot.parks) == (
        3, 2, 2, 1, 1, 1, 1)
    assert_rate(hot.within, 1, 3)  # L1 in 10m; L2 after 20m on a 15m window; L4 never
    assert_pct(hot.waited.wall, 2, 900, 1140, 1170)
    assert_pct(hot.waited_late, 1, 1200, 1200, 1200)
    assert_pct(hot.steps_waited["breach"], 2, 900, 900, 900)
    assert_pct(hot.steps_waited["park"], 1, 3600, 3600, 3600)
    assert warm.clock == "business_hours" and warm.window_seconds == 3600
    assert_rate(warm.within, 1, 1)  # 2h of wall clock, 30m of working time: within the 1h working-time window
    assert warm.waited_late.n == 0


def test_sla_compliance_over_time(report: Report) -> None:
    assert report.sla.bucket == "day"
    points = {(p.start, p.tier): (p.clocks, p.within, p.share) for p in report.sla.timeline}
    assert points == {(T0, "hot"): (3, 1, pytest.approx(1 / 3)), (T0, "warm"): (1, 1, 1.0)}


def test_fairness_counts_credit_taken_back_and_time_skipped(report: Report) -> None:
    pools = {p.pool: p for p in report.fairness}
    emea = pools["emea"]
    members = {m.rep: m for m in emea.members}
    ann, bob = members["ann"], members["bob"]
    # ann: L1 and L3, L2 by reassignment, L1 taken back by the re-route; bob: L2, L1 by re-route, L2 taken back
    assert (ann.assigned, ann.received, ann.taken_back, ann.net, ann.weight) == (2, 1, 1, 2, 2)
    assert (bob.assigned, bob.received, bob.taken_back, bob.net, bob.weight) == (1, 1, 1, 1, 1)
    assert (ann.expected, bob.expected, ann.ratio, bob.ratio) == (2.0, 1.0, 1.0, 1.0)
    assert emea.gini == pytest.approx(0.0) and emea.max_min == pytest.approx(1.0) and emea.decisions == 3
    skips = {(s.rep, s.reason): s for s in emea.skipped}
    assert skips[("bob", "at_capacity")].seconds == pytest.approx(3600, abs=1e-3)  # until L2, the pool's next lead
    assert skips[("bob", "ooo")].seconds == pytest.approx(21 * 3600, abs=1e-3)  # L3 was the last: until the period's end
    assert skips[("bob", "ooo")].share == pytest.approx(1 / 3)
    assert [m.rep for m in pools["us"].members] == ["cat"] and pools["us"].members[0].net == 1


def test_a_weighted_pool_out_of_balance_shows_in_gini_and_max_min(history: Ledger) -> None:
    settings = type(SETTINGS)(pools={"emea": {"ann": 1, "bob": 1, "carl": 1}}, tiers=SETTINGS.tiers)
    emea = next(p for p in build_report(history, PERIOD, settings=settings, now=NOW).fairness if p.pool == "emea")
    nets = {m.rep: m.net for m in emea.members}
    assert nets == {"ann": 2, "bob": 1, "carl": 0}
    assert emea.max_min is None  # carl got nothing: the ratio is unbounded
    assert emea.gini == pytest.approx((2 * (1 * 0 + 2 * 1 + 3 * 2)) / (3 * 3) - 4 / 3)  # = 4/9


def test_acceptance_counts_the_leads_that_left_each_rep_and_who_overrode(report: Report) -> None:
    reps = {r.rep: r for r in report.acceptance.reps}
    assert (reps["ann"].received, reps["ann"].rerouted) == (3, 1)
    assert (reps["bob"].received, reps["bob"].reassigned) == (2, 1)
    assert (reps["cat"].received, reps["cat"].parked) == (1, 1)
    assert_rate(reps["ann"].kept, 2, 3)
    assert_rate(reps["cat"].kept, 0, 1)
    assert "queue:triage" not in reps
    assert {(o.actor, o.kind, o.count) for o in report.acceptance.overrides} == {
        ("alice (cli)", "reroute", 1), ("dora@crm", "sla.manual_override", 1)}


def test_outcomes_by_path_with_wilson_intervals(report: Report) -> None:
    rows = {r.key: r for r in report.outcomes.rows}
    emea = rows["emea"]
    assert_rate(emea.conversion, 3, 3)  # L3 converted a month later: still the period's lead
    assert_rate(emea.opportunity, 1, 3)
    assert_rate(emea.win, 1, 1)
    assert_rate(rows["us"].win, 0, 1)  # lost
    assert rows["fallback"].win.value is None and rows["fallback"].win.low is None
    overall = report.outcomes.overall
    assert_rate(overall.conversion, 4, 5)  # L0, routed the day before, does not count
    assert_rate(overall.opportunity, 2, 5)
    assert_rate(overall.win, 1, 2)


def test_rule_coverage(report: Report) -> None:
    coverage = report.coverage
    assert coverage.leads == 5
    assert_rate(coverage.fallback, 1, 5)
    rules = {r.rule: r for r in coverage.rules}
    assert (rules["emea"].leads, rules["emea"].unreadable, rules["emea"].share) == (3, 1, pytest.approx(0.6))
    assert (rules["emea"].first_at, rules["emea"].last_at) == (h(1), h(3))
    assert rules["fallback"].unreadable == 1
    assert {(f.field, f.leads) for f in coverage.unreadable} == {("employees", 2), ("country", 1)}


def test_the_report_is_json_serialisable_and_keeps_its_figures(report: Report) -> None:
    data = json.loads(json.dumps(report.to_dict()))
    assert data["leads"] == 5 and data["by"] == "rule"
    assert data["since"] == T0.isoformat() and data["until"] == (T0 + timedelta(days=1)).isoformat()
    assert data["outcomes"]["overall"]["conversion"]["k"] == 4


def test_an_empty_period_reports_nothing_without_failing(history: Ledger) -> None:
    empty = build_report(history, type(PERIOD)(T0 + timedelta(days=100), T0 + timedelta(days=101)), now=NOW)
    assert empty.leads == 0 and empty.coverage.fallback.value is None
    assert empty.speed.to_owner.overall.wall == Percentiles(0, None, None, None)
    assert empty.sla.tiers == () and empty.fairness == ()


def test_an_unknown_grouping_is_refused(history: Ledger) -> None:
    with pytest.raises(ValueError, match="cannot group by 'team'"):
        build_report(history, PERIOD, by="team")
