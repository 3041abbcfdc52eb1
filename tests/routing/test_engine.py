"""The routing engine, specified by the leads it routes.

The first block is the seeds' test plan: a dozen-odd leads that cover every routing scenario,
each asserted to its owner. Then round-robin fairness, availability, and explanations.
"""

from __future__ import annotations

import textwrap
from collections import Counter
from datetime import UTC, datetime

import pytest

from worker.config import parse_config
from worker.routing.engine import Router
from worker.routing.state import InMemoryState

CONFIG = textwrap.dedent(
    """\
    version: 1
    timezone: America/New_York
    hours: {start: "09:00", end: "17:00"}
    reps:
      - {id: sarah, timezone: America/Los_Angeles, hours: {start: "09:00", end: "17:30"},
         skills: [enterprise], languages: [en, de], capacity: 3, backup: tom}
      - {id: mike, timezone: Europe/Berlin, hours: {start: "08:00", end: "17:00"},
         skills: [enterprise], languages: [en, fr], capacity: 2}
      - {id: ana, skills: [healthcare], languages: [en, es], weight: 2}
      - {id: lee, timezone: America/Chicago, skills: [healthcare], languages: [en]}
      - {id: bo, languages: [en]}
      - {id: tom, languages: [en]}
      - {id: raj, out_of_office: [{start: 2026-12-01, end: 2026-12-02}], backup: kim}
      - {id: kim, timezone: America/Los_Angeles}
      - {id: maria, active: false}
      - {id: night, timezone: Asia/Tokyo}
    territories:
      emea: {countries: [DE, FR, GB]}
      na-west: {countries: [US], states: [CA, OR, WA]}
    pools:
      enterprise: {members: [sarah, mike], strategy: least_loaded}
      healthcare: {members: [bo, ana, lee], strategy: weighted_round_robin}
      smb: {members: [tom, raj, kim], strategy: round_robin}
      apac: {members: [night]}
    queues:
      triage: {salesforce: "00G1", hubspot: "1"}
      partners: {salesforce: "00G2", hubspot: "2"}
    accounts: {globex.com: sarah, initech.com: maria, hooli.com: raj}
    rules:
      - name: named-account
        when: {account_owner: {exists: true}}
        assign: {account_owner: true}
      - name: partners
        when: {lead_source: Partner Referral}
        assign: {queue: partners}
      - name: enterprise-emea
        when: {territory: emea, employees: {gte: 1000}}
        assign: {pool: enterprise}
      - name: german-speakers
        when: {country: Deutschland}
        assign: {pool: enterprise, require_languages: [de]}
      - name: healthcare
        when: {industry: [Healthcare, Hospital & Health Care]}
        assign: {pool: healthcare, require_skills: [healthcare]}
      - name: japan
        when: {country: JP}
        assign: {pool: apac}
      - name: west-coast-named
        when: {territory: na-west, employees: {between: [100, 999]}}
        assign: {rep: raj}
      - name: demo-requests-smb
        when: {any: [{lead_source: Demo Request}, {score: {gte: 80}}], employees: {lt: 100}}
        assign: {pool: smb}
    fallback: {queue: triage}
    """
)

TUESDAY_NOON_NY = datetime(2026, 12, 1, 17, 0, tzinfo=UTC)  # 09:00 LA, 18:00 Berlin, 02:00 Tokyo


@pytest.fixture()
def router() -> Router:
    return Router(parse_config(CONFIG, "test.yaml"), InMemoryState())


def route(router: Router, **lead: object):
    lead.setdefault("id", "L")
    return router.route(lead, at=TUESDAY_NOON_NY)


# --- The test plan: every routing scenario, one lead each --------------------------------------


def test_named_account_goes_to_the_account_owner_by_email_domain(router: Router) -> None:
    d = route(router, email="jane@globex.com", country="DE", employees=5000)
    assert (d.owner, d.rule) == ("sarah", "named-account")


def test_account_owner_from_the_crm_wins_over_every_other_rule(router: Router) -> None:
    d = route(router, account_owner="kim", country="DE", employees=5000)
    assert (d.owner, d.rule) == ("kim", "named-account")


def test_an_out_of_office_account_owner_is_covered_by_their_backup(router: Router) -> None:
    d = route(router, email="x@hooli.com")
    assert (d.owner, d.rule) == ("kim", "named-account")
    assert d.skipped == {"raj": "ooo"}
    assert "backup for raj" in d.reason


