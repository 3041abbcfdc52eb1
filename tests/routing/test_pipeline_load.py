"""Pipeline load from the CRM in ``least_loaded`` pools (issue 17): ``load: {leads: w1, opportunities: w2}``.

The engine weighs each rep's open leads (the state's, picked atomically) and their open opportunities
(cached from the CRM, handed in as data), shows both numbers in the decision, and says when the counts
are missing or stale; it never reads the CRM itself.
"""

from __future__ import annotations

import textwrap
from datetime import UTC, datetime, timedelta

import pytest

from worker.config import ConfigError, parse_config
from worker.routing.engine import Decision, Router
from worker.routing.pipeline import PipelineCounts, PipelineLoad
from worker.routing.state import InMemoryState

AT = datetime(2026, 12, 1, 15, 0, tzinfo=UTC)


def config_text(load: str = "{leads: 1, opportunities: 0.5}", extra: str = "") -> str:
    return textwrap.dedent(f"""\
        version: 1
        reps:
          - {{id: tom, seniority: 1}}
          - {{id: sarah, seniority: 9}}
          - {{id: ann, capacity: 3}}
        pools:
          team: {{members: [tom, sarah], strategy: least_loaded, load: {load}{extra}}}
          capped: {{members: [ann, tom], strategy: least_loaded, load: {load}}}
        queues: {{triage: {{}}}}
        rules:
          - {{name: capped, when: {{lead_source: capped}}, assign: {{pool: capped}}}}
          - {{name: everyone, assign: {{pool: team}}}}
        fallback: {{queue: triage}}
        """)


def pipeline(counts: dict[str, int], read_at: datetime = AT - timedelta(minutes=5), crm: str = "salesforce",
             max_age: float = 1800.0) -> PipelineLoad:
    return PipelineLoad({crm: PipelineCounts(crm, counts, read_at.timestamp())}, max_age)


def route(loads: dict[str, int], load: PipelineLoad | None, text: str | None = None, source: str = "web",
          at: datetime = AT) -> Decision:
    state = InMemoryState()
    state.set_loads(loads)
    router = Router(parse_config(text or config_text(), "team.yaml"), state, pipeline=load)
    return router.route({"id": "L1", "email": "x@acme.com", "lead_source": source}, at=at)


def test_opportunities_change_the_least_loaded_pick_and_the_reason_shows_both_numbers() -> None:
    assert route({"tom": 2, "sarah": 3}, pipeline({})).owner == "tom"  # leads alone: tom 2 < sarah 3
    d = route({"tom": 2, "sarah": 3}, pipeline({"tom": 7, "sarah": 1}))  # tom 2 + 3.5 = 5.5, sarah 3 + 0.5 = 3.5
    assert d.owner == "sarah"
    assert d.reason == "everyone -> pool team (least loaded: sarah 4 leads + 1 opps x0.5)"


def test_equal_weighted_loads_tie_and_the_tie_breaker_decides() -> None:
    text = config_text(extra=", tie_break: [seniority]")
    d = route({"tom": 3, "sarah": 1}, pipeline({"tom": 0, "sarah": 4}), text)  # 3 + 0 = 1 + 2
    assert d.owner == "sarah" and d.tie_breaks == {"pool": "seniority"}
    assert "least loaded: sarah 2 leads + 4 opps x0.5, tie with tom broken by seniority" in d.reason
    plain = route({"tom": 3, "sarah": 1}, pipeline({"tom": 0, "sarah": 4}))  # no tie-breaker: pool order
    assert plain.owner == "tom"


def test_mostly_opportunities_and_a_whole_weight() -> None:
    # tom 0.1 x 9 + 1 = 1.9 < sarah 0.1 x 0 + 2 = 2
    d = route({"tom": 9, "sarah": 0}, pipeline({"tom": 1, "sarah": 2}), config_text("{leads: 0.1, opportunities: 1}"))
    assert d.owner == "tom"
    assert d.reason.endswith("(least loaded: tom 10 leads x0.1 + 1 opps)")


