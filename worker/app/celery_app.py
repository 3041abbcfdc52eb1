"""The Celery application: broker on Redis or RabbitMQ, JSON only, late acks, one queue per kind of work.

Separate queues (``ingest``, ``route``, ``notify``, ``sla``) keep a notification backlog
from delaying routing. Tasks are acknowledged after they finish and re-queued if the
worker dies, and every task is idempotent, so a killed worker loses nothing.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

import structlog
from celery import Celery
from celery.signals import setup_logging, task_prerun
from kombu import Exchange, Queue

from worker.app.broker import QUEUES, broker_url, configured_broker_url, sentinel_options, transport_options
from worker.config import config_path, load_config
from worker.observability.logs import configure_from_env
from worker.steps.pipeline import weighs_opportunities
from worker.steps.rates import RATES_EVERY, learning
from worker.store.connection import embedded_url


def _broker_url() -> str:
    """``LEADROUTE_BROKER_URL``, else ``REDIS_URL``'s broker, else the embedded Redis (started here)."""
    return configured_broker_url() or broker_url(embedded_url())


def make_app() -> Celery:
    """The app, configured from the environment (``LEADROUTE_BROKER_URL``, else ``REDIS_URL``; embedded
    Redis when neither is set)."""
    app = Celery("leadroute", include=["worker.app.tasks", "worker.app.lifecycle"])
    visibility = int(os.environ.get("LEADROUTE_VISIBILITY_TIMEOUT", "600"))
    url = _broker_url()
    app.conf.update(
        broker_url=url,
        broker_connection_retry_on_startup=True,
        worker_consumer="worker.app.consumer:PromptReconnectConsumer",  # reconnects within 0.25 s, not 2 s
        broker_transport_options=transport_options(url, visibility) | sentinel_options(),
        task_serializer="json",
        accept_content=["json"],
        result_serializer="json",
        task_ignore_result=True,
        task_acks_late=True,
        task_reject_on_worker_lost=True,
        worker_prefetch_multiplier=1,
        task_time_limit=300,
        task_soft_time_limit=240,
        task_default_queue="route",
        task_queues=[Queue(name, Exchange(name, type="direct"), routing_key=name) for name in QUEUES],
        task_default_exchange="route",
        task_default_routing_key="route",
        task_routes={
            "leadroute.poll": {"queue": "ingest", "routing_key": "ingest"},
            "leadroute.reconcile_orphans": {"queue": "ingest", "routing_key": "ingest"},
            "leadroute.reconcile_loads": {"queue": "ingest", "routing_key": "ingest"},
            "leadroute.ledger_flush": {"queue": "ingest", "routing_key": "ingest"},
            "leadroute.outcomes": {"queue": "ingest", "routing_key": "ingest"},
            "leadroute.rates_refresh": {"queue": "ingest", "routing_key": "ingest"},
            "leadroute.ledger_prune": {"queue": "ingest", "routing_key": "ingest"},
            "leadroute.pipeline_refresh": {"queue": "ingest", "routing_key": "ingest"},
            "leadroute.drain": {"queue": "route", "routing_key": "route"},
            "leadroute.reroute": {"queue": "route", "routing_key": "route"},
            "leadroute.poll_owned": {"queue": "route", "routing_key": "route"},  # it routes and writes owners
            "leadroute.notify": {"queue": "notify", "routing_key": "notify"},
            "leadroute.notify_many": {"queue": "notify", "routing_key": "notify"},
            "leadroute.sla_sweep": {"queue": "sla", "routing_key": "sla"},
            "leadroute.sla_notify": {"queue": "notify", "routing_key": "notify"},
        },
        worker_hijack_root_logger=False,
        beat_max_loop_interval=5,
        timezone="UTC",
    )
    return app


app = make_app()


def beat_schedule(settings: Any, crms: list[str], sweep_every: float | None,
                  rates_every: float | None = None, owned: Sequence[str] = (), pipeline: bool = False
                  ) -> dict[str, dict[str, Any]]:
    """The periodic tasks for a config: poll, drain, reconcile, read outcomes per CRM; the SLA sweep; the ledger's move;
    the learned rates' refresh when a pool is performance_weighted (``rates_every``); the owned poll of the CRMs in
    ``owned`` (hand-off triggers, rejections by status); the count of open opportunities when a pool weighs them
    (``pipeline``, every ``worker.pipeline_every``)."""
    schedule: dict[str, dict[str, Any]] = {}
    if rates_every:
        schedule["rates-refresh"] = {"task": "leadroute.rates_refresh", "schedule": rates_every}
    if pipeline and crms:
        schedule["pipeline-refresh"] = {"task": "leadroute.pipeline_refresh", "schedule": settings.pipeline_every}
    for crm in crms:
        schedule[f"poll-{crm}"] = {"task": "leadroute.poll", "schedule": settings.poll_every, "args": (crm,)}
        schedule[f"drain-{crm}"] = {"task": "leadroute.drain", "schedule": settings.drain_every, "args": (crm,)}
        schedule[f"reconcile-orphans-{crm}"] = {
            "task": "leadroute.reconcile_orphans",
            "schedule": settings.reconcile_orphans_every,
            "args": (crm,),
        }
        schedule[f"outcomes-{crm}"] = {"task": "leadroute.outcomes", "schedule": settings.outcomes_every, "args": (crm,)}
        if crm in owned:
            schedule[f"owned-{crm}"] = {"task": "leadroute.poll_owned", "schedule": settings.owned_poll_every, "args": (crm,)}
    if crms:
        schedule["reconcile-loads"] = {"task": "leadroute.reconcile_loads", "schedule": settings.reconcile_loads_every}
    if sweep_every:
        schedule["sla-sweep"] = {"task": "leadroute.sla_sweep", "schedule": sweep_every}
    schedule["ledger-flush"] = {"task": "leadroute.ledger_flush", "schedule": settings.ledger_flush_every}
    if settings.ledger_retention:
        schedule["ledger-prune"] = {"task": "leadroute.ledger_prune", "schedule": 86_400.0}
    return schedule


@app.on_after_finalize.connect
def _configure_from_routing_config(sender: Celery, **_: Any) -> None:
    """Worker and beat read the routing config at start-up: beat takes its schedule from it,
    and an invalid file stops either process with a message naming file and line."""
    config = load_config(config_path())
    sweep = config.sla.settings.sweep_every.total_seconds() if config.sla is not None else None
    rates = RATES_EVERY if learning(config) is not None else None  # performance_weighted pools learn on a schedule
    crms = config.model.connectors.enabled()
    owned = [crm for crm, settings in crms.items() if config.triggers or settings.rejection is not None]
    sender.conf.beat_schedule = beat_schedule(config.model.worker, list(crms), sweep, rates, owned,
                                              weighs_opportunities(config))


@setup_logging.connect
def _logging(**_: Any) -> None:
    """structlog for every process (JSON when not on a terminal), secrets redacted."""
    configure_from_env()


@task_prerun.connect
def _bind_task(task_id: str | None = None, task: Any = None, **_: Any) -> None:
    """Each task's log lines carry its own id, never a previous task's values."""
    structlog.contextvars.clear_contextvars()
    structlog.contextvars.bind_contextvars(task_id=task_id, task=getattr(task, "name", None))
