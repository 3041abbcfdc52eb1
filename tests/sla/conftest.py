"""Shared pieces for the SLA tests: a small team, the issue's two tiers, and a CRM double.

The double implements the connector methods the sweep uses (``read_acks``, ``fetch``,
``write_owners``, ``attach_reasons``) with the real connector data types and the real
condition evaluator, on Salesforce's default signals: acknowledged when ``Status`` has
left "Open - Not Contacted", closed when ``IsConverted``. It keeps the read and write parts of
the connector contract the real connectors keep (``tests/connectors/contract.py``, run against
it by ``tests/connectors/test_contract_sla_double.py``). Tests act as reps by editing
``crm.records`` and can make writes fail per record.
"""

from __future__ import annotations

import textwrap
from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

import pytest

from connectors.base import AckSignal, CrmRecord, OwnerUpdate, RetriableError, WriteResult
from connectors.mapping import evaluate, to_lead
from connectors.settings import SALESFORCE_LEAD_FIELDS, SalesforceSettings
from worker.config import RoutingConfig, parse_config
from worker.sla.settings import CompiledSla, compile_sla

CONFIG = textwrap.dedent(
    """\
    version: 1
    timezone: America/New_York
    hours: {start: "09:00", end: "17:00"}
    reps:
      - {id: sarah, manager: maria, crm_ids: {salesforce: "005SARAH"}}
      - {id: tom, manager: maria, crm_ids: {salesforce: "005TOM"}}
      - {id: mike, timezone: Europe/Berlin, manager: maria, crm_ids: {salesforce: "005MIKE"}}
      - {id: ana, timezone: America/Chicago, crm_ids: {salesforce: "005ANA"},
         out_of_office: [{start: 2026-03-09, end: 2026-03-09}]}
      - {id: maria, crm_ids: {salesforce: "005MARIA"}}
    pools:
      sales: {members: [sarah, tom, mike, ana], strategy: round_robin}
    queues:
      triage: {salesforce: "00GTRIAGE"}
    rules:
      - {name: everyone, assign: {pool: sales}}
    fallback: {queue: triage}
    """
)

SLA = textwrap.dedent(
    """\
    sweep_every: 30s
    tiers:
      - name: hot
        when: {lead_source: Demo Request, score: {gte: 80}}
        acknowledge_within: 15m
        clock: wall
        ladder:
          - {after: 10m, action: remind}
          - {after: 15m, action: escalate}
          - {after: 30m, action: reassign}
        max_reassignments: 2
      - name: warm
        when: {score: {gte: 40}}
        acknowledge_within: 4h
        clock: business_hours
        ladder: [{after: 4h, action: reassign}]
    acknowledged_when:
      salesforce: {field: Status, not_in: ["Open - Not Contacted"]}
    """
)

# Wednesday 4 March 2026, 10:00 in New York (15:00 UTC): everyone is at work.
T0 = datetime(2026, 3, 4, 15, 0, tzinfo=UTC)
HOT = {"LeadSource": "Demo Request", "Score__c": 90}


@pytest.fixture(scope="session")
def config() -> RoutingConfig:
    return parse_config(CONFIG, "routing.yaml")


@pytest.fixture(scope="session")
def sla(config: RoutingConfig) -> CompiledSla:
    import yaml

    check = compile_sla(yaml.safe_load(SLA), config)
    assert check.ok, check.errors
    assert check.compiled is not None
    return check.compiled


