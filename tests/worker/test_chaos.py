"""A test-sized chaos run (``bench/chaos.py``) on each broker: kill -9 of the worker, CRM faults, a Redis
restart and a ``FLUSHALL``, against real processes, the sandbox CRM and a throwaway Redis with AOF.

Marked ``chaos``; part of the default run. Sizes are small and the CRM slowed and batches cut so
the faults land while leads are being routed; nothing waits a fixed time.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]


def bench_chaos() -> ModuleType:
    """``bench/chaos.py`` as a module (bench/ is a folder of scripts, not a package)."""
    spec = importlib.util.spec_from_file_location("bench_chaos", ROOT / "bench" / "chaos.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["bench_chaos"] = module
    spec.loader.exec_module(module)
    return module


# The FLUSHALL runs on RabbitMQ: on the Redis broker it also wipes Celery's queues and bindings, so the
# worker and beat must be restarted after it (bench/chaos.py does), which would double this test's time.
FAULTS = {"rabbitmq": ["kill", "crm_fault", "redis_restart", "flush"], "redis": ["kill", "crm_fault", "redis_restart"]}


@pytest.mark.chaos
@pytest.mark.parametrize("broker", ["redis", "rabbitmq"])
def test_through_a_kill_crm_faults_a_redis_restart_and_a_flush_nothing_is_lost_or_assigned_twice(
    broker: str, sandbox: Any, admin: Any, tmp_path: Path
) -> None:
    chaos = bench_chaos()
    # a long lease: the dead worker's batches are taken up because its processes are seen gone, not because it ran out
    settings = chaos.ChaosSettings(salesforce=100, hubspot=40, broker=broker, crm_fault_seconds=2.0, lease=30.0,
                                   crm_latency_ms=150, batch=10, wave=10, timeout=240,
                                   flush_at=0.9 if "flush" in FAULTS[broker] else None)
    result = chaos.run(settings, sandbox, tmp_path, log=print)
    print("\n".join(result.lines()))

    assert [f.kind for f in result.faults] == FAULTS[broker]
    assert result.routed == result.leads and result.routed_all_s is not None
    assert result.lost == 0
    assert result.double_assigned == 0 and result.owner_writes >= result.leads
    assert result.load_mismatches == {}
    assert result.unexpected_exits == 0
    kill = result.faults[0]
    assert kill.held == 0 or (kill.held_routed_s is not None and kill.held_routed_s < settings.lease)
    if "flush" in FAULTS[broker]:
        assert "state rebuilt" in result.faults[-1].note  # the worker found its state gone and rebuilt it
