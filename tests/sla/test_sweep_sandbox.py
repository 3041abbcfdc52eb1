"""The sweep end to end through the real connectors, over HTTPS, against the sandbox CRM.

For each CRM, 200 hot leads are routed and written the way the worker does it; the test
then acts as the reps through the sandbox admin API (acknowledges some, takes some over,
converts some, deletes one, ignores the rest) and sweeps at the ladder's minutes. Every lead
must end in the state the ladder dictates, with each action recorded once, the CRM written
once per action, and the notifications to match. (The Celery beat/worker wrapping is the
worker's; this is the logic under it.)
"""

from __future__ import annotations

import textwrap
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import redis
import yaml

from connectors.base import Connector, OwnerUpdate
from connectors.settings import ConnectorsConfig
from worker.config import RoutingConfig, parse_config
from worker.domain.leads import LeadRef
from worker.routing.engine import Router
from worker.sla.policy import timer_id
from worker.sla.settings import CompiledSla, compile_sla, connectors_with_signals
from worker.steps.sla_sweep import Notice, SlaService
from worker.store.redis_store import RedisStore

FAST_RETRY = {"attempts": 8, "initial_wait": 0.01, "max_wait": 2.0, "max_total": 30, "lock_attempts": 3}
CONFIG = textwrap.dedent(
    """\
    version: 1
    timezone: America/New_York
    reps:
      - {id: sarah, manager: maria, crm_ids: {salesforce: "0055e000001AbCdAAK", hubspot: "51234567"}}
      - {id: tom, manager: maria, crm_ids: {salesforce: "0055e000001ToMrAAK", hubspot: "51234571"}}
      - {id: ana, manager: maria, crm_ids: {salesforce: "0055e000001AnAsAAK", hubspot: "51234569"}}
      - {id: maria, crm_ids: {salesforce: "0055e000001MaRiAAK", hubspot: "51234574"}}
    pools:
      sales: {members: [sarah, tom, ana]}
    queues:
      triage: {salesforce: "00G5e000000TrIaEAK", hubspot: "51230000"}
    connectors:
      salesforce:
        fields: {Id: id, Company: company, LeadSource: lead_source, Lead_Score__c: score}
        reason: {field: Routing_Reason__c}
      hubspot:
        reason: {field: leadroute_reason}
        closed_when: {field: lifecyclestage, in: [opportunity, customer]}
    rules:
      - {name: everyone, assign: {pool: sales}}
    fallback: {queue: triage}
    """
)
SLA = textwrap.dedent(
    """\
    tiers:
      - name: hot
        when: {score: {gte: 80}}
        acknowledge_within: 15m
        ladder:
          - {after: 10m, action: remind}
          - {after: 15m, action: escalate}
          - {after: 30m, action: reassign}
        max_reassignments: 2
    acknowledged_when:
      salesforce: {field: Status, not_in: ["Open - Not Contacted"]}
      hubspot: {any: [{field: hs_lead_status, not_in: [NEW, ""]}, {field: notes_last_contacted, exists: true}]}
    """
)
OWNER_FIELD = {"salesforce": "OwnerId", "hubspot": "hubspot_owner_id"}
REASON_FIELD = {"salesforce": "Routing_Reason__c", "hubspot": "leadroute_reason"}
OBJECT = {"salesforce": "Lead", "hubspot": "contacts"}


@pytest.fixture(scope="module")
def config() -> RoutingConfig:
    return parse_config(CONFIG, "routing.yaml")


@pytest.fixture(scope="module")
def sla(config: RoutingConfig) -> CompiledSla:
    check = compile_sla(yaml.safe_load(SLA), config)
    assert check.ok and check.compiled is not None, check.errors
    return check.compiled


@pytest.fixture(params=["salesforce", "hubspot"])
def connector(request: pytest.FixtureRequest, sandbox: Any, admin: Any, config: RoutingConfig, sla: CompiledSla,
              redis_client: redis.Redis, redis_prefix: str) -> Iterator[Connector]:
    from connectors.hubspot import HubSpotConnector
    from connectors.salesforce import SalesforceConnector

    name = request.param
    connectors: ConnectorsConfig = connectors_with_signals(config.model.connectors, sla.settings)
    settings = connectors.enabled()[name].model_copy(update={
        "retry": type(connectors.enabled()[name].retry).model_validate(FAST_RETRY),
    })
    cls = SalesforceConnector if name == "salesforce" else HubSpotConnector
    conn = cls.from_env(settings, redis_client=redis_client, prefix=redis_prefix, env=sandbox.env())
    yield conn
    conn.close()


def create_leads(admin: Any, crm: str, count: int) -> list[str]:
    if crm == "salesforce":
        return admin.sf_load("Lead", [
            {"LastName": f"Lead {i}", "Company": f"Co {i}", "LeadSource": "Demo Request", "Lead_Score__c": 90,
             "Status": "Open - Not Contacted", "OwnerId": "00G5e000000InTkEAK"} for i in range(count)
        ])
    return admin.hs_load([
        {"properties": {"lastname": f"Lead {i}", "company": f"Co {i}", "hs_analytics_source": "Demo Request",
                        "hubspotscore": "90", "hs_lead_status": "NEW", "lifecyclestage": "lead"}} for i in range(count)
    ])


WRITE_ENDPOINT = {"salesforce": "salesforce PATCH /composite/sobjects",
                  "hubspot": "hubspot POST /crm/v3/objects/contacts/batch/update"}


def writes(admin: Any, crm: str) -> int:
    return int(admin.counters()["endpoints"].get(WRITE_ENDPOINT[crm], {}).get("total", 0))


