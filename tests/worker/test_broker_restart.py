"""A real worker survives a restart of its Redis while it holds an unacknowledged task message.

Celery 5.7.0 exits here (its connection-loss handler closes a connection it has just cleared, with
``AttributeError("'NoneType' object has no attribute 'hostname'")``); 5.6 reconnects, hence the pin
in pyproject.toml. Deterministic: a task sent with a long countdown is held by the worker,
unacknowledged (tasks acknowledge late), the whole time; Redis (AOF on) is then restarted on the
same port.
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

import yaml
from celery import Celery

from tests.worker.conftest import routing_test_config
from worker.devtools.processes import Supervisor, node_name
from worker.store.connection import RedisServer, free_port, redis_server_binary

ROOT = Path(__file__).resolve().parents[2]


def test_a_worker_holding_an_unacknowledged_task_survives_a_redis_restart(tmp_path: Path, sandbox: Any) -> None:
    server = RedisServer(data_dir=tmp_path / "redis", port=free_port(), persistent=True,
                         binary=redis_server_binary(prefer_path=True), die_with_parent=True).start()
    config = tmp_path / "routing.yaml"
    config.write_text(yaml.safe_dump(routing_test_config()[0], sort_keys=False))
    env = {**os.environ, **sandbox.env(), "REDIS_URL": server.url, "LEADROUTE_CONFIG": str(config),
           "LEADROUTE_PREFIX": "survive", "DATABASE_URL": f"sqlite:///{tmp_path / 'ledger.sqlite3'}",
           "PYTHONPATH": os.environ.get("LEADROUTE_TEST_WORKER_PYTHONPATH", "") + str(ROOT)}
    processes = Supervisor(env, tmp_path, cwd=ROOT, stop_timeout=20)
    app = Celery("survive-test", broker=server.url, set_as_current=False)
    nodename = f"survive-{os.getpid()}@%h"
    try:
        processes.worker(concurrency=1, pool="prefork", nodename=nodename, loglevel="INFO",
                         heartbeat=False)  # the Procfile's flags
        processes.wait_ready("worker", timeout=60)
        app.send_task("leadroute.ledger_prune", queue="ingest", countdown=3600)
        inspect = app.control.inspect(destination=[node_name(nodename)], timeout=1)
        deadline = time.monotonic() + 20
        while not any((inspect.scheduled() or {}).values()):  # held by the worker, not acknowledged
            assert time.monotonic() < deadline, processes.logs()
        server.stop()
        server.start()
        processes.procs["worker"].is_ready = False
        processes.wait_ready("worker", timeout=30)  # answers a ping again: it reconnected instead of exiting
        assert processes.died() == [], processes.logs()
    finally:
        app.close()
        processes.stop()
        server.stop()
