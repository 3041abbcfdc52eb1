"""Correct under concurrency, with real processes racing on one Redis.

Each scenario starts N OS processes (from a fork server, each with its own connection),
lines them up on a barrier so they really overlap, and checks the shared outcome.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

import pytest

from tests.racing import race
from worker.domain.leads import LeadRef
from worker.routing.state import Candidate, Strategy
from worker.store.connection import client_from_url
from worker.store.redis_store import PoolClaim, RedisStore

pytestmark = pytest.mark.timeout(180)

TEAM = ["ann", "bob", "cat", "dan", "eve", "fay", "gus"]  # 7: 40,000 picks do not divide evenly
WEIGHTS = {"ann": 5, "bob": 3, "cat": 2}


def _store(url: str, prefix: str) -> RedisStore:
    return RedisStore(client_from_url(url), prefix=prefix)


def _claim(barrier: Any, index: int, url: str, prefix: str, strategy: str, n: int) -> Counter[str]:
    store = _store(url, prefix)
    if strategy == Strategy.WEIGHTED_ROUND_ROBIN:
        members, candidates = list(WEIGHTS), [Candidate(r, w) for r, w in WEIGHTS.items()]
    else:
        members, candidates = TEAM, [Candidate(r) for r in TEAM]
    barrier.wait()
    return Counter(store.pick("inbound", Strategy(strategy), members, candidates).rep_id for _ in range(n))


def test_round_robin_stays_balanced_across_8_processes(redis_url, redis_prefix) -> None:
    counts = sum(race(_claim, 8, redis_url, redis_prefix, Strategy.ROUND_ROBIN.value, 5000), Counter())
    assert sum(counts.values()) == 40_000
    assert set(counts) == set(TEAM)
    assert max(counts.values()) - min(counts.values()) <= 1
    assert _store(redis_url, redis_prefix).loads(TEAM) == dict(counts)


def test_weighted_round_robin_is_exact_across_8_processes(redis_url, redis_prefix) -> None:
    counts = sum(race(_claim, 8, redis_url, redis_prefix, Strategy.WEIGHTED_ROUND_ROBIN.value, 5000), Counter())
    total = sum(WEIGHTS.values())
    assert 40_000 % total == 0
    assert dict(counts) == {rep: 40_000 // total * w for rep, w in WEIGHTS.items()}


def _decide(barrier: Any, index: int, url: str, prefix: str, leads: int) -> dict[str, str]:
    store = _store(url, prefix)
    candidates = [Candidate(r) for r in TEAM[:4]]

    def route(state: Any) -> dict[str, Any]:
        pick = state.pick("inbound", Strategy.ROUND_ROBIN, TEAM[:4], candidates)
        return {"owner": pick.rep_id, "reason": pick.detail, "by": index}

    order = list(range(leads)) if index % 2 == 0 else list(reversed(range(leads)))
    barrier.wait()
    seen = {}
    for i in order:
        decided = store.decide_once(LeadRef("salesforce", "Lead", f"00Q{i:04}").at(0), route, wait=30)
        seen[str(decided.key)] = decided.decision["owner"]
    return seen


def test_8_processes_deciding_the_same_1000_leads_decide_each_once(redis_url, redis_prefix) -> None:
    seen = race(_decide, 8, redis_url, redis_prefix, 1000)
    assert all(s == seen[0] for s in seen)  # every process got the same decision for every lead
    assert len(seen[0]) == 1000
    store = _store(redis_url, redis_prefix)
    assert store.log_length() == 1000  # exactly 1,000 decisions recorded
    loads = store.loads(TEAM[:4])
    assert sum(loads.values()) == 1000  # and exactly 1,000 load increments
    assert loads == dict(Counter(seen[0].values())) == dict.fromkeys(TEAM[:4], 250)


def _decide_batch(barrier: Any, index: int, url: str, prefix: str, leads: int, batch: int) -> dict[str, str]:
    store = _store(url, prefix)
    candidates = [Candidate(r) for r in TEAM[:4]]
    keys = [LeadRef("hubspot", "contact", str(i)).at(0) for i in range(leads)]
    if index % 2:
        keys.reverse()
    barrier.wait()
    seen = {}
    for start in range(0, leads, batch):
        chunk = keys[start : start + batch]
        claims = store.claim_many([PoolClaim(k, "inbound", Strategy.ROUND_ROBIN, TEAM[:4], candidates) for k in chunk])
        for d in store.record_many([(c.key, {"owner": c.pick.rep_id}) for c in claims]):
            seen[str(d.key)] = d.decision["owner"]
    return seen


def test_8_processes_batch_deciding_the_same_1000_leads_claim_each_once(redis_url, redis_prefix) -> None:
    seen = race(_decide_batch, 8, redis_url, redis_prefix, 1000, 100)
    assert all(s == seen[0] for s in seen)
    store = _store(redis_url, redis_prefix)
    assert store.log_length() == 1000
    assert sum(store.loads(TEAM[:4]).values()) == 1000


def _sweep(barrier: Any, index: int, url: str, prefix: str, now: float) -> list[str]:
    store = _store(url, prefix)
    barrier.wait()
    claimed: list[str] = []
    while batch := store.claim_due(now=now, limit=50):
        claimed.extend(t.timer_id for t in batch)
    return claimed


def test_4_sweepers_racing_claim_each_due_timer_exactly_once(redis_url, redis_prefix) -> None:
    store = _store(redis_url, redis_prefix)
    timers = [(f"sf:Lead:{i}", 1_000.0 + i % 500, {"tier": i % 3}) for i in range(10_000)]
    for start in range(0, len(timers), 2000):
        store.schedule_many(timers[start : start + 2000])
    store.schedule("not-yet", 5_000.0)
    claimed = race(_sweep, 4, redis_url, redis_prefix, 2_000.0)
    everything = [t for per_process in claimed for t in per_process]
    assert len(everything) == 10_000 and set(everything) == {t[0] for t in timers}
    assert sum(1 for c in claimed if c) >= 2  # they really did share the work
    assert store.open_timers() == 1
