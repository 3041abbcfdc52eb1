"""Coverage pairs and chains: who takes a named rep's leads while they are away.

Two reps who back each other up (ava -> ben, ben -> ava) are the ordinary case in any team
of two, and longer cycles are valid too. The walk tries each backup in turn, never visits a
rep twice, and hands the lead to the fallback once it comes back round. `check` warns when
everyone in a cycle is away on the same day soon.
"""

from __future__ import annotations

import textwrap
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from worker.cli.commands import app
from worker.config import parse_config
from worker.config.schema import backup_cycles
from worker.routing.engine import Decision, Router
from worker.routing.state import InMemoryState

CONFIG = textwrap.dedent(
    """\
    version: 1
    reps:
      - {id: ava, backup: ben}
      - {id: ben, backup: ava}
      - {id: cat, backup: dan}
      - {id: dan, backup: eve}
      - {id: eve, backup: cat}
      - {id: fay, backup: gus}
      - {id: gus, backup: hal}
      - {id: hal, backup: gus}
    queues: {triage: {}}
    accounts: {pair.com: ava, triangle.com: cat, tail.com: fay}
    rules:
      - {name: named-account, when: {account_owner: {exists: true}}, assign: {account_owner: true}}
      - {name: to-ava, when: {lead_source: ava}, assign: {rep: ava}}
    fallback: {queue: triage}
    """
)
AT = datetime(2026, 12, 1, 15, 0, tzinfo=UTC)
TODAY = date(2026, 12, 1)


def route(away: dict[str, str] | None = None, **lead: object) -> Decision:
    """Route one lead through a fresh team where the reps in ``away`` are unavailable (rep -> why)."""
    lead.setdefault("id", "L1")
    return Router(parse_config(CONFIG, "team.yaml", today=TODAY), InMemoryState()).route(lead, at=AT, overrides=away)


# --- The walk ----------------------------------------------------------------------------------


def test_a_rep_who_is_in_gets_their_own_lead_and_no_chain_is_listed() -> None:
    d = route(None, email="x@pair.com")
    assert (d.owner, d.chain) == ("ava", [])
    assert "chain" not in d.to_dict()


def test_in_a_coverage_pair_the_partner_takes_the_lead_and_the_chain_is_listed() -> None:
    d = route({"ava": "ooo"}, email="x@pair.com")
    assert (d.owner, d.rule, d.chain) == ("ben", "named-account", ["ava", "ben"])
    assert d.reason == "named-account: account owner ava -> account owner (ben 1 (backup for ava: ava ooo -> ben))"
    assert d.to_dict()["chain"] == ["ava", "ben"]


def test_when_both_of_a_pair_are_out_the_walk_comes_back_to_the_start_and_falls_back() -> None:
    d = route({"ava": "ooo", "ben": "ooo"}, email="x@pair.com")
    assert (d.owner, d.rule, d.chain) == ("queue:triage", "fallback", ["ava", "ben"])
    assert d.skipped == {"ava": "ooo", "ben": "ooo"}
    assert d.reason == (
        "named-account: account owner ava -> fallback queue triage "
        "(account owner ava unavailable (ava ooo -> ben ooo -> back to ava))"
    )


def test_a_longer_cycle_is_walked_in_order() -> None:
    d = route({"cat": "ooo", "dan": "inactive"}, email="x@triangle.com")
    assert (d.owner, d.chain) == ("eve", ["cat", "dan", "eve"])
    assert "backup for cat: cat ooo -> dan inactive -> eve" in d.reason
    d = route({"cat": "ooo", "dan": "ooo", "eve": "ooo"}, email="x@triangle.com")
    assert (d.owner, d.chain) == ("queue:triage", ["cat", "dan", "eve"])
    assert "(cat ooo -> dan ooo -> eve ooo -> back to cat)" in d.reason


def test_a_chain_that_runs_into_a_cycle_stops_at_the_first_rep_it_meets_again() -> None:
    d = route({"fay": "ooo", "gus": "ooo", "hal": "ooo"}, email="x@tail.com")
    assert (d.owner, d.chain) == ("queue:triage", ["fay", "gus", "hal"])
    assert "(fay ooo -> gus ooo -> hal ooo -> back to gus)" in d.reason


