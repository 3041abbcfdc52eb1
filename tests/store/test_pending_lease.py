"""The pending set's lease: a drain holds its batch while it renews it, and loses it soon after it stops.

Times are given explicitly (``now=``), so nothing here waits for a clock.
"""

from __future__ import annotations

T0 = 1_800_000_000.25  # any instant; a fraction checks the lease arithmetic survives the round trip
LEASE = 15.0


def test_a_claim_records_the_lease_it_set(store) -> None:
    pending = store.pending_set()
    pending.add("hubspot", ["1", "2"], "webhook", now=T0)
    items = pending.claim("hubspot", 10, LEASE, now=T0 + 1)
    assert [(i.record_id, i.held_until) for i in items] == [("1", T0 + 1 + LEASE), ("2", T0 + 1 + LEASE)]


def test_a_batch_whose_drain_stops_renewing_is_claimable_again_after_the_short_lease(store) -> None:
    pending = store.pending_set()
    pending.add("hubspot", ["1", "2", "3"], "webhook", now=T0)
    claimed = pending.claim("hubspot", 10, LEASE, now=T0)
    assert pending.claim("hubspot", 10, LEASE, now=T0 + LEASE - 0.01) == []  # still leased
    # the drain died: nobody renews, and just past the lease another drain takes the batch
    again = pending.claim("hubspot", 10, LEASE, now=T0 + LEASE + 0.01)
    assert [i.record_id for i in again] == [i.record_id for i in claimed]


def test_a_drain_that_keeps_renewing_keeps_its_batch_past_the_lease(store) -> None:
    pending = store.pending_set()
    pending.add("hubspot", ["1", "2"], "webhook", now=T0)
    held = {i.record_id: i.held_until for i in pending.claim("hubspot", 10, LEASE, now=T0)}
    for beat in range(1, 13):  # a heartbeat every 5 s for a minute: four leases long
        now = T0 + 5 * beat
        held = pending.renew("hubspot", held, LEASE, now=now)
        assert held == {"1": now + LEASE, "2": now + LEASE}
        assert pending.claim("hubspot", 10, LEASE, now=now + LEASE - 0.01) == []
    assert pending.due("hubspot", now=T0 + 60 + LEASE - 0.01) == 0
    assert pending.due("hubspot", now=T0 + 60 + LEASE + 0.01) == 2  # and it runs out once renewals stop


def test_renewing_leaves_alone_what_the_drain_no_longer_holds(store) -> None:
    pending = store.pending_set()
    pending.add("hubspot", ["routed", "retry", "taken", "kept"], "poll", now=T0)
    held = {i.record_id: i.held_until for i in pending.claim("hubspot", 10, LEASE, now=T0)}
    pending.done("hubspot", ["routed"])
    pending.retry_later("hubspot", ["retry"], 30, now=T0 + 1)
    # "taken": the lease ran out and another drain claimed it (only it is due then)
    pending.retry_later("hubspot", ["taken"], 0, now=T0 - 1)
    (other,) = pending.claim("hubspot", 10, LEASE, now=T0 + 2)
    assert other.record_id == "taken"
    assert pending.renew("hubspot", held, LEASE, now=T0 + 5) == {"kept": T0 + 5 + LEASE}
    assert pending.depth("hubspot") == 3  # nothing renewed back into the set
    # each keeps its own due time: "taken" the other drain's lease, "retry" its retry time
    assert pending.due("hubspot", now=T0 + 2 + LEASE - 0.01) == 0
    assert pending.due("hubspot", now=T0 + 2 + LEASE + 0.01) == 1  # taken
    assert pending.due("hubspot", now=T0 + 5 + LEASE + 0.01) == 2  # and kept, renewed
    assert pending.due("hubspot", now=T0 + 31) == 3  # and retry
    assert pending.renew("hubspot", {other.record_id: other.held_until}, LEASE, now=T0 + 6) == {
        "taken": T0 + 6 + LEASE}


