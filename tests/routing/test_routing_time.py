"""When a decision is made: live work decides at the moment it decides, a simulation at each lead's created_at.

A lead created on Friday afternoon and routed on Monday morning (downtime, a late intake) must go
to whoever is working on Monday; a reassignment must not ask who was available when the lead was
created. ``simulate`` and replays re-enact the past, so they route at ``created_at``. Every
decision records both times.
"""

from __future__ import annotations

import textwrap
from datetime import UTC, datetime

from worker.cli.simulate import route_rows
from worker.config import Assign, parse_config
from worker.routing.engine import Router
from worker.routing.state import InMemoryState

CONFIG = parse_config(textwrap.dedent(
    """\
    version: 1
    reps:
      - {id: nyc, timezone: America/New_York, hours: {start: "09:00", end: "17:00"}}
      - {id: sf, timezone: America/Los_Angeles, hours: {start: "09:00", end: "17:00"},
         out_of_office: [{start: 2026-12-07, end: 2026-12-11}]}
      - {id: ber, timezone: Europe/Berlin, hours: {start: "09:00", end: "17:00"}}
    pools:
      us: {members: [nyc, sf], strategy: least_loaded}
      world: {members: [nyc, sf, ber], strategy: least_loaded}
    queues: {triage: {}}
    rules:
      - {name: us, when: {country: US}, assign: {pool: us}}
    fallback: {queue: triage}
    """
))

# Tuesday 1 December 2026
CREATED = "2026-12-01T16:00:00-05:00"  # 16:00 in New York, 13:00 in San Francisco: both at work
LATER = datetime.fromisoformat("2026-12-01T18:00:00-05:00")  # 18:00 in New York (gone home), 15:00 in SF
LEAD = {"id": "L1", "country": "US", "created_at": CREATED}


def test_a_lead_created_in_a_reps_hours_but_routed_after_them_goes_to_a_rep_in_hours_now() -> None:
    d = Router(CONFIG, InMemoryState()).route(LEAD, at=LATER)
    assert (d.owner, d.skipped) == ("sf", {"nyc": "outside_hours"})
    assert d.routed_at == LATER.isoformat()
    assert d.created_at == datetime.fromisoformat(CREATED).isoformat()
    assert d.to_dict()["created_at"] == d.created_at and d.to_dict()["routed_at"] == d.routed_at


def test_live_routing_without_a_time_decides_now_not_at_created_at() -> None:
    old = {"id": "L0", "country": "US", "created_at": "2020-01-01T12:00:00+00:00"}
    before = datetime.now(UTC)
    d = Router(CONFIG, InMemoryState()).route(old)
    assert before <= datetime.fromisoformat(d.routed_at) <= datetime.now(UTC)
    assert d.created_at == "2020-01-01T12:00:00+00:00"


def test_the_same_lead_replayed_at_its_creation_goes_to_who_was_working_then() -> None:
    d = Router(CONFIG, InMemoryState()).route(LEAD, at=LATER, at_created=True)
    assert (d.owner, d.skipped) == ("nyc", {})
    assert d.routed_at == d.created_at == datetime.fromisoformat(CREATED).isoformat()


def test_a_lead_without_created_at_records_none_and_routes_at_the_given_time() -> None:
    d = Router(CONFIG, InMemoryState()).route({"id": "L2", "country": "US"}, at=LATER, at_created=True)
    assert (d.owner, d.routed_at, d.created_at) == ("sf", LATER.isoformat(), None)
    assert "created_at" not in d.to_dict()  # no key for what the lead does not have


def test_a_reassignment_made_after_a_rep_went_out_of_office_skips_them() -> None:
    """Created on Friday, when sf was at work; reassigned on Monday, the first day of sf's week away."""
    friday = {"id": "L3", "country": "US", "created_at": "2026-12-04T12:00:00-08:00"}
    monday = datetime.fromisoformat("2026-12-07T12:00:00-05:00")  # noon in New York, 09:00 in SF, 18:00 in Berlin
    router = Router(CONFIG, InMemoryState())
    d = router.route_to(friday, Assign(pool="world"), "sla reassign", at=monday, exclude=frozenset({"nyc"}))
    assert d.owner == "ber"  # outside hours, but the only one who is neither the earlier owner nor away
    assert d.skipped == {"nyc": "earlier_owner", "sf": "ooo"}
    assert d.routed_at == monday.isoformat()
    # asked about Friday instead, sf would have been there
    replay = router.route_to(friday, Assign(pool="world"), "sla reassign", at=monday, exclude=frozenset({"nyc"}),
                             at_created=True)
    assert replay.owner == "sf"


def test_simulate_still_routes_each_lead_at_its_created_at() -> None:
    rows = [(2, dict(LEAD)), (3, {"id": "L2", "country": "US"})]
    (_, first), (_, second) = list(route_rows(CONFIG, rows, at=LATER))
    assert (first.owner, first.routed_at, first.skipped) == ("nyc", datetime.fromisoformat(CREATED).isoformat(), {})
    assert (second.owner, second.routed_at) == ("sf", LATER.isoformat())  # no created_at: --at, when nyc is gone