def test_a_named_rep_target_walks_the_same_chain() -> None:
    d = route({"ava": "ooo"}, lead_source="ava")
    assert (d.owner, d.rule, d.chain) == ("ben", "to-ava", ["ava", "ben"])


def test_an_earlier_owner_in_the_chain_is_passed_over_like_an_absent_one() -> None:
    r = Router(parse_config(CONFIG, today=TODAY), InMemoryState())
    d = r.route({"id": "L1", "email": "x@pair.com"}, at=AT, overrides={"ava": "ooo"}, exclude=frozenset({"ben"}))
    assert (d.owner, d.skipped) == ("queue:triage", {"ava": "ooo", "ben": "earlier_owner"})
    assert "(ava ooo -> ben earlier_owner -> back to ava)" in d.reason


def test_out_of_office_dates_in_the_config_drive_the_walk() -> None:
    ooo = "out_of_office: [{start: 2026-12-01, end: 2026-12-02}]"
    config = CONFIG.replace("{id: ava, backup: ben}", f"{{id: ava, backup: ben, {ooo}}}")
    r = Router(parse_config(config, today=TODAY), InMemoryState())
    assert r.route({"id": "a", "email": "x@pair.com"}, at=AT).owner == "ben"
    assert r.route({"id": "b", "email": "x@pair.com"}, at=AT + timedelta(days=2)).owner == "ava"


def test_a_fallback_rep_in_a_pair_with_both_away_still_takes_the_lead() -> None:
    config = CONFIG.replace("fallback: {queue: triage}", "fallback: {rep: ava}")
    r = Router(parse_config(config, today=TODAY), InMemoryState())
    d = r.route({"id": "a", "email": "x@pair.com"}, at=AT, overrides={"ava": "ooo", "ben": "ooo"})
    assert (d.owner, d.rule) == ("ava", "fallback")
    assert d.reason.endswith("-> fallback rep ava (account owner ava unavailable (ava ooo -> ben ooo -> back to ava) "
                             "-> ava 1 (away, no cover))")


# --- Property: the walk, for any backup graph ---------------------------------------------------


@st.composite
def teams(draw: st.DrawFn) -> tuple[list[dict], set[str]]:
    n = draw(st.integers(2, 7))
    ids = [f"r{i}" for i in range(n)]
    reps = []
    for rep_id in ids:
        rep: dict = {"id": rep_id}
        backup = draw(st.none() | st.sampled_from([i for i in ids if i != rep_id]))
        if backup:
            rep["backup"] = backup
        reps.append(rep)
    away = set(draw(st.lists(st.sampled_from(ids), unique=True)))
    return reps, away


@settings(max_examples=200, deadline=None)
@given(team=teams())
def test_the_owner_is_the_first_rep_in_on_the_walk_else_the_fallback(team: tuple[list[dict], set[str]]) -> None:
    reps, away = team
    doc = {"version": 1, "reps": reps, "queues": {"q": {}}, "accounts": {"acme.com": "r0"},
           "rules": [{"name": "acct", "when": {"account_owner": {"exists": True}}, "assign": {"account_owner": True}}],
           "fallback": {"queue": "q"}}
    config = parse_config(yaml.safe_dump(doc), today=TODAY)
    d = Router(config, InMemoryState()).route({"id": "x", "email": "a@acme.com"}, at=AT,
                                              overrides={r: "ooo" for r in away})
    walk, cur = [], "r0"
    while cur is not None and cur not in walk:
        walk.append(cur)
        if cur not in away:
            break
        cur = config.reps[cur].backup
    available = [r for r in walk if r not in away]
    if available:
        assert d.owner == available[0] == walk[-1]
    else:
        assert d.owner == "queue:q"
    assert d.chain == ([] if walk == ["r0"] and available else walk)
    assert all(d.skipped[r] == "ooo" for r in walk if r in away)


