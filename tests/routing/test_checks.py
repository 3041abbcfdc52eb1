"""`leadroute check`'s static checks: each one fires, with its line, on a config that has the
problem, and stays quiet on one that does not. A shadowed rule is only ever claimed when it is
true; a coverage gap is always shown by a lead the engine really sends to the fallback."""

from __future__ import annotations

import textwrap
from datetime import UTC, datetime
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from worker.config import parse_config
from worker.routing.checks import (
    COVERAGE_GAP,
    EMPTY_POOL,
    OVERLAPPING_TERRITORIES,
    SHADOWED_RULE,
    UNREACHABLE_REP,
    check_shadowed,
    kind_of,
    run_checks,
)
from worker.routing.engine import Router
from worker.routing.state import InMemoryState

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "config/routing.example.yaml"
NOW = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)
FILE = "routing.yaml"

TEAM = """\
version: 1
reps:
  - {id: ann}
  - {id: bob}
pools:
  all: {members: [ann, bob]}
queues: {triage: {}}
fallback: {queue: triage}
"""


def config(rules: str, head: str = TEAM) -> str:
    return head + "rules:\n" + textwrap.indent(textwrap.dedent(rules), "  ")


def line_of(text: str, needle: str) -> int:
    return next(i for i, line in enumerate(text.splitlines(), 1) if needle in line)


def found(text: str, kind: str, now: datetime = NOW, days: int = 7) -> list[str]:
    loaded = parse_config(text, FILE, today=now.date())
    return [str(f) for f in run_checks(loaded, text, now, days) if f.kind == kind]


# --- shadowed rules ----------------------------------------------------------------------------


def test_a_rule_asking_for_a_subset_of_an_earlier_rules_values_is_shadowed() -> None:
    text = config("""\
        - {name: health, when: {industry: [Healthcare, Biotech]}, assign: {pool: all}}
        - {name: biotech, when: {industry: biotech, lead_source: Web}, assign: {rep: ann}}
        """)
    assert found(text, SHADOWED_RULE) == [
        f"{FILE}:{line_of(text, 'name: biotech')}: rules[1]: rule 'biotech' can never match: rule 'health' above it "
        f"(line {line_of(text, 'name: health')}) matches every lead it matches"
    ]


def test_a_numeric_range_covered_by_the_union_of_earlier_ranges_is_shadowed() -> None:
    text = config("""\
        - {name: small, when: {employees: {between: [0, 499]}}, assign: {rep: ann}}
        - {name: large, when: {employees: {gte: 500}}, assign: {rep: bob}}
        - {name: middle, when: {employees: {gt: 100, lte: 1000}}, assign: {pool: all}}
        """)
    assert found(text, SHADOWED_RULE) == [
        f"{FILE}:{line_of(text, 'name: middle')}: rules[2]: rule 'middle' can never match: rules 'small' and 'large' "
        f"above it (line {line_of(text, 'name: small')}, line {line_of(text, 'name: large')}) together match every "
        "lead it matches"
    ]


def test_a_range_that_reaches_past_the_earlier_ones_is_not_shadowed() -> None:
    text = config("""\
        - {name: small, when: {employees: {between: [0, 499]}}, assign: {rep: ann}}
        - {name: large, when: {employees: {gt: 500}}, assign: {rep: bob}}
        - {name: middle, when: {employees: {between: [100, 1000]}}, assign: {pool: all}}
        - {name: negative, when: {employees: {lt: 10}}, assign: {pool: all}}
        """)
    assert found(text, SHADOWED_RULE) == []  # 500 exactly reaches 'middle'; -1 reaches 'negative'


def test_an_in_list_covered_by_earlier_lists_is_shadowed_and_one_reaching_past_them_is_not() -> None:
    text = config("""\
        - {name: inbound, when: {lead_source: {in: [Web, Demo Request]}}, assign: {rep: ann}}
        - {name: events, when: {lead_source: [Event]}, assign: {rep: bob}}
        - {name: mixed, when: {lead_source: {in: [demo request, EVENT]}}, assign: {pool: all}}
        - {name: wider, when: {lead_source: {in: [Event, Partner]}}, assign: {pool: all}}
        """)
    assert found(text, SHADOWED_RULE) == [
        f"{FILE}:{line_of(text, 'name: mixed')}: rules[2]: rule 'mixed' can never match: rules 'inbound' and 'events' "
        f"above it (line {line_of(text, 'name: inbound')}, line {line_of(text, 'name: events')}) together match every "
        "lead it matches"
    ]


