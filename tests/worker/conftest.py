"""A running stack for worker tests: the sandbox CRM, a real Redis, the demo config pointed at both.

The demo config's working hours and dated absences are taken out, so every rep is available
whenever the suite runs; a test whose subject is availability puts its own back.
"""

from __future__ import annotations

import copy
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import redis
import yaml

from worker.app.runtime import Runtime
from worker.config import RoutingConfig, parse_config
from worker.store.pending import PendingSet
from worker.store.redis_store import RedisStore

DEMO_CONFIG = Path("config/routing.yaml")


class RecordingEnqueuer:
    """An :class:`~worker.steps.enqueue.Enqueuer` that keeps what the steps hand to the queues."""

    def __init__(self) -> None:
        self.drains: list[str] = []
        self.reroutes: list[dict[str, Any]] = []
        self.assigned: list[dict[str, Any]] = []
        self.assigned_batches: list[tuple[str, str, list[dict[str, Any]]]] = []
        self.sla_notices: list[dict[str, Any]] = []
        self.ledger_flushes = 0

    def drain(self, crm: str) -> None:
        self.drains.append(crm)

    def reroute(self, crm: str, lead_id: str, **request: Any) -> None:
        self.reroutes.append({"crm": crm, "lead_id": lead_id, **request})

    def notify_assigned(self, crm: str, obj: str, lead_id: str, epoch: int, lead: dict[str, Any] | None,
                        sla_deadline: str | None) -> None:
        self.assigned.append({"crm": crm, "obj": obj, "lead_id": lead_id, "epoch": epoch, "sla_deadline": sla_deadline})

    def notify_assigned_batch(self, crm: str, obj: str, items: list[dict[str, Any]]) -> None:
        self.assigned_batches.append((crm, obj, items))

    def sla_notice(self, notice: dict[str, Any]) -> None:
        self.sla_notices.append(notice)

    def ledger_flush(self) -> None:
        self.ledger_flushes += 1

    def assigned_items(self) -> dict[str, dict[str, Any]]:
        """Every lead a notify-batch task was queued for, by lead id."""
        return {item["lead_id"]: item for _, _, items in self.assigned_batches for item in items}
FAST_RETRY = {"attempts": 8, "initial_wait": 0.01, "max_wait": 1.0, "max_total": 30, "lock_attempts": 3}


def without_clock_dependence(data: dict[str, Any]) -> dict[str, Any]:
    """The config with no working hours and no dated absences: who is available never depends on when."""
    data.pop("hours", None)
    for rep in data["reps"]:
        rep.pop("hours", None)
        rep.pop("out_of_office", None)
    return data


def routing_test_config(overrides: dict[str, Any] | None = None) -> tuple[dict[str, Any], RoutingConfig]:
    """The demo config with quick retries and generous client-side rate limits (the sandbox keeps its own),
    every rep available at any date and hour."""
    data = without_clock_dependence(copy.deepcopy(yaml.safe_load(DEMO_CONFIG.read_text())))
    sf, hs = data["connectors"]["salesforce"], data["connectors"]["hubspot"]
    sf["retry"] = hs["retry"] = FAST_RETRY
    sf["rate_limit"] = {"requests": 2000, "per_seconds": 1, "burst": 200}
    hs["rate_limit"] = {"requests": 2000, "per_seconds": 10, "burst": 50}
    hs["search_rate_limit"] = {"requests": 200, "per_seconds": 1, "burst": 20}
    for key, value in (overrides or {}).items():
        data[key] = value
    return data, parse_config(yaml.safe_dump(data, sort_keys=False), "test-routing.yaml")


@pytest.fixture
def make_runtime(
    sandbox: Any, admin: Any, redis_client: redis.Redis, redis_prefix: str, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Callable[..., Runtime]]:
    for name, value in sandbox.env().items():
        monkeypatch.setenv(name, value)
    made: list[Runtime] = []

    def make(config: RoutingConfig | None = None) -> Runtime:
        config = config or routing_test_config()[1]
        store = RedisStore(redis_client, prefix=redis_prefix)
        rt = Runtime(config, store, PendingSet(redis_client, redis_prefix), enqueue=RecordingEnqueuer())
        made.append(rt)
        return rt

    yield make
    for rt in made:
        rt.close()


@pytest.fixture
def other_process() -> Iterator[subprocess.Popen[bytes]]:
    """A process of its own that does nothing (a drain's, in these tests): kill it to make it die; reaped after."""
    proc = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)"])
    yield proc
    proc.kill()
    proc.wait()
