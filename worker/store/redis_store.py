"""Shared state in Redis: :class:`RedisStore`, the one object the rest of the worker talks to.

Many Celery workers route at once; everything they share lives here, and every
read-modify-write two of them could race on is one Lua script (Redis 6.2 compatible:
EVALSHA, no FUNCTION; the scripts are in ``lua/``) or one MULTI transaction.

The store is split by concern; :class:`RedisStore` combines them:

* :mod:`.routing_state`: loads and pool rotations, the engine's
  :class:`~worker.routing.state.RoutingState` with exactly the semantics of
  :func:`~worker.routing.state.choose` (one round trip per pick), and batch claims.
* :mod:`.decisions`: idempotent decisions per (crm, object, lead id, epoch), leases,
  journaled claims, routing epochs, batch decisions in a few round trips.
* :mod:`.log`: the decision log (a capped stream) and its readers.
* :mod:`.outbox`: the ledger's outbox: events appended with what they describe, claimed by the
  ledger task under a lease and acknowledged once SQL has them.
* :mod:`.timers`: SLA timers in a sorted set (each due timer to exactly one caller; cost in
  proportion to what is due), each rep's open clocks, once-marks of SLA actions.
* :mod:`.crm_state`: watermarks, last polls, written markers, who holds each open lead.
* :mod:`.handoffs`: hand-off triggers' crossing state per lead, hand-offs in progress.
* :mod:`.locks`: locks with owner tokens, first-seen de-duplication.
* :mod:`.availability`: per-rep availability overrides.
* :mod:`.pipeline`: open opportunities per rep, cached from the CRM with the time they were read.
* :mod:`.marker`: the state marker (was the state lost?) and the writes of a rebuild.
* :mod:`.keys`: the name of every key, under a configurable prefix (``<prefix>:...``) so two
  configurations can share one Redis; for Redis Cluster use a hash-tagged prefix such as
  ``{leadroute}`` so each script's keys share a slot.

Memory is bounded: decisions, epochs, leases, locks and de-duplication marks expire; the
log is capped; what remains is live state (loads, rotation state per pool, open timers,
overrides, watermarks), which scales with the team and the open leads, not with history.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import redis

from worker.store.availability import Availability, AvailabilityStore
from worker.store.base import DAY
from worker.store.connection import DEFAULT_DATA_DIR, connect
from worker.store.crm_state import CrmStateStore
from worker.store.decisions import SCRIPT_CHUNK, Decided, DecisionBusy, DecisionState, DecisionStore
from worker.store.fairness import FairnessStore
from worker.store.handoffs import HandoffStore
from worker.store.locks import LockBusy, LockStore
from worker.store.log import LogEntry, LogStore
from worker.store.marker import RecoveryStore, StateMarker
from worker.store.outbox import OutboxEntry, OutboxStats, OutboxStore
from worker.store.pending import PendingSet
from worker.store.pipeline import PipelineStore
from worker.store.routing_state import CLAIM_CHUNK, Claim, DirectClaim, PoolClaim
from worker.store.timers import Timer, TimerStore

__all__ = [
    "CLAIM_CHUNK",
    "DAY",
    "SCRIPT_CHUNK",
    "Availability",
    "Claim",
    "Decided",
    "DecisionBusy",
    "DecisionState",
    "DirectClaim",
    "LockBusy",
    "LogEntry",
    "OutboxEntry",
    "OutboxStats",
    "PoolClaim",
    "RedisStore",
    "StateMarker",
    "Timer",
]


class RedisStore(FairnessStore, DecisionStore, LogStore, TimerStore, OutboxStore, CrmStateStore, LockStore, AvailabilityStore,
                 RecoveryStore, HandoffStore, PipelineStore):
    """All shared state of one leadroute configuration, under one key prefix.

    ``decision_ttl``: how long a decision (and its journal) is kept for idempotent
    retries and ``explain``; ``log_maxlen``: approximate cap of the decision-log stream;
    ``lease_seconds``: how long a worker may take to decide before another may take over;
    ``ledger_outbox``: append ledger events to the outbox (False only to measure routing without it).
    """

    def __init__(
        self,
        client: redis.Redis,
        prefix: str = "leadroute",
        *,
        decision_ttl: float = 7 * DAY,
        log_maxlen: int = 100_000,
        lease_seconds: float = 30.0,
        ledger_outbox: bool = True,
    ) -> None:
        super().__init__(client, prefix)
        self.decision_ttl_ms = int(decision_ttl * 1000)
        self.log_maxlen = int(log_maxlen)
        self.lease_ms = int(lease_seconds * 1000)
        self.ledger_outbox = bool(ledger_outbox)

    @classmethod
    def connect(
        cls,
        url: str | None = None,
        prefix: str = "leadroute",
        data_dir: Path = DEFAULT_DATA_DIR,
        **kwargs: Any,
    ) -> RedisStore:
        """A store on ``url``, else ``$REDIS_URL``, else the embedded server (see :func:`.connection.connect`)."""
        return cls(connect(url, data_dir), prefix, **kwargs)

    # ------------------------------------------------------------------ what others build on the store's Redis

    def pending_set(self) -> PendingSet:
        """The pending set of CRM record ids waiting to be routed, under this store's prefix."""
        return PendingSet(self.client, self.prefix)

    def for_connectors(self) -> dict[str, Any]:
        """The Redis connection and key prefix for the CRM connectors' rate limiters and caches.

        ``create_connector(crm, settings, **store.for_connectors())``; the connectors keep
        their keys under the roots :data:`worker.store.keys.CONNECTOR_ROOTS` names.
        """
        return {"redis_client": self.client, "prefix": self.prefix}

    def shadow(self, tag: str, *, log_maxlen: int = 10_000) -> RedisStore:
        """A second store on the same Redis under ``<prefix>:shadow:<tag>``: shadow mode's own routing state
        (loads, rotations, decisions, open leads) for a candidate config, so it never touches the live keys.

        It appends nothing to the ledger's outbox (the shadow step appends its events to the live
        store's), and keeps a short decision log of its own.
        """
        if not tag or any(ch.isspace() or ch == ":" for ch in tag):
            raise ValueError(f"invalid shadow tag {tag!r}")
        shadow = RedisStore(self.client, f"{self.prefix}:shadow:{tag}", decision_ttl=self.decision_ttl_ms / 1000,
                            log_maxlen=log_maxlen, lease_seconds=self.lease_ms / 1000, ledger_outbox=False)
        if self._lease_token is not None and self._lease_gone is not None:
            shadow.name_leases(self._lease_token, self._lease_gone)  # its decision leases named like the live ones
        return shadow

    def ping(self) -> bool:
        """True if Redis answers (``/healthz``); raises if it cannot be reached."""
        return bool(self.client.ping())
