"""The sandbox CRM for connector tests, and connectors pointed at it through the real libraries.

One sandbox serves the whole session (over HTTPS on loopback, in a thread); every test
starts from the seed with counters, faults and limits reset. Connectors get the
suite's Redis for their shared bucket and fast retry timings, so fault tests finish in
seconds while still going through the same code paths as production.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import pytest
import redis

from connectors.base import Connector
from connectors.hubspot import HubSpotConnector
from connectors.salesforce import SalesforceConnector
from connectors.settings import HubSpotSettings, SalesforceSettings

FAST_RETRY = {"attempts": 8, "initial_wait": 0.01, "max_wait": 2.0, "max_total": 30, "lock_attempts": 3}
SF_FIELDS = {
    "Id": "id", "Email": "email", "Company": "company", "Website": "website", "Country": "country", "State": "state",
    "PostalCode": "postcode", "NumberOfEmployees": "employees", "Industry": "industry", "LeadSource": "lead_source",
    "Lead_Score__c": "score", "Product_Interest__c": "product_interest", "Preferred_Language__c": "language",
}


def sf_settings(**overrides: Any) -> SalesforceSettings:
    data: dict[str, Any] = {
        "fields": SF_FIELDS,
        "reason": {"field": "Routing_Reason__c"},
        "retry": FAST_RETRY,
        "rate_limit": {"requests": 1000, "per_seconds": 1, "burst": 100},
    }
    data.update(overrides)
    return SalesforceSettings.model_validate(data)


def hs_settings(**overrides: Any) -> HubSpotSettings:
    data: dict[str, Any] = {
        "reason": {"field": "leadroute_reason"},
        "retry": FAST_RETRY,
        "rate_limit": {"requests": 1000, "per_seconds": 10, "burst": 10},
        "search_rate_limit": {"requests": 100, "per_seconds": 1, "burst": 5},
    }
    data.update(overrides)
    return HubSpotSettings.model_validate(data)


@pytest.fixture
def make_salesforce(sandbox: Any, admin: Any, redis_client: redis.Redis, redis_prefix: str
                    ) -> Iterator[Callable[..., SalesforceConnector]]:
    made: list[Connector] = []

    def make(settings: SalesforceSettings | None = None, **kwargs: Any) -> SalesforceConnector:
        conn = SalesforceConnector.from_env(settings or sf_settings(), redis_client=redis_client, prefix=redis_prefix,
                                            env=sandbox.env(), **kwargs)
        made.append(conn)
        return conn

    yield make
    for conn in made:
        conn.close()


@pytest.fixture
def make_hubspot(sandbox: Any, admin: Any, redis_client: redis.Redis, redis_prefix: str
                 ) -> Iterator[Callable[..., HubSpotConnector]]:
    made: list[Connector] = []

    def make(settings: HubSpotSettings | None = None, **kwargs: Any) -> HubSpotConnector:
        conn = HubSpotConnector.from_env(settings or hs_settings(), redis_client=redis_client, prefix=redis_prefix,
                                         env=sandbox.env(), **kwargs)
        made.append(conn)
        return conn

    yield make
    for conn in made:
        conn.close()


def calls(admin: Any, endpoint: str, status: str | None = None) -> int:
    """Requests the sandbox served for ``endpoint`` (e.g. ``"salesforce PATCH /composite/sobjects"``)."""
    counts = admin.counters()["endpoints"].get(endpoint, {})
    return int(counts.get(status, 0) if status else counts.get("total", 0))


@dataclass
class Crm:
    """What the contract suite needs to know about one CRM: its connector and how to inspect it."""

    name: str
    connector: Connector
    admin: Any
    write_endpoint: str
    read_endpoint: str

    def generate(self, count: int) -> list[str]:
        """Create ``count`` new lead records; returns their ids, oldest first."""
        if self.name == "salesforce":
            before = {r["Id"] for r in self.admin.sf_records("Lead")}
            self.admin.generate(salesforce={"Lead": count})
            return [r["Id"] for r in self.admin.sf_records("Lead") if r["Id"] not in before]
        before = {r["id"] for r in self.admin.hs_records()}
        self.admin.generate(hubspot={"contacts": count})
        return [r["id"] for r in self.admin.hs_records() if r["id"] not in before]

    def record(self, record_id: str) -> dict[str, Any]:
        if self.name == "salesforce":
            return dict(self.admin.sf_record("Lead", record_id))
        return dict(self.admin.hs_record(record_id)["properties"])

    def all_owners(self) -> dict[str, str | None]:
        """Every lead's owner, in one admin call."""
        if self.name == "salesforce":
            return {r["Id"]: r.get("OwnerId") for r in self.admin.sf_records("Lead")}
        return {r["id"]: r["properties"].get("hubspot_owner_id") for r in self.admin.hs_records()}

    def owner(self, record_id: str) -> str | None:
        return self.record(record_id).get("OwnerId" if self.name == "salesforce" else "hubspot_owner_id")

    def reason(self, record_id: str) -> str | None:
        return self.record(record_id).get("Routing_Reason__c" if self.name == "salesforce" else "leadroute_reason")

    def owners(self) -> tuple[str, str]:
        """Two distinct active owner ids."""
        active = [u.id for u in self.connector.list_owners() if u.active and u.kind == "user"]
        return active[0], active[1]

    def acknowledge(self, record_id: str) -> None:
        if self.name == "salesforce":
            self.admin.sf_set_status(record_id, "Working - Contacted")
        else:
            self.admin.hs_set_status(record_id, "OPEN")

    def touch(self, record_id: str) -> None:
        """An edit by someone else (changes the modification stamp, not the intake)."""
        if self.name == "salesforce":
            self.admin.sf_edit("Lead", record_id, {"Title": "Edited"})
        else:
            self.admin.hs_edit(record_id, {"jobtitle": "Edited"})

    def delete(self, record_id: str) -> None:
        if self.name == "salesforce":
            self.admin.sf_delete("Lead", record_id)
        else:
            self.admin.hs_delete(record_id)

    def writes(self, status: str | None = None) -> int:
        return calls(self.admin, self.write_endpoint, status)

    def reads(self, status: str | None = None) -> int:
        return calls(self.admin, self.read_endpoint, status)


@pytest.fixture(params=["salesforce", "hubspot"])
def crm(request: pytest.FixtureRequest, admin: Any) -> Crm:
    if request.param == "salesforce":
        conn: Connector = request.getfixturevalue("make_salesforce")()
        return Crm("salesforce", conn, admin, "salesforce PATCH /composite/sobjects", "salesforce GET /query")
    conn = request.getfixturevalue("make_hubspot")()
    return Crm("hubspot", conn, admin, "hubspot POST /crm/v3/objects/contacts/batch/update",
               "hubspot POST /crm/v3/objects/contacts/search")