TERRITORIES = TEAM + """\
territories:
  emea: {countries: [DE, FR]}
  na: {countries: [US, CA]}
"""


def test_a_rule_on_territories_each_taken_earlier_is_shadowed() -> None:
    text = config("""\
        - {name: emea, when: {territory: emea}, assign: {rep: ann}}
        - {name: na, when: {territory: na}, assign: {rep: bob}}
        - {name: big-anywhere, when: {territory: [emea, na], employees: {gte: 1000}}, assign: {pool: all}}
        - {name: elsewhere, when: {employees: {gte: 1000}}, assign: {pool: all}}
        """, TERRITORIES)
    assert found(text, SHADOWED_RULE) == [
        f"{FILE}:{line_of(text, 'name: big-anywhere')}: rules[2]: rule 'big-anywhere' can never match: rules 'emea' "
        f"and 'na' above it (line {line_of(text, 'name: emea')}, line {line_of(text, 'name: na,')}) together match "
        "every lead it matches"
    ]


def test_countries_a_territory_takes_whole_are_covered_by_a_rule_on_it() -> None:
    text = config("""\
        - {name: emea, when: {territory: emea}, assign: {rep: ann}}
        - {name: germany, when: {country: [Germany, FR]}, assign: {rep: bob}}
        - {name: us, when: {country: US}, assign: {rep: bob}}
        """, TERRITORIES)
    assert found(text, SHADOWED_RULE) == [
        f"{FILE}:{line_of(text, 'name: germany')}: rules[1]: rule 'germany' can never match: rule 'emea' above it "
        f"(line {line_of(text, 'name: emea')}) matches every lead it matches"
    ]


def test_a_country_only_partly_in_a_territory_is_not_covered_by_it() -> None:
    west = TEAM + "territories:\n  west: {countries: [US], states: [CA]}\n  na: {countries: [US, CA]}\n"
    text = config("""\
        - {name: na, when: {territory: na}, assign: {rep: ann}}
        - {name: us, when: {country: US}, assign: {rep: bob}}
        """, west)
    assert found(text, SHADOWED_RULE) == []  # a lead from California is in 'west', which 'na' does not take


def test_not_in_covers_every_other_value() -> None:
    text = config("""\
        - {name: not-web, when: {lead_source: {not_in: [Web]}}, assign: {rep: ann}}
        - {name: web, when: {lead_source: Web}, assign: {rep: bob}}
        - {name: event, when: {lead_source: Event}, assign: {pool: all}}
        """)
    assert found(text, SHADOWED_RULE) == [
        f"{FILE}:{line_of(text, 'name: event')}: rules[2]: rule 'event' can never match: rule 'not-web' above it "
        f"(line {line_of(text, 'name: not-web')}) matches every lead it matches"
    ]


def test_a_rule_whose_conditions_contradict_each_other_can_never_match() -> None:
    text = config("""\
        - {name: odd, when: {all: [{employees: {gte: 1000}}, {employees: {lt: 100}}]}, assign: {rep: ann}}
        """)
    assert found(text, SHADOWED_RULE) == [
        f"{FILE}:{line_of(text, 'name: odd')}: rules[0]: rule 'odd' can never match: no lead meets all of its "
        "conditions at once"
    ]


def test_unknown_values_keep_a_later_rule_alive() -> None:
    text = config("""\
        - {name: small, when: {employees: {lt: 100}}, assign: {rep: ann}}
        - {name: large, when: {employees: {gte: 100}}, assign: {rep: bob}}
        - {name: web, when: {lead_source: Web}, assign: {pool: all}}
        """)
    assert found(text, SHADOWED_RULE) == []  # a lead whose employee count is unknown still reaches 'web'


