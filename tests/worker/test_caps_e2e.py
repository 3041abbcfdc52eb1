"""A daily cap reached under 8 concurrent worker processes, exactly (issue 17).

Leads wait in the sandbox Salesforce's intake queue; 8 OS processes, each its own runtime on the
shared Redis, drain the pending set at once in small batches (the worker's route step: fetch,
decide in the store, write owners back). Each of the two capped reps ends with exactly their
daily cap of leads, in Redis and in the CRM, and every lead past it went to the fallback queue
with ``daily_cap`` in its decision.

The children route at a fixed moment (tomorrow noon in the reps' time zone, time-machine), so the
test never straddles a midnight whatever the time of day it runs.
"""

from __future__ import annotations

import os
from collections import Counter
from datetime import UTC, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest
import yaml

from tests.racing import race
from tests.worker.conftest import routing_test_config
from tests.worker.test_pipeline import INTAKE_QUEUE
from worker.devtools.synthetic import salesforce_lead, synthetic_leads
from worker.domain.leads import LeadRef
from worker.steps import route

pytestmark = pytest.mark.timeout(240)

PROCESSES = 8
DAILY = 5
LEADS = 40
ZONE = "America/New_York"


def capped_config() -> dict[str, Any]:
    data, _ = routing_test_config({
        "pools": {"capped": {"members": ["tom", "kim"], "strategy": "round_robin", "caps": {"daily": DAILY}}},
        "rules": [{"name": "everyone", "assign": {"pool": "capped"}}],
        "fallback": {"queue": "triage"},
    })
    data["timezone"] = ZONE
    for rep in data["reps"]:
        rep.pop("timezone", None)
        rep.pop("backup", None)
    return data


def _drain(barrier: Any, index: int, env: dict[str, str], url: str, prefix: str, text: str, at: float) -> Counter[str]:
    import time_machine  # the child routes at the test's fixed moment; the parent keeps the real clock

    from tests.worker.conftest import RecordingEnqueuer
    from worker.app.runtime import Runtime
    from worker.config import parse_config
    from worker.store.connection import client_from_url
    from worker.store.pending import PendingSet
    from worker.store.redis_store import RedisStore

    os.environ.update(env)
    client = client_from_url(url)
    rt = Runtime(parse_config(text, "caps.yaml"), RedisStore(client, prefix=prefix), PendingSet(client, prefix),
                 enqueue=RecordingEnqueuer())
    outcomes: Counter[str] = Counter()
    with time_machine.travel(datetime.fromtimestamp(at, UTC), tick=True):
        barrier.wait()
        idle = 0
        while idle < 3:
            report = route.route_pending(rt, "salesforce", limit=2)
            idle = 0 if report.handled else idle + 1
            outcomes.update(h.outcome for h in report.handled)
    rt.close()
    return outcomes


def test_a_daily_cap_holds_exactly_under_8_concurrent_worker_processes(
    make_runtime: Any, admin: Any, sandbox: Any, redis_url: str, redis_prefix: str
) -> None:
    data = capped_config()
    text = yaml.safe_dump(data, sort_keys=False)
    rt = make_runtime(routing_test_config({k: data[k] for k in ("pools", "rules", "fallback")})[1])
    sf_map = dict(rt.config.model.connectors.salesforce.fields)
    ids = admin.sf_load("Lead", [salesforce_lead(lead, sf_map, INTAKE_QUEUE) for lead in synthetic_leads(LEADS, seed=17)])
    polled = route.poll(rt, "salesforce")
    assert polled >= LEADS
    tomorrow = datetime.now(ZoneInfo(ZONE)).date() + timedelta(days=1)
    at = datetime.combine(tomorrow, time(12), tzinfo=ZoneInfo(ZONE)).timestamp()

    out = race(_drain, PROCESSES, sandbox.env(), redis_url, redis_prefix, text, at, timeout=200)
    assert sum(out, Counter()) == {"written": polled}  # every lead routed once, by one of the 8
    assert sum(1 for c in out if c) > 1  # and the work really was shared

    decisions = [d.decision for d in rt.store.decisions([LeadRef("salesforce", "Lead", rid).at(0) for rid in ids])]
    owners = Counter(d["owner"] for d in decisions)
    assert owners["tom"] <= DAILY and owners["kim"] <= DAILY
    everyone = Counter(e.data["owner"] for e in rt.store.recent(10_000, kind="decision"))
    assert everyone == {"tom": DAILY, "kim": DAILY, "queue:triage": polled - 2 * DAILY}
    capped = [d for d in decisions if d["owner"] == "queue:triage"]
    assert capped and all(d["skipped"] == {"tom": "daily_cap", "kim": "daily_cap"} for d in capped)
    records = rt.connector("salesforce").fetch(ids)
    crm_owners = Counter(records[rid].owner_id for rid in ids)
    assert crm_owners[route.owner_crm_id(rt.config, "salesforce", "tom")] == owners["tom"]
    assert crm_owners[route.owner_crm_id(rt.config, "salesforce", "queue:triage")] == owners["queue:triage"]
