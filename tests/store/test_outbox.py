"""The ledger's outbox: events appended in the same step as what they describe, claimed under a lease,
forgotten only once acknowledged. On the session's Redis and on Redis 6.2 (the ``store`` fixture)."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from worker.domain.leads import LeadRef
from worker.ledger.events import InvalidEvent
from worker.routing.state import Candidate, RoutingState, Strategy
from worker.store.redis_store import OutboxEntry, RedisStore

LEAD = LeadRef("salesforce", "Lead", "00Q1")
T0 = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)


def event(n: int, kind: str = "sla.remind", lead: str = "00Q1", **fields: Any) -> dict[str, Any]:
    return {"event_id": f"{kind}/salesforce/Lead/{lead}/0/{n}", "kind": kind, "crm": "salesforce", "object": "Lead",
            "lead_id": lead, "epoch": 0, "at": (T0 + timedelta(seconds=n)).isoformat(), **fields}


def pick(state: RoutingState) -> dict[str, Any]:
    chosen = state.pick("inbound", Strategy.ROUND_ROBIN, ["ann", "bob"], [Candidate("ann"), Candidate("bob")])
    return {"owner": chosen.rep_id, "reason": chosen.detail}


def ids(entries: list[OutboxEntry]) -> list[str]:
    """What each entry stands for: an event's id, ``decision lead#epoch``, or ``clock timer``."""
    out = []
    for entry in entries:
        if entry.kind == "event":
            out.append(json.loads(entry.fields["e"])["event_id"])
        elif entry.kind == "decision":
            out.append(f"decision {entry.fields['lead']}#{entry.fields['epoch']}")
        else:
            out.append(f"{entry.kind} {entry.fields.get('t')}")
    return out


def claim_when(store: RedisStore, ready: Callable[[list[OutboxEntry]], bool], lease: float, timeout: float = 10.0
               ) -> list[OutboxEntry]:
    """Claim until what comes back satisfies ``ready`` (a lease running out is a time, not an event)."""
    deadline = time.monotonic() + timeout
    while True:
        got = store.outbox_claim(100, lease)
        if ready(got) or time.monotonic() > deadline:
            return got
        store.outbox_release([e.entry_id for e in got])


# ------------------------------------------------------------------ appended with what they describe


def test_a_decision_goes_to_the_outbox_as_recorded_once_however_often_it_is_recorded_or_replayed(
    store: RedisStore,
) -> None:
    key = LEAD.at(0)
    beside = {"created_at": "2026-03-02T08:59:00+00:00", "lead_source": "Web Form"}
    first = store.decide_once(key, pick, ledger=beside)
    again = store.decide_once(key, pick, ledger=beside)  # a retried task: the recorded decision, nothing new
    store.record(key, {"owner": "bob", "reason": "late"})  # a second writer loses
    assert first.fresh and not again.fresh
    (entry,) = store.outbox_claim(10, 30)
    # appended by the script that recorded it: the same instant, to the millisecond the two stream ids can straddle
    # on Redis before 7 (its scripts do not freeze the clock)
    assert entry.kind == "decision" and abs(entry.at - first.at) <= timedelta(milliseconds=2)
    assert dict(entry.fields) == {"lead": "salesforce:Lead:00Q1", "epoch": "0",
                                  "d": json.dumps(first.decision, separators=(",", ":")),
                                  "x": json.dumps(beside, separators=(",", ":"))}
    assert "lead_source" not in store.decision(key).decision  # what is beside it goes to the outbox only
    assert store.outbox_stats().depth == 1


def test_a_batch_of_decisions_appends_one_entry_per_decision_recorded(store: RedisStore) -> None:
    keys = [LeadRef("hubspot", "contacts", str(n)).at(0) for n in range(7)]
    decided = store.decide_many([(key, pick) for key in keys])
    store.decide_many([(key, pick) for key in keys])  # replayed: all recorded already
    store.record_many([(keys[0], {"owner": "x", "reason": "x"})])
    assert sorted(ids(store.outbox_claim(100, 30))) == sorted(f"decision hubspot:contacts:{n}#0" for n in range(7))
    assert [d.fresh for d in decided] == [True] * 7


def test_with_the_outbox_off_nothing_is_appended(store: RedisStore) -> None:
    store.ledger_outbox = False
    store.decide_once(LEAD.at(0), pick)
    store.log_event("sla.remind", LEAD, {"n": 1}, 0, ledger=[event(1)])
    store.schedule_many([("sla:salesforce:Lead:00Q1", 100.0, {"o": "ann"})], started={"sla:salesforce:Lead:00Q1"})
    assert store.outbox_stats().depth == 0


