"""A worker process's life: warm up once in the prefork parent, build a fresh runtime in each child.

Celery imports this module with the tasks (the app's ``include``), before it sends ``worker_init``.
Nothing here touches SQL: the ledger is migrated (and the config's text saved) by a child's first
ledger task (:attr:`worker.app.runtime.Runtime.ledger`), off the routing path, so a restarted worker
consumes as soon as it is up whatever SQL is doing.
"""

from __future__ import annotations

from typing import Any

import structlog
from celery.signals import worker_init, worker_process_init

from worker.app.runtime import get_runtime, set_runtime, warm_up
from worker.config import config_path, load_config


@worker_init.connect
def _warm_up(**_: Any) -> None:
    """Before the pool forks: parse the config, import connectors and load calendars once for all children.

    The ledger is not opened or migrated here: importing Alembic and checking the schema held every
    restart before the worker consumed anything (a few tenths of a second, and a remote SQL server's
    round trips, up to a connect timeout when it is unreachable), though routing never needs SQL; a
    child's first ledger task migrates it."""
    warm_up(load_config(config_path()))


@worker_process_init.connect
def _fresh_runtime(**_: Any) -> None:
    """Prefork children must not share the parent's Redis or HTTP connections: each builds its
    own runtime and connectors now, before its first task (a failure here waits for that task)."""
    set_runtime(None)
    try:
        runtime = get_runtime()
        for crm in runtime.crms:
            runtime.connector(crm)
    except Exception as exc:  # the first task reports it again, with its context
        structlog.get_logger("leadroute.app").warning("runtime_not_ready", error=str(exc))
        set_runtime(None)
