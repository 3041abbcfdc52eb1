"""The store's side of hand-off triggers (issue 17): crossing state per lead and trigger, hand-offs in progress.

A trigger fires on a crossing of its condition from false to true: once, or again after dropping
below only with ``refire``; a lead with a hand-off in progress fires nothing until it is done, and the
crossings seen meanwhile fire after it. The crossing is
one script, so 8 processes seeing the same crossing at once fire it exactly once.
"""

from __future__ import annotations

from typing import Any

import pytest

from tests.racing import race
from worker.domain.leads import LeadRef
from worker.store.connection import client_from_url
from worker.store.handoffs import Crossing
from worker.store.redis_store import RedisStore

LEAD = LeadRef("hubspot", "contacts", "1001")
OTHER = LeadRef("hubspot", "contacts", "1002")


def seen(store: RedisStore, now: bool, *, refire: bool = False, lead: LeadRef = LEAD, trigger: str = "mql") -> bool:
    (fired,) = store.cross("hubspot", [Crossing(lead, trigger, now, now, refire, {"trigger": trigger})])
    if fired:  # the poll finishes the hand-off
        store.end_handoff("hubspot", [lead.lead_id])
    return fired


@pytest.mark.parametrize("refire", [False, True])
def test_a_trigger_fires_once_per_crossing_and_again_only_with_refire(store: RedisStore, refire: bool) -> None:
    store.seed_crossings([(LEAD, "mql", False)])  # routed below the line
    assert seen(store, False, refire=refire) is False
    assert seen(store, True, refire=refire) is True  # crosses
    assert seen(store, True, refire=refire) is False  # stays above: no new crossing
    assert seen(store, False, refire=refire) is False  # drops below
    assert seen(store, True, refire=refire) is refire  # crosses again
    assert seen(store, True, refire=refire) is False


def test_the_baseline_is_the_lead_as_routed_and_unknown_leads_start_where_first_seen(store: RedisStore) -> None:
    store.seed_crossings([(LEAD, "mql", True)])  # arrived qualified
    store.seed_crossings([(LEAD, "mql", False)])  # a replayed batch never moves a known baseline
    assert seen(store, True) is False
    assert seen(store, True, lead=OTHER) is False  # routed before the trigger existed: its first sight is the baseline
    assert seen(store, False, lead=OTHER) is False
    assert seen(store, True, lead=OTHER) is True


def test_triggers_are_independent_but_a_lead_has_one_hand_off_in_progress(store: RedisStore) -> None:
    store.seed_crossings([(LEAD, "mql", False), (LEAD, "sql", False)])
    both = [Crossing(LEAD, "mql", True, False, False, {"trigger": "mql"}),
            Crossing(LEAD, "sql", True, False, False, {"trigger": "sql"})]
    assert store.cross("hubspot", both) == [True, False]  # the first in file order wins the lead
    assert store.handoffs("hubspot") == {"1001": {"trigger": "mql"}}
    assert store.begin_handoff("hubspot", "1001", {"kind": "rejection"}) is False  # one at a time
    store.update_handoff("hubspot", "1001", {"trigger": "mql", "epoch": 1})
    assert store.handoffs("hubspot") == {"1001": {"trigger": "mql", "epoch": 1}}
    store.end_handoff("hubspot", ["1001"])
    assert store.handoffs("hubspot") == {}
    assert seen(store, True, trigger="sql") is True  # its crossing, seen while the lead was busy, fires now
    assert store.begin_handoff("hubspot", "1001", {"kind": "rejection"}) is True


def test_a_crossing_seen_while_another_hand_off_is_in_progress_fires_after_it(store: RedisStore) -> None:
    store.seed_crossings([(LEAD, "mql", False)])
    assert store.begin_handoff("hubspot", LEAD.lead_id, {"kind": "rejection"}) is True  # the rep rejected it
    (fired,) = store.cross("hubspot", [Crossing(LEAD, "mql", True, False, False, {"trigger": "mql"})])
    assert fired is False  # one hand-off at a time ...
    assert store.handoffs("hubspot") == {"1001": {"kind": "rejection"}}
    store.end_handoff("hubspot", [LEAD.lead_id])
    assert seen(store, True) is True  # ... but the crossing is not used up: it fires once the rejection is done
    assert seen(store, True) is False


def _cross(barrier: Any, index: int, url: str, prefix: str) -> int:
    store = RedisStore(client_from_url(url), prefix=prefix)
    barrier.wait()
    fired = 0
    for n in range(50):
        lead = LeadRef("hubspot", "contacts", str(2000 + n))
        (hit,) = store.cross("hubspot", [Crossing(lead, "mql", True, False, False, {"by": index})])
        fired += hit
    return fired


def test_8_processes_seeing_the_same_crossings_at_once_fire_each_exactly_once(redis_url: str, redis_prefix: str) -> None:
    assert sum(race(_cross, 8, redis_url, redis_prefix)) == 50
    store = RedisStore(client_from_url(redis_url), prefix=redis_prefix)
    assert len(store.handoffs("hubspot")) == 50


def _open(barrier: Any, index: int, url: str, prefix: str) -> int | None:
    store = RedisStore(client_from_url(url), prefix=prefix)
    barrier.wait()
    return store.open_handoff_epoch("hubspot", LEAD, {"trigger": "mql", "excluded": []})


def test_8_processes_opening_one_hand_offs_epoch_at_once_open_one(redis_url: str, redis_prefix: str) -> None:
    store = RedisStore(client_from_url(redis_url), prefix=redis_prefix)
    assert store.begin_handoff("hubspot", LEAD.lead_id, {"trigger": "mql", "excluded": []}) is True
    assert race(_open, 8, redis_url, redis_prefix) == [1] * 8  # one epoch, the same for all of them
    assert store.handoffs("hubspot") == {"1001": {"trigger": "mql", "excluded": [], "epoch": 1}}
    assert store.epochs([LEAD]) == [1]
    store.end_handoff("hubspot", [LEAD.lead_id])
    assert store.open_handoff_epoch("hubspot", LEAD, {"trigger": "mql"}) is None  # finished: nothing to open
    assert store.epochs([LEAD]) == [1]