@settings(max_examples=200, deadline=None)
@given(team=teams())
def test_backup_cycles_are_found_once_each_and_are_real_cycles(team: tuple[list[dict], set[str]]) -> None:
    reps, _ = team
    config = parse_config(yaml.safe_dump({"version": 1, "reps": reps, "queues": {"q": {}}, "fallback": {"queue": "q"}}),
                          today=TODAY)
    cycles = backup_cycles(config.model.reps)
    members = [r for c in cycles for r in c]
    assert len(members) == len(set(members))
    for cycle in cycles:
        assert [config.reps[r].backup for r in cycle] == [*cycle[1:], cycle[0]]
    for rep in config.reps.values():  # every rep whose walk returns to itself is in a cycle
        seen, cur = [], rep.id
        while cur is not None and cur not in seen:
            seen.append(cur)
            cur = config.reps[cur].backup
        assert (cur == rep.id) == (rep.id in members)


# --- `check`: a cycle whose reps are all away ---------------------------------------------------

PAIR = textwrap.dedent(
    """\
    version: 1
    reps:
      - id: ava
        backup: ben
        out_of_office: [{start: 2026-12-20, end: 2026-12-27}]
      - id: ben
        backup: ava
        out_of_office: [{start: 2026-12-24, end: 2027-01-02}]
      - id: cy
    queues: {triage: {}}
    fallback: {queue: triage}
    """
)


def warnings_for(text: str, today: date) -> list[str]:
    return [str(w) for w in parse_config(text, "config/routing.yaml", today=today).warnings]


def test_check_warns_when_a_coverage_pair_is_out_on_the_same_days() -> None:
    assert warnings_for(PAIR, date(2026, 12, 10)) == [
        "config/routing.yaml:4: reps[0].backup: backup cycle ava -> ben -> ava: all of them are away on "
        "2026-12-24 to 2026-12-27 (within 30 days of 2026-12-10); their named accounts and direct leads go to "
        "the fallback then"
    ]


@pytest.mark.parametrize(("today", "warned"), [
    (date(2026, 11, 25), True),   # 2026-12-24 is the 30th day from here (today counts as the first)
    (date(2026, 11, 24), False),  # 30 days end on 2026-12-23
    (date(2026, 12, 27), True),   # the last shared day
    (date(2026, 12, 28), False),  # ava is back
])
def test_the_warning_looks_thirty_days_ahead(today: date, warned: bool) -> None:
    assert bool(warnings_for(PAIR, today)) is warned


def test_no_warning_when_someone_in_the_cycle_is_in_every_day() -> None:
    apart = PAIR.replace("2026-12-24, end: 2027-01-02", "2026-12-28, end: 2027-01-02")
    assert warnings_for(apart, date(2026, 12, 10)) == []


def test_an_inactive_rep_counts_as_away_every_day() -> None:
    text = PAIR.replace("  - id: ben\n", "  - id: ben\n    active: false\n")
    (warning,) = warnings_for(text, date(2026, 12, 10))
    assert "all of them are away on 2026-12-20 to 2026-12-27" in warning


def test_a_longer_cycle_is_named_from_its_first_rep() -> None:
    text = PAIR.replace("backup: ava", "backup: cy").replace("  - id: cy\n", (
        "  - id: cy\n    backup: ava\n    out_of_office: [{start: 2026-12-01, end: 2026-12-31}]\n"))
    (warning,) = warnings_for(text, date(2026, 12, 10))
    assert "backup cycle ava -> ben -> cy -> ava: all of them are away on 2026-12-24 to 2026-12-27" in warning


def test_leadroute_check_prints_the_warning_and_still_accepts_the_file(tmp_path: Path) -> None:
    soon = date.today() + timedelta(days=3)
    text = PAIR.replace("2026-12-20, end: 2026-12-27", f"{soon}, end: {soon}").replace(
        "2026-12-24, end: 2027-01-02", f"{soon}, end: {soon + timedelta(days=1)}")
    path = tmp_path / "routing.yaml"
    path.write_text(text)
    result = CliRunner().invoke(app, ["check", str(path)])
    assert result.exit_code == 0, result.output
    assert f"{path}:4: reps[0].backup: backup cycle ava -> ben -> ava: all of them are away on {soon}" in result.output
