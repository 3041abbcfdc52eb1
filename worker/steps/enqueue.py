"""What the steps may hand to a queue, as a protocol: the steps never import the tasks.

The Celery wiring passes in :class:`worker.app.enqueue.CeleryEnqueuer`; tests pass a recorder.
"""

from __future__ import annotations

from typing import Any, Protocol


class Enqueuer(Protocol):
    """Work that follows a step and must not hold it up, each on its own queue."""

    def drain(self, crm: str) -> None:
        """Route what is pending for ``crm`` (route queue)."""

    def reroute(self, crm: str, lead_id: str, *, to_rep: str | None, pool: str | None, why: str,
                requested_by: str, epoch: int) -> None:
        """Re-route one lead by hand under routing epoch ``epoch`` (route queue)."""

    def notify_assigned(self, crm: str, obj: str, lead_id: str, epoch: int, lead: dict[str, Any] | None,
                        sla_deadline: str | None) -> None:
        """Tell a lead's new owner (notify queue)."""

    def notify_assigned_batch(self, crm: str, obj: str, items: list[dict[str, Any]]) -> None:
        """Tell the owners of a batch of leads, one task for the batch (notify queue)."""

    def sla_notice(self, notice: dict[str, Any]) -> None:
        """Send one SLA notice: reminder, escalation, reassignment or park alert (notify queue)."""

    def ledger_flush(self) -> None:
        """Move the ledger outbox to SQL now (ingest queue)."""