def test_an_inactive_account_owner_without_backup_goes_to_the_fallback(router: Router) -> None:
    d = route(router, email="x@initech.com")
    assert (d.owner, d.rule) == ("queue:triage", "fallback")
    assert d.skipped == {"maria": "inactive"}
    assert "account owner maria unavailable (maria inactive)" in d.reason


def test_free_mail_domains_never_match_an_account(router: Router) -> None:
    d = route(router, email="globex@gmail.com", lead_source="Demo Request", employees=10)
    assert d.rule == "demo-requests-smb"


def test_a_website_still_matches_when_the_email_is_free_mail(router: Router) -> None:
    d = route(router, email="ceo@gmail.com", website="https://www.globex.com/about")
    assert (d.owner, d.rule) == ("sarah", "named-account")


def test_partner_referrals_go_to_a_queue(router: Router) -> None:
    d = route(router, lead_source="partner referral ")
    assert (d.owner, d.owner_kind, d.rule) == ("queue:partners", "queue", "partners")


def test_segment_boundary_999_is_not_enterprise_and_1000_is(router: Router) -> None:
    assert route(router, country="France", employees="999").rule == "fallback"
    assert route(router, country="France", employees="1,000").rule == "enterprise-emea"


def test_country_names_codes_and_local_names_are_one_territory(router: Router) -> None:
    for spelling in ("DE", "DEU", "Germany", "Deutschland", " germany "):
        assert route(router, country=spelling, employees=2000).rule == "enterprise-emea", spelling


def test_least_loaded_prefers_the_emptiest_and_skips_a_rep_at_capacity(router: Router) -> None:
    router.state.set_loads({"sarah": 2, "mike": 0})
    # Tuesday 10:00 in both LA? No: sarah (LA) is in hours, mike (Berlin, 18:00) is not,
    # so sarah takes leads until she is at capacity; then mike, outside hours, gets them.
    d1 = route(router, country="GB", employees=5000)
    assert (d1.owner, d1.strategy_state) == ("sarah", "least loaded: sarah 3/3")
    assert d1.skipped == {"mike": "outside_hours"}
    d2 = route(router, country="GB", employees=5000)
    assert d2.owner == "mike"
    assert d2.skipped == {"sarah": "at_capacity"}
    assert "all eligible reps outside hours" in d2.reason


def test_required_skills_limit_the_pool(router: Router) -> None:
    owners = [route(router, industry="Hospital & Health Care").owner for _ in range(6)]
    assert Counter(owners) == {"ana": 4, "lee": 2}
    assert route(router, industry="Healthcare").skipped["bo"] == "missing_skill"


def test_required_languages_limit_the_pool(router: Router) -> None:
    d = route(router, country="Deutschland", employees=50)
    assert (d.owner, d.skipped) == ("sarah", {"mike": "missing_language"})


def test_round_robin_skips_an_out_of_office_rep(router: Router) -> None:
    owners = [route(router, lead_source="Demo Request", employees=20).owner for _ in range(4)]
    assert owners == ["tom", "kim", "tom", "kim"]


def test_a_named_rep_outside_hours_still_gets_the_lead_but_ooo_goes_to_backup(router: Router) -> None:
    d = route(router, country="US", state="California", employees=500)
    assert (d.owner, d.rule, d.skipped) == ("kim", "west-coast-named", {"raj": "ooo"})


def test_when_everyone_is_outside_hours_the_pool_still_assigns(router: Router) -> None:
    d = route(router, country="Japan")
    assert (d.owner, d.rule) == ("night", "japan")
    assert "outside hours" in d.reason


def test_unknown_country_routes_to_the_fallback_and_says_why(router: Router) -> None:
    d = route(router, country="Atlantis", employees=5000)
    assert (d.owner, d.rule) == ("queue:triage", "fallback")
    assert d.unreadable == ["country"]
    assert "[unreadable: country]" in d.reason


def test_garbage_employee_counts_are_unknown_not_a_crash(router: Router) -> None:
    d = route(router, lead_source="Demo Request", employees="lots")
    assert (d.rule, d.unreadable) == ("fallback", ["employees"])
    assert route(router, score="85", employees="").rule == "fallback"


def test_score_alone_qualifies_a_small_lead_for_the_smb_pool(router: Router) -> None:
    assert route(router, score=" 85 ", employees="12").rule == "demo-requests-smb"


# --- Round-robin fairness ---------------------------------------------------------------------


