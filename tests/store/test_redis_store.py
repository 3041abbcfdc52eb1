"""What the Redis store adds beyond the routing-state contract."""

from __future__ import annotations

import threading
import time
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from worker.domain.leads import DecisionKey, LeadRef
from worker.routing.state import ROTATIONS, Candidate, InMemoryState, Pick, RoutingState, Strategy
from worker.store.redis_store import DecisionBusy, DirectClaim, LockBusy, PoolClaim, RedisStore

RR = Strategy.ROUND_ROBIN
TEAM = ["ann", "bob", "cat"]
CANDIDATES = [Candidate(r) for r in TEAM]
LEAD = LeadRef("salesforce", "Lead", "00Q1")


def route(state: RoutingState) -> dict:
    """A stand-in for the engine: one round-robin pick, explained."""
    pick = state.pick("inbound", RR, TEAM, CANDIDATES)
    return {"owner": pick.rep_id, "reason": pick.detail}


def total_load(store: RedisStore) -> int:
    return sum(store.loads(TEAM).values())


# ---------------------------------------------------------------- idempotent decisions


def test_decide_once_records_the_first_decision_and_a_retry_gets_it_back(store) -> None:
    first = store.decide_once(LEAD.at(0), route)
    assert first.fresh and first.decision == {"owner": "ann", "reason": "round robin: ann 1"}
    calls = []
    retry = store.decide_once(LEAD.at(0), lambda s: calls.append(1) or route(s))
    assert not retry.fresh and retry.decision == first.decision and retry.entry_id == first.entry_id
    assert calls == []  # the engine did not even run again
    assert total_load(store) == 1
    assert store.decision(LEAD.at(0)).decision == first.decision


def test_a_task_that_dies_after_claiming_replays_its_claim_on_retry(store) -> None:
    def crash(state: RoutingState) -> dict:
        state.pick("inbound", RR, TEAM, CANDIDATES)
        raise RuntimeError("worker lost")

    with pytest.raises(RuntimeError):
        store.decide_once(LEAD.at(0), crash)
    assert store.loads(TEAM) == {"ann": 1, "bob": 0, "cat": 0}
    retried = store.decide_once(LEAD.at(0), route, wait=0)  # the lease was released: no waiting
    assert retried.decision["owner"] == "ann"
    assert store.loads(TEAM) == {"ann": 1, "bob": 0, "cat": 0}  # not claimed twice
    # the rotation was not skewed either: the next lead goes to bob
    assert store.decide_once(LeadRef("salesforce", "Lead", "00Q2").at(0), route).decision["owner"] == "bob"


def test_journal_replays_each_step_of_a_multi_step_decision(store) -> None:
    def two_steps(state: RoutingState) -> dict:
        full = state.pick("full", RR, ["zed"], [Candidate("zed", capacity=0)])
        direct = state.assign("triage")
        return {"first": full.rep_id, "then": direct}

    state = store.for_decision(LEAD.at(0))
    assert two_steps(state) == {"first": None, "then": 1}
    assert two_steps(store.for_decision(LEAD.at(0))) == {"first": None, "then": 1}
    assert store.loads(["triage"]) == {"triage": 1}


def test_a_retry_sees_the_loads_its_first_attempt_saw(store) -> None:
    """The engine's capacity pre-check must not count the lead's own earlier claim."""
    store.set_loads({"ann": 4})
    capped = [Candidate("ann", capacity=5)]

    def engine(state: RoutingState) -> dict:
        if state.loads(["ann"])["ann"] >= 5:  # the engine's own eligibility filter
            return {"owner": "triage", "load": state.assign("triage")}
        pick = state.pick("inbound", RR, ["ann"], capped)
        return {"owner": pick.rep_id, "load": pick.load}

    first = engine(store.for_decision(LEAD.at(0)))  # ...and the worker dies before recording
    retry = store.decide_once(LEAD.at(0), engine)
    assert first == retry.decision == {"owner": "ann", "load": 5}
    assert store.loads(["ann", "triage"]) == {"ann": 5, "triage": 0}


