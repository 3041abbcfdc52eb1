"""The sandbox CRM for connector tests, and connectors pointed at it through the real libraries.

Each CRM's harness (how the tests act in it) lives in its contract file,
``test_contract_<crm>.py``, beside the contract subclass that runs against it.

One sandbox serves the whole session (over HTTPS on loopback, in a thread); every test
starts from the seed with counters, faults and limits reset. Connectors get the
suite's Redis for their shared bucket and fast retry timings, so fault tests finish in
seconds while still going through the same code paths as production.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any, ClassVar

import pytest
import redis

from connectors.base import Connector
from connectors.hubspot import HubSpotConnector
from connectors.salesforce import SalesforceConnector
from connectors.settings import HubSpotSettings, SalesforceSettings

from .contract import Crm

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


class SandboxCrm(Crm):
    """A CRM of the sandbox: records made and edited through its admin API, which also counts calls."""

    write_endpoint: ClassVar[str]
    read_endpoint: ClassVar[str]

    def __init__(self, connector: Connector, admin: Any) -> None:
        self.connector = connector
        self.admin = admin

    def writes(self, status: str | None = None) -> int:
        return calls(self.admin, self.write_endpoint, status)

    def reads(self, status: str | None = None) -> int:
        return calls(self.admin, self.read_endpoint, status)

    def calls(self) -> int:
        return int(self.admin.counters()["total"])

    def seed_pipeline(self, counts: dict[str, dict[str, int]]) -> None:
        self.admin.seed_pipeline(**{self.name: counts})