def test_twenty_leads_through_the_default_path_are_evenly_distributed() -> None:
    config = parse_config(CONFIG.replace("out_of_office: [{start: 2026-12-01, end: 2026-12-02}], ", ""))
    router = Router(config, InMemoryState())
    owners = Counter(route(router, lead_source="Demo Request", employees=5).owner for _ in range(21))
    assert owners == {"tom": 7, "raj": 7, "kim": 7}
    owners.update(route(router, lead_source="Demo Request", employees=5).owner for _ in range(20))
    assert max(owners.values()) - min(owners.values()) <= 1


def test_a_rep_back_from_leave_rejoins_in_turn_without_a_catch_up_burst() -> None:
    config = parse_config(CONFIG)
    router = Router(config, InMemoryState())
    during = [route(router, lead_source="Demo Request", employees=5).owner for _ in range(4)]
    assert during == ["tom", "kim", "tom", "kim"]
    back = datetime(2026, 12, 3, 17, 0, tzinfo=UTC)
    after = [router.route({"id": "x", "lead_source": "Demo Request", "employees": 5}, at=back).owner
             for _ in range(6)]
    assert after == ["tom", "raj", "kim", "tom", "raj", "kim"]


def test_adding_a_member_does_not_reset_the_rotation_for_the_others() -> None:
    state = InMemoryState()
    before = Router(parse_config(CONFIG.replace("members: [tom, raj, kim]", "members: [tom, kim]")), state)
    assert [route(before, lead_source="Demo Request", employees=5).owner for _ in range(3)] == ["tom", "kim", "tom"]
    grown = CONFIG.replace("members: [tom, raj, kim]", "members: [tom, kim, bo]")
    after = Router(parse_config(grown), state)
    assert [route(after, lead_source="Demo Request", employees=5).owner for _ in range(4)] == ["kim", "bo", "tom", "kim"]


# --- Explanations -----------------------------------------------------------------------------


def test_every_decision_explains_itself_in_one_line(router: Router) -> None:
    router.state.set_loads({"sarah": 1})
    d = route(router, id="L42", country="DE", employees="4,200")
    assert d.reason == "enterprise-emea: DE, 4,200 employees -> pool enterprise (least loaded: sarah 2/3)"
    assert d.lead_id == "L42"
    assert d.considered == ["sarah", "mike"]
    assert d.config_version == router.config.version_hash
    assert d.to_dict()["skipped"] == {"mike": "outside_hours"}


def test_no_rule_matched_is_explained(router: Router) -> None:
    d = route(router, country="US", employees=5000)
    assert d.reason == "no rule matched -> fallback queue triage"


def test_created_at_is_the_routing_time_when_asked_for(router: Router) -> None:
    d = router.route({"id": "a", "country": "Japan", "created_at": "2026-12-02T01:00:00+00:00"}, at_created=True)
    assert d.routed_at == d.created_at == "2026-12-02T01:00:00+00:00"
    assert d.skipped == {}  # 10:00 in Tokyo: in hours


def test_a_lead_can_be_sent_to_a_chosen_target_with_the_usual_checks(router: Router) -> None:
    from worker.config import Assign

    d = router.route_to({"id": "L9"}, Assign(pool="smb"), "manual", at=TUESDAY_NOON_NY, exclude=frozenset({"tom"}))
    assert (d.owner, d.rule) == ("kim", "manual")
    assert d.skipped == {"tom": "earlier_owner", "raj": "ooo"}
    d = router.route_to({"id": "L9"}, Assign(rep="maria"), "manual", at=TUESDAY_NOON_NY)
    assert (d.owner, d.rule) == ("queue:triage", "fallback")
    assert "rep maria unavailable (maria inactive)" in d.reason


NIGHT_TEAM = textwrap.dedent(
    """\
    version: 1
    hours: {start: "09:00", end: "17:00"}
    reps:
      - {id: la, timezone: America/Los_Angeles}
      - {id: chi, timezone: America/Chicago, capacity: 2}
      - {id: ny1, timezone: America/New_York, capacity: 1}
      - {id: ny2, timezone: America/New_York, capacity: 1, out_of_office: [{start: 2026-12-02, end: 2026-12-02}]}
    pools:
      inbound: {members: [la, chi, ny1, ny2], strategy: round_robin}
    queues: {triage: {salesforce: "00G1"}}
    rules:
      - {name: all, assign: {pool: inbound}}
    fallback: {queue: triage}
    """
)


