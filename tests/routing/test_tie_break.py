"""Configured tie-breakers: "Ambiguous territory: define a tiebreaker rule such as most recent
contact, lowest current pipeline load, or seniority order".

A tie is what the strategy cannot tell apart (reps with the same load ratio in a least-loaded
pool) or a lead in several territories when territories may overlap. The configured list
settles it in order, file order settles what is left, and the decision names the
tie-breaker that decided.
"""

from __future__ import annotations

import textwrap
from collections.abc import Sequence
from datetime import UTC, date, datetime, timedelta

import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from worker.config import ConfigError, parse_config
from worker.routing.engine import Decision, Router
from worker.routing.state import Candidate, ContactHistory, InMemoryState, Pick, RoutingState, Strategy
from worker.routing.tiebreak import TIE_BREAKERS, order, settle

TEAM = textwrap.dedent(
    """\
    version: 1
    reps:
      - {id: ann, seniority: 2, capacity: 4}
      - {id: bob, seniority: 5, capacity: 4}
      - {id: cai, seniority: 5, capacity: 2}
      - {id: dee}
    pools:
      closers: {members: [ann, bob, cai], strategy: least_loaded, tie_break: [seniority]}
      plain: {members: [ann, bob, cai], strategy: least_loaded}
      rotation: {members: [ann, bob], strategy: round_robin}
    queues: {triage: {}}
    rules:
      - {name: by-load, when: {lead_source: load}, assign: {pool: closers}, tie_break: [least_loaded]}
      - {name: by-contact, when: {lead_source: contact}, assign: {pool: closers},
         tie_break: [most_recent_contact, seniority, file_order]}
      - {name: closers, when: {lead_source: closers}, assign: {pool: closers}}
      - {name: plain, when: {lead_source: plain}, assign: {pool: plain}}
    fallback: {queue: triage}
    """
)
AT = datetime(2026, 12, 1, 15, 0, tzinfo=UTC)
TODAY = date(2026, 12, 1)


def team(text: str = TEAM, loads: dict[str, int] | None = None) -> Router:
    state = InMemoryState()
    state.set_loads(loads or {})
    return Router(parse_config(text, "team.yaml", today=TODAY), state)


def route(router: Router, source: str, email: str = "x@acme.com", at: datetime = AT) -> Decision:
    return router.route({"id": "L", "lead_source": source, "email": email}, at=at)


# --- Ties in a least-loaded pool ---------------------------------------------------------------


def test_without_tie_break_a_tie_goes_to_the_earlier_member_and_nothing_is_named() -> None:
    d = route(team(), "plain")
    assert (d.owner, d.tie_breaks, d.strategy_state) == ("ann", {}, "least loaded: ann 1/4")
    assert "tie_breaks" not in d.to_dict()


def test_seniority_breaks_a_tie_and_the_decision_names_it() -> None:
    d = route(team(loads={"cai": 1}), "closers")  # ann 0/4, bob 0/4 tie; cai 1/2 is not in it
    assert d.owner == "bob"
    assert d.tie_breaks == {"pool": "seniority"}
    assert d.reason == "closers: closers -> pool closers (least loaded: bob 1/4, tie with ann broken by seniority)"


def test_file_order_settles_what_the_listed_tie_breakers_leave() -> None:
    d = route(team(), "closers")  # all 0: bob and cai are both seniority 5; bob is listed first
    assert (d.owner, d.tie_breaks) == ("bob", {"pool": "file_order"})
    assert "tie with ann, cai broken by file_order" in d.reason


def test_no_tie_no_tie_breaker_named() -> None:
    d = route(team(loads={"bob": 1, "cai": 1}), "closers")
    assert (d.owner, d.tie_breaks) == ("ann", {})


def test_a_rule_tie_break_overrides_the_pools() -> None:
    # bob 2/4 and cai 1/2 tie on ratio; least loaded in absolute terms is cai; ann is fuller
    d = route(team(loads={"ann": 3, "bob": 2, "cai": 1}), "load")
    assert (d.owner, d.tie_breaks) == ("cai", {"pool": "least_loaded"})
    assert "tie with bob broken by least_loaded" in d.reason


def test_the_top_level_tie_break_is_the_default_for_least_loaded_pools() -> None:
    text = TEAM + "tie_break: [seniority]\n"
    d = route(team(text), "plain")
    assert (d.owner, d.tie_breaks) == ("bob", {"pool": "file_order"})  # bob and cai are both 5