def test_a_retry_that_goes_another_way_gives_the_earlier_claim_back(store) -> None:
    store.for_decision(LEAD.at(0)).pick("inbound", RR, TEAM, CANDIDATES)  # ann, then the worker dies
    assert store.loads(["ann"]) == {"ann": 1}
    # the config changed meanwhile: the retry assigns the lead to a named rep instead
    retry = store.decide_once(LEAD.at(0), lambda state: {"owner": "dan", "load": state.assign("dan")})
    assert retry.decision == {"owner": "dan", "load": 1}
    assert store.loads([*TEAM, "dan"]) == {"ann": 0, "bob": 0, "cat": 0, "dan": 1}


def test_claims_a_dead_attempt_made_beyond_what_the_retry_needed_are_given_back(store) -> None:
    first = store.for_decision(LEAD.at(0))  # claims ann, then assigns a backup, then the worker dies
    first.pick("inbound", RR, TEAM, CANDIDATES)
    first.assign("dan")
    assert store.loads(["ann", "dan"]) == {"ann": 1, "dan": 1}
    retry = store.decide_once(LEAD.at(0), route)  # the retry stops after the pick
    assert retry.decision["owner"] == "ann"
    assert store.loads(["ann", "dan"]) == {"ann": 1, "dan": 0}


def test_a_second_worker_waits_for_the_first_and_gets_its_decision(store) -> None:
    started, release = threading.Event(), threading.Event()

    def slow(state: RoutingState) -> dict:
        started.set()
        release.wait(5)
        return route(state)

    results = {}
    worker = threading.Thread(target=lambda: results.setdefault("a", store.decide_once(LEAD.at(0), slow)))
    worker.start()
    started.wait(5)
    with pytest.raises(DecisionBusy):
        store.decide_once(LEAD.at(0), route, wait=0)
    threading.Timer(0.05, release.set).start()
    second = store.decide_once(LEAD.at(0), route, wait=5)
    worker.join()
    assert results["a"].fresh and not second.fresh
    assert second.decision == results["a"].decision
    assert total_load(store) == 1


def test_a_new_epoch_routes_again_and_keeps_the_history(store) -> None:
    assert store.epoch(LEAD) == 0
    store.decide_once(store.current_key(LEAD), route)
    key = store.new_epoch(LEAD)
    assert key == DecisionKey("salesforce", "Lead", "00Q1", 1) and store.epoch(LEAD) == 1
    again = store.decide_once(key, route)
    assert again.fresh and again.decision["owner"] == "bob"
    history = store.decisions_for_lead(LEAD)
    assert [d.key.epoch for d in history] == [1, 0]
    assert [d.decision["owner"] for d in history] == ["bob", "ann"]
    assert store.epochs([LEAD, LeadRef("hubspot", "contact", "9")]) == [1, 0]


def test_record_keeps_the_first_decision(store) -> None:
    assert store.record(LEAD.at(0), {"owner": "ann"}).fresh
    late = store.record(LEAD.at(0), {"owner": "bob"})
    assert not late.fresh and late.decision == {"owner": "ann"}
    assert store.log_length() == 1


def test_decisions_accept_common_python_values(store) -> None:
    when = datetime(2025, 3, 1, 9, 30, tzinfo=UTC)
    got = store.record(LEAD.at(0), {"at": when, "strategy": Strategy.LEAST_LOADED, "skipped": ("bob",)})
    assert got.decision == {"at": "2025-03-01T09:30:00+00:00", "strategy": "least_loaded", "skipped": ["bob"]}
    with pytest.raises(TypeError):
        store.record(LEAD.at(1), {"bad": object()})


def test_batch_claims_are_idempotent_per_lead(store) -> None:
    leads = [LeadRef("hubspot", "contact", str(i)) for i in range(4)]
    requests = [PoolClaim(lead.at(0), "inbound", RR, TEAM, CANDIDATES) for lead in leads[:3]]
    requests.append(DirectClaim(leads[3].at(0), "dan"))
    first = store.claim_many(requests)
    assert [c.pick.rep_id for c in first] == ["ann", "bob", "cat", "dan"]
    assert not any(c.replayed for c in first)
    again = store.claim_many(requests)  # the whole batch task is retried
    assert [c.pick for c in again] == [c.pick for c in first] and all(c.replayed for c in again)
    assert store.loads([*TEAM, "dan"]) == {"ann": 1, "bob": 1, "cat": 1, "dan": 1}

    recorded = store.record_many([(c.key, {"owner": c.pick.rep_id}) for c in first])
    assert all(d.fresh for d in recorded)
    assert not any(d.fresh for d in store.record_many([(leads[0].at(0), {"owner": "x"})]))
    assert [d.decision["owner"] if d else None for d in store.decisions([leads[0].at(0), LEAD.at(0)])] == [
        "ann",
        None,
    ]