def test_log_appends_clock_starts_and_acknowledgements_carry_their_events_in_the_same_step(store: RedisStore) -> None:
    store.log_events([("sla.remind", LEAD, {"n": 1}, 0), ("sla.breach", LEAD, {"n": 2}, 0)],
                     ledger=[event(1), event(2, "sla.breach")])
    store.schedule_many([("sla:salesforce:Lead:00Q1", 100.0, {"o": "ann"}), ("sla:salesforce:Lead:00Q9", 90.0, {})],
                        started={"sla:salesforce:Lead:00Q1"}, config_version="abc")
    store.adjust_load("ann", 2)
    acked = store.acknowledge_clock("sla:salesforce:Lead:00Q1", "ann", LEAD, 0, ("sla.stop", {"by": "cli"}),
                                    [event(4, "sla.stop"), event(5, "ack", actor="cli")])
    again = store.acknowledge_clock("sla:salesforce:Lead:00Q1", "ann", LEAD, 0, ("sla.stop", {"by": "cli"}),
                                    [event(4, "sla.stop"), event(5, "ack", actor="cli")])
    assert (acked, again) == (True, False)  # the second found the clock closed and did nothing at all
    assert store.timer("sla:salesforce:Lead:00Q1") is None and store.loads(["ann"]) == {"ann": 1}
    assert [e.kind for e in store.recent(10)] == ["sla.stop", "sla.breach", "sla.remind"]
    claimed = store.outbox_claim(100, 30)
    assert ids(claimed) == [
        "sla.remind/salesforce/Lead/00Q1/0/1", "sla.breach/salesforce/Lead/00Q1/0/2", "clock sla:salesforce:Lead:00Q1",
        "sla.stop/salesforce/Lead/00Q1/0/4", "ack/salesforce/Lead/00Q1/0/5",
    ]
    assert dict(claimed[2].fields) == {"t": "sla:salesforce:Lead:00Q1", "s": '{"o":"ann"}', "cv": "abc"}


def test_an_event_the_ledger_would_refuse_is_refused_before_anything_is_appended(store: RedisStore) -> None:
    with pytest.raises(InvalidEvent, match="kind"):
        store.log_event("sla.remind", LEAD, {}, 0, ledger=[event(1, kind="sla.nap")])
    with pytest.raises(InvalidEvent, match="time zone"):
        store.outbox_append([event(1) | {"at": "2026-03-02T09:00:00"}])
    assert store.outbox_stats().depth == 0 and store.log_length() == 0


# ------------------------------------------------------------------ claimed under a lease, acknowledged after the commit


def test_claims_hand_each_event_to_one_mover_and_only_an_acknowledgement_removes_it(store: RedisStore) -> None:
    store.outbox_append([event(n) for n in range(5)])
    first = store.outbox_claim(3, 30)
    second = store.outbox_claim(3, 30)
    assert ids(first) == [f"sla.remind/salesforce/Lead/00Q1/0/{n}" for n in range(3)]
    assert ids(second) == [f"sla.remind/salesforce/Lead/00Q1/0/{n}" for n in (3, 4)]
    assert store.outbox_claim(3, 30) == []  # everything is claimed, and the leases are running
    stats = store.outbox_stats()
    assert (stats.depth, stats.claimed) == (5, 5)
    assert store.outbox_ack([e.entry_id for e in first]) == 3
    assert store.outbox_ack([e.entry_id for e in first]) == 0  # acknowledging twice is harmless
    stats = store.outbox_stats()
    assert (stats.depth, stats.claimed) == (2, 2)
    assert stats.oldest_at is not None and stats.oldest_age() >= 0


def test_a_claim_older_than_the_lease_is_claimed_again_and_a_released_one_at_once(store: RedisStore) -> None:
    lease = 0.5  # every mover claims with the same lease: a claim older than it belongs to a dead mover
    store.outbox_append([event(n) for n in range(4)])
    dead = store.outbox_claim(2, lease)  # a mover that will never acknowledge
    given_back = store.outbox_claim(2, lease)
    store.outbox_release([e.entry_id for e in given_back])  # its write failed: the next claim takes them at once
    again = store.outbox_claim(10, lease)
    assert ids(again) == ids(given_back)
    store.outbox_ack([e.entry_id for e in again])
    assert store.outbox_claim(10, lease) == []  # the dead mover's lease still runs
    retaken = claim_when(store, lambda got: bool(got), lease=lease)
    assert ids(retaken) == ids(dead)


def test_refused_events_go_to_the_dead_letters_and_stop_blocking(store: RedisStore) -> None:
    store.outbox_append([event(1), event(2)])
    first, second = store.outbox_claim(10, 30)
    store.outbox_dead_letter([(first, "InvalidEvent: unknown field")])
    stats = store.outbox_stats()
    assert (stats.depth, stats.claimed, stats.dead) == (1, 1, 1)
    assert store.outbox_ack([second.entry_id]) == 1
    assert store.outbox_stats().depth == 0


def test_an_empty_outbox_reports_nothing_waiting(store: RedisStore) -> None:
    stats = store.outbox_stats()
    assert (stats.depth, stats.claimed, stats.oldest_at, stats.oldest_age()) == (0, 0, None, 0.0)
    assert store.outbox_claim(10, 30) == []


def test_the_entries_of_one_lead_still_waiting_are_found_by_lead(store: RedisStore) -> None:
    store.outbox_append([event(1), event(2, lead="00Q2"), event(3, "ack"), event(4, lead="00Q10")])
    store.decide_once(LEAD.at(0), pick)
    store.decide_once(LeadRef("salesforce", "Lead", "00Q10").at(0), pick)
    store.schedule_many([("sla:salesforce:Lead:00Q1", 100.0, {}), ("sla:salesforce:Lead:00Q10", 100.0, {})],
                        started={"sla:salesforce:Lead:00Q1", "sla:salesforce:Lead:00Q10"})
    assert ids(store.outbox_for_lead("salesforce", "Lead", "00Q1")) == [
        "sla.remind/salesforce/Lead/00Q1/0/1", "ack/salesforce/Lead/00Q1/0/3", "decision salesforce:Lead:00Q1#0",
        "clock sla:salesforce:Lead:00Q1"]
    assert store.outbox_for_lead("hubspot", "Lead", "00Q1") == []