def crm_records(admin: Any, crm: str) -> dict[str, dict[str, Any]]:
    """Every lead as the CRM holds it now, by id (one admin call)."""
    if crm == "salesforce":
        return {r["Id"]: dict(r) for r in admin.sf_records("Lead")}
    return {r["id"]: dict(r["properties"]) for r in admin.hs_records()}


def test_two_hundred_leads_end_as_the_ladder_dictates(
    connector: Connector, admin: Any, config: RoutingConfig, sla: CompiledSla, redis_client: redis.Redis, redis_prefix: str
) -> None:
    crm = connector.name
    store = RedisStore(redis_client, prefix=redis_prefix)
    notices: list[Notice] = []
    svc = SlaService(store, sla, config, {crm: connector}, notices.append)
    t0 = datetime.now(UTC).replace(microsecond=0)

    # Route and write owners as the worker does, then start the clocks.
    ids = create_leads(admin, crm, 200)
    records = connector.fetch(ids)
    refs = [LeadRef(crm, OBJECT[crm], i) for i in ids]
    owners = []
    for ref in refs:
        lead = records[ref.lead_id].lead
        decided = store.decide_once(ref.at(0), lambda state, lead=lead: Router(config, state).route(lead, at=t0).to_dict())
        owners.append(decided.decision["owner"])
    results = connector.write_owners([
        OwnerUpdate(ref.lead_id, config.reps[o].crm_ids[crm], "routed") for ref, o in zip(refs, owners, strict=True)
    ])
    assert all(r.ok for r in results)
    started = svc.start_many([(ref, o, records[ref.lead_id].lead, t0, 0) for ref, o in zip(refs, owners, strict=True)])
    assert all(r is not None and r.tier == "hot" for r in started)
    assert Counter(owners) == {"sarah": 67, "tom": 67, "ana": 66}

    # The reps: 30 acknowledge, 20 leads are taken over by their manager, 20 convert, 10 are deleted.
    acked, taken, converted, deleted, ignored = ids[0:30], ids[30:50], ids[50:70], ids[70:80], ids[80:]
    for i in acked:
        admin.sf_set_status(i, "Working - Contacted") if crm == "salesforce" else admin.hs_log_activity(i)
    for i in taken:
        maria = config.reps["maria"].crm_ids[crm]
        admin.sf_change_owner(i, maria) if crm == "salesforce" else admin.hs_change_owner(i, maria)
    for i in converted:
        admin.sf_convert(i) if crm == "salesforce" else admin.hs_convert(i)
    for i in deleted:
        admin.sf_delete("Lead", i) if crm == "salesforce" else admin.hs_delete(i)

    report = svc.sweep(t0 + timedelta(minutes=10))
    assert report.errors == []
    by_action = Counter(a.action for a in report.actions)
    assert by_action == {"stop": 30, "manual_override": 20, "close": 30, "remind": 120}
    assert store.open_timers() == 120
    now = crm_records(admin, crm)
    for i in ignored:
        assert "reminded" in now[i][REASON_FIELD[crm]]

    assert Counter(a.action for a in svc.sweep(t0 + timedelta(minutes=15)).actions) == {"breach": 120, "escalate": 120}
    admin.clear_counters()
    report = svc.sweep(t0 + timedelta(minutes=30))
    assert Counter(a.action for a in report.actions) == {"reassign": 120}
    # 120 owners written in the largest batches the CRM allows: one collection call (200), two batch updates (100).
    assert writes(admin, crm) == (1 if crm == "salesforce" else 2)
    first_owner = dict(zip(ids, owners, strict=True))
    now = crm_records(admin, crm)
    for action in report.actions:
        lead_id = action.lead.rsplit(":", 1)[1]
        assert action.to != first_owner[lead_id]
        assert now[lead_id][OWNER_FIELD[crm]] == config.reps[str(action.to)].crm_ids[crm]

    second = svc.sweep(t0 + timedelta(minutes=60))  # all four ignored again: the third rep gets them
    assert Counter(a.action for a in second.actions) == {"remind": 120, "breach": 120, "escalate": 120, "reassign": 120}
    assert svc.sweep(t0 + timedelta(minutes=60)).actions == []  # nothing twice
    third = svc.sweep(t0 + timedelta(minutes=90))
    assert Counter(a.action for a in third.actions) == {"remind": 120, "breach": 120, "escalate": 120, "park": 120}

    # Where everything ended.
    triage = config.model.queues["triage"][crm]
    now = crm_records(admin, crm)
    for i in ignored:
        assert now[i][OWNER_FIELD[crm]] == triage
        trail = [e.data["owner"] for e in store.log_range() if e.lead.endswith(i) and e.kind == "sla.reassign"]
        assert len(trail) == 2 and len({*trail, first_owner[i]}) == 2  # never back to an earlier owner
    for i in acked:
        assert store.timer(timer_id(LeadRef(crm, OBJECT[crm], i))) is None
    assert all(now[i][OWNER_FIELD[crm]] == config.reps["maria"].crm_ids[crm] for i in taken)
    assert store.open_timers() == 0
    assert store.loads(["sarah", "tom", "ana"]) == {"sarah": 0, "tom": 0, "ana": 0}

    # Each action once in the log, and the notifications to match.
    logged = Counter(e.kind for e in store.log_range() if e.kind.startswith("sla."))
    assert logged == {"sla.stop": 30, "sla.manual_override": 20, "sla.close": 30, "sla.remind": 360, "sla.breach": 360,
                      "sla.escalate": 360, "sla.reassign": 240, "sla.park": 120}
    assert len({n.notice_id for n in notices}) == len(notices)
    assert Counter(n.kind for n in notices) == {
        "reminder": 360, "escalation": 360, "assigned": 240, "reassigned_from": 480, "parked": 240,
    }
