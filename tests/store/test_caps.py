"""Caps per period in Redis: checked and counted in the claim script, exact under racing processes.

The engine's view of caps is in tests/routing/test_caps.py; here the same decisions come out of
the store (one by one, and batched with decide_many), the counters expire after their window,
a replayed claim counts once, and 8 processes racing never give a rep one lead past a cap.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from tests.racing import race
from worker.config import parse_config
from worker.domain.leads import LeadRef
from worker.routing.caps import Quota, window
from worker.routing.engine import Router
from worker.routing.state import Candidate, InMemoryState, Strategy
from worker.store.connection import client_from_url
from worker.store.redis_store import DirectClaim, PoolClaim, RedisStore

pytestmark = pytest.mark.timeout(180)

TUESDAY = datetime(2026, 12, 1, 10, 0, tzinfo=UTC)
CONFIG = parse_config("""
version: 1
timezone: Europe/Berlin
reps:
  - {id: ava, caps: {daily: 2}, backup: cal}
  - {id: ben, timezone: America/New_York}
  - {id: cal}
pools:
  team: {members: [ava, ben, cal], strategy: round_robin, caps: {weekly: 3}}
rules:
  - {name: named, when: {lead_source: named}, assign: {rep: ava}}
  - {name: inbound, assign: {pool: team}}