def test_decisions_and_their_journal_expire(store) -> None:
    redis_client = store.client
    store.decide_once(LEAD.at(0), route)
    ttl = redis_client.pttl(store.key("dec", "salesforce", "Lead", "00Q1", 0))
    assert 0 < ttl <= 3600 * 1000
    store.new_epoch(LEAD)
    assert redis_client.pttl(store.key("epoch", "salesforce", "Lead", "00Q1")) > 3600 * 1000
    assert not redis_client.exists(store.key("lease", "salesforce", "Lead", "00Q1", 0))


# ---------------------------------------------------------------- decision log


def test_the_log_reads_latest_first_by_kind_by_lead_and_by_time(store) -> None:
    before = datetime.now(UTC) - timedelta(seconds=1)
    for i in range(5):
        store.record(LeadRef("sf", "Lead", str(i)).at(0), {"owner": f"r{i}"})
    store.log_event("sla_breach", LeadRef("sf", "Lead", "3"), {"rung": "remind"}, epoch=0)
    latest = store.recent(3)
    assert [(e.kind, e.lead) for e in latest] == [
        ("sla_breach", "sf:Lead:3"),
        ("decision", "sf:Lead:4"),
        ("decision", "sf:Lead:3"),
    ]
    assert [e.data["owner"] for e in store.recent(2, kind="decision")] == ["r4", "r3"]
    assert [e.kind for e in store.log_for_lead(LeadRef("sf", "Lead", "3"))] == ["sla_breach", "decision"]
    everything = list(store.log_range(since=before, batch=2))
    assert len(everything) == 6 and everything[0].data == {"owner": "r0"} and everything[0].epoch == 0
    assert list(store.log_range(until=before)) == []
    assert before < everything[0].at <= datetime.now(UTC)


def test_the_log_is_capped(redis_client, redis_prefix) -> None:
    store = RedisStore(redis_client, prefix=redis_prefix, log_maxlen=100)
    for i in range(1000):
        store.log_event("tick", None, {"i": i})
    assert 100 <= store.log_length() < 300  # trimmed in whole stream nodes (MAXLEN ~)
    assert store.recent(1)[0].data == {"i": 999}


# ---------------------------------------------------------------- loads


def test_loads_are_shared_between_store_instances(store) -> None:
    other = RedisStore(store.client, prefix=store.prefix)
    store.assign("ann")
    other.assign("ann")
    assert store.loads(["ann"]) == {"ann": 2}
    assert store.all_loads() == {"ann": 2}


def test_a_pool_can_be_reset(store) -> None:
    assert store.pick("p", RR, TEAM, CANDIDATES).rep_id == "ann"
    store.reset_pool("p")
    assert store.pick("p", RR, TEAM, CANDIDATES).rep_id == "ann"


# ---------------------------------------------------------------- SLA timers


def test_claim_due_hands_out_due_timers_earliest_first_once(store) -> None:
    store.schedule("lead-b", 200, {"tier": 2})
    store.schedule("lead-a", 100, {"tier": 1})
    store.schedule("lead-c", 300)
    assert store.claim_due(now=50) == []
    due = store.claim_due(now=250)
    assert [(t.timer_id, t.due_at, t.payload) for t in due] == [("lead-a", 100.0, {"tier": 1}), ("lead-b", 200.0, {"tier": 2})]
    assert store.claim_due(now=250) == []
    assert store.open_timers() == 1 and store.next_due() == 300.0


def test_claim_due_respects_the_limit(store) -> None:
    store.schedule_many([(f"t{i:03}", i, {"i": i}) for i in range(50)])
    assert [t.timer_id for t in store.claim_due(now=1000, limit=20)] == [f"t{i:03}" for i in range(20)]
    assert store.open_timers() == 30


