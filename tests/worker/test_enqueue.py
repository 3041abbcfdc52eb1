"""The Celery enqueuer puts each follow-up on its own queue as the task that handles it."""

from __future__ import annotations

import base64
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import redis

from worker.app.celery_app import make_app
from worker.app.enqueue import CeleryEnqueuer

ROOT = Path(__file__).resolve().parents[2]


def queued(client: redis.Redis, queue: str) -> list[tuple[str, Any]]:
    """(task name, args) of each message waiting on a queue of the Redis broker."""
    out = []
    for raw in reversed(client.lrange(queue, 0, -1)):
        message = json.loads(raw)
        args, kwargs, _ = json.loads(base64.b64decode(message["body"]))
        out.append((message["headers"]["task"], [*args, *sorted(kwargs.items())]))
    return out


def test_each_follow_up_goes_to_its_queue_as_its_task(
    redis_url: str, redis_client: redis.Redis, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("REDIS_URL", redis_url)
    app = make_app()
    enqueue = CeleryEnqueuer(app)
    enqueue.drain("hubspot")
    enqueue.reroute("salesforce", "00Q1", to_rep="lee", pool=None, why="asked", requested_by="ops", epoch=2)
    enqueue.notify_assigned("salesforce", "Lead", "00Q1", 2, None, None)
    enqueue.notify_assigned_batch("hubspot", "contacts", [{"lead_id": "7", "epoch": 0}])
    enqueue.sla_notice({"kind": "reminder", "to": "ana"})
    enqueue.ledger_flush()
    app.close()
    assert queued(redis_client, "route") == [
        ("leadroute.drain", ["hubspot"]),
        ("leadroute.reroute", ["salesforce", "00Q1", ("epoch", 2), ("pool", None), ("requested_by", "ops"),
                               ("to_rep", "lee"), ("why", "asked")]),
    ]
    assert queued(redis_client, "notify") == [
        ("leadroute.notify", ["salesforce", "Lead", "00Q1", 2, ("lead", None), ("sla_deadline", None)]),
        ("leadroute.notify_many", ["hubspot", "contacts", [{"lead_id": "7", "epoch": 0}]]),
        ("leadroute.sla_notify", [{"kind": "reminder", "to": "ana"}]),
    ]
    assert queued(redis_client, "ingest") == [("leadroute.ledger_flush", [])]


def test_building_a_runtime_does_not_resolve_the_broker(tmp_path: Path) -> None:
    """Without REDIS_URL the broker is the embedded Redis: only sending a task may start it."""
    program = ("import sys; from worker.app.runtime import Runtime; from worker.app.enqueue import CeleryEnqueuer; "
               "CeleryEnqueuer(); print('worker.app.celery_app' in sys.modules)")
    env = {k: v for k, v in os.environ.items() if k != "REDIS_URL"} | {"PYTHONPATH": str(ROOT)}
    done = subprocess.run([sys.executable, "-c", program], cwd=tmp_path, env=env, capture_output=True, text=True,
                          timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "False"
    assert not (tmp_path / "var").exists()


def test_beat_schedules_every_periodic_task_from_the_config() -> None:
    from tests.worker.conftest import routing_test_config
    from worker.app.celery_app import beat_schedule

    _, config = routing_test_config()
    worker = config.model.worker
    schedule = beat_schedule(worker, ["salesforce", "hubspot"], 30.0)
    assert {name: (entry["task"], entry["schedule"], entry.get("args", ())) for name, entry in schedule.items()} == {
        **{f"{kind}-{crm}": (f"leadroute.{task}", every, (crm,))
           for crm in ("salesforce", "hubspot")
           for kind, task, every in (("poll", "poll", worker.poll_every), ("drain", "drain", worker.drain_every),
                                     ("reconcile-orphans", "reconcile_orphans", worker.reconcile_orphans_every),
                                     ("outcomes", "outcomes", worker.outcomes_every))},
        "reconcile-loads": ("leadroute.reconcile_loads", worker.reconcile_loads_every, ()),
        "sla-sweep": ("leadroute.sla_sweep", 30.0, ()),
        "ledger-flush": ("leadroute.ledger_flush", worker.ledger_flush_every, ()),
    }
    assert worker.outcomes_every == 3600.0 and worker.outcomes_lookback == 180 * 86_400.0
    assert worker.ledger_retention is None  # no retention limit by default: the ledger keeps everything
    kept_two_years = beat_schedule(worker.model_copy(update={"ledger_retention": 730 * 86_400.0}), [], None)
    assert kept_two_years["ledger-prune"] == {"task": "leadroute.ledger_prune", "schedule": 86_400.0}
