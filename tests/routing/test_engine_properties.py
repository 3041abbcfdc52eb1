"""Properties the engine keeps for any team, any lead and any moment (hypothesis)."""

from __future__ import annotations

from collections import Counter
from dataclasses import replace
from datetime import UTC, date, datetime, timedelta

import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from worker.config import RoutingConfig, parse_config
from worker.routing.engine import Router, absence, in_hours
from worker.routing.state import InMemoryState

ZONES = ["America/New_York", "Europe/Berlin", "Asia/Tokyo", "America/Los_Angeles"]
STRATEGIES = ["round_robin", "weighted_round_robin", "least_loaded"]
BASE_DAY = date(2026, 12, 1)


@st.composite
def teams(draw: st.DrawFn) -> dict:
    n = draw(st.integers(min_value=1, max_value=6))
    reps = []
    for i in range(n):
        rep: dict = {
            "id": f"r{i}",
            "timezone": draw(st.sampled_from(ZONES)),
            "active": draw(st.booleans() | st.just(True)),
            "weight": draw(st.integers(min_value=1, max_value=4)),
            "skills": draw(st.lists(st.sampled_from(["a", "b"]), unique=True)),
        }
        if draw(st.booleans()):
            rep["capacity"] = draw(st.integers(min_value=0, max_value=5))
        if draw(st.booleans()):
            start = draw(st.integers(min_value=0, max_value=3))
            rep["out_of_office"] = [{"start": str(BASE_DAY + timedelta(days=start)),
                                     "end": str(BASE_DAY + timedelta(days=start + draw(st.integers(0, 2))))}]
        reps.append(rep)
    skills = draw(st.lists(st.sampled_from(["a", "b"]), unique=True, max_size=1))
    assign: dict = {"pool": "p"}
    if skills:
        assign["require_skills"] = skills
    return {
        "version": 1,
        "timezone": "UTC",
        "hours": {"start": "09:00", "end": "17:00"},
        "reps": reps,
        "pools": {"p": {"members": [r["id"] for r in reps], "strategy": draw(st.sampled_from(STRATEGIES))}},
        "queues": {"triage": {"salesforce": "00G"}},
        "rules": [{"name": "small", "when": {"employees": {"lt": 100}}, "assign": assign}],
        "fallback": {"queue": "triage"},
    }


leads = st.fixed_dictionaries(
    {"id": st.text(max_size=5)},
    optional={
        "employees": st.one_of(st.integers(-5, 500), st.text(max_size=6), st.just("")),
        "country": st.sampled_from(["DE", "Germany", "", "Atlantis", "usa"]),
        "email": st.sampled_from(["a@gmail.com", "b@acme.com", "garbage", ""]),
        "score": st.one_of(st.floats(allow_nan=True), st.text(max_size=4)),
    },
)
moments = st.datetimes(min_value=datetime(2026, 11, 30), max_value=datetime(2026, 12, 6), timezones=st.just(UTC))


def build(team: dict) -> RoutingConfig:
    return parse_config(yaml.safe_dump(team), "generated.yaml")


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(team=teams(), batch=st.lists(leads, min_size=1, max_size=15), at=moments)
def test_every_lead_gets_exactly_one_owner_or_the_fallback(team: dict, batch: list, at: datetime) -> None:
    config = build(team)
    router = Router(config, InMemoryState())
    for lead in batch:
        d = router.route(lead, at=at)
        assert d.owner in config.reps or d.owner == "queue:triage"
        assert (d.owner_kind == "queue") == d.owner.startswith("queue:")
        assert d.reason


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(team=teams(), at=moments, n=st.integers(1, 12))
def test_no_unavailable_rep_is_chosen_while_an_available_one_exists(team: dict, at: datetime, n: int) -> None:
    config = build(team)
    state = InMemoryState()
    router = Router(config, state)
    required = set(team["rules"][0]["assign"].get("require_skills", []))
    for _ in range(n):
        loads_before = state.loads(list(config.reps))
        d = router.route({"id": "x", "employees": 10}, at=at)

        def eligible(rep_id: str, loads: dict = loads_before) -> bool:
            rep = config.reps[rep_id]
            return (absence(rep, config, at, {}) is None and required <= set(rep.skills)
                    and (rep.capacity is None or loads[rep_id] < rep.capacity))

        if d.owner_rep is None:
            assert not any(eligible(r) for r in config.reps), "went to the fallback while a rep could take it"
            continue
        assert eligible(d.owner_rep)
        if not in_hours(config.reps[d.owner_rep], config, at):
            assert not any(eligible(r) and in_hours(config.reps[r], config, at) for r in config.reps)


