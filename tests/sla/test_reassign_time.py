"""An SLA reassignment is decided at the moment of the sweep, not at the lead's creation.

The sales pool of ``conftest``, with tom away on Monday 9 March 2026. A hot lead is created on
Friday and given to sarah; nobody acknowledges it, and the sweep that reassigns it runs on Monday
morning. Next in the rotation is tom, who was at work on Friday but is away on Monday: he is
skipped, and the decision records both times.
"""

from __future__ import annotations

from datetime import UTC, datetime

import redis
import yaml

from worker.config import parse_config
from worker.domain.leads import LeadRef
from worker.routing.engine import Router
from worker.sla.settings import compile_sla
from worker.steps.sla_sweep import Notice, SlaService
from worker.store.redis_store import RedisStore

from .conftest import CONFIG, HOT, SLA, FakeCrm, crm_owner_ids

TOM_AWAY = CONFIG.replace(
    '- {id: tom, manager: maria, crm_ids: {salesforce: "005TOM"}}',
    '- {id: tom, manager: maria, crm_ids: {salesforce: "005TOM"}, out_of_office: [{start: 2026-03-09, end: 2026-03-13}]}',
)
FRIDAY = datetime(2026, 3, 6, 15, 0, tzinfo=UTC)  # 10:00 in New York: everyone at work
MONDAY = datetime(2026, 3, 9, 14, 0, tzinfo=UTC)  # 10:00 in New York (EDT), 09:00 in Chicago, 15:00 in Berlin


def test_a_reassignment_made_after_a_rep_went_out_of_office_skips_them(
    redis_client: redis.Redis, redis_prefix: str
) -> None:
    config = parse_config(TOM_AWAY, "routing.yaml")
    assert "out_of_office" in TOM_AWAY and config.reps["tom"].out_of_office
    check = compile_sla(yaml.safe_load(SLA), config)
    assert check.compiled is not None, check.errors
    store = RedisStore(redis_client, prefix=redis_prefix)
    crm = FakeCrm(crm_owner_ids(config))
    notices: list[Notice] = []
    svc = SlaService(store, check.compiled, config, {"salesforce": crm}, notices.append)

    ref = LeadRef("salesforce", "Lead", "00Q1")
    crm.add("00Q1", "", **HOT, CreatedDate=FRIDAY.isoformat())
    lead = crm.fetch(["00Q1"])["00Q1"].lead
    first = store.decide_once(ref.at(0), lambda state: Router(config, state).route(lead, at=FRIDAY).to_dict()).decision
    assert first["owner"] == "sarah"
    crm.records["00Q1"]["OwnerId"] = "005SARAH"
    svc.start(ref, "sarah", lead, FRIDAY)

    report = svc.sweep(MONDAY)
    assert [(a.action, a.owner, a.to) for a in report.actions][-1] == ("reassign", "sarah", "mike")
    assert crm.records["00Q1"]["OwnerId"] == "005MIKE"
    decision = store.decision(ref.at(1)).decision
    assert decision["skipped"] == {"sarah": "earlier_owner", "tom": "ooo", "ana": "ooo"}  # ana is away that day too
    assert decision["routed_at"] == MONDAY.isoformat()
    assert datetime.fromisoformat(decision["created_at"]) == FRIDAY
