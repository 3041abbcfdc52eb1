"""What follows a routing step: notifications, SLA timers, metrics. Kept apart so tasks stay thin."""

from __future__ import annotations

from typing import Any

import structlog

from connectors.base import CrmRecord
from worker import pipeline
from worker.runtime import Runtime

log = structlog.get_logger("leadroute.hooks")


def after_write(rt: Runtime, crm: str, record: CrmRecord, decision: dict[str, Any], handled: pipeline.Handled) -> None:
    """An owner was written for a lead: log it with the ingest-to-owner latency."""
    latency = pipeline.latency_since(handled.first_seen)
    log.info("owner_written", lead_id=record.id, crm=crm, owner=decision["owner"], rule=decision["rule"],
             latency_s=None if latency is None else round(latency, 3))


def after_reroute(rt: Runtime, crm: str, lead_id: str, result: pipeline.Rerouted) -> None:
    """A manual re-route was written: log it."""
    log.info("rerouted", lead_id=lead_id, crm=crm, owner=result.owner, previous=result.previous_owner)
