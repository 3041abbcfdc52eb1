"""Salesforce keeps the connector contract: Leads in the sandbox org, through simple-salesforce over HTTPS."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, ClassVar

import pytest

from connectors.salesforce import SalesforceConnector

from .conftest import SandboxCrm, sf_settings
from .contract import ConnectorContract


class SalesforceCrm(SandboxCrm):
    """Leads in the sandbox's Salesforce org."""

    name: ClassVar[str] = "salesforce"
    unknown_id: ClassVar[str] = "00Q5e0000009zzzEAA"
    bogus_owner: ClassVar[str] = "0055e000009BoGuSAAA"
    owner_field: ClassVar[str] = "OwnerId"
    reason_field: ClassVar[str] = "Routing_Reason__c"
    write_endpoint: ClassVar[str] = "salesforce PATCH /composite/sobjects"
    read_endpoint: ClassVar[str] = "salesforce GET /query"

    def generate(self, count: int) -> list[str]:
        before = {r["Id"] for r in self.admin.sf_records("Lead")}
        self.admin.generate(salesforce={"Lead": count})
        return [r["Id"] for r in self.admin.sf_records("Lead") if r["Id"] not in before]

    def record(self, record_id: str) -> dict[str, Any]:
        return dict(self.admin.sf_record("Lead", record_id))

    def all_owners(self) -> dict[str, str | None]:
        return {r["Id"]: r.get("OwnerId") for r in self.admin.sf_records("Lead")}

    def acknowledge(self, record_id: str) -> None:
        self.admin.sf_set_status(record_id, "Working - Contacted")

    def leave_intake(self, record_id: str) -> None:
        self.acknowledge(record_id)  # the default Lead intake is "open, not contacted"

    def touch(self, record_id: str) -> None:
        self.admin.sf_edit("Lead", record_id, {"Title": "Edited"})

    def delete(self, record_id: str) -> None:
        self.admin.sf_delete("Lead", record_id)


class TestSalesforceContract(ConnectorContract):
    connector_class = SalesforceConnector

    @pytest.fixture
    def crm(self, make_salesforce: Callable[..., SalesforceConnector], admin: Any) -> SalesforceCrm:
        return SalesforceCrm(make_salesforce(), admin)

    def test_account_owner_through_contacts(self, make_salesforce: Callable[..., SalesforceConnector],
                                            admin: Any) -> None:
        admin.sf_create("Contact", {"LastName": "Buyer", "Email": "buyer@acquired-subsidiary.com",
                                    "AccountId": "0015e0000004AccAAE"})
        plain = make_salesforce()
        assert plain.account_owner("acquired-subsidiary.com") is None
        with_contacts = make_salesforce(sf_settings(account_lookup={"contacts": True, "ttl": 0, "negative_ttl": 0}))
        assert with_contacts.account_owner("acquired-subsidiary.com") == "0055e000001LeEpAAK"
        assert with_contacts.account_owner("umbrella.io") == "0055e000001AnAsAAK"  # a bare-domain Website