@settings(max_examples=100, deadline=None)
@given(weights=st.lists(st.integers(1, 5), min_size=1, max_size=6), k=st.integers(1, 4))
def test_weighted_round_robin_gives_each_rep_exactly_k_times_its_weight(weights: list[int], k: int) -> None:
    team = {
        "version": 1,
        "reps": [{"id": f"r{i}", "weight": w} for i, w in enumerate(weights)],
        "pools": {"p": {"members": [f"r{i}" for i in range(len(weights))], "strategy": "weighted_round_robin"}},
        "queues": {"q": {}},
        "rules": [{"name": "all", "assign": {"pool": "p"}}],
        "fallback": {"queue": "q"},
    }
    router = Router(build(team), InMemoryState())
    at = datetime(2026, 12, 1, 12, tzinfo=UTC)
    counts = Counter(router.route({"id": "x"}, at=at).owner for _ in range(k * sum(weights)))
    assert counts == {f"r{i}": k * w for i, w in enumerate(weights)}


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(team=teams(), batch=st.lists(leads, min_size=1, max_size=10), at=moments)
def test_same_input_and_state_give_the_same_decisions(team: dict, batch: list, at: datetime) -> None:
    config = build(team)
    first = [Router(config, s).route(lead, at=at).to_dict() for s in [InMemoryState()] for lead in batch]
    second_state = InMemoryState()
    second = [Router(config, second_state).route(lead, at=at).to_dict() for lead in batch]
    assert first == second


TERRITORY_NAMES = ["west", "na", "emea", "dach"]


@st.composite
def territorial_configs(draw: st.DrawFn) -> dict:
    rules = []
    for i in range(draw(st.integers(1, 8))):
        when: dict = {}
        shape = draw(st.sampled_from(["name", "list", "operator", "none", "nested"]))
        if shape == "name":
            when["territory"] = draw(st.sampled_from(TERRITORY_NAMES))
        elif shape == "list":
            when["territory"] = draw(st.lists(st.sampled_from(TERRITORY_NAMES), min_size=1, max_size=2, unique=True))
        elif shape == "operator":
            when["territory"] = {"not_in": [draw(st.sampled_from(TERRITORY_NAMES))]}
        elif shape == "nested":
            when["any"] = [{"territory": draw(st.sampled_from(TERRITORY_NAMES))}, {"employees": {"gte": 500}}]
        if draw(st.booleans()):
            when["employees"] = {"lt": draw(st.integers(10, 1000))}
        rules.append({"name": f"r{i}", "when": when, "assign": {"queue": f"q{i}"}})
    return {
        "version": 1,
        "reps": [{"id": "a"}],
        "territories": {"west": {"countries": ["US"], "states": ["CA"]}, "na": {"countries": ["US", "CA"]},
                        "emea": {"countries": ["FR", "GB"]}, "dach": {"countries": ["DE", "AT"]}},
        "queues": {f"q{i}": {} for i in range(8)} | {"triage": {}},
        "rules": rules,
        "fallback": {"queue": "triage"},
    }


territorial_leads = st.fixed_dictionaries({
    "id": st.just("x"),
    "country": st.sampled_from(["US", "CA", "FR", "DE", "JP", ""]),
    "state": st.sampled_from(["CA", "NY", ""]),
    "employees": st.integers(0, 2000),
})


@settings(max_examples=150, deadline=None)
@given(doc=territorial_configs(), batch=st.lists(territorial_leads, min_size=1, max_size=8))
def test_skipping_rules_that_name_other_territories_changes_no_decision(doc: dict, batch: list) -> None:
    """The engine tests only the rules a lead's territory can match; testing them all agrees."""
    indexed = build(doc)
    exhaustive = replace(indexed, rules_by_territory=None)
    at = datetime(2026, 12, 1, 12, tzinfo=UTC)
    for lead in batch:
        assert Router(indexed, InMemoryState()).route(lead, at=at).to_dict() == \
            Router(exhaustive, InMemoryState()).route(lead, at=at).to_dict()