def test_a_condition_the_analysis_cannot_read_is_unknown_never_shadowed() -> None:
    # 'fintech' does contain 'fin', but the analysis does not look inside `contains` or `matches`:
    # the rule is left alone rather than guessed about
    text = config("""\
        - {name: fin, when: {industry: {contains: fin}}, assign: {rep: ann}}
        - {name: fintech, when: {industry: Fintech}, assign: {rep: bob}}
        - {name: pattern, when: {title: {matches: "^vp"}}, assign: {rep: ann}}
        - {name: vp, when: {title: {matches: "^vp"}, lead_source: Web}, assign: {rep: bob}}
        """)
    assert [f.split(": ")[1] for f in found(text, SHADOWED_RULE)] == ["rules[3]"]  # the same pattern is the same fact


def test_rules_after_a_rule_without_conditions_are_left_to_the_load_warning() -> None:
    text = config("""\
        - {name: everyone, assign: {pool: all}}
        - {name: web, when: {lead_source: Web}, assign: {rep: ann}}
        """)
    loaded = parse_config(text, FILE)
    assert [kind_of(w) for w in loaded.warnings] == [SHADOWED_RULE]
    assert found(text, SHADOWED_RULE) == []


RULE_PARTS = st.sampled_from([
    "{employees: {gte: 100}}", "{employees: {lt: 100}}", "{employees: {between: [50, 500]}}",
    "{employees: {exists: false}}", "{lead_source: Web}", "{lead_source: [Web, Event]}",
    "{lead_source: {not_in: [Web]}}", "{territory: emea}", "{territory: [emea, na]}", "{country: US}",
    "{not: {territory: na}}", "{industry: {contains: fin}}", "{any: [{score: {gte: 80}}, {lead_source: Event}]}",
    "{country: [DE, FR]}", "{territory: {exists: false}}", "{employees: {not_in: [100]}}",
])
LEADS = st.fixed_dictionaries({}, optional={
    "employees": st.sampled_from([0, 49, 50, 99, 100, 101, 500, 501, 5000, "n/a"]),
    "lead_source": st.sampled_from(["Web", "Event", "Partner", ""]),
    "country": st.sampled_from(["US", "DE", "FR", "BR"]),
    "industry": st.sampled_from(["Fintech", "Retail"]),
    "score": st.sampled_from([10, 80, 95]),
    "territory": st.sampled_from(["emea", "na"]),  # a lead may bring its own, kept when its country is in none
})


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.lists(RULE_PARTS, min_size=1, max_size=2), min_size=2, max_size=5),
       st.lists(LEADS, min_size=20, max_size=20))
def test_the_engine_never_routes_by_a_rule_called_shadowed(conditions: list[list[str]], leads: list[dict]) -> None:
    rules = "".join(f"- {{name: r{i}, when: {{all: [{', '.join(parts)}]}}, assign: {{rep: ann}}}}\n"
                    for i, parts in enumerate(conditions))
    text = config(rules, TERRITORIES)
    loaded = parse_config(text, FILE)
    shadowed = {f.problem.path for f in check_shadowed(loaded, text)}
    router = Router(loaded, InMemoryState())
    for lead in leads:
        rule = router.route({"id": "L", **lead}, at=NOW).rule
        assert rule == "fallback" or f"rules[{rule[1:]}]" not in shadowed


# --- coverage gaps -----------------------------------------------------------------------------

SEGMENTED = TERRITORIES + """\
segments:
  smb: {employees: {lt: 100}}
  large: {employees: {gte: 100}}
"""


def test_territory_and_segment_combinations_that_reach_the_fallback_are_named() -> None:
    text = config("""\
        - {name: emea, when: {territory: emea}, assign: {rep: ann}}
        - {name: na-large, when: {territory: na, segment: large}, assign: {rep: bob}}
        """, SEGMENTED)
    assert found(text, COVERAGE_GAP) == [
        f"{FILE}:{line_of(text, 'na: {countries')}: territories.na: na leads with no other facts reach the fallback: every "
        "one in segment smb (under 100 employees) or in no segment (e.g. a lead from CA with 99 employees and no other facts)",
        f"{FILE}:{line_of(text, 'fallback:')}: fallback: leads in no territory with no other facts reach the fallback "
        "whatever their segment (e.g. a lead with no country, 99 employees and no other facts)",
    ]