class FakeCrm:
    """A Salesforce-shaped CRM in memory, speaking the connector interface the sweep uses.

    As the real connectors do, it reads only the records it has, writes each record on its own
    (an unknown record or owner fails that record alone, the last update of an id wins) and
    leaves the reason alone when an owner update carries none. ``owners`` are the user and
    queue ids that can own records.
    """

    name = "salesforce"

    def __init__(self, owners: Iterable[str], settings: SalesforceSettings | None = None) -> None:
        self.settings = settings or SalesforceSettings.model_validate({"fields": {**SALESFORCE_LEAD_FIELDS, "Score__c": "score"}})
        self.owners = frozenset(owners)
        self.records: dict[str, dict[str, Any]] = {}
        self.calls: list[tuple[str, int]] = []
        self.fail: dict[str, str] = {}  # record id -> "retriable" | "fatal" for the next owner write
        self.down = False
        self.clock = T0

    def add(self, lead_id: str, owner: str, **fields: Any) -> None:
        self.records[lead_id] = {
            "Id": lead_id, "OwnerId": owner, "Status": "Open - Not Contacted", "IsConverted": False,
            "Company": f"Company {lead_id}", "SystemModstamp": self.clock, **fields,
        }

    def touch(self, lead_id: str, at: datetime, **fields: Any) -> None:
        """Act as a rep: change fields at ``at``."""
        self.records[lead_id].update(fields, SystemModstamp=at)

    def read_acks(self, ids: Sequence[str]) -> dict[str, AckSignal]:
        self.calls.append(("read_acks", len(ids)))
        if self.down:
            raise RetriableError("503 Service Unavailable", crm="salesforce", status=503)
        s = self.settings
        return {
            i: AckSignal(i, evaluate(s.acknowledged_when, r), evaluate(s.closed_when, r), r["OwnerId"],
                         r["SystemModstamp"], dict(r))
            for i in ids if (r := self.records.get(i)) is not None
        }

    def fetch(self, ids: Sequence[str]) -> dict[str, CrmRecord]:
        self.calls.append(("fetch", len(ids)))
        return {
            i: CrmRecord(i, r["SystemModstamp"], r["OwnerId"], to_lead(r, self.settings.fields, i), dict(r), False, "salesforce")
            for i in ids if (r := self.records.get(i)) is not None
        }

    def write_owners(self, updates: Sequence[OwnerUpdate]) -> list[WriteResult]:
        self.calls.append(("write_owners", len(updates)))
        out = []
        for u in updates:
            failure = self.fail.pop(u.id, None)
            record = self.records.get(u.id)
            if failure:
                out.append(WriteResult.failure(u.id, retriable=failure == "retriable", code="UNABLE_TO_LOCK_ROW"
                                               if failure == "retriable" else "INVALID_CROSS_REFERENCE_KEY",
                                               message="refused"))
            elif record is None:
                out.append(_deleted(u.id))
            elif u.owner_id not in self.owners:
                out.append(WriteResult.failure(u.id, retriable=False, code="INVALID_CROSS_REFERENCE_KEY",
                                               message=f"owner id {u.owner_id}: no such user or queue"))
            else:
                record["OwnerId"] = u.owner_id
                if u.reason is not None:
                    record["Routing_Reason__c"] = u.reason
                out.append(WriteResult.success(u.id))
        return out

    def attach_reasons(self, reasons: Mapping[str, str]) -> list[WriteResult]:
        self.calls.append(("attach_reasons", len(reasons)))
        out = []
        for i, text in reasons.items():
            record = self.records.get(i)
            if record is None:
                out.append(_deleted(i))
                continue
            record["Routing_Reason__c"] = text
            out.append(WriteResult.success(i))
        return out

    def count(self, call: str) -> int:
        return sum(1 for name, _ in self.calls if name == call)


def _deleted(record_id: str) -> WriteResult:
    return WriteResult.failure(record_id, retriable=False, code="ENTITY_IS_DELETED", message="entity is deleted")


def crm_owner_ids(config: RoutingConfig) -> set[str]:
    """The Salesforce ids of the config's reps and queues: who can own a lead in the double."""
    reps = {rep.crm_ids["salesforce"] for rep in config.reps.values() if "salesforce" in rep.crm_ids}
    queues = {ids["salesforce"] for ids in config.model.queues.values() if "salesforce" in ids}
    return reps | queues


@pytest.fixture
def crm(config: RoutingConfig) -> FakeCrm:
    return FakeCrm(crm_owner_ids(config))