def test_most_recent_contact_gives_the_tie_to_the_rep_who_last_had_the_domain() -> None:
    router = team()
    first = route(router, "contact", "a@acme.com")  # no history: seniority, then file order
    assert (first.owner, first.tie_breaks) == ("bob", {"pool": "file_order"})
    route(router, "plain", "b@other.com", AT + timedelta(minutes=1))  # ann: ann 1, bob 1, cai 0
    router.state.set_loads({})  # everyone even again
    d = route(router, "contact", "c@acme.com", AT + timedelta(minutes=2))
    assert (d.owner, d.tie_breaks) == ("bob", {"pool": "most_recent_contact"})
    d = route(router, "contact", "d@other.com", AT + timedelta(minutes=3))
    assert (d.owner, d.tie_breaks) == ("ann", {"pool": "most_recent_contact"})  # bob has 1 now; ann, cai 0


def test_free_mail_has_no_domain_and_so_no_recent_contact() -> None:
    router = team()
    route(router, "plain", "a@gmail.com")  # ann
    router.state.set_loads({})
    d = route(router, "contact", "b@gmail.com", AT + timedelta(minutes=1))
    assert (d.owner, d.tie_breaks) == ("bob", {"pool": "file_order"})


class StateWithoutHistory:
    """A RoutingState that keeps no contact history, like the worker's Redis state today."""

    def __init__(self) -> None:
        self.inner = InMemoryState()

    def loads(self, rep_ids: Sequence[str]) -> dict[str, int]:
        return self.inner.loads(rep_ids)

    def pick(self, pool: str, strategy: Strategy, members: Sequence[str], candidates: Sequence[Candidate]) -> Pick:
        return self.inner.pick(pool, strategy, members, candidates)

    def assign(self, rep_id: str) -> int:
        return self.inner.assign(rep_id)


def test_a_state_without_contact_history_treats_most_recent_contact_as_a_tie() -> None:
    state = StateWithoutHistory()
    assert isinstance(state, RoutingState) and not isinstance(state, ContactHistory)
    router = Router(parse_config(TEAM, today=TODAY), state)
    route(router, "plain", "a@acme.com")  # ann
    state.inner.set_loads({})
    d = route(router, "contact", "b@acme.com", AT + timedelta(minutes=1))
    assert (d.owner, d.tie_breaks) == ("bob", {"pool": "file_order"})  # seniority 5 vs 5, then bob's place


def test_the_latest_routing_time_wins_the_contact_history_not_the_latest_call() -> None:
    state = InMemoryState()
    state.note_owner("acme.com", "bob", AT)
    state.note_owner("acme.com", "ann", AT - timedelta(days=1))  # an older lead, routed late
    assert state.last_owner("acme.com") == "bob"
    assert state.last_owner("other.com") is None


def test_tie_breakers_apply_outside_hours_too() -> None:
    text = TEAM.replace("version: 1\n", 'version: 1\nhours: {start: "09:00", end: "17:00"}\n')
    d = route(team(text), "closers", at=datetime(2026, 12, 1, 22, 0, tzinfo=UTC))
    assert (d.owner, d.tie_breaks) == ("bob", {"pool": "file_order"})
    assert d.reason.endswith("tie with ann, cai broken by file_order; all eligible reps outside hours)")


@st.composite
def least_loaded_teams(draw: st.DrawFn) -> tuple[dict, dict[str, int], list[str]]:
    n = draw(st.integers(2, 6))
    reps = []
    for i in range(n):
        rep: dict = {"id": f"r{i}"}
        if draw(st.booleans()):
            rep["capacity"] = draw(st.sampled_from([2, 4, 8]))
        if draw(st.booleans()):
            rep["seniority"] = draw(st.integers(0, 3))
        reps.append(rep)
    keys = draw(st.lists(st.sampled_from(TIE_BREAKERS), unique=True, min_size=1))
    loads = {r["id"]: draw(st.integers(0, 3)) for r in reps}
    doc = {"version": 1, "reps": reps, "queues": {"q": {}}, "fallback": {"queue": "q"},
           "pools": {"p": {"members": [r["id"] for r in reps], "strategy": "least_loaded", "tie_break": keys}},
           "rules": [{"name": "all", "assign": {"pool": "p"}}]}
    return doc, loads, keys


