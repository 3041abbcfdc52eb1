"""The ``web`` process: the webhook receivers, ``/healthz`` and ``/metrics``, wired to the store and Celery."""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from typing import Any

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from worker.app.celery_app import app as celery_app
from worker.app.runtime import get_runtime
from worker.steps import route
from worker.steps.ledger import ledger_health, ledger_max_age
from worker.web.receivers import WebSettings, create_app
from worker.web.ui.app import health_from, mount_ui
from worker.web.ui.auth import UiSettings

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

    app = create_app(
        enqueue=enqueue,
        first_seen=lambda namespace, item: rt.store.first_seen(namespace, item, SEEN_TTL),
        forget=rt.store.forget_seen,
        health_checks={"redis": rt.store.ping, "broker": broker_ok},
        settings=WebSettings.from_env(),
    )
    max_age = ledger_max_age(rt.config)
    app = with_ledger_health(app, lambda: ledger_health(rt.store, max_age))
    # the dashboard (off unless LEADROUTE_UI_USERS or LEADROUTE_UI_TRUSTED_HEADER is set; docs/dashboard.md)
    mount_ui(app, rt, UiSettings.from_env(), health=health_from(app), ledger_url=os.environ.get("DATABASE_URL") or None)
    return app


def with_ledger_health(app: Starlette, probe: Callable[[], dict[str, Any]]) -> Starlette:
    """``/healthz`` also reports the ledger: its outbox depth and the age of its oldest event.

    A ledger behind (SQL down, no ledger task running) makes the status ``degraded`` but keeps
    200: the web process still takes webhooks and nothing is lost, the outbox holds the events;
    a monitor alerts on it (or on ``leadroute_ledger_outbox_oldest_seconds``). Redis or the
    broker down still answers 503.
    """
    found = [i for i, r in enumerate(app.router.routes) if isinstance(r, Route) and r.path == "/healthz"]
    if not found:
        raise ValueError("the web app has no /healthz route")
    index = found[0]
    inner = app.router.routes[index].endpoint  # type: ignore[attr-defined]

    async def healthz(request: Request) -> Response:
        response = await inner(request)
        body = json.loads(bytes(response.body))
        try:
            ledger = await run_in_threadpool(probe)
        except Exception as exc:  # Redis trouble shows in its own check; say the ledger is unknown
            ledger = {"status": "unknown", "error": f"{type(exc).__name__}: {exc}"[:300]}
        body["ledger"] = ledger
        if body.get("status") == "ok" and ledger.get("status") != "ok":
            body["status"] = "degraded"
        return JSONResponse(body, status_code=response.status_code)

    app.router.routes[index] = Route("/healthz", healthz, methods=["GET"])
    return app
