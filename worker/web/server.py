"""The ``web`` process: the webhook receivers, ``/healthz`` and ``/metrics``, wired to the store and Celery."""

from __future__ import annotations

from starlette.applications import Starlette

from worker.app.celery_app import app as celery_app
from worker.app.runtime import get_runtime
from worker.steps import route
from worker.web.receivers import WebSettings, create_app

SEEN_TTL = 86_400.0


def build_app() -> Starlette:
    """Webhook events go on the pending set and wake a drain; nothing else happens in the request."""
    rt = get_runtime()

    def enqueue(crm: str, record_ids: list[str], source: str) -> None:
        if route.enqueue(rt, crm, record_ids, source):
            rt.enqueue.drain(crm)

    def broker_ok() -> bool:
        with celery_app.connection_for_write() as conn:
            conn.ensure_connection(max_retries=1)
        return True

    return create_app(
        enqueue=enqueue,
        first_seen=lambda namespace, item: rt.store.first_seen(namespace, item, SEEN_TTL),
        forget=rt.store.forget_seen,
        health_checks={"redis": rt.store.ping, "broker": broker_ok},
        settings=WebSettings.from_env(),
    )