def test_a_drain_that_cannot_finish_gives_its_batch_back_at_once(store) -> None:
    pending = store.pending_set()
    pending.add("hubspot", ["1", "2", "3"], "poll", now=T0)
    held = {i.record_id: i.held_until for i in pending.claim("hubspot", 10, LEASE, now=T0)}
    pending.done("hubspot", ["1"])
    assert sorted(pending.give_back("hubspot", held, now=T0 + 1)) == ["2", "3"]
    assert [i.record_id for i in pending.claim("hubspot", 10, LEASE, now=T0 + 1)] == ["2", "3"]
    assert pending.give_back("hubspot", held, now=T0 + 2) == []  # no longer this drain's


def test_renewing_nothing_costs_nothing(store) -> None:
    assert store.pending_set().renew("hubspot", {}, LEASE, now=T0) == {}


def test_what_is_leased_or_backing_off_is_listed_as_not_due(store) -> None:
    pending = store.pending_set()
    pending.add("hubspot", ["leased", "retry", "waiting"], "poll", now=T0)
    pending.claim("hubspot", 1, LEASE, now=T0)  # "leased": the oldest first (they tie: by id)
    pending.retry_later("hubspot", ["retry"], 30, now=T0)
    assert sorted(pending.not_due("hubspot", now=T0 + 1)) == ["leased", "retry"]
    assert pending.not_due("hubspot", now=T0 + LEASE + 0.01) == ["retry"]  # the lease ran out: due again
    assert pending.not_due("hubspot", now=T0 + 31) == []


def test_a_batch_is_recorded_under_its_holder_while_it_is_worked_on(store) -> None:
    pending = store.pending_set()
    pending.add("hubspot", ["1", "2"], "poll", now=T0)
    held = {i.record_id: i.held_until for i in pending.claim("hubspot", 10, LEASE, now=T0)}
    pending.record_holder("hubspot", "host/boot/7/99#a", held, now=T0)
    assert pending.holders("hubspot") == {"host/boot/7/99#a": {"1": T0 + LEASE, "2": T0 + LEASE}}
    renewed = pending.renew("hubspot", held, LEASE, now=T0 + 5)
    pending.record_holder("hubspot", "host/boot/7/99#a", renewed, now=T0 + 5)  # each heartbeat records its lease
    assert pending.holders("hubspot")["host/boot/7/99#a"] == {"1": T0 + 5 + LEASE, "2": T0 + 5 + LEASE}
    assert 1000 * LEASE < store.client.pttl(store.keys.pending_holders("hubspot")) <= 2000 * LEASE  # expires unless renewed
    pending.record_holder("hubspot", "host/boot/7/99#a", {})  # nothing held any more: forgotten
    assert pending.holders("hubspot") == {}


def test_a_dead_holders_batch_is_released_except_what_it_no_longer_held(store) -> None:
    pending = store.pending_set()
    pending.add("hubspot", ["kept", "routed", "taken"], "poll", now=T0)
    held = {i.record_id: i.held_until for i in pending.claim("hubspot", 10, LEASE, now=T0)}
    pending.record_holder("hubspot", "dead#1", held, now=T0)
    pending.done("hubspot", ["routed"])
    pending.retry_later("hubspot", ["taken"], 0, now=T0 - 1)  # its lease ran out and another drain took it
    taken = pending.claim("hubspot", 10, LEASE, now=T0 + 1)
    assert [i.record_id for i in taken] == ["taken"]
    assert pending.release_holder("hubspot", "dead#1", held, now=T0 + 2) == ["kept"]
    assert pending.not_due("hubspot", now=T0 + 2) == ["taken"]  # "kept" is due now; the other drain keeps "taken"
    assert pending.holders("hubspot") == {}


def test_an_unreadable_holder_record_holds_nothing(store) -> None:
    pending = store.pending_set()
    store.client.hset(store.keys.pending_holders("hubspot"), "garbled#1", "{not json")
    assert pending.holders("hubspot") == {"garbled#1": {}}
