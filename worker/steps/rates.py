"""The learned rate table of ``performance_weighted`` pools: built from the ledger, kept in the store.

**Refresh** (beat, ``leadroute.rates_refresh`` every :data:`RATES_EVERY` seconds): every first
routing to a rep within the pools' ``window`` is one observation, keyed by the pools' ``by``
fields (``data.facts`` of the decision event: segment and territory always, other lead fields when
the rules read them; ``source`` is the event's source column), converted when an ``outcome``
of converted or further was recorded for the lead. The table is versioned by its content and
saved only when it changed.

**Use** (each routed batch): :func:`current` hands the route step the latest table, re-reading
the store at most every :data:`CHECK_EVERY` seconds and the table only when its version
changed. The engine gets it as data; the decision's reason names its version.

All performance_weighted pools learn from one table: ``check`` requires them to agree on ``by``
and ``window``.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator, Sequence
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from worker.routing.perf import RateTable
from worker.routing.state import Strategy

if TYPE_CHECKING:
    from sqlalchemy import Engine

    from worker.config import RoutingConfig
    from worker.ledger.ledger import Ledger
    from worker.store.redis_store import RedisStore

RATES_EVERY = 3600.0  # seconds between refreshes from the ledger
CHECK_EVERY = 30.0  # seconds a worker keeps its table before asking the store for a newer version
CONVERTED = ("converted", "opportunity", "won", "lost")


def learning(config: RoutingConfig) -> tuple[tuple[str, ...], float] | None:
    """The ``by`` fields and window (seconds) the config's performance_weighted pools learn with, or None."""
    for pool in config.pools.values():
        if pool.strategy is Strategy.PERFORMANCE_WEIGHTED:
            perf = pool.performance
            if perf is None:
                return ("segment",), 90 * 86_400.0
            return tuple(perf.by), perf.window
    return None


def observations(engine: Engine, by: Sequence[str], since: datetime, until: datetime
                 ) -> Iterator[tuple[str, tuple[str, ...], bool]]:
    """(rep, key, converted) for every first routing to a rep in ``[since, until)``."""
    # SQLAlchemy loads with the ledger's refresh only, never on the routing path
    from sqlalchemy import or_, select

    from worker.ledger.schema import events  # the table, with SQLAlchemy: for the refresh only

    key = (events.c.crm, events.c.object, events.c.lead_id)
    converted = (select(*key).distinct()
                 .where(events.c.kind == "outcome", events.c.status.in_(CONVERTED), events.c.at >= since))
    routed = (select(*key, events.c.owner, events.c.source, events.c.data)
              .where(events.c.kind == "decision", or_(events.c.epoch.is_(None), events.c.epoch == 0),
                     events.c.at >= since, events.c.at < until, events.c.owner.is_not(None),
                     ~events.c.owner.startswith("queue:")))
    with engine.connect() as connection:
        won = {tuple(row) for row in connection.execute(converted)}
        for row in connection.execute(routed):
            facts = (row.data or {}).get("facts") or {}
            values = tuple(_text(row.source if name == "source" else facts.get(name)) for name in by)
            yield row.owner, values, (row.crm, row.object, row.lead_id) in won


def _text(value: Any) -> str:
    return "" if value is None else str(value).strip().lower()


def build(ledger: Ledger, config: RoutingConfig, now: datetime | None = None) -> RateTable | None:
    """The rate table the config's performance_weighted pools learn from, or None when it has none."""
    found = learning(config)
    if found is None:
        return None
    by, window = found
    until = now or datetime.now(UTC)
    since = until - timedelta(seconds=window)
    return RateTable.build(by, observations(ledger.engine, by, since, until), until.isoformat(), window / 86_400)


def refresh(store: RedisStore, ledger: Ledger, config: RoutingConfig, now: datetime | None = None) -> RateTable | None:
    """Build the table and save it when its version changed; the table (None: nothing learns)."""
    table = build(ledger, config, now)
    if table is not None and store.rates_version() != table.version:
        store.save_rates(table)
    return table


class RateCache:
    """The table a process routes with, and when it last asked the store for a newer version.

    The live route and SLA steps share the module's :data:`_cache`; shadow mode keeps its own, so that
    its checks never move the live check's timer (and never change which table a live decision uses).
    """

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self.lock = threading.Lock()
        self.table: RateTable | None = None
        self.checked = -CHECK_EVERY
        self.clock = clock


_cache = RateCache()


def current(store: RedisStore, config: RoutingConfig, clock: Callable[[], float] | None = None,
            cache: RateCache | None = None) -> RateTable | None:
    """The latest table for routing (None when no pool learns, or before the first refresh).

    ``cache`` is the live one unless given (shadow mode passes its own).
    """
    if learning(config) is None:
        return None
    cache = cache or _cache
    with cache.lock:
        now = (clock or cache.clock)()
        if now - cache.checked >= CHECK_EVERY:
            cache.checked = now
            version = store.rates_version()
            if version is None:
                cache.table = None
            elif cache.table is None or cache.table.version != version:
                cache.table = store.rate_table()
        return cache.table
