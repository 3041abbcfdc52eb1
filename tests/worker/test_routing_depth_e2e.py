"""Routing depth end to end (issue 17): real Celery worker and beat processes on the Redis broker, a real
Redis, the sandbox Salesforce over HTTPS, one stack for the whole module.

One config holds four cases, each behind its own lead source so none touches another's reps:

* **a coverage pair where both reps are out**: ana and lee back each other up and are both away (dated
  absences around the test's own today); a lead for ana walks ana -> lee -> back to ana and goes to
  the fallback queue, the chain in its decision;
* **a tie broken by seniority**: sarah and mike are both empty in a least-loaded pool that breaks ties
  by seniority; mike (5) beats sarah (2), though sarah is listed first;
* **a same-domain lead from 10 days ago**: the CRM holds an open lead from the domain created 10 days
  before the test, owned by raj; ``crm_recent_record`` makes raj the new lead's account owner;
* **opportunity load changing a least-loaded pick**: tom and kim have no open leads, so tom (listed
  first) would take the lead; beat's pipeline refresh counts tom's 3 open Opportunities, and kim gets it.

Beat's poll routes the leads from the intake queue; the tests read the owners the worker wrote to the
CRM and the decisions it wrote to its ledger. They wait on conditions (the pipeline counts cached, the
owners written, the ledger holding the decisions), never on time, and use no working hours.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import uuid4

import pytest

from tests.worker.conftest import routing_test_config
from tests.worker.test_e2e import Sink, Stack, wait_until
from tests.worker.test_pipeline import INTAKE_QUEUE
from worker.config import RoutingConfig
from worker.ledger.ledger import Ledger
from worker.routing.engine import Router
from worker.routing.state import InMemoryState
from worker.steps.route import owner_crm_id
from worker.store.connection import client_from_url
from worker.store.redis_store import RedisStore

pytestmark = pytest.mark.timeout(300)

WORKER = {"poll_every": "1s", "drain_every": "1s", "pipeline_every": "1s", "reconcile_orphans_every": "1h",
          "reconcile_loads_every": "1h", "ledger_flush_every": "1s", "outcomes_every": "1h"}
PAIR, SENIORITY, DOMAIN, LOAD = "E2E Pair", "E2E Seniority", "E2E Domain", "E2E Load"
OPEN_OPPORTUNITIES = 3


def overrides(today: datetime) -> dict[str, Any]:
    """The four cases' reps, pools and rules over the demo config (no hours: availability is only the absences)."""
    data, _ = routing_test_config()
    away = [{"start": (today - timedelta(days=2)).date().isoformat(), "end": (today + timedelta(days=2)).date().isoformat()}]
    changes: dict[str, dict[str, Any]] = {
        "ana": {"backup": "lee", "out_of_office": away}, "lee": {"backup": "ana", "out_of_office": away},
        "sarah": {"seniority": 2}, "mike": {"seniority": 5},
    }
    reps = [{**{k: v for k, v in rep.items() if k != "backup"}, **changes.get(rep["id"], {})} for rep in data["reps"]]
    return {
        "worker": WORKER, "reps": reps,
        "connectors": {"salesforce": data["connectors"]["salesforce"]},
        "relationships": [{"match": "crm_recent_record", "lookback": "30d"}],
        "pools": {
            "closers": {"members": ["sarah", "mike"], "strategy": "least_loaded", "tie_break": ["seniority"]},
            "team": {"members": ["tom", "kim"], "strategy": "least_loaded", "load": {"leads": 1, "opportunities": 1}},
        },
        "rules": [
            {"name": "named-account", "when": {"lead_source": DOMAIN, "account_owner": {"exists": True}},
             "assign": {"account_owner": True}},
            {"name": "to-ana", "when": {"lead_source": PAIR}, "assign": {"rep": "ana"}},
            {"name": "closers", "when": {"lead_source": SENIORITY}, "assign": {"pool": "closers"}},
            {"name": "by-load", "when": {"lead_source": LOAD}, "assign": {"pool": "team"}},
        ],
        "fallback": {"queue": "triage"},  # the seed's waiting leads match no rule: they go here, touching no rep
    }


@dataclass
class Routed:
    """What the module's stack did: each case's lead id, the CRM records and ledger decisions it wrote."""

    config: RoutingConfig
    leads: dict[str, str]  # case (lead source) -> lead id
    old_lead: str  # the same-domain lead created 10 days before
    records: dict[str, dict[str, Any]]  # lead id -> the sandbox's record
    decisions: dict[str, dict[str, Any]]  # lead id -> its ledger decision event (as a dict)

    def of(self, case: str) -> tuple[dict[str, Any], dict[str, Any]]:
        rid = self.leads[case]
        return self.records[rid], self.decisions[rid]

    def crm_id(self, owner: str) -> str:
        return owner_crm_id(self.config, "salesforce", owner)


def _reset(admin: Any) -> None:
    """The sandbox at its seed, as the ``admin`` fixture leaves it (which is per test; this stack is per module)."""
    admin.reset()
    admin.clear_faults()
    admin.reset_usage()


def _decisions(database_url: str, ids: set[str]) -> dict[str, dict[str, Any]]:
    ledger = Ledger.open(database_url, migrate=False)
    try:
        return {e.lead_id: e.to_dict() for e in ledger.between(kinds=["decision"]) if e.lead_id in ids}
    finally:
        ledger.close()