def test_unknown_employees_reaching_the_fallback_is_named() -> None:
    text = config("""\
        - {name: small, when: {segment: smb}, assign: {rep: ann}}
        - {name: large, when: {segment: large}, assign: {rep: bob}}
        """, SEGMENTED)
    assert found(text, COVERAGE_GAP) == [
        f"{FILE}:{line_of(text, 'emea: {countries')}: territories.emea: emea leads with no other facts reach the fallback: "
        "every one in no segment (e.g. a lead from DE with employees unknown and no other facts)",
        f"{FILE}:{line_of(text, 'na: {countries')}: territories.na: na leads with no other facts reach the fallback: every "
        "one in no segment (e.g. a lead from CA with employees unknown and no other facts)",
        f"{FILE}:{line_of(text, 'fallback:')}: fallback: leads in no territory with no other facts reach the fallback: every "
        "one in no segment (e.g. a lead with no country, employees unknown and no other facts)",
    ]


def test_a_partly_covered_combination_is_reported_as_some() -> None:
    text = config("""\
        - {name: germany, when: {country: DE}, assign: {rep: ann}}
        - {name: na, when: {territory: na}, assign: {rep: bob}}
        - {name: rest, when: {territory: {exists: false}}, assign: {pool: all}}
        """, TERRITORIES)
    assert found(text, COVERAGE_GAP) == [
        f"{FILE}:{line_of(text, 'emea: {countries')}: territories.emea: some emea leads with no other facts reach the fallback "
        "(e.g. a lead from FR and no other facts)",
    ]


def test_every_one_is_only_said_when_the_leads_tried_stand_for_all_of_them() -> None:
    text = config("""\
        - {name: emea, when: {territory: emea}, assign: {rep: ann}}
        - {name: california, when: {territory: na, state: CA}, assign: {rep: bob}}
        - {name: rest, when: {territory: {exists: false}}, assign: {pool: all}}
        """, TERRITORIES)
    assert found(text, COVERAGE_GAP) == [  # every lead tried fell, but none was from California
        f"{FILE}:{line_of(text, 'na: {countries')}: territories.na: some na leads with no other facts reach the fallback "
        "(e.g. a lead from CA and no other facts)",
    ]


def test_a_segment_the_analysis_cannot_cut_makes_every_gap_a_some() -> None:
    head = SEGMENTED + "  fin: {industry: {contains: fin}}\n"
    text = config("""\
        - {name: emea, when: {territory: emea}, assign: {rep: ann}}
        - {name: na, when: {territory: na}, assign: {rep: bob}}
        - {name: retail, when: {industry: retail}, assign: {rep: bob}}
        """, head)
    assert found(text, COVERAGE_GAP) == [  # an unknown-size retailer from nowhere is caught: "every one" would be wrong
        f"{FILE}:{line_of(text, 'fallback:')}: fallback: leads in no territory with no other facts reach the fallback: some "
        "in segment smb (under 100 employees) or in segment large (100+ employees) or in no segment (e.g. a lead with no "
        "country, 99 employees and no other facts)",
    ]


def test_a_value_that_is_not_a_number_is_tried_too() -> None:
    head = TEAM.replace("version: 1\n", "version: 1\nfields: [seats]\nsegments:\n  big: {seats: {gte: 10}}\n")
    text = config("""\
        - {name: big, when: {segment: big}, assign: {rep: ann}}
        - {name: any-seats, when: {seats: {exists: true}}, assign: {rep: bob}}
        """, head)
    assert found(text, COVERAGE_GAP) == [
        f"{FILE}:{line_of(text, 'fallback:')}: fallback: leads with no other facts reach the fallback: some in no segment "
        "(e.g. a lead with seats unknown and no other facts)",  # not those whose seats are not a number
    ]


def test_no_gap_when_every_combination_has_a_rule_or_the_last_rule_catches_all() -> None:
    every = config("""\
        - {name: emea, when: {territory: emea}, assign: {rep: ann}}
        - {name: na, when: {territory: na}, assign: {rep: bob}}
        - {name: rest, when: {territory: {exists: false}}, assign: {pool: all}}
        """, SEGMENTED)
    catch_all = config("""\
        - {name: na-large, when: {territory: na, segment: large}, assign: {rep: bob}}
        - {name: everyone-else, assign: {queue: triage}}
        """, SEGMENTED)
    assert found(every, COVERAGE_GAP) == [] and found(catch_all, COVERAGE_GAP) == []