def test_after_hours_a_lead_goes_to_whoever_starts_first_then_the_next_to_start() -> None:
    # Tuesday 23:00 in New York: nobody works. ny1 starts at 09:00 New York, chi at 10:00 (09:00 Chicago),
    # la at 12:00; ny2 is out of office on Wednesday, so ny2 is next on only on Thursday.
    router = Router(parse_config(NIGHT_TEAM), InMemoryState())
    at = datetime(2026, 12, 2, 4, 0, tzinfo=UTC)
    owners = [router.route({"id": str(i)}, at=at) for i in range(5)]
    assert [d.owner for d in owners] == ["ny1", "chi", "chi", "la", "la"]  # capacities 1 and 2, then la
    assert owners[0].reason.endswith("(round robin: ny1 1/1; first on: ny1; all eligible reps outside hours)")
    assert owners[0].skipped == {"la": "outside_hours", "chi": "outside_hours", "ny2": "outside_hours"}
    assert owners[3].skipped["ny1"] == "at_capacity" and owners[3].skipped["chi"] == "at_capacity"


def test_after_hours_reps_who_start_together_share_by_the_pools_strategy() -> None:
    text = NIGHT_TEAM.replace(", capacity: 1, out_of_office: [{start: 2026-12-02, end: 2026-12-02}]", "")
    text = text.replace("{id: ny1, timezone: America/New_York, capacity: 1}", "{id: ny1, timezone: America/New_York}")
    router = Router(parse_config(text), InMemoryState())
    at = datetime(2026, 12, 2, 4, 0, tzinfo=UTC)
    assert Counter(router.route({"id": str(i)}, at=at).owner for i in range(10)) == {"ny1": 5, "ny2": 5}
    friday_night = datetime(2026, 12, 5, 4, 0, tzinfo=UTC)  # 23:00 Friday in New York: Monday 09:00 is next
    assert router.route({"id": "w"}, at=friday_night).owner in ("ny1", "ny2")


def test_in_a_reps_wind_down_a_lead_goes_to_a_colleague_with_longer_left() -> None:
    text = NIGHT_TEAM.replace('hours: {start: "09:00", end: "17:00"}', 'hours: {start: "09:00", end: "17:00", wind_down: 30}')
    router = Router(parse_config(text), InMemoryState())
    late = datetime(2026, 12, 1, 21, 45, tzinfo=UTC)  # Tuesday 16:45 in New York, 15:45 in Chicago, 13:45 in LA
    owners = [router.route({"id": str(i)}, at=late) for i in range(4)]
    assert [d.owner for d in owners] == ["la", "chi", "la", "chi"]  # not ny1 or ny2, who leave at 17:00
    assert owners[0].skipped == {"ny1": "day_ending", "ny2": "day_ending"}
    only_ny = parse_config(text.replace("members: [la, chi, ny1, ny2]", "members: [ny1, ny2]"))
    d = Router(only_ny, InMemoryState()).route({"id": "x"}, at=late)
    assert (d.owner, d.skipped) == ("ny1", {})  # nobody has longer: the wind-down does not hold the lead back
    plain = Router(parse_config(NIGHT_TEAM), InMemoryState())  # no wind-down: the rotation as usual
    assert [plain.route({"id": str(i)}, at=late).owner for i in range(4)] == ["la", "chi", "ny1", "ny2"]


def test_among_reps_all_in_their_wind_down_the_one_with_longest_left_gets_the_lead() -> None:
    # 21:45 UTC: ny1 has 15 minutes left (16:45 New York), chi 75 (15:45 Chicago); wind_down 90 covers both.
    text = NIGHT_TEAM.replace('hours: {start: "09:00", end: "17:00"}', 'hours: {start: "09:00", end: "17:00", wind_down: 90}')
    for strategy in ("round_robin", "least_loaded", "weighted_round_robin"):
        team = text.replace("members: [la, chi, ny1, ny2], strategy: round_robin", f"members: [ny1, chi], strategy: {strategy}")
        router = Router(parse_config(team), InMemoryState())
        late = datetime(2026, 12, 1, 21, 45, tzinfo=UTC)
        owners = [router.route({"id": str(i)}, at=late) for i in range(3)]
        assert [d.owner for d in owners] == ["chi", "chi", "ny1"], strategy  # ny1 only once chi (capacity 2) is full
        assert owners[0].skipped == {"ny1": "day_ending"}, strategy
        assert owners[2].skipped == {"chi": "at_capacity"}, strategy
