"""A lead its pool holds (``hold``) is not decided: nothing is recorded for it, its lease and the journal
of the claims that found nobody with room are let go, and the next attempt asks afresh."""

from __future__ import annotations

from typing import Any

from worker.domain.leads import LeadRef
from worker.routing.state import Candidate, RoutingState, Strategy
from worker.store.redis_store import RedisStore

TEAM = ["ann", "bob"]
CANDIDATES = [Candidate(r, 1, 1) for r in TEAM]  # capacity 1 each


def holding(state: RoutingState) -> dict[str, Any]:
    """An engine stand-in: the pool's pick, or held when nobody has room."""
    pick = state.pick("team", Strategy.ROUND_ROBIN, TEAM, CANDIDATES)
    if pick.rep_id is None:
        return {"owner": "", "owner_kind": "held", "retry_at": "2026-12-07T14:01:00+00:00"}
    return {"owner": pick.rep_id, "owner_kind": "rep"}


def keys(n: int, start: int = 0) -> list:
    return [LeadRef("salesforce", "Lead", f"00Q{i}").at(0) for i in range(start, start + n)]


def test_a_held_lead_is_not_recorded_and_is_decided_afresh_once_someone_has_room(store: RedisStore) -> None:
    store.adjust_load("ann", 1)
    store.adjust_load("bob", 1)
    (key,) = keys(1)
    first = store.decide_once(key, holding)
    assert first.decision["owner_kind"] == "held" and not first.fresh
    assert store.decision(key) is None  # nothing recorded: the next attempt decides again
    store.adjust_load("bob", -1)
    second = store.decide_once(key, holding, wait=0.5)  # the lease was let go: no waiting on it
    assert (second.decision["owner"], second.fresh) == ("bob", True)
    assert store.decision(key).decision["owner"] == "bob"


def test_a_batch_records_its_decided_leads_and_lets_go_of_the_held_ones(store: RedisStore) -> None:
    batch = keys(4)
    decided = store.decide_many([(k, holding) for k in batch])
    assert [d.decision["owner_kind"] for d in decided] == ["rep", "rep", "held", "held"]
    assert [store.decision(k) is not None for k in batch] == [True, True, False, False]
    assert store.loads(TEAM) == {"ann": 1, "bob": 1}  # the held leads claimed nothing
    store.adjust_load("ann", -1)
    again = store.decide_many([(k, holding) for k in batch[2:]])
    assert [d.decision["owner"] for d in again] == ["ann", ""]  # asked afresh, not the journal's old answer
    assert store.loads(TEAM) == {"ann": 1, "bob": 1}
