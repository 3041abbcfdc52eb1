"""The routing-state contract: the in-memory state and the Redis store behave the same.

Every test here runs against both implementations, so they cannot drift apart. The last
test drives both with the same random sequences of operations and requires identical
picks, loads and explanations at every step.
"""

from __future__ import annotations

from collections import Counter

import pytest
import redis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from worker.routing.state import ROTATIONS, Candidate, InMemoryState, Pick, RoutingState, Strategy
from worker.store.redis_store import RedisStore

RR, WRR, LL = Strategy.ROUND_ROBIN, Strategy.WEIGHTED_ROUND_ROBIN, Strategy.LEAST_LOADED


@pytest.fixture(params=["memory", "redis", "redis-6.2"])
def state(request: pytest.FixtureRequest) -> InMemoryState | RedisStore:
    """The in-memory state, the Redis store on the session server, and on Redis 6.2."""
    if request.param == "memory":
        return InMemoryState()
    fixture = "redis_client" if request.param == "redis" else "redis62_client"
    client: redis.Redis = request.getfixturevalue(fixture)
    return RedisStore(client, prefix=request.getfixturevalue("redis_prefix"))


def reps(*names: str) -> list[Candidate]:
    return [Candidate(n) for n in names]


def picks(state: RoutingState, n: int, pool: str, strategy: Strategy, members, candidates) -> list[str | None]:
    return [state.pick(pool, strategy, members, candidates).rep_id for _ in range(n)]


def test_both_implement_the_protocol(state: InMemoryState | RedisStore) -> None:
    assert isinstance(state, RoutingState)


# ---------------------------------------------------------------- loads


def test_reps_never_seen_have_zero_load(state) -> None:
    assert state.loads(["ann", "bob"]) == {"ann": 0, "bob": 0}


def test_assign_adds_one_and_returns_the_new_load(state) -> None:
    assert state.assign("ann") == 1
    assert state.assign("ann") == 2
    assert state.loads(["ann", "bob"]) == {"ann": 2, "bob": 0}


def test_adjust_load_never_goes_below_zero(state) -> None:
    state.assign("ann")
    assert state.adjust_load("ann", -1) == 0
    assert state.adjust_load("ann", -1) == 0
    assert state.adjust_load("bob", -5) == 0
    assert state.adjust_load("bob", 3) == 3
    assert state.loads(["ann", "bob"]) == {"ann": 0, "bob": 3}


def test_set_loads_replaces_every_load_and_clamps_at_zero(state) -> None:
    state.assign("ann")
    state.assign("carl")
    state.set_loads({"ann": 4, "bob": -2})
    assert state.loads(["ann", "bob", "carl"]) == {"ann": 4, "bob": 0, "carl": 0}


def test_every_pick_adds_one_to_the_chosen_reps_load(state) -> None:
    for strategy in ROTATIONS:
        pick = state.pick(f"pool-{strategy}", strategy, ["ann"], reps("ann"))
        assert pick.rep_id == "ann"
    assert state.loads(["ann"]) == {"ann": 3}
    assert pick.load == 3


# ---------------------------------------------------------------- round robin


def test_round_robin_cycles_in_pool_order(state) -> None:
    members = ["ann", "bob", "cat"]
    assert picks(state, 7, "p", RR, members, reps(*members)) == ["ann", "bob", "cat"] * 2 + ["ann"]


def test_round_robin_pools_rotate_independently(state) -> None:
    members = ["ann", "bob"]
    assert state.pick("east", RR, members, reps(*members)).rep_id == "ann"
    assert state.pick("west", RR, members, reps(*members)).rep_id == "ann"
    assert state.pick("east", RR, members, reps(*members)).rep_id == "bob"


def test_round_robin_skipped_member_keeps_its_place_without_catch_up(state) -> None:
    members = ["ann", "bob", "cat"]
    assert picks(state, 2, "p", RR, members, reps(*members)) == ["ann", "bob"]
    # cat is unavailable for a while: the rotation goes on without her...
    assert picks(state, 3, "p", RR, members, reps("ann", "bob")) == ["ann", "bob", "ann"]
    # ...and when back she takes her turn in order, with no burst of make-up leads.
    assert picks(state, 4, "p", RR, members, reps(*members)) == ["bob", "cat", "ann", "bob"]


def test_round_robin_adding_a_member_does_not_reset_the_others(state) -> None:
    assert picks(state, 2, "p", RR, ["ann", "bob", "cat"], reps("ann", "bob", "cat")) == ["ann", "bob"]
    members = ["ann", "bob", "dan", "cat"]  # dan joins between bob and cat
    assert picks(state, 5, "p", RR, members, reps(*members)) == ["dan", "cat", "ann", "bob", "dan"]