@settings(max_examples=200, deadline=None)
@given(case=least_loaded_teams(), recent=st.integers(0, 5))
def test_a_tie_breaker_only_ever_chooses_among_the_least_loaded(case: tuple[dict, dict[str, int], list[str]],
                                                                 recent: int) -> None:
    doc, loads, keys = case
    config = parse_config(yaml.safe_dump(doc), today=TODAY)
    state = InMemoryState()
    state.set_loads(loads)
    state.note_owner("acme.com", f"r{recent}", AT)
    d = Router(config, state).route({"id": "x", "email": "a@acme.com"}, at=AT)
    open_ = [r for r in config.reps.values() if r.capacity is None or loads[r.id] < r.capacity]
    if not open_:
        assert d.owner == "queue:q"
        return
    default_cap = max((r.capacity for r in open_ if r.capacity), default=1)
    ratio = {r.id: loads[r.id] / (r.capacity or default_cap) for r in open_}
    tied = [r for r in open_ if ratio[r.id] == min(ratio.values())]
    assert d.owner in {r.id for r in tied}
    if len(tied) == 1:
        assert d.tie_breaks == {}
        return
    position = {r.id: i for i, r in enumerate(config.reps.values())}

    def measure(key: str, rep_id: str) -> float:
        seniority = config.reps[rep_id].seniority
        return {"least_loaded": loads[rep_id], "most_recent_contact": 0 if rep_id == f"r{recent}" else 1,
                "seniority": -seniority if seniority is not None else float("inf"),
                "file_order": position[rep_id]}[key]

    winner, key = settle([r.id for r in tied], keys, measure)
    assert (d.owner, d.tie_breaks) == (winner, {"pool": key})


@settings(max_examples=200, deadline=None)
@given(values=st.lists(st.tuples(st.integers(0, 2), st.integers(0, 2)), min_size=2, max_size=6, unique=True),
       keys=st.permutations(["a", "b"]))
def test_settle_names_the_first_tie_breaker_that_leaves_one_and_agrees_with_order(
        values: list[tuple[int, int]], keys: list[str]) -> None:
    def measure(key: str, v: tuple[int, int]) -> float:
        return {"a": v[0], "b": v[1], "file_order": values.index(v)}[key]

    winner, key = settle(values, keys, measure)
    assert winner == order(values, keys, measure)[0]
    narrowed = list(values)
    for k in keys:
        best = min(measure(k, v) for v in narrowed)
        narrowed = [v for v in narrowed if measure(k, v) == best]
        if len(narrowed) == 1:
            assert key == k
            break
    else:
        assert key == "file_order"


# --- Overlapping territories -------------------------------------------------------------------

TERRITORIES = textwrap.dedent(
    """\
    version: 1
    reps:
      - {id: wes, seniority: 1}
      - {id: nia, seniority: 3}
      - {id: ned, seniority: 2}
    territories:
      west: {countries: [US], states: [CA, OR]}
      north-america: {countries: [US, CA]}
      emea: {countries: [DE, FR]}
    pools:
      na: {members: [nia, ned], strategy: least_loaded}
    queues: {triage: {}}
    rules:
      - {name: west, when: {territory: west}, assign: {rep: wes}}
      - {name: na, when: {territory: north-america}, assign: {pool: na}}
    fallback: {queue: triage}
    """
)


def overlap(keys: str | None, loads: dict[str, int] | None = None) -> Router:
    text = TERRITORIES + ("territory_overlap: tie_break\n" + (f"tie_break: {keys}\n" if keys else "") if keys else "")
    return team(text, loads)


def test_by_default_the_first_territory_in_file_order_wins() -> None:
    d = overlap(None, {"nia": 0, "wes": 9}).route({"id": "L", "country": "US", "state": "CA"}, at=AT)
    assert (d.owner, d.rule, d.facts["territory"], d.tie_breaks) == ("wes", "west", "west", {})


def test_with_tie_break_overlapping_territories_are_settled_by_their_reps() -> None:
    d = overlap("[least_loaded]", {"wes": 3, "nia": 1, "ned": 2}).route(
        {"id": "L", "country": "US", "state": "CA"}, at=AT)
    assert (d.owner, d.rule, d.facts["territory"]) == ("nia", "na", "north-america")
    assert d.tie_breaks == {"territory": "least_loaded"}
    assert d.reason.startswith("na: US/CA (territory north-america over west, by least_loaded) -> pool na")