def test_cancel_and_reschedule(store) -> None:
    store.schedule("lead-a", 100, {"rung": 0})
    assert store.cancel("lead-a") and not store.cancel("lead-a")
    store.schedule("lead-b", 100, {"rung": 0})
    store.schedule("lead-b", 500, {"rung": 1})  # next rung of the ladder replaces it
    assert store.claim_due(now=400) == []
    assert store.timer("lead-b").payload == {"rung": 1}
    assert store.timer("nope") is None


def test_a_leased_claim_fires_again_unless_the_sweeper_finishes(store) -> None:
    store.schedule("lead-a", 100, {"rung": 0})
    assert [t.timer_id for t in store.claim_due(now=100, lease=60)] == ["lead-a"]
    assert store.claim_due(now=150) == []
    # the sweeper died: a minute later another sweeper gets it again, payload intact
    assert [(t.timer_id, t.payload) for t in store.claim_due(now=161)] == [("lead-a", {"rung": 0})]


def test_timers_take_aware_datetimes(store) -> None:
    due = datetime(2025, 1, 1, 12, tzinfo=UTC)
    store.schedule("lead-a", due)
    assert store.claim_due(now=due)[0].due_at == due.timestamp()
    with pytest.raises(ValueError, match="naive"):
        store.schedule("lead-b", datetime(2025, 1, 1, 12))


# ---------------------------------------------------------------- watermarks, locks, dedupe


def test_watermarks_per_connector_and_object(store) -> None:
    assert store.watermark("salesforce", "Lead") is None
    store.set_watermark("salesforce", "Lead", "2025-01-01T00:00:00Z")
    store.set_watermark("hubspot", "contacts", "1700000000000")
    assert store.watermark("salesforce", "Lead") == "2025-01-01T00:00:00Z"
    assert store.watermark("hubspot", "contacts") == "1700000000000"


def test_a_lock_is_released_only_by_its_owner(store) -> None:
    token = store.acquire_lock("poll:salesforce", ttl=5)
    assert token and store.acquire_lock("poll:salesforce", ttl=5) is None
    assert not store.release_lock("poll:salesforce", "someone-else")
    assert not store.extend_lock("poll:salesforce", "someone-else", 10)
    assert store.extend_lock("poll:salesforce", token, 10)
    assert store.release_lock("poll:salesforce", token)
    assert store.acquire_lock("poll:salesforce", ttl=5)


def test_who_holds_which_lock_is_read_in_one_go(store) -> None:
    token = store.acquire_lock("drain:hubspot:0", ttl=5, token="host/boot/12/34#abc")
    assert token == "host/boot/12/34#abc"
    assert store.lock_owners(["drain:hubspot:0", "drain:hubspot:1"]) == {"drain:hubspot:0": token}  # free: left out
    assert store.lock_owners([]) == {}


def test_a_lock_expires(store) -> None:
    assert store.acquire_lock("sweep", ttl=0.05)
    time.sleep(0.1)
    assert store.acquire_lock("sweep", ttl=5)


def test_lock_context_manager(store) -> None:
    with store.lock("sweep", ttl=5) as token:
        assert token
        with pytest.raises(LockBusy), store.lock("sweep", ttl=5, wait=0.02):
            pass
    with store.lock("sweep", ttl=5):
        pass


def test_first_seen_within_a_ttl(store) -> None:
    assert store.first_seen("webhook", "evt-1", ttl=0.1)
    assert not store.first_seen("webhook", "evt-1", ttl=0.1)
    assert store.first_seen("notify", "evt-1", ttl=0.1)  # namespaces are separate
    time.sleep(0.15)
    assert store.first_seen("webhook", "evt-1", ttl=0.1)


# ---------------------------------------------------------------- availability overrides


