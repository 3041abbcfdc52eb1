"""What the engine works out once per config or per local day decides exactly as working it out per lead would.

The engine keeps a plan per config (each rep's availability inputs, each rule's test without the territory
test a lead's territory already settles) and each zone's local day across decisions (hours, out-of-office,
caps per period). These properties compare each shortcut with the plain reading it replaces, at instants
drawn across daylight-saving changes, and over leads drawn from the values the rules compare.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from worker.config import RoutingConfig, parse_config
from worker.domain.normalize import normalize_lead
from worker.routing.caps import PERIODS, window
from worker.routing.engine import OOO, Router, _Context, _plan, absence, derive_facts, in_hours, next_start
from worker.routing.state import InMemoryState

ROOT = Path(__file__).resolve().parents[2]
# Zones with daylight-saving changes at different local hours (and one at midnight: America/Santiago), and none.
ZONES = ["America/New_York", "Europe/Berlin", "Australia/Lord_Howe", "America/Santiago", "Asia/Tokyo", "UTC"]
START = datetime(2026, 1, 1, tzinfo=UTC)


def team() -> RoutingConfig:
    reps = []
    for i, zone in enumerate(ZONES):
        rep: dict = {"id": f"r{i}", "timezone": zone, "caps": {"daily": 5, "weekly": 20, "monthly": 50},
                     "out_of_office": [{"start": "2026-03-08", "end": "2026-03-08"},
                                       {"start": "2026-10-04", "end": "2026-10-05"}]}
        if i % 2:
            rep["hours"] = {"days": ["mon", "tue", "wed", "thu", "fri", "sat"], "start": "00:00", "end": "02:30"}
        reps.append(rep)
    doc = {"version": 1, "timezone": "UTC", "hours": {"start": "09:00", "end": "17:00"}, "reps": reps,
           "pools": {"p": {"members": [r["id"] for r in reps], "caps": {"daily": 3}}},
           "queues": {"triage": {"salesforce": "00G"}},
           "rules": [{"name": "all", "when": {}, "assign": {"pool": "p"}}], "fallback": {"queue": "triage"}}
    return parse_config(yaml.safe_dump(doc), "team.yaml")


TEAM = team()
# instants over a year, each to the second or on a whole quarter hour (where hours and days change)
instants = st.one_of(
    st.integers(min_value=0, max_value=366 * 86_400).map(lambda s: START + timedelta(seconds=s)),
    st.integers(min_value=0, max_value=366 * 96).map(lambda q: START + timedelta(minutes=15 * q)),
    st.integers(min_value=0, max_value=366 * 86_400 * 1000).map(lambda ms: START + timedelta(milliseconds=ms)),
)


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(at=st.lists(instants, min_size=1, max_size=6))
def test_hours_out_of_office_and_next_start_from_the_remembered_local_day_agree_with_reading_the_clock(at: list) -> None:
    router = Router(TEAM, InMemoryState())
    for when in at:  # one after another, so the remembered day of one instant is asked about the next
        ctx = _Context(router, {}, when, {}, frozenset())
        for rep_id, member in router.plan.members.items():
            rep = TEAM.reps[rep_id]
            assert ctx.working(member) == in_hours(rep, TEAM, when), (rep_id, when)
            assert ctx.away(member) == (absence(rep, TEAM, when, {}) == OOO), (rep_id, when)
            assert ctx.next_start(member) == next_start(rep, TEAM, when), (rep_id, when)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(at=st.lists(instants, min_size=1, max_size=6))
def test_caps_windows_remembered_per_local_day_agree_with_working_them_out(at: list) -> None:
    caps = team().caps  # fresh memos
    for when in at:
        for rep_id in TEAM.reps:
            zone = TEAM.zones[rep_id]
            local = when.astimezone(zone)
            expected = {p: window(p, local)[0] for p in PERIODS}
            quotas = caps.quotas(rep_id, zone, when, "p")
            assert {(q.scope, q.period): q.window for q in quotas} == {
                (scope, p): expected[p] for scope, p in [("", "daily"), ("", "weekly"), ("", "monthly"), ("p", "daily")]}
            assert caps.windows(zone, when) == tuple(
                (p, w, (end + timedelta(days=1)).timestamp()) for p in PERIODS for w, end in [window(p, local)])


EXAMPLE = parse_config((ROOT / "config" / "routing.example.yaml").read_text(encoding="utf-8"), "routing.example.yaml")
COUNTRIES = ["US", "USA", "Canada", "DE", "Deutschland", "France", "UK", "Japan", "Brasil", "India", "NL", "AU", ""]
STATES = ["CA", "California", "NY", "TX", "WA", "Ontario", "", "FL", "Bavaria", "NSW"]
raw_leads = st.fixed_dictionaries({
    "id": st.text(max_size=4),
    "country": st.sampled_from(COUNTRIES),
    "state": st.sampled_from(STATES),
    "employees": st.sampled_from(["12", "99", "100", "500", "999", "1000", "1,001", "5k+", "", "lots"]),
    "industry": st.sampled_from(["Software", "Healthcare", "Fintech", "Retail", "", "software "]),
    "lead_source": st.sampled_from(["Demo Request", "Web Form", "Partner Referral", "Event", ""]),
    "score": st.sampled_from(["0", "79", "80", "95", "", "n/a"]),
    "title": st.sampled_from(["VP Sales", "Engineer", "Head of IT", "Chief of Staff", ""]),
    "email": st.sampled_from(["a@acme.com", "b@gmail.com", "c@globex.io", ""]),
    "language": st.sampled_from(["en", "de", "fr", "ja", ""]),
    "product_interest": st.sampled_from(["platform", "analytics", ""]),
})


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(lead=raw_leads)
def test_the_rules_a_leads_territory_lists_test_as_their_whole_when_would(lead: dict) -> None:
    for config in (EXAMPLE, TEAM):
        facts = derive_facts(normalize_lead(lead), config)
        for name, tests in _plan(config).rule_tests.items():
            variant = dict(facts, territory=name) if name is not None else {k: v for k, v in facts.items()
                                                                             if k != "territory"}
            for index, test in tests:
                assert test(variant) == config.compiled_rules[index].test(variant), (name, config.rules[index].name)