def test_seniority_between_territories_looks_at_the_most_senior_rep_each_could_reach() -> None:
    d = overlap("[seniority]").route({"id": "L", "country": "US", "state": "OR"}, at=AT)
    assert (d.owner, d.tie_breaks["territory"]) == ("nia", "seniority")


def test_most_recent_contact_between_territories() -> None:
    router = overlap("[most_recent_contact, seniority]")
    state = router.state
    assert isinstance(state, InMemoryState)
    state.note_owner("acme.com", "wes", AT - timedelta(days=3))
    d = router.route({"id": "L", "country": "US", "state": "CA", "email": "x@acme.com"}, at=AT)
    assert (d.owner, d.tie_breaks) == ("wes", {"territory": "most_recent_contact"})


def test_a_territory_whose_rep_is_away_has_nobody_to_offer() -> None:
    router = overlap("[least_loaded]", {"nia": 5, "ned": 5})
    d = router.route({"id": "L", "country": "US", "state": "CA"}, at=AT, overrides={"wes": "ooo"})
    assert (d.owner, d.facts["territory"], d.tie_breaks["territory"]) == ("nia", "north-america", "least_loaded")
    assert d.tie_breaks["pool"] == "file_order"  # the top-level list is the pool's too: nia 5, ned 5


def test_territories_that_lead_to_the_same_rule_are_no_tie() -> None:
    text = TERRITORIES.replace("  - {name: west, when: {territory: west}, assign: {rep: wes}}\n", "") \
        .replace("{territory: north-america}", "{country: [US, CA]}")
    d = team(text + "territory_overlap: tie_break\ntie_break: [seniority]\n").route(
        {"id": "L", "country": "US", "state": "CA"}, at=AT)
    assert d.facts["territory"] == "west" and "territory" not in d.tie_breaks


def test_a_lead_in_one_territory_only_is_no_tie() -> None:
    d = overlap("[least_loaded]").route({"id": "L", "country": "CA"}, at=AT)
    assert d.facts["territory"] == "north-america" and "territory" not in d.tie_breaks


# --- `check`: tie-breakers and overlaps --------------------------------------------------------


def line_of(text: str, needle: str) -> int:
    return next(i for i, line in enumerate(text.splitlines(), 1) if needle in line)


def warnings_for(text: str) -> list[str]:
    return [str(w) for w in parse_config(text, "config/routing.yaml", today=TODAY).warnings]


def test_check_says_which_territories_overlap_under_first_match() -> None:
    assert warnings_for(TERRITORIES) == [
        f"config/routing.yaml:{line_of(TERRITORIES, 'north-america: {')}: territories.north-america: territories "
        "'west' and 'north-america' overlap (US: CA, OR): a lead in both is in 'west', the first in file order "
        "(territory_overlap: first_match)"
    ]


def test_check_says_which_territories_overlap_under_tie_break() -> None:
    text = TERRITORIES + "territory_overlap: tie_break\ntie_break: [least_loaded, seniority]\n"
    assert warnings_for(text) == [
        f"config/routing.yaml:{line_of(text, 'north-america: {')}: territories.north-america: territories "
        "'west' and 'north-america' overlap (US: CA, OR): a lead in both goes by the rules of one of them, "
        "chosen by tie_break [least_loaded, seniority]"
    ]


def test_check_warns_about_a_territory_that_can_never_match() -> None:
    text = TERRITORIES.replace("  emea: {countries: [DE, FR]}\n",
                               "  emea: {countries: [DE, FR]}\n  bay: {countries: [US], states: [CA], postcodes: ['94']}\n")
    assert f"config/routing.yaml:{line_of(text, 'bay:')}: territories.bay: territory 'bay' can never match: every " \
           "lead in it is also in 'west' above it, which wins (territory_overlap: first_match)" in warnings_for(text)


@pytest.mark.parametrize(("a", "b", "overlaps"), [
    ("{countries: [US], postcodes: ['94']}", "{countries: [US], postcodes: ['941']}", True),
    ("{countries: [US], postcodes: ['94']}", "{countries: [US], postcodes: ['95']}", False),
    ("{countries: [US], states: [CA]}", "{countries: [US], states: [NY]}", False),
    ("{countries: [US], states: [CA]}", "{countries: [CA]}", False),
    ("{countries: [DE]}", "{countries: [Germany, AT]}", True),
])
def test_overlap_is_decided_by_country_then_state_then_postcode(a: str, b: str, overlaps: bool) -> None:
    text = textwrap.dedent(f"""\
        version: 1
        reps: [{{id: a}}]
        territories:
          one: {a}
          two: {b}
        queues: {{q: {{}}}}
        fallback: {{queue: q}}
        """)
    assert any("overlap" in w or "never match" in w for w in warnings_for(text)) is overlaps


