"""A worker process's life: warm up and migrate the ledger once in the prefork parent, build a fresh runtime in each child.

Celery imports this module with the tasks (the app's ``include``), before it sends ``worker_init``.
"""

from __future__ import annotations

from typing import Any

import structlog
from celery.signals import worker_init, worker_process_init

from worker.app.runtime import get_runtime, migrate_ledger, set_runtime, warm_up
from worker.config import config_path, load_config


@worker_init.connect
def _warm_up(**_: Any) -> None:
    """Before the pool forks: parse the config, import connectors and load calendars once for all children,
    and migrate the ledger's database (each child's first ledger task then finds it current)."""
    config = load_config(config_path())
    warm_up(config)
    migrate_ledger(config)


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