def test_every_gap_on_the_example_is_a_lead_the_engine_sends_to_the_fallback() -> None:
    text = EXAMPLE.read_text()
    loaded = parse_config(text, str(EXAMPLE), today=NOW.date())
    router = Router(loaded, InMemoryState())
    examples = [{"country": "DE", "employees": 99}, {"country": "US", "state": "CA", "employees": 1000},
                {"country": "US", "employees": 1000}, {"employees": 1000}]  # the e.g. of each gap below
    for lead in examples:
        assert router.route({"id": "L", **lead}, at=NOW).reason.startswith("no rule matched")


# --- overlapping territories ---------------------------------------------------------------------

OVERLAP = """\
territories:
  west: {countries: [US], states: [CA, OR]}
  na: {countries: [US, CA]}
"""


def test_a_state_in_two_territories_is_named_with_the_one_the_engine_uses() -> None:
    text = config("- {name: any, when: {territory: [west, na]}, assign: {rep: ann}}\n", TEAM + OVERLAP)
    loaded = parse_config(text, FILE)
    overlaps = [w for w in loaded.warnings if kind_of(w) == OVERLAPPING_TERRITORIES]
    assert [str(w) for w in overlaps] == [
        f"{FILE}:{line_of(text, 'na: {countries')}: territories.na: territories 'west' and 'na' overlap (US: CA, OR): "
        "a lead in both is in 'west', the first in file order (territory_overlap: first_match)"
    ]
    decision = Router(loaded, InMemoryState()).route({"id": "L", "country": "US", "state": "CA"}, at=NOW)
    assert decision.facts["territory"] == "west"


def test_territories_apart_do_not_overlap() -> None:
    apart = OVERLAP.replace("countries: [US, CA]}", "countries: [US], states: [NY, TX]}")
    loaded = parse_config(config("- {name: any, when: {territory: [west, na]}, assign: {rep: ann}}\n", TEAM + apart), FILE)
    assert [w for w in loaded.warnings if kind_of(w) == OVERLAPPING_TERRITORIES] == []


# --- empty effective pools -----------------------------------------------------------------------

POOLS = """\
version: 1
reps:
  - {id: ann, active: false}
  - {id: bob, active: false}
  - {id: cat, out_of_office: [{start: 2026-12-01, end: 2026-12-20}]}
  - {id: dan, timezone: Europe/Berlin, out_of_office: [{start: 2026-11-20, end: 2026-12-31}]}
  - {id: eve, out_of_office: [{start: 2026-12-03, end: 2026-12-04}]}
  - {id: fay, out_of_office: [{start: 2026-12-04, end: 2026-12-05}]}
  - {id: gus, skills: [german], out_of_office: [{start: 2026-12-09, end: 2026-12-10}]}
  - {id: hal, skills: [german], out_of_office: [{start: 2026-12-10, end: 2026-12-12}]}
pools:
  gone: {members: [ann, bob]}
  away: {members: [cat, dan]}
  gap: {members: [eve, fay]}
  later: {members: [gus, hal]}
queues: {triage: {}}
rules:
  - {name: gone, when: {lead_source: a}, assign: {pool: gone}}
  - {name: away, when: {lead_source: b}, assign: {pool: away}}
  - {name: gap, when: {lead_source: c}, assign: {pool: gap}}
  - {name: german, when: {language: de}, assign: {pool: later, require_skills: [german]}}
  - {name: french, when: {language: fr}, assign: {pool: later, require_skills: [french]}}
fallback: {queue: triage}
"""


