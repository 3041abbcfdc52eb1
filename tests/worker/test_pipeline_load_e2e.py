"""Pipeline load from the CRM (issue 17), through the worker's steps against the sandbox and a real Redis.

The refresh step (the ``leadroute.pipeline_refresh`` beat task's body) counts every rep's open
Opportunities in the sandbox org with one paged query and caches them with their age; the route step
hands the cached counts to the engine, and ``least_loaded`` with ``load: {leads: 1, opportunities: 1}``
picks by open leads + open opportunities, saying both in the decision.
"""

from __future__ import annotations

import time
from typing import Any

from prometheus_client import REGISTRY

from connectors.base import RetriableError
from tests.worker.conftest import routing_test_config
from tests.worker.test_pipeline import INTAKE_QUEUE, current_decision, poll_and_drain
from worker.app.celery_app import beat_schedule
from worker.steps import pipeline, route

TEAM = ["tom", "raj", "kim"]


def runtime(make_runtime: Any, max_age: str = "30m") -> Any:
    data, config = routing_test_config({
        "pools": {"team": {"members": TEAM, "strategy": "least_loaded", "load": {"leads": 1, "opportunities": 1}}},
        "rules": [{"name": "everyone", "assign": {"pool": "team"}}],
        "fallback": {"queue": "triage"},
    })
    if max_age != "30m":
        data["worker"] = {**data.get("worker", {}), "pipeline_max_age": max_age}
        config = routing_test_config(data)[1]
    return make_runtime(config)


def lead(admin: Any, n: int) -> str:
    (rid,) = admin.sf_load("Lead", [{"LastName": f"Load {n}", "Company": f"Loadco {n}", "Email": f"a@loadco{n}.com",
                                     "Status": "Open - Not Contacted", "OwnerId": INTAKE_QUEUE}])
    return rid


def test_opportunity_load_changes_a_least_loaded_pick(make_runtime: Any, admin: Any) -> None:
    rt = runtime(make_runtime)
    poll_and_drain(rt)  # the seed's waiting leads
    sf = {rep: route.owner_crm_id(rt.config, "salesforce", rep) for rep in TEAM}
    assert rt.store.pipeline_counts(["salesforce", "hubspot"]) == {}  # nothing counted before the first refresh
    admin.seed_pipeline(salesforce={sf["tom"]: {"open": 6, "closed": 3}, sf["raj"]: 2})
    rt.store.set_loads({"tom": 0, "raj": 1, "kim": 4})  # by leads alone tom would get the next lead
    counted = pipeline.refresh(rt)
    assert counted == {"salesforce": 2, "hubspot": 0}  # reps counted per enabled CRM (the seed has no open deals)
    cached = rt.store.pipeline_counts(["salesforce"])["salesforce"]
    assert cached.counts["tom"] == 6 and cached.counts["raj"] == 2 and "kim" not in cached.counts
    assert 0 <= time.time() - cached.read_at < 60
    # tom 0 + 6 = 6, raj 1 + 2 = 3, kim 4 + 0 = 4: raj
    rid = lead(admin, 1)
    poll_and_drain(rt)
    d = current_decision(rt, rid)
    assert d["owner"] == "raj"
    assert d["reason"] == "everyone -> pool team (least loaded: raj 2 leads + 2 opps)"
    assert admin.sf_record("Lead", rid)["OwnerId"] == sf["raj"]


def test_stale_counts_route_and_say_so_and_beat_refreshes_them(make_runtime: Any, admin: Any) -> None:
    rt = runtime(make_runtime, max_age="10m")
    poll_and_drain(rt)
    sf = route.owner_crm_id(rt.config, "salesforce", "tom")
    admin.seed_pipeline(salesforce={sf: 5})
    pipeline.refresh(rt, now=time.time() - 3600)  # counted an hour ago: stale
    rt.store.set_loads({"tom": 0, "raj": 0, "kim": 0})
    rid = lead(admin, 2)
    poll_and_drain(rt)
    d = current_decision(rt, rid)
    assert d["owner"] == "raj"
    assert d["reason"] == "everyone -> pool team (least loaded: raj 1 leads + 0 opps (opps 1 h old, stale))"
    schedule = beat_schedule(rt.config.model.worker, ["salesforce"], None, None, (),
                             pipeline.weighs_opportunities(rt.config))
    assert schedule["pipeline-refresh"] == {"task": "leadroute.pipeline_refresh", "schedule": 300.0}


def test_a_failed_read_keeps_the_earlier_counts_and_is_counted(make_runtime: Any, admin: Any,
                                                              monkeypatch: Any) -> None:
    rt = runtime(make_runtime)
    sf = route.owner_crm_id(rt.config, "salesforce", "tom")
    admin.seed_pipeline(salesforce={sf: 4})
    pipeline.refresh(rt, now=1_900_000_000.0)
    assert REGISTRY.get_sample_value("leadroute_pipeline_read_timestamp_seconds", {"crm": "salesforce"}) == 1_900_000_000.0
    failures = REGISTRY.get_sample_value("leadroute_pipeline_refresh_failures_total", {"crm": "salesforce"}) or 0.0

    def down() -> dict[str, int]:
        raise RetriableError("unavailable", crm="salesforce", status=503)

    monkeypatch.setattr(rt.connector("salesforce"), "open_pipeline", down)
    assert "salesforce" not in pipeline.refresh(rt, now=1_900_000_600.0)
    cached = rt.store.pipeline_counts(["salesforce"])["salesforce"]
    assert (cached.counts.get("tom", 0) >= 4, cached.read_at) == (True, 1_900_000_000.0)
    assert REGISTRY.get_sample_value("leadroute_pipeline_refresh_failures_total", {"crm": "salesforce"}) == failures + 1