def test_a_tie_break_that_can_never_apply_is_a_warning() -> None:
    text = TEAM.replace("strategy: round_robin}", "strategy: round_robin, tie_break: [seniority]}") \
        .replace("assign: {pool: plain}}", "assign: {queue: triage}, tie_break: [seniority]}")
    assert warnings_for(text)[:2] == [
        f"config/routing.yaml:{line_of(text, 'rotation:')}: pools.rotation.tie_break: has no effect: round_robin takes "
        "turns and never ties (tie_break applies to least_loaded pools and, with territory_overlap: tie_break, to "
        "overlapping territories)",
        f"config/routing.yaml:{line_of(text, 'name: plain')}: rules[3].tie_break: has no effect: rule 'plain' does "
        "not assign to a pool (tie_break applies to least_loaded pools and, with territory_overlap: tie_break, to "
        "overlapping territories)",
    ]


def test_territory_overlap_tie_break_without_a_list_is_a_warning() -> None:
    text = TERRITORIES + "territory_overlap: tie_break\n"
    (warning,) = [w for w in warnings_for(text) if w.split(": ")[1] == "territory_overlap"]
    assert warning.startswith(f"config/routing.yaml:{line_of(text, 'territory_overlap')}: "
                              "territory_overlap: tie_break without a top-level tie_break list settles overlapping "
                              "territories by file order")


def test_seniority_without_any_seniority_is_a_warning() -> None:
    text = TERRITORIES.replace(", seniority: 1", "").replace(", seniority: 3", "").replace(", seniority: 2", "")
    text = text.replace("strategy: least_loaded}", "strategy: least_loaded, tie_break: [seniority]}")
    assert "reps: no rep has a seniority, so the seniority tie-breaker never decides anything" in " ".join(warnings_for(text))


def test_most_recent_contact_is_no_warning_now_that_the_worker_tracks_it() -> None:
    assert warnings_for(TEAM) == []  # the worker reads the last owner from the store (tests/worker/test_relationship_e2e.py)


@pytest.mark.parametrize(("value", "message"), [
    ("[seniorty]", "pools.closers.tie_break[0]: 'seniorty' is not one of 'least_loaded', 'most_recent_contact', "
                   "'seniority' or 'file_order' (did you mean 'seniority'?)"),
    ("[seniority, seniority]", "pools.closers.tie_break: seniority listed twice; each tie-breaker is used once, in order"),
    ("[]", "pools.closers.tie_break: list at least one tie-breaker, e.g. [least_loaded, file_order], or leave "
           "tie_break out"),
])
def test_bad_tie_break_lists_are_errors_on_their_line(value: str, message: str) -> None:
    text = TEAM.replace("tie_break: [seniority]}", f"tie_break: {value}}}", 1)
    with pytest.raises(ConfigError) as caught:
        parse_config(text, "config/routing.yaml", today=TODAY)
    assert [str(p) for p in caught.value.problems] == [f"config/routing.yaml:{line_of(text, 'closers: {')}: {message}"]


def test_a_single_tie_breaker_may_be_written_without_brackets() -> None:
    config = parse_config(TEAM.replace("tie_break: [seniority]}", "tie_break: seniority}", 1), today=TODAY)
    assert config.pools["closers"].tie_break == ("seniority",)


def test_a_territory_no_rule_takes_the_lead_in_gives_way_to_one_that_does() -> None:
    text = TERRITORIES.replace("  - {name: west, when: {territory: west}, assign: {rep: wes}}\n",
                               "  - {name: west, when: {territory: west, employees: {gte: 1000}}, assign: {rep: wes}}\n")
    first_match = team(text).route({"id": "L", "country": "US", "state": "CA", "employees": 10}, at=AT)
    assert (first_match.owner, first_match.rule) == ("queue:triage", "fallback")  # west, and no west rule holds
    d = team(text + "territory_overlap: tie_break\ntie_break: [seniority]\n").route(
        {"id": "L", "country": "US", "state": "CA", "employees": 10}, at=AT)
    assert (d.rule, d.facts["territory"], "territory" in d.tie_breaks) == ("na", "north-america", False)
    assert "(territory north-america over west, which no rule takes)" in d.reason