def test_pools_with_nobody_to_take_a_lead_are_named() -> None:
    assert found(POOLS, EMPTY_POOL) == [
        f"{FILE}:{line_of(POOLS, 'gone: {members')}: pools.gone.members: pool 'gone' has nobody who can take a lead "
        "(inactive: ann, bob): rule 'gone' sends every lead it matches to the fallback",
        f"{FILE}:{line_of(POOLS, 'away: {members')}: pools.away.members: pool 'away': every member is out of office for "
        "the next 7 days: rule 'away' sends every lead it matches to the fallback",
        f"{FILE}:{line_of(POOLS, 'gap: {members')}: pools.gap.members: pool 'gap' has nobody available from 2026-12-04 "
        "00:00 to 2026-12-05 00:00 UTC (every member out of office, within the next 7 days): rule 'gap' sends every "
        "lead it matches to the fallback then",
        f"{FILE}:{line_of(POOLS, 'name: french')}: rules[4].assign: rule 'french' needs skill french, which no member "
        "of pool 'later' has: every lead it sends there goes to the fallback",
    ]


def test_how_far_ahead_to_look_is_an_option() -> None:
    later = f"{FILE}:{line_of(POOLS, 'later: {members')}: pools.later.members: pool 'later' has nobody available from " \
        "2026-12-10 00:00 to 2026-12-11 00:00 UTC (every member out of office, within the next 10 days): rules 'german' " \
        "and 'french' send every lead they match to the fallback then"
    assert later not in found(POOLS, EMPTY_POOL)
    assert later in found(POOLS, EMPTY_POOL, days=10)


def test_pools_with_someone_available_are_not_named() -> None:
    text = POOLS.replace("active: false}\n  - {id: bob", "active: true}\n  - {id: bob").replace(
        "end: 2026-12-31", "end: 2026-11-30").replace("start: 2026-12-04, end: 2026-12-05", "start: 2026-12-05, end: 2026-12-06")
    text = text.replace("require_skills: [french]", "require_skills: [german]").replace("end: 2026-12-10}", "end: 2026-12-09}")
    assert found(text, EMPTY_POOL) == []


# --- reps no lead can reach ----------------------------------------------------------------------

REPS = """\
version: 1
reps:
  - {id: ann, backup: bob, manager: max}
  - {id: bob}
  - {id: cat}
  - {id: dan}
  - {id: max}
  - {id: new}
  - {id: old, active: false}
  - {id: tri}
  - {id: zed}
pools:
  main: {members: [ann, cat]}
  spare: {members: [zed]}
queues: {triage: {}}
rules:
  - {name: pooled, when: {lead_source: Web}, assign: {pool: main}}
  - {name: direct, when: {lead_source: Event}, assign: {rep: dan}}
  - {name: never, when: {lead_source: [Event]}, assign: {pool: spare}}
fallback: {rep: tri}
"""


def test_reps_no_routing_path_reaches_are_named() -> None:
    assert found(REPS, UNREACHABLE_REP) == [
        f"{FILE}:{line_of(REPS, 'id: max')}: reps[4].id: rep 'max' receives escalations only, never a lead: manager of ann, "
        "but in no pool a rule uses, no rule's rep, not the fallback, nobody's backup",
        f"{FILE}:{line_of(REPS, 'id: new')}: reps[5].id: rep 'new' can never receive a lead: in no pool a rule uses, "
        "no rule's rep, not the fallback, nobody's backup",
        f"{FILE}:{line_of(REPS, 'id: zed')}: reps[8].id: rep 'zed' can never receive a lead: in no pool a rule uses, "
        "no rule's rep, not the fallback, nobody's backup",  # its only rule is shadowed
    ]


def test_with_an_account_owner_rule_they_are_named_as_owners_only() -> None:
    owner = "  - {name: owner, when: {account_owner: {exists: true}}, assign: {account_owner: true}}\n"
    text = REPS.replace("rules:\n", "rules:\n" + owner)
    assert found(text, UNREACHABLE_REP)[:2] == [
        f"{FILE}:{line_of(REPS, 'id: max')}: reps[4].id: rep 'max' receives escalations (manager of ann) and gets leads only "
        "as a CRM account owner (rule 'owner'): in no pool a rule uses, no rule's rep, not the fallback, nobody's backup",
        f"{FILE}:{line_of(REPS, 'id: new')}: reps[5].id: rep 'new' gets leads only as a CRM account owner (rule 'owner'): "
        "in no pool a rule uses, no rule's rep, not the fallback, nobody's backup",
    ]


