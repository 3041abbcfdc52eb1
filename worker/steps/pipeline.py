"""Pipeline load from the CRM (``least_loaded`` pools with ``load: {opportunities: ...}``): refresh and use.

**Refresh** (beat, ``leadroute.pipeline_refresh`` every ``worker.pipeline_every``): per enabled CRM,
one batched read of every open opportunity (deal) by owner (``Connector.open_pipeline``), the CRM
owner ids mapped to rep ids (owners who are no configured rep are dropped), saved in the store with
the time read (and published as ``leadroute_pipeline_read_timestamp_seconds``). A CRM that fails keeps
its previous counts, which grow stale (``leadroute_pipeline_refresh_failures_total`` counts it):
routing goes on.

**Use** (each routed batch): :func:`current` reads the cached counts in one round trip and hands
them to the engine as a :class:`~worker.routing.pipeline.PipelineLoad` (data, no I/O in the engine).
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

import structlog

from connectors.base import ConnectorError
from worker.config import RoutingConfig
from worker.observability import metrics
from worker.routing.pipeline import PipelineLoad

if TYPE_CHECKING:  # the runtime is built by the Celery wiring, which imports the steps
    from worker.app.runtime import Runtime
    from worker.store.redis_store import RedisStore

log = structlog.get_logger("leadroute.pipeline_load")


def weighs_opportunities(config: RoutingConfig) -> bool:
    """Whether any pool counts CRM opportunities in its load (else nothing is read or refreshed)."""
    return any(p.load is not None and p.load.opportunities > 0 for p in config.pools.values())


def refresh(rt: Runtime, now: float | None = None) -> dict[str, int]:
    """Count open opportunities per rep in each enabled CRM and cache them; reps counted per CRM.

    A CRM whose read fails is logged and skipped (its earlier counts stay, and age)."""
    if not weighs_opportunities(rt.config):
        return {}
    done: dict[str, int] = {}
    for crm in rt.crms:
        try:
            by_owner = rt.connector(crm).open_pipeline()
        except ConnectorError as exc:
            log.warning("pipeline_refresh_failed", crm=crm, error=str(exc)[:300])
            metrics.set_pipeline_read(crm, None)
            continue
        counts: dict[str, int] = {}
        for owner, n in by_owner.items():
            rep = rt.config.owner_rep(owner)
            if rep is not None:
                counts[rep] = counts.get(rep, 0) + int(n)
        read_at = time.time() if now is None else now
        rt.store.save_pipeline(crm, counts, read_at)
        metrics.set_pipeline_read(crm, read_at)
        done[crm] = len(counts)
    return done


def current(store: RedisStore, config: RoutingConfig) -> PipelineLoad | None:
    """The cached counts for routing (None when no pool weighs opportunities)."""
    if not weighs_opportunities(config):
        return None
    crms = list(config.model.connectors.enabled())
    return PipelineLoad(store.pipeline_counts(crms), config.model.worker.pipeline_max_age)