def test_round_robin_removing_a_member_continues_after_the_last_served(state) -> None:
    assert picks(state, 2, "p", RR, ["ann", "bob", "cat"], reps("ann", "bob", "cat")) == ["ann", "bob"]
    members = ["ann", "cat"]
    assert picks(state, 3, "p", RR, members, reps(*members)) == ["cat", "ann", "cat"]
    # the last served member left the pool: continue from the latest one still in it
    assert picks(state, 1, "p", RR, ["ann", "bob", "cat"], reps("ann", "bob", "cat")) == ["ann"]
    assert picks(state, 2, "p", RR, ["bob", "dan"], reps("bob", "dan")) == ["dan", "bob"]


def test_round_robin_skips_a_rep_at_capacity_at_pick_time(state) -> None:
    state.set_loads({"bob": 2})
    members = ["ann", "bob", "cat"]
    candidates = [Candidate("ann"), Candidate("bob", capacity=2), Candidate("cat")]
    assert state.pick("p", RR, members, candidates) == Pick("ann", 1, ("bob",), "round robin: ann 1")
    pick = state.pick("p", RR, members, candidates)
    assert (pick.rep_id, pick.at_capacity) == ("cat", ("bob",))


def test_round_robin_counts_stay_balanced(state) -> None:
    members = [f"r{i}" for i in range(7)]
    counts = Counter(picks(state, 100, "p", RR, members, reps(*members)))
    assert max(counts.values()) - min(counts.values()) <= 1


# ---------------------------------------------------------------- weighted round robin


def test_weighted_round_robin_is_smooth_like_nginx(state) -> None:
    members = ["a", "b", "c"]
    candidates = [Candidate("a", 5), Candidate("b", 1), Candidate("c", 1)]
    assert picks(state, 7, "p", WRR, members, candidates) == ["a", "a", "b", "a", "c", "a", "a"]


@pytest.mark.parametrize("weights", [(5, 3, 2), (1, 1, 1), (7, 1, 2, 10)])
def test_weighted_round_robin_is_exactly_proportional_at_multiples_of_the_weight_sum(state, weights) -> None:
    members = [f"r{i}" for i in range(len(weights))]
    candidates = [Candidate(m, w) for m, w in zip(members, weights, strict=True)]
    total = sum(weights)
    for rounds in (1, 3):
        state.set_loads({})
        pool = f"p{rounds}"
        counts = Counter(picks(state, rounds * total, pool, WRR, members, candidates))
        assert counts == {m: rounds * w for m, w in zip(members, weights, strict=True)}


def test_weighted_round_robin_gives_no_credit_while_skipped(state) -> None:
    members = ["a", "b"]
    both = [Candidate("a", 1), Candidate("b", 1)]
    assert picks(state, 2, "p", WRR, members, both) == ["a", "b"]
    assert picks(state, 4, "p", WRR, members, [Candidate("a", 1)]) == ["a"] * 4
    # b did not bank four turns while away: the alternation simply resumes
    assert picks(state, 4, "p", WRR, members, both) == ["a", "b", "a", "b"]


def test_weighted_round_robin_skips_a_rep_at_capacity(state) -> None:
    state.set_loads({"a": 1})
    candidates = [Candidate("a", 5, capacity=1), Candidate("b", 1)]
    pick = state.pick("p", WRR, ["a", "b"], candidates)
    assert (pick.rep_id, pick.at_capacity, pick.load) == ("b", ("a",), 1)


# ---------------------------------------------------------------- least loaded


def test_least_loaded_picks_the_lowest_load_relative_to_capacity(state) -> None:
    state.set_loads({"ann": 5, "bob": 3})
    candidates = [Candidate("ann", capacity=20), Candidate("bob", capacity=5), Candidate("cat", capacity=10)]
    pick = state.pick("p", LL, ["ann", "bob", "cat"], candidates)
    assert pick == Pick("cat", 1, (), "least loaded: cat 1/10")
    state.set_loads({"ann": 5, "bob": 3, "cat": 4})  # ann 0.25, bob 0.6, cat 0.4
    assert state.pick("p", LL, ["ann", "bob", "cat"], candidates).rep_id == "ann"


def test_least_loaded_counts_a_rep_without_cap_at_the_largest_cap(state) -> None:
    state.set_loads({"ann": 4, "bob": 3})
    candidates = [Candidate("ann"), Candidate("bob", capacity=4)]  # ann 4/4 = 1.0 vs bob 3/4
    assert state.pick("p", LL, ["ann", "bob"], candidates).rep_id == "bob"
    state.set_loads({"ann": 1, "bob": 0})  # no caps at all: plain counts
    assert state.pick("p", LL, ["ann", "bob"], reps("ann", "bob")).rep_id == "bob"


def test_least_loaded_ties_go_to_pool_order(state) -> None:
    assert picks(state, 4, "p", LL, ["ann", "bob"], reps("ann", "bob")) == ["ann", "bob", "ann", "bob"]