def test_pool_members_rule_targets_backups_and_the_fallback_rep_are_reachable() -> None:
    text = (REPS.replace("members: [zed]", "members: [zed, new, max]")
            .replace("lead_source: [Event]", "lead_source: [Demo]"))
    assert found(text, UNREACHABLE_REP) == []


def test_a_manager_is_no_routing_path_and_neither_is_a_managers_backup() -> None:
    """SLA escalations notify a manager; they never give the manager the lead, so the manager's backup gets none either."""
    text = REPS.replace("  - {id: max}", "  - {id: max, backup: bob}").replace("  - {id: bob}", "  - {id: bob, manager: max}")
    text = text.replace("{id: ann, backup: bob, manager: max}", "{id: ann, manager: max}")
    assert [f.split(": ", 2)[2] for f in found(text, UNREACHABLE_REP)][:2] == [
        "rep 'bob' can never receive a lead: in no pool a rule uses, no rule's rep, not the fallback, nobody's backup",
        "rep 'max' receives escalations only, never a lead: manager of ann, bob, but in no pool a rule uses, no rule's rep, "
        "not the fallback, nobody's backup",
    ]


def test_every_arm_of_an_a_b_split_is_a_routing_path() -> None:
    text = REPS.replace("  - {name: never,", """  - name: split
    when: {lead_source: Demo}
    split:
      arms:
        - {name: control, share: 50, assign: {rep: new}}
        - {name: skilled, share: 50, assign: {pool: spare, require_skills: [german]}}
  - {name: never,""")
    found_reps = [f.split(": ")[1] for f in found(text, UNREACHABLE_REP)]
    assert found_reps == ["reps[4].id", "reps[8].id"]  # max only manages; zed lacks the skill
    assert found(text, EMPTY_POOL) == [
        f"{FILE}:{line_of(text, 'name: skilled')}: rules[2].split.arms[1].assign: rule 'split' needs skill german, "
        "which no member of pool 'spare' has: every lead it sends there goes to the fallback"
    ]


# --- the shipped example -------------------------------------------------------------------------

EXAMPLE_FINDINGS = [
    (COVERAGE_GAP, "105: territories.emea: emea leads with no other facts reach the fallback: every one in segment smb (under "
     "100 employees) or in no segment; some in segment enterprise (1,000+ employees or annual revenue 250,000,000+) or in "
     "segment mid-market (100\N{EN DASH}999 employees) (e.g. a lead from DE with 99 employees and no other facts)"),
    (COVERAGE_GAP, "106: territories.na-west: na-west leads with no other facts reach the fallback whatever their segment "
     "(e.g. a lead from US-CA with 1,000 employees and no other facts)"),
    (COVERAGE_GAP, "108: territories.na: na leads with no other facts reach the fallback: every one in segment enterprise "
     "(1,000+ employees or annual revenue 250,000,000+) or in segment smb (under 100 employees) or in no segment (e.g. a lead "
     "from US with 1,000 employees and no other facts)"),
    (COVERAGE_GAP, "168: fallback: leads in no territory with no other facts reach the fallback: every one in segment "
     "enterprise (1,000+ employees or annual revenue 250,000,000+) or in segment smb (under 100 employees) or in no segment; "
     "some in segment mid-market (100\N{EN DASH}999 employees) (e.g. a lead with no country, 1,000 employees and no other "
     "facts)"),
    (UNREACHABLE_REP, "92: reps[7].id: rep 'maria' receives escalations (manager of sarah, mike, ana and 4 more) and gets "
     "leads only as a CRM account owner (rule 'named-account'): in no pool a rule uses, no rule's rep, not the fallback, "
     "nobody's backup"),
]


def test_the_example_has_no_shadowed_rule_or_empty_pool_these_gaps_and_a_manager_who_gets_no_lead() -> None:
    text = EXAMPLE.read_text()
    loaded = parse_config(text, "config/routing.example.yaml", today=NOW.date())
    findings = run_checks(loaded, text, NOW)
    assert [(f.kind, str(f).removeprefix("config/routing.example.yaml:")) for f in findings] == EXAMPLE_FINDINGS
    assert [kind_of(w) for w in loaded.warnings] == [OVERLAPPING_TERRITORIES] * 2 + ["config"] * 3