fallback: {queue: triage}
queues: {triage: {}}
""", "caps.yaml")


def leads(n: int) -> list[dict[str, Any]]:
    return [{"id": f"L{i}", "email": f"p@b{i}.com", "lead_source": "named" if i % 3 == 0 else "web"} for i in range(n)]


def in_memory(n: int) -> list[tuple[str, dict[str, str]]]:
    router = Router(CONFIG, InMemoryState())
    return [(d.owner, d.skipped) for d in (router.route(lead, at=TUESDAY) for lead in leads(n))]


def compute(lead: dict[str, Any]) -> Callable[[Any], dict[str, Any]]:
    return lambda state: Router(CONFIG, state).route(lead, at=TUESDAY).to_dict()


def test_decisions_through_the_store_are_the_in_memory_ones(redis_client, redis_prefix) -> None:
    store = RedisStore(redis_client, prefix=redis_prefix)
    got = [store.decide_once(LeadRef("sf", "Lead", lead["id"]).at(0), compute(lead)).decision for lead in leads(15)]
    assert [(d["owner"], d["skipped"]) for d in got] == in_memory(15)
    assert {"daily_cap", "weekly_cap"} <= {why for d in got for why in d["skipped"].values()}


def test_a_batch_decides_as_one_by_one_and_counts_each_lead_once(redis_client, redis_prefix) -> None:
    store = RedisStore(redis_client, prefix=redis_prefix)
    items = [(LeadRef("sf", "Lead", lead["id"]).at(0), compute(lead)) for lead in leads(15)]
    got = [d.decision for d in store.decide_many(items)]
    assert [(d["owner"], d["skipped"]) for d in got] == in_memory(15)
    again = [d.decision for d in store.decide_many(items)]  # a retried batch replays
    assert again == got
    day = window("daily", TUESDAY.astimezone(ZoneInfo("Europe/Berlin")))[0]
    week = window("weekly", TUESDAY.astimezone(ZoneInfo("Europe/Berlin")))[0]
    ava_day, ava_week = Quota("", "ava", "daily", day, 2, 0), Quota("team", "ava", "weekly", week, 3, 0)
    owned = Counter(d["owner"] for d in got)
    from_team = sum(1 for d in got if d["owner"] == "ava" and d["rule"] == "inbound")
    assert store.cap_counts([ava_day, ava_week]) == [owned["ava"], from_team]
    assert owned["ava"] == 2


def test_counters_expire_a_day_after_their_window(redis_client, redis_prefix) -> None:
    store = RedisStore(redis_client, prefix=redis_prefix)
    now = datetime.now(UTC)  # a real TTL is measured from the server's clock
    berlin = now.astimezone(ZoneInfo("Europe/Berlin"))
    day, end = window("daily", berlin)
    quota = Quota("", "ava", "daily", day, 5, (end + timedelta(days=1)).timestamp())
    assert store.claim_rep("ava", [quota]).rep_id == "ava"
    ttl = redis_client.pttl(store.cap_key(quota)) / 1000
    expected = (end + timedelta(days=1) - now).total_seconds()
    assert abs(ttl - expected) < 5
    assert store.cap_counts([quota]) == [1]


def test_a_claim_given_back_gives_its_counts_back(redis_client, redis_prefix) -> None:
    """A retry that went another way releases the earlier claim: its load and its counts."""
    store = RedisStore(redis_client, prefix=redis_prefix)
    key = LeadRef("sf", "Lead", "00Q1").at(0)
    quota = Quota("", "ava", "daily", "2026-12-01", 1, 4_102_444_800)
    (first,) = store.claim_many([DirectClaim(key, "ava", 0, (quota,))])
    assert first.pick.rep_id == "ava" and store.cap_counts([quota]) == [1]
    (replayed,) = store.claim_many([DirectClaim(key, "ava", 0, (quota,))])
    assert replayed.replayed and store.cap_counts([quota]) == [1]  # counted once
    (other,) = store.claim_many([DirectClaim(key, "ben", 0)])
    assert other.pick.rep_id == "ben" and store.cap_counts([quota]) == [0] and store.loads(["ava"]) == {"ava": 0}


def test_counts_beyond_the_claims_a_recorded_decision_used_are_given_back(redis_client, redis_prefix) -> None:
    store = RedisStore(redis_client, prefix=redis_prefix)
    key = LeadRef("sf", "Lead", "00Q2").at(0)
    quota = Quota("", "ava", "daily", "2026-12-01", 1, 4_102_444_800)
    store.claim_many([DirectClaim(key, "ava", 0, (quota,))])  # an attempt that died after claiming
    store.record(key, {"owner": "queue:triage"}, claims_used=0)  # the retry decided without claiming
    assert store.cap_counts([quota]) == [0]


def test_a_direct_claim_at_a_cap_is_refused_with_its_reason(redis_client, redis_prefix) -> None:
    store = RedisStore(redis_client, prefix=redis_prefix)
    quotas = [Quota("", "ava", "daily", "2026-12-01", 5, 4_102_444_800), Quota("", "ava", "weekly", "2026-W49", 1, 4_102_444_800)]
    assert store.claim_rep("ava", quotas).rep_id == "ava"
    refused = store.claim_rep("ava", quotas)
    assert refused.rep_id is None and refused.capped == (("ava", "weekly_cap"),)
    assert store.loads(["ava"]) == {"ava": 1} and store.cap_counts(quotas) == [1, 1]


def test_the_claim_script_runs_on_redis_6_2(redis62_url, redis_prefix) -> None:
    store = RedisStore(client_from_url(redis62_url), prefix=redis_prefix)
    quota = Quota("team", "ava", "daily", "2026-12-01", 1, 4_102_444_800)
    team = [Candidate("ava"), Candidate("ben")]
    picks = [store.pick("team", Strategy.ROUND_ROBIN, ["ava", "ben"], team, caps={"ava": [quota]}) for _ in range(3)]
    assert [p.rep_id for p in picks] == ["ava", "ben", "ben"] and picks[2].capped == (("ava", "daily_cap"),)
    store.clear()


# -------------------------------------------------------------------- racing processes

PER_PROCESS = 60
DAILY = 25


def _claim(barrier: Any, index: int, url: str, prefix: str) -> Counter[str]:
    store = RedisStore(client_from_url(url), prefix=prefix)
    team = [Candidate("ann"), Candidate("bob"), Candidate("cat")]
    caps = {rep: (Quota("team", rep, "daily", "2026-12-01", DAILY, 4_102_444_800),) for rep in ("ann", "bob")}
    got: Counter[str] = Counter()
    barrier.wait()
    for i in range(PER_PROCESS):
        if i % 2:  # half one by one, half in pipelined batches of one claim script
            pick = store.pick("team", Strategy.LEAST_LOADED, ["ann", "bob", "cat"], team, caps=caps)
            got[pick.rep_id or ""] += 1
        else:
            key = LeadRef("sf", "Lead", f"{index}-{i}").at(0)
            (claim,) = store.claim_many([PoolClaim(key, "team", Strategy.LEAST_LOADED, ("ann", "bob", "cat"), tuple(team),
                                                   0, tuple(caps.items()))])
            got[claim.pick.rep_id or ""] += 1
    return got


def test_8_processes_claiming_at_once_stop_each_rep_exactly_at_the_cap(redis_url, redis_prefix) -> None:
    counts = sum(race(_claim, 8, redis_url, redis_prefix), Counter())
    assert counts == {"ann": DAILY, "bob": DAILY, "cat": 8 * PER_PROCESS - 2 * DAILY}
    store = RedisStore(client_from_url(redis_url), prefix=redis_prefix)
    assert store.cap_counts([Quota("team", r, "daily", "2026-12-01", DAILY, 0) for r in ("ann", "bob")]) == [DAILY, DAILY]