def test_availability_overrides_until_a_time(store) -> None:
    now = datetime.now(UTC)
    store.set_availability("ann", False, until=now + timedelta(hours=1), reason="vacation", set_by="cli")
    store.set_availability("bob", True)
    got = store.availability()
    assert set(got) == {"ann", "bob"} and got["ann"].reason == "vacation" and got["bob"].until is None
    assert store.unavailable() == {"ann": "vacation"}
    assert store.unavailable(["bob", "cat"]) == {}
    assert store.availability(now=now + timedelta(hours=2)).keys() == {"bob"}  # a look ahead deletes nothing
    assert "ann" in store.availability()
    assert store.clear_availability("ann") and store.unavailable() == {}


def test_expired_overrides_are_removed(store) -> None:
    store.set_availability("ann", False, until=datetime.now(UTC) - timedelta(seconds=1))
    assert store.availability() == {}
    assert store.client.hlen(store.key("availability")) == 0


# ---------------------------------------------------------------- prefixes


def test_two_prefixes_share_one_redis_without_seeing_each_other(redis_client, redis_prefix) -> None:
    a = RedisStore(redis_client, prefix=f"{redis_prefix}-a")
    b = RedisStore(redis_client, prefix=f"{redis_prefix}-b")
    a.assign("ann")
    a.schedule("lead", 1)
    a.record(LEAD.at(0), {"owner": "ann"})
    assert b.loads(["ann"]) == {"ann": 0} and b.claim_due(now=10) == [] and b.decision(LEAD.at(0)) is None
    assert all(k.startswith(f"{redis_prefix}-a:") for k in redis_client.scan_iter(match=f"{redis_prefix}*"))
    assert b.clear() == 0 and a.clear() > 0
    assert list(redis_client.scan_iter(match=f"{redis_prefix}*")) == []


def test_prefix_must_be_a_plain_word(redis_client) -> None:
    with pytest.raises(ValueError):
        RedisStore(redis_client, prefix="")


def test_pick_returns_the_strategy_state_used(store) -> None:
    store.set_loads({"bob": 2})
    pick = store.pick("p", Strategy.LEAST_LOADED, ["bob"], [Candidate("bob", capacity=5)])
    assert pick == Pick("bob", 3, (), "least loaded: bob 3/5")


# ---------------------------------------------------------------- batches behave like one-by-one picks

BATCH_OPS = st.lists(
    st.one_of(
        st.tuples(
            st.sampled_from(list(ROTATIONS)),
            st.sampled_from(["p1", "p2", "p3"]),
            st.lists(st.sampled_from(["a", "b", "c", "d"]), min_size=1, max_size=4, unique=True),
            st.integers(min_value=0, max_value=15),  # which members are candidates
            st.lists(st.integers(min_value=1, max_value=4), min_size=4, max_size=4),
            st.lists(st.one_of(st.none(), st.integers(min_value=0, max_value=3)), min_size=4, max_size=4),
        ),
        st.sampled_from(["a", "b", "z"]),  # a direct assignment
    ),
    min_size=1,
    max_size=30,
)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(ops=BATCH_OPS)
def test_a_batch_claims_exactly_as_the_same_claims_one_by_one(redis_client, redis_prefix, ops) -> None:
    store = RedisStore(redis_client, prefix=redis_prefix)
    store.clear()
    memory = InMemoryState()
    requests, expected = [], []
    for n, op in enumerate(ops):
        key = LeadRef("sf", "Lead", str(n)).at(0)
        if isinstance(op, str):
            requests.append(DirectClaim(key, op))
            expected.append(memory.assign(op))
            continue
        strategy, pool, members, mask, weights, caps = op
        candidates = [Candidate(m, weights[i], caps[i]) for i, m in enumerate(members) if mask & (1 << i)]
        requests.append(PoolClaim(key, pool, strategy, members, candidates))
        expected.append(memory.pick(pool, strategy, members, candidates))
    claims = store.claim_many(requests)
    for claim, want in zip(claims, expected, strict=True):
        if isinstance(want, int):
            assert claim.pick.load == want
        else:
            assert claim.pick == want
    assert store.loads(["a", "b", "c", "d", "z"]) == memory.loads(["a", "b", "c", "d", "z"])
    assert [c.pick for c in store.claim_many(requests)] == [c.pick for c in claims]  # retried: replayed
    assert store.loads(["a", "b", "c", "d", "z"]) == memory.loads(["a", "b", "c", "d", "z"])