def test_capacity_still_counts_open_leads_alone() -> None:
    d = route({"ann": 3, "tom": 0}, pipeline({"ann": 0, "tom": 40}), source="capped")
    assert d.owner == "tom" and d.skipped == {"ann": "at_capacity"}
    assert d.reason.endswith("(least loaded: tom 1 leads + 40 opps x0.5)")


def test_hubspot_counts_are_deals() -> None:
    d = route({"tom": 0, "sarah": 0}, pipeline({"tom": 3, "sarah": 5}, crm="hubspot"))
    assert d.owner == "tom" and d.reason.endswith("(least loaded: tom 1 leads + 3 deals x0.5)")


def test_stale_counts_still_route_and_the_reason_says_they_are_stale() -> None:
    old = pipeline({"tom": 7, "sarah": 1}, read_at=AT - timedelta(hours=3), max_age=1800)
    d = route({"tom": 2, "sarah": 3}, old)
    assert d.owner == "sarah"
    assert d.reason.endswith("(least loaded: sarah 4 leads + 1 opps x0.5 (opps 3 h old, stale))")
    assert not old.stale(AT - timedelta(hours=2, minutes=40)) and old.stale(AT)


def test_no_counts_yet_route_by_leads_and_say_so() -> None:
    for missing in (None, PipelineLoad({}, 1800)):
        d = route({"tom": 2, "sarah": 3}, missing)
        assert d.owner == "tom"
        assert d.reason.endswith("(least loaded: tom 3 leads + 0 opps x0.5 (no opps counts yet: counted as 0))")


def test_counts_from_two_crms_add_up() -> None:
    both = PipelineLoad({"salesforce": PipelineCounts("salesforce", {"tom": 2}, AT.timestamp()),
                         "hubspot": PipelineCounts("hubspot", {"tom": 3, "sarah": 1}, AT.timestamp())})
    assert (both.opportunities("tom"), both.opportunities("sarah"), both.label) == (5, 1, "opps")


def test_a_pool_without_load_weights_is_unchanged() -> None:
    text = config_text().replace(", load: {leads: 1, opportunities: 0.5}}", "}")
    d = route({"tom": 2, "sarah": 3}, pipeline({"tom": 70}), text)
    assert d.owner == "tom" and d.reason == "everyone -> pool team (least loaded: tom 3)"


@pytest.mark.parametrize(("load", "message"), [
    ("{leads: 0, opportunities: 1}", "team.yaml:7: pools.team.load.leads: a weight of 0 would send every lead to the "
                                     "same rep until the next pipeline refresh"),
    ("{leads: 0, opportunities: 0}", "team.yaml:7: pools.team.load.leads: a weight of 0"),
    ("{leads: -1}", "team.yaml:7: pools.team.load.leads: Input should be greater than or equal to 0"),
    ("{opportunites: 1}", "team.yaml:7: pools.team.load.opportunites: unknown key 'opportunites' (did you mean "
                          "'opportunities'?)"),
])
def test_bad_load_weights_are_located_errors(load: str, message: str) -> None:
    with pytest.raises(ConfigError) as err:
        parse_config(config_text(load), "team.yaml")
    assert any(str(p).startswith(message) for p in err.value.problems), err.value


def test_load_weights_on_a_rotation_are_an_error() -> None:
    text = config_text().replace("team: {members: [tom, sarah], strategy: least_loaded",
                                 "team: {members: [tom, sarah], strategy: round_robin")
    with pytest.raises(ConfigError) as err:
        parse_config(text, "team.yaml")
    assert [str(p) for p in err.value.problems] == [
        "team.yaml:7: pools.team: load weights apply to least_loaded pools only; this pool is round_robin "
        "(set 'strategy: least_loaded' or remove 'load')"]


def test_weighing_opportunities_without_a_crm_warns() -> None:
    config = parse_config(config_text(), "team.yaml")
    assert any(w.path == "pools.team.load" and "no CRM connector is enabled" in w.message for w in config.warnings)
