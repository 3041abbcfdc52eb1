"""What the worker keeps about the CRM side: last polls, written owners, who holds each open lead."""

from __future__ import annotations

import time

from worker.domain.leads import LeadRef


def test_the_last_poll_is_remembered_per_crm(store) -> None:
    assert store.last_polled("hubspot") is None
    before = time.time()
    store.mark_polled("hubspot")
    assert before <= store.last_polled("hubspot") <= time.time()
    store.mark_polled("salesforce", at=1_700_000_000.25)
    assert store.last_polled("salesforce") == 1_700_000_000.25


def test_written_owners_are_marked_per_decision_and_epoch(store) -> None:
    lead = LeadRef("hubspot", "contact", "101")
    assert store.written([lead.at(0), lead.at(1)]) == [False, False]
    store.note_written("hubspot", [lead.at(0)], ttl=60)
    assert store.written([lead.at(0), lead.at(1)]) == [True, False]
    assert store.written([]) == []


def test_a_written_mark_expires(store) -> None:
    lead = LeadRef("hubspot", "contact", "101")
    store.note_written("hubspot", [lead.at(0)], ttl=1)
    assert store.client.ttl(store.keys.written(lead.at(0))) == 1


def test_open_leads_follow_who_holds_them(store) -> None:
    refs = [LeadRef("hubspot", "contact", str(i)) for i in (1, 2, 3)]
    store.note_written("hubspot", [r.at(0) for r in refs], ttl=60, held={"1": "ann", "2": "bob", "3": "ann"})
    assert store.open_leads("hubspot") == {"1": "ann", "2": "bob", "3": "ann"}
    store.note_written("hubspot", [refs[1].at(1)], ttl=60, released=["2"])  # re-routed to a queue
    store.hold_open("hubspot", "4", "cat")
    store.release_open("hubspot", ["3"])
    store.release_open("hubspot", [])
    assert store.open_leads("hubspot") == {"1": "ann", "4": "cat"}
    assert store.open_leads("salesforce") == {}


def test_a_forgotten_event_is_seen_as_new_again(store) -> None:
    assert store.first_seen("hubspot", "evt-1", ttl=60)
    assert not store.first_seen("hubspot", "evt-1", ttl=60)
    assert store.forget_seen("hubspot", "evt-1")  # its handling failed: the redelivery must be taken
    assert not store.forget_seen("hubspot", "evt-1")
    assert store.first_seen("hubspot", "evt-1", ttl=60)


def test_the_store_answers_a_health_check(store) -> None:
    assert store.ping() is True


def test_what_others_build_on_the_stores_redis_shares_its_prefix(store) -> None:
    pending = store.pending_set()
    assert (pending.client, pending.prefix) == (store.client, store.prefix)
    assert pending.add("hubspot", ["1"], "poll") == 1 and pending.depth("hubspot") == 1
    assert store.for_connectors() == {"redis_client": store.client, "prefix": store.prefix}