def test_least_loaded_with_load_weights_adds_the_weighted_crm_load(state) -> None:
    """A pool with ``load:`` weights: lead weight x open leads + weighted CRM load; capacity still counts leads."""
    state.set_loads({"ann": 1, "bob": 3})
    candidates = [Candidate("ann", lead_weight=1.0, crm_load=3.5), Candidate("bob", lead_weight=1.0, crm_load=0.5)]
    assert state.pick("p", LL, ["ann", "bob"], candidates).rep_id == "bob"  # ann 4.5 vs bob 3.5
    state.set_loads({"ann": 1, "bob": 4})  # ann 4.5 vs bob 4.5: a tie goes to pool order
    assert state.pick("p", LL, ["ann", "bob"], candidates).rep_id == "ann"
    state.set_loads({"ann": 3, "bob": 0})
    only_opps = [Candidate("ann", lead_weight=0.0, crm_load=1.0), Candidate("bob", lead_weight=0.0, crm_load=2.0)]
    assert state.pick("p", LL, ["ann", "bob"], only_opps).rep_id == "ann"  # leads weigh nothing
    capped = [Candidate("ann", capacity=3, crm_load=0.0), Candidate("bob", capacity=9, crm_load=50.0)]
    assert state.pick("p", LL, ["ann", "bob"], capped).rep_id == "bob"  # ann at capacity by leads
    assert state.loads(["ann", "bob"]) == {"ann": 4, "bob": 1}


def test_least_loaded_with_fractional_weights_over_capacity(state) -> None:
    state.set_loads({"ann": 2, "bob": 2})
    candidates = [Candidate("ann", capacity=10, lead_weight=0.5, crm_load=1.25),
                  Candidate("bob", capacity=4, lead_weight=0.5, crm_load=0.25)]  # ann 2.25/10 vs bob 1.25/4
    assert state.pick("p", LL, ["ann", "bob"], candidates).rep_id == "ann"


def test_least_loaded_never_exceeds_capacity(state) -> None:
    candidates = [Candidate("ann", capacity=2), Candidate("bob", capacity=1)]
    got = picks(state, 4, "p", LL, ["ann", "bob"], candidates)
    assert got == ["ann", "bob", "ann", None]
    assert state.loads(["ann", "bob"]) == {"ann": 2, "bob": 1}


# ---------------------------------------------------------------- capacity and empty pools


@pytest.mark.parametrize("strategy", list(ROTATIONS))
def test_all_candidates_at_capacity_picks_nobody_and_changes_nothing(state, strategy) -> None:
    state.set_loads({"ann": 1, "bob": 3})
    candidates = [Candidate("ann", capacity=1), Candidate("bob", capacity=3)]
    assert state.pick("p", strategy, ["ann", "bob"], candidates) == Pick(None, 0, ("ann", "bob"), "")
    assert state.loads(["ann", "bob"]) == {"ann": 1, "bob": 3}
    state.set_loads({})
    assert state.pick("p", strategy, ["ann", "bob"], reps("ann", "bob")).rep_id == "ann"  # no state moved


@pytest.mark.parametrize("strategy", list(ROTATIONS))
def test_no_candidates_picks_nobody(state, strategy) -> None:
    assert state.pick("p", strategy, ["ann"], []) == Pick(None)


def test_capacity_zero_means_never_assigned(state) -> None:
    candidates = [Candidate("ann", capacity=0), Candidate("bob")]
    assert picks(state, 2, "p", RR, ["ann", "bob"], candidates) == ["bob", "bob"]


# ---------------------------------------------------------------- differential


OPS = st.lists(
    st.one_of(
        st.tuples(
            st.just("pick"),
            st.sampled_from(list(ROTATIONS)),
            st.sampled_from(["p1", "p2"]),
            st.lists(st.sampled_from(["a", "b", "c", "d", "e"]), min_size=1, max_size=5, unique=True),
            st.integers(min_value=0, max_value=31),  # bitmask: which members are candidates
            st.lists(st.integers(min_value=1, max_value=5), min_size=5, max_size=5),
            st.lists(st.one_of(st.none(), st.integers(min_value=0, max_value=4)), min_size=5, max_size=5),
        ),
        st.tuples(st.just("adjust"), st.sampled_from(["a", "b", "c"]), st.integers(min_value=-2, max_value=2)),
        st.tuples(st.just("set"), st.dictionaries(st.sampled_from(["a", "b", "c", "d"]), st.integers(-1, 4))),
    ),
    max_size=40,
)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(ops=OPS)
def test_random_operation_sequences_give_identical_results(redis_client, redis_prefix, ops) -> None:
    memory = InMemoryState()
    store = RedisStore(redis_client, prefix=redis_prefix)
    store.clear()
    for op in ops:
        if op[0] == "pick":
            _, strategy, pool, members, mask, weights, caps = op
            candidates = [Candidate(m, weights[i], caps[i]) for i, m in enumerate(members) if mask & (1 << i)]
            expected = memory.pick(pool, strategy, members, candidates)
            assert store.pick(pool, strategy, members, candidates) == expected
        elif op[0] == "adjust":
            assert store.adjust_load(op[1], op[2]) == memory.adjust_load(op[1], op[2])
        else:
            store.set_loads(op[1])
            memory.set_loads(op[1])
        names = ["a", "b", "c", "d", "e"]
        assert store.loads(names) == memory.loads(names)
