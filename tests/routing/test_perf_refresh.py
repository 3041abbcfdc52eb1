"""The learned rates refresh from the ledger into the store on a beat schedule, versioned; routing reads the latest."""

from __future__ import annotations

import textwrap
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from worker.app.celery_app import beat_schedule
from worker.config import parse_config
from worker.config.schema import ConfigError
from worker.ledger.events import LedgerEvent
from worker.ledger.ledger import Ledger
from worker.routing.engine import Router
from worker.routing.state import InMemoryState
from worker.steps import rates
from worker.store.redis_store import RedisStore

NOW = datetime(2026, 6, 1, tzinfo=UTC)
CONFIG = textwrap.dedent(
    """\
    version: 1
    reps: [{id: ana}, {id: lee}]
    pools:
      inside:
        members: [ana, lee]
        strategy: performance_weighted
        performance: {by: [segment, source], window: 30d, warmup: 2}
    queues: {triage: {salesforce: "00G1"}}
    rules: [{name: inbound, assign: {pool: inside}}]
    fallback: {queue: triage}
    """
)


def ev(kind: str, lead: str, at: datetime, **fields: object) -> LedgerEvent:
    return LedgerEvent(event_id=f"{kind}/salesforce/Lead/{lead}/0", kind=kind, crm="salesforce", object="Lead",
                       lead_id=lead, at=at, epoch=0, **fields)  # type: ignore[arg-type]


@pytest.fixture
def ledger(tmp_path: Path) -> Ledger:
    opened = Ledger.open(f"sqlite:///{tmp_path / 'ledger.sqlite3'}")
    batch = []
    for i, (owner, segment, source, won) in enumerate([
        ("ana", "SMB", "Web", True), ("ana", "smb", "web", False), ("ana", "smb", "web", True),
        ("lee", "smb", "web", False), ("lee", "smb", "web", False), ("lee", "ent", "event", True),
        ("queue:triage", "smb", "web", False),  # a queue learns nothing
    ]):
        at = NOW - timedelta(days=2, hours=i)
        batch.append(ev("decision", f"L{i}", at, owner=owner, source=source, data={"facts": {"segment": segment}}))
        if won:
            batch.append(ev("outcome", f"L{i}", at + timedelta(days=1), status="converted"))
    batch.append(ev("decision", "old", NOW - timedelta(days=40), owner="ana", source="web", data={"facts": {"segment": "smb"}}))
    opened.write(batch)
    return opened


def test_the_table_counts_first_routings_and_conversions_in_the_window(ledger: Ledger) -> None:
    table = rates.build(ledger, parse_config(CONFIG), NOW)
    assert table is not None and table.by == ("segment", "source") and table.window_days == 30
    assert dict(table.counts) == {("smb", "web"): {"ana": (2, 3), "lee": (0, 2)}, ("ent", "event"): {"lee": (1, 1)}}


def test_refresh_saves_a_new_version_only_when_it_changed(ledger: Ledger, redis_client, redis_prefix) -> None:
    store = RedisStore(redis_client, prefix=redis_prefix)
    config = parse_config(CONFIG)
    first = rates.refresh(store, ledger, config, NOW)
    assert first is not None and store.rates_version() == first.version
    assert rates.refresh(store, ledger, config, NOW).version == first.version  # type: ignore[union-attr]
    ledger.write([ev("outcome", "L1", NOW, status="won")])
    second = rates.refresh(store, ledger, config, NOW)
    assert second is not None and second.version != first.version and store.rates_version() == second.version


def test_routing_reads_the_latest_table_and_names_its_version(ledger: Ledger, redis_client, redis_prefix) -> None:
    store = RedisStore(redis_client, prefix=redis_prefix)
    config = parse_config(CONFIG)
    rates._cache.table, rates._cache.checked = None, -rates.CHECK_EVERY  # this process's cache, as a new worker's
    ticks = iter([0.0, 1.0, 100.0])
    assert rates.current(store, config, clock=lambda: next(ticks)) is None  # before the first refresh
    table = rates.refresh(store, ledger, config, NOW)
    assert rates.current(store, config, clock=lambda: next(ticks)) is None  # kept for CHECK_EVERY seconds
    latest = rates.current(store, config, clock=lambda: next(ticks))
    assert latest == table and latest is not None
    decision = Router(config, InMemoryState(), rates=latest).route({"id": "x", "lead_source": "Web"}, at=NOW)
    assert f"rates {latest.version}, segment=-, source=web" in decision.reason


def test_beat_refreshes_the_rates_only_when_a_pool_learns() -> None:
    config = parse_config(CONFIG)
    schedule = beat_schedule(config.model.worker, [], None, rates.RATES_EVERY if rates.learning(config) else None)
    assert schedule["rates-refresh"] == {"task": "leadroute.rates_refresh", "schedule": rates.RATES_EVERY}
    plain = parse_config(CONFIG.replace("strategy: performance_weighted", "strategy: round_robin")
                         .replace("    performance: {by: [segment, source], window: 30d, warmup: 2}\n", ""))
    assert rates.learning(plain) is None
    assert "rates-refresh" not in beat_schedule(plain.model.worker, [], None, None)


def test_learning_pools_must_share_by_and_window() -> None:
    text = CONFIG.replace("queues:", "  second: {members: [ana], strategy: performance_weighted}\nqueues:")
    with pytest.raises(ConfigError) as exc:
        parse_config(text)
    assert ("pools.second.performance: performance_weighted pools learn from one rate table: give 'second' the same by "
            "and window as 'inside' (segment, source; 30 days)") in str(exc.value)
