"""Key names are data: every layout is pinned byte for byte, so a refactoring never migrates data.

The expected strings are written out literally (not built with the code under test): they
are what earlier releases wrote, and a Redis upgraded in place still holds them.
"""

from __future__ import annotations

import time

import pytest

from worker.domain.leads import DecisionKey, LeadRef
from worker.routing.state import Candidate, RoutingState, Strategy
from worker.store.keys import CONNECTOR_ROOTS, ROOTS, STORE_ROOTS, Keys
from worker.store.redis_store import RedisStore

LEAD = LeadRef("salesforce", "Lead", "00Q5e00000AbCdE")
KEY = DecisionKey("salesforce", "Lead", "00Q5e00000AbCdE", 2)
TIMER = "sla:salesforce:Lead:00Q5e00000AbCdE"


@pytest.mark.parametrize("prefix", ["leadroute", "{leadroute}", "acme-prod"])
def test_every_layout_is_exactly_the_one_already_in_redis(prefix: str) -> None:
    keys = Keys(prefix)
    assert {
        "loads": keys.loads(),
        "pool": keys.pool("enterprise"),
        "rates": keys.rates(),
        "pipeline": keys.pipeline("hubspot"),
        "a rep's cap": keys.cap("rep", "ann", "daily", "2026-12-01"),
        "domains": keys.domains(),
        "domains by when": keys.domains_at(),
        "trigger crossings": keys.crossings(LEAD),
        "hand-offs in progress": keys.handoffs("salesforce"),
        "a pool's cap": keys.cap("pool.enterprise", "ann", "weekly", "2026-W49"),
        "decision": keys.decision(KEY),
        "lease": keys.lease(KEY),
        "epoch": keys.epoch(LEAD),
        "log": keys.log(),
        "outbox": keys.outbox(),
        "outbox dead": keys.outbox_dead(),
        "timers": keys.timers(),
        "timer payloads": keys.timer_payloads(),
        "a rep's clocks": keys.rep_timers("ann"),
        "an action done": keys.done_mark(TIMER, 2, "remind:0:done"),
        "pending": keys.pending("hubspot"),
        "pending meta": keys.pending_meta("hubspot"),
        "pending holders": keys.pending_holders("hubspot"),
        "watermarks": keys.watermarks(),
        "polled": keys.polled("hubspot"),
        "written": keys.written(KEY),
        "open leads": keys.open_leads("hubspot"),
        "lock": keys.lock("poll:salesforce"),
        "seen": keys.seen("hubspot", "evt-1"),
        "availability": keys.availability(),
        "state marker": keys.state(),
        "general form": keys.key("a", 1, "b"),
    } == {
        "loads": f"{prefix}:loads",
        "pool": f"{prefix}:pool:enterprise",
        "rates": f"{prefix}:rates",
        "pipeline": f"{prefix}:pipeline:hubspot",
        "a rep's cap": f"{prefix}:caps:rep:ann:daily:2026-12-01",
        "domains": f"{prefix}:domains",
        "domains by when": f"{prefix}:domains:at",
        "trigger crossings": f"{prefix}:handoff:salesforce:Lead:00Q5e00000AbCdE",
        "hand-offs in progress": f"{prefix}:handoff:salesforce",
        "a pool's cap": f"{prefix}:caps:pool.enterprise:ann:weekly:2026-W49",
        "decision": f"{prefix}:dec:salesforce:Lead:00Q5e00000AbCdE:2",
        "lease": f"{prefix}:lease:salesforce:Lead:00Q5e00000AbCdE:2",
        "epoch": f"{prefix}:epoch:salesforce:Lead:00Q5e00000AbCdE",
        "log": f"{prefix}:log",
        "outbox": f"{prefix}:outbox",
        "outbox dead": f"{prefix}:outbox:dead",
        "timers": f"{prefix}:timers",
        "timer payloads": f"{prefix}:timers:payload",
        "a rep's clocks": f"{prefix}:sla:rep:ann",
        "an action done": f"{prefix}:sla:once:sla:salesforce:Lead:00Q5e00000AbCdE:2:remind:0:done",
        "pending": f"{prefix}:pending:hubspot",
        "pending meta": f"{prefix}:pending:hubspot:meta",
        "pending holders": f"{prefix}:pending:hubspot:holders",
        "watermarks": f"{prefix}:watermarks",
        "polled": f"{prefix}:polled:hubspot",
        "written": f"{prefix}:written:salesforce:Lead:00Q5e00000AbCdE:2",
        "open leads": f"{prefix}:open:hubspot",
        "lock": f"{prefix}:lock:poll:salesforce",
        "seen": f"{prefix}:seen:hubspot:evt-1",
        "availability": f"{prefix}:availability",
        "state marker": f"{prefix}:state",
        "general form": f"{prefix}:a:1:b",
    }
    assert keys.watermark_field("salesforce", "Lead") == "salesforce:Lead"