@pytest.fixture(scope="module")
def routed(tmp_path_factory: pytest.TempPathFactory, sandbox: Any, redis_url: str) -> Iterator[Routed]:
    """One stack for the module: seed the sandbox, start worker and beat, wait for the pipeline counts, load the
    four leads into the intake queue and wait until each is routed, written and in the ledger."""
    admin = sandbox.admin
    _reset(admin)
    now = datetime.now(UTC)
    prefix = f"t-{uuid4().hex[:8]}"
    sink = Sink()
    s = Stack(tmp_path_factory.mktemp("depth"), sandbox, redis_url, prefix, sink, overrides=overrides(now))
    client = client_from_url(redis_url)
    store = RedisStore(client, prefix=prefix)
    sf = {rep: owner_crm_id(s.config, "salesforce", rep) for rep in ("raj", "tom")}
    try:
        admin.seed_pipeline(salesforce={sf["tom"]: {"open": OPEN_OPPORTUNITIES, "closed": 2}})
        (old,) = admin.sf_load("Lead", [{"LastName": "Earlier", "Company": "Tendays E2E", "Email": "cfo@tendays-e2e.com",
                                         "Status": "Working - Contacted", "OwnerId": sf["raj"],
                                         "CreatedDate": (now - timedelta(days=10, minutes=1)).isoformat()}])
        s.start("worker", "beat")

        def counted() -> bool:
            found = store.pipeline_counts(["salesforce"]).get("salesforce")
            return found is not None and found.counts.get("tom") == OPEN_OPPORTUNITIES
        wait_until(counted, 60, s, "beat's pipeline refresh to count tom's open opportunities")

        cases = {PAIR: "pair-e2e.example", SENIORITY: "senior-e2e.example", DOMAIN: "tendays-e2e.com",
                 LOAD: "load-e2e.example"}
        ids = admin.sf_load("Lead", [{"LastName": source, "Company": f"{source} Co", "Email": f"ceo@{domain}",
                                      "LeadSource": source, "Status": "Open - Not Contacted", "OwnerId": INTAKE_QUEUE}
                                     for source, domain in cases.items()])
        leads = dict(zip(cases, ids, strict=True))
        decisions: dict[str, dict[str, Any]] = {}

        def done() -> bool:
            if any(admin.sf_record("Lead", rid)["OwnerId"] == INTAKE_QUEUE for rid in ids):
                return False
            decisions.update(_decisions(s.database_url, set(ids)))
            return set(decisions) == set(ids)
        wait_until(done, 60, s, "the four leads routed, their owners written and their decisions in the ledger")
        yield Routed(s.config, leads, old, {rid: admin.sf_record("Lead", rid) for rid in ids}, decisions)
    finally:
        s.stop()
        sink.server.shutdown()
        for key in client.scan_iter(match=f"{prefix}*", count=1000):  # leave nothing behind on a shared Redis
            client.unlink(key)
        client.close()


def test_a_coverage_pair_both_out_walks_back_to_the_start_and_goes_to_the_fallback(routed: Routed) -> None:
    record, d = routed.of(PAIR)
    assert (d["owner"], d["rule"]) == ("queue:triage", "fallback")
    assert d["data"]["chain"] == ["ana", "lee"]
    assert d["data"]["skipped"] == {"ana": "ooo", "lee": "ooo"}
    assert d["data"]["reason"] == (f"to-ana: {PAIR} -> fallback queue triage "
                                   "(rep ana unavailable (ana ooo -> lee ooo -> back to ana))")
    assert record["OwnerId"] == routed.crm_id("queue:triage")
    assert record["Routing_Reason__c"] == d["data"]["reason"][:255]


def test_a_tie_in_a_least_loaded_pool_is_broken_by_seniority(routed: Routed) -> None:
    record, d = routed.of(SENIORITY)
    assert (d["owner"], d["rule"], d["pool"]) == ("mike", "closers", "closers")
    assert d["data"]["tie_breaks"] == {"pool": "seniority"}
    # sarah is listed first, so file order would have picked her
    assert d["data"]["reason"] == (f"closers: {SENIORITY} -> pool closers "
                                   "(least loaded: mike 1/1, tie with sarah broken by seniority)")
    assert record["OwnerId"] == routed.crm_id("mike")


def test_a_same_domain_crm_lead_from_10_days_ago_brings_the_new_lead_to_its_owner(routed: Routed) -> None:
    record, d = routed.of(DOMAIN)
    relationship = f"same-domain lead {routed.old_lead} owned by raj (10 days ago)"
    assert (d["owner"], d["rule"]) == ("raj", "named-account")
    assert d["data"]["facts"]["relationship"] == relationship
    assert d["data"]["reason"] == f"named-account: {DOMAIN}, {relationship} -> account owner (raj 1)"
    assert record["OwnerId"] == routed.crm_id("raj")


def test_open_opportunities_counted_by_beat_change_a_least_loaded_pick(routed: Routed) -> None:
    record, d = routed.of(LOAD)
    # by open leads alone tom and kim tie at 0 and tom, listed first, wins: the engine with no counts says so
    without = Router(routed.config, InMemoryState()).route({"id": "L", "lead_source": LOAD}, at=datetime.now(UTC))
    assert without.owner == "tom" and "tom 1/40 leads + 0 opps (no opps counts yet" in without.reason
    # with beat's counts, tom 0 leads + 3 opps against kim 0 + 0
    assert (d["owner"], d["rule"], d["pool"]) == ("kim", "by-load", "team")
    assert d["data"]["reason"] == f"by-load: {LOAD} -> pool team (least loaded: kim 1 leads + 0 opps)"
    assert record["OwnerId"] == routed.crm_id("kim")
