"""What the SLA sweep asks of the store beside plain timers: peeking, re-arming, closing,
each rep's open clocks, and marks that make an action happen once."""

from __future__ import annotations

import time

from worker.domain.leads import LeadRef


def test_peeking_shows_due_timers_without_claiming_them(store) -> None:
    store.schedule_many([("t1", 100, {"i": 1}), ("t2", 200, None), ("t3", 300, {"i": 3})])
    peeked = store.peek_due(now=250, limit=10)
    assert [(t.timer_id, t.due_at, t.payload) for t in peeked] == [("t1", 100.0, {"i": 1}), ("t2", 200.0, {})]
    assert [t.timer_id for t in store.peek_due(now=250, limit=10, skip={"t1"})] == ["t2"]
    assert [t.timer_id for t in store.peek_due(now=250, limit=1)] == ["t1"]
    assert store.peek_due(now=50) == []
    assert store.open_timers() == 3  # nothing was claimed


def test_payloads_of_open_timers_only(store) -> None:
    store.schedule("t1", 100, {"o": "ann"})
    assert store.timer_payloads(["t1", "gone"]) == {"t1": {"o": "ann"}}
    assert store.timer_payloads([]) == {}


def test_rearming_moves_claimed_timers_on_but_never_revives_a_closed_one(store) -> None:
    store.schedule_many([("t1", 100, {"step": 0}), ("t2", 100, {"step": 0}), ("t3", 100, {"step": 0})])
    assert len(store.claim_due(now=100, lease=60)) == 3
    store.cancel("t2")  # acknowledged while the sweep was working on it
    moved = store.rearm([("t1", 500, {"step": 1}), ("t2", 500, {"step": 1}), ("t3", 600, None)])
    assert moved == 2
    assert store.timer("t1").due_at == 500.0 and store.timer("t1").payload == {"step": 1}
    assert store.timer("t2") is None
    assert store.timer("t3").due_at == 600.0 and store.timer("t3").payload == {"step": 0}  # None keeps the payload


def test_each_rep_has_an_index_of_their_open_clocks(store) -> None:
    store.schedule_many([("t1", 100, {"o": "ann"}), ("t2", 100, {"o": "ann"})])
    store.index_timers(added=[("ann", "t2"), ("ann", "t1")])
    assert store.rep_timers("ann") == [("t1", {"o": "ann"}), ("t2", {"o": "ann"})]
    assert store.rep_timers("bob") == []
    # a reassignment moves the clock to the new owner's index in the same round trip as the re-arm
    store.rearm([("t1", 200, {"o": "bob"})], moves=[("t1", "ann", "bob")])
    assert store.rep_timers("ann") == [("t2", {"o": "ann"})]
    assert store.rep_timers("bob") == [("t1", {"o": "bob"})]
    # removals go before additions: re-indexing a clock under the same rep keeps it
    store.index_timers(removed=[("bob", "t1")], added=[("bob", "t1")])
    assert store.rep_timers("bob") == [("t1", {"o": "bob"})]


def test_closing_removes_timers_and_their_index_entries(store) -> None:
    store.schedule_many([("t1", 100, {"o": "ann"}), ("t2", 100, {"o": "ann"})])
    store.index_timers(added=[("ann", "t1"), ("ann", "t2")])
    assert store.close_timers([("t1", "ann"), ("gone", None)]) == 1
    assert store.timer("t1") is None and store.rep_timers("ann") == [("t2", {"o": "ann"})]
    assert store.close_timers([]) == 0


def test_a_clock_closed_under_the_index_drops_out_of_it(store) -> None:
    store.schedule("t1", 100, {"o": "ann"})
    store.index_timers(added=[("ann", "t1")])
    store.cancel("t1")
    assert store.rep_timers("ann") == []


def test_an_action_mark_is_set_once(store) -> None:
    marks = [("sla:sf:Lead:1", 0, "remind:0:done"), ("sla:sf:Lead:1", 1, "remind:0:done")]
    assert store.mark_once(marks, ttl=60) == [True, True]
    assert store.mark_once([*marks, ("sla:sf:Lead:1", 0, "escalate:1:done")], ttl=60) == [False, False, True]
    assert store.mark_once([], ttl=60) == []


def test_an_action_mark_expires(store) -> None:
    assert store.mark_once([("t", 0, "x")], ttl=0.05) == [True]
    time.sleep(0.1)
    assert store.mark_once([("t", 0, "x")], ttl=0.05) == [True]


def test_a_batch_of_events_is_logged_in_order_like_single_events(store) -> None:
    lead = LeadRef("sf", "Lead", "1")
    ids = store.log_events([("sla.remind", lead, {"step": 1}, 0), ("sla.escalate", "sf:Lead:1", {"step": 2}, None)])
    single = store.log_event("sla.stop", lead, {"step": 3}, epoch=0)
    assert len(ids) == 2 and ids[0] < ids[1] < single
    assert [(e.kind, e.lead, e.epoch, e.data) for e in store.recent(3)] == [
        ("sla.stop", "sf:Lead:1", 0, {"step": 3}),
        ("sla.escalate", "sf:Lead:1", None, {"step": 2}),
        ("sla.remind", "sf:Lead:1", 0, {"step": 1}),
    ]
    assert store.log_events([]) == []