def test_every_key_begins_with_a_root_named_in_the_keys_module() -> None:
    keys = Keys("p")
    named = [
        keys.loads(), keys.pool("x"), keys.decision(KEY), keys.lease(KEY), keys.epoch(LEAD), keys.log(), keys.timers(),
        keys.timer_payloads(), keys.rep_timers("ann"), keys.done_mark(TIMER, 0, "t"), keys.pending("c"),
        keys.pending_meta("c"), keys.watermarks(), keys.polled("c"), keys.written(KEY), keys.open_leads("c"),
        keys.lock("l"), keys.seen("n", "i"), keys.availability(), keys.outbox(), keys.outbox_dead(), keys.state(),
    ]  # fmt: skip
    named.append(keys.cap("rep", "ann", "daily", "2026-12-01"))
    named.append(keys.pending_holders("c"))
    named.append(keys.domains())
    named.append(keys.rates())
    named.append(keys.handoffs("c"))
    named.append(keys.pipeline("salesforce"))
    assert {name.split(":")[1] for name in named} == set(STORE_ROOTS)
    assert set(STORE_ROOTS).isdisjoint(CONNECTOR_ROOTS)
    assert set(STORE_ROOTS) | set(CONNECTOR_ROOTS) == ROOTS


def test_a_prefix_is_one_plain_word() -> None:
    for bad in ("", "lead route", "lead\troute"):
        with pytest.raises(ValueError, match="invalid key prefix"):
            Keys(bad)


def test_clear_matches_the_prefix_literally() -> None:
    assert Keys("{lead*route}").everything() == "{lead\\*route}:*"


def test_the_store_writes_exactly_these_keys(redis_client, redis_prefix) -> None:
    """One of everything the worker does, then every key under the prefix, by name."""
    p = redis_prefix
    store = RedisStore(redis_client, prefix=p, decision_ttl=3600, lease_seconds=5)
    team = [Candidate("ann"), Candidate("bob")]
    leased: list[str] = []

    def compute(state: RoutingState) -> dict:
        leased.extend(redis_client.scan_iter(match=f"{p}:lease:*"))  # a lease lives only while deciding
        return {"owner": state.pick("inbound", Strategy.ROUND_ROBIN, ["ann", "bob"], team).rep_id}

    store.decide_once(KEY, compute)
    assert leased == [f"{p}:lease:salesforce:Lead:00Q5e00000AbCdE:2"]
    store.new_epoch(LEAD)
    store.schedule(TIMER, 100, {"o": "ann"})
    store.index_timers(added=[("ann", TIMER)])
    assert store.mark_once([(TIMER, 2, "remind:0:done")], ttl=60) == [True]
    store.pending_set().add("hubspot", ["101"], "webhook")
    store.pending_set().record_holder("hubspot", "host/boot/pid:[1]/7/99#batch", {"101": time.time() + 60})
    store.set_watermark("salesforce", "Lead", "w1")
    store.mark_polled("hubspot")
    store.note_written("hubspot", [KEY], ttl=60, held={"101": "ann"})
    assert store.acquire_lock("poll:salesforce", ttl=60)
    assert store.first_seen("hubspot", "evt-1", ttl=60)
    store.set_availability("bob", False, reason="ooo")

    assert sorted(redis_client.scan_iter(match=f"{p}:*")) == sorted([
        f"{p}:loads",
        f"{p}:pool:inbound",
        f"{p}:dec:salesforce:Lead:00Q5e00000AbCdE:2",
        f"{p}:epoch:salesforce:Lead:00Q5e00000AbCdE",
        f"{p}:log",
        f"{p}:outbox",
        f"{p}:timers",
        f"{p}:timers:payload",
        f"{p}:sla:rep:ann",
        f"{p}:sla:once:sla:salesforce:Lead:00Q5e00000AbCdE:2:remind:0:done",
        f"{p}:pending:hubspot",
        f"{p}:pending:hubspot:meta",
        f"{p}:pending:hubspot:holders",
        f"{p}:watermarks",
        f"{p}:polled:hubspot",
        f"{p}:written:salesforce:Lead:00Q5e00000AbCdE:2",
        f"{p}:open:hubspot",
        f"{p}:lock:poll:salesforce",
        f"{p}:seen:hubspot:evt-1",
        f"{p}:availability",
    ])
    assert redis_client.hkeys(f"{p}:watermarks") == ["salesforce:Lead"]
    assert store.clear() == 20
