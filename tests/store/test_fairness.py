"""``performance_weighted`` picks in Redis: floors and caps hold exactly under 8 racing processes, the script
decides exactly as the in-memory state does, a retried decision gets its pick back, and the rate table round-trips."""

from __future__ import annotations

import random
from collections.abc import Callable
from typing import Any

import pytest

from tests.racing import race
from worker.domain.leads import LeadRef
from worker.routing.fairness import Fairness, window_shares
from worker.routing.perf import RateTable
from worker.routing.state import Candidate, InMemoryState
from worker.store.connection import client_from_url
from worker.store.redis_store import RedisStore

pytestmark = pytest.mark.timeout(180)

TEAM = [Candidate("ana", 9000), Candidate("lee", 500), Candidate("tom", 300), Candidate("kim", 200)]
RULES = Fairness(window=40, floor=0.15, cap=0.4)  # at least 6 and at most 16 of every 40 leads of the pool
MEMBERS = [c.rep_id for c in TEAM]


def _pick(barrier: Any, index: int, url: str, prefix: str, n: int) -> list[tuple[int, str]]:
    store = RedisStore(client_from_url(url), prefix=prefix)
    barrier.wait()
    out = []
    for _ in range(n):
        pick = store.pick_fair("inside", MEMBERS, TEAM, RULES)
        out.append((int(pick.detail.split()[0][1:]), str(pick.rep_id)))  # "#<pick number> <note>"
    return out


def test_floors_and_caps_hold_exactly_across_8_processes(redis_url: str, redis_prefix: str) -> None:
    picks = sorted(p for batch in race(_pick, 8, redis_url, redis_prefix, 250) for p in batch)
    assert [seq for seq, _ in picks] == list(range(1, 2001))  # every pick numbered once: one atomic step each
    shares = window_shares([rep for _, rep in picks], RULES.window)
    assert all(low >= RULES.floor_count and high <= RULES.cap_count for low, high in shares.values()), shares
    assert shares["ana"][1] == 16 and min(low for low, _ in shares.values()) == 6  # both bind
    store = RedisStore(client_from_url(redis_url), prefix=redis_prefix)
    assert sum(store.loads(MEMBERS).values()) == 2000


def test_the_script_decides_as_the_in_memory_state(store: RedisStore) -> None:
    memory = InMemoryState()
    team = [Candidate("ana", 7000), Candidate("lee", 2000, capacity=30), Candidate("tom", 1000)]
    rules = Fairness(window=20, floor=0.1, cap=0.5)
    for i in range(300):
        if i == 150:  # lee leaves for a while: they stop being a candidate
            team = [c for c in team if c.rep_id != "lee"]
        a = store.pick_fair("p", ["ana", "lee", "tom"], team, rules)
        b = memory.pick_fair("p", ["ana", "lee", "tom"], team, rules)
        assert (a.rep_id, a.load, a.at_capacity, a.detail) == (b.rep_id, b.load, b.at_capacity, b.detail), i


def test_a_retried_decision_gets_its_pick_back(store: RedisStore) -> None:
    key = LeadRef("salesforce", "Lead", "00Q1").at(0)
    first = store.for_decision(key).pick_fair("p", MEMBERS, TEAM, RULES)
    again = store.for_decision(key).pick_fair("p", MEMBERS, TEAM, RULES)
    assert (again.rep_id, again.detail) == (first.rep_id, first.detail)
    assert sum(store.loads(MEMBERS).values()) == 1


def test_the_rate_table_round_trips(store: RedisStore) -> None:
    assert store.rate_table() is None
    table = RateTable.build(["segment"], [("ana", ("smb",), True), ("ana", ("smb",), False), ("lee", ("ent",), False)])
    store.save_rates(table)
    back = store.rate_table()
    assert back == table and back is not None and back.version == table.version == store.rates_version()
    assert back.counts[("smb",)]["ana"] == (1, 2)


CONFIG = """\
version: 1
reps: [{id: ana}, {id: lee}, {id: tom}]
pools:
  inside: {members: [ana, lee, tom], strategy: performance_weighted, performance: {floor: 0.3, fairness_window: 10}}
queues: {triage: {salesforce: "00G1"}}
rules: [{name: inbound, assign: {pool: inside}}]
fallback: {queue: triage}
"""


def test_the_worker_decides_a_batch_through_a_performance_weighted_pool_and_a_retry_changes_nothing(
        store: RedisStore) -> None:
    from datetime import UTC, datetime  # this test only

    from worker.config import parse_config  # this test only
    from worker.routing.engine import Router  # this test only

    config, at = parse_config(CONFIG), datetime(2026, 12, 1, 15, tzinfo=UTC)

    def compute(lead_id: str) -> Callable[[Any], dict[str, Any]]:
        return lambda state: Router(config, state).route({"id": lead_id}, at=at).to_dict()

    keys = [LeadRef("salesforce", "Lead", f"00Q{i:03d}").at(0) for i in range(30)]
    first = store.decide_many([(k, compute(k.lead_id)) for k in keys])
    owners = [d.decision["owner"] for d in first]
    assert set(owners) == {"ana", "lee", "tom"} and all("perf-weighted" in d.decision["reason"] for d in first)
    assert all(low >= 3 for low, _ in window_shares(owners, 10).values())
    again = store.decide_many([(k, compute(k.lead_id)) for k in keys])
    assert [d.decision["owner"] for d in again] == owners
    assert sum(store.loads(["ana", "lee", "tom"]).values()) == 30


def test_caps_per_period_in_the_script_as_in_memory(store: RedisStore) -> None:
    from worker.routing.caps import Quota  # this test only

    memory = InMemoryState()
    caps = {"ana": (Quota("", "ana", "daily", "2026-12-01", 4, 4_102_444_800.0),),
            "lee": (Quota("inside", "lee", "weekly", "2026-W49", 6, 4_102_444_800.0),)}
    for i in range(20):
        a = store.pick_fair("p", MEMBERS, TEAM, RULES, caps=caps)
        b = memory.pick_fair("p", MEMBERS, TEAM, RULES, caps=caps)
        assert (a.rep_id, a.detail, a.capped) == (b.rep_id, b.detail, b.capped), i
    assert store.cap_counts([q for qs in caps.values() for q in qs]) == [4, 6]
    key = LeadRef("salesforce", "Lead", "00Q9").at(0)
    again = store.for_decision(key).pick_fair("p", MEMBERS, TEAM, RULES, caps=caps)
    assert again.capped == (("ana", "daily_cap"), ("lee", "weekly_cap"))


def test_the_script_decides_as_the_in_memory_state_as_members_come_and_go(store: RedisStore) -> None:
    """Members away for stretches are owed only for the picks they were there for; two rate keys keep two
    smooth weighted round robins: the script and the in-memory state agree pick for pick."""
    rng = random.Random(5)
    memory = InMemoryState()
    members = ["ana", "lee", "tom", "kim", "bo"]
    for i in range(600):
        present = [m for m in members if rng.random() < 0.8] or ["ana"]
        team = [Candidate(m, rng.choice((10, 500, 3000))) for m in present]
        rules = Fairness(window=30, floor=0.15, cap=0.5, scores=rng.choice(("smb", "enterprise")))
        a = store.pick_fair("p", members, team, rules)
        b = memory.pick_fair("p", members, team, rules)
        assert (a.rep_id, a.load, a.detail) == (b.rep_id, b.load, b.detail), i
