"""The Celery side of :class:`worker.steps.enqueue.Enqueuer`: each call sends one task by name.

Tasks are sent by their registered names, so the routes in :mod:`worker.app.celery_app` put
each on its queue and nothing here imports the task functions.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from celery import Celery


class CeleryEnqueuer:
    """Sends the steps' follow-up work as Celery tasks."""

    def __init__(self, app: Celery | None = None) -> None:
        self._app = app

    @property
    def app(self) -> Celery:
        """The Celery app, imported on first send: importing it resolves the broker, which without
        ``REDIS_URL`` starts the embedded Redis, and a runtime that never enqueues must not."""
        if self._app is None:
            from worker.app.celery_app import app  # resolves the broker: see above

            self._app = app
        return self._app

    def drain(self, crm: str) -> None:
        """Route what is pending for ``crm``."""
        self.app.send_task("leadroute.drain", args=(crm,))

    def reroute(self, crm: str, lead_id: str, *, to_rep: str | None, pool: str | None, why: str,
                requested_by: str, epoch: int) -> None:
        """A manual re-route, pinned to one routing epoch so its retries make one decision."""
        self.app.send_task("leadroute.reroute", args=(crm, lead_id), kwargs={
            "to_rep": to_rep, "pool": pool, "why": why, "requested_by": requested_by, "epoch": epoch})

    def notify_assigned(self, crm: str, obj: str, lead_id: str, epoch: int, lead: dict[str, Any] | None,
                        sla_deadline: str | None) -> None:
        """Tell a lead's new owner."""
        self.app.send_task("leadroute.notify", args=(crm, obj, lead_id, epoch),
                           kwargs={"lead": lead, "sla_deadline": sla_deadline})

    def notify_assigned_batch(self, crm: str, obj: str, items: list[dict[str, Any]]) -> None:
        """Tell the owners of a batch of leads in one task."""
        self.app.send_task("leadroute.notify_many", args=(crm, obj, items))

    def sla_notice(self, notice: dict[str, Any]) -> None:
        """Send one SLA notice."""
        self.app.send_task("leadroute.sla_notify", args=(notice,))

    def ledger_flush(self) -> None:
        """Move the ledger outbox to SQL."""
        self.app.send_task("leadroute.ledger_flush")
