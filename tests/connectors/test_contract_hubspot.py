"""HubSpot keeps the connector contract: contacts in the sandbox portal, through hubspot-api-client over HTTPS."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, ClassVar

import pytest

from connectors.hubspot import HubSpotConnector

from .conftest import SandboxCrm
from .contract import ConnectorContract


class HubSpotCrm(SandboxCrm):
    """Contacts in the sandbox's HubSpot portal."""

    name: ClassVar[str] = "hubspot"
    unknown_id: ClassVar[str] = "987654321"
    bogus_owner: ClassVar[str] = "99999999"
    owner_field: ClassVar[str] = "hubspot_owner_id"
    reason_field: ClassVar[str] = "leadroute_reason"
    write_endpoint: ClassVar[str] = "hubspot POST /crm/v3/objects/contacts/batch/update"
    read_endpoint: ClassVar[str] = "hubspot POST /crm/v3/objects/contacts/search"

    def generate(self, count: int) -> list[str]:
        before = {r["id"] for r in self.admin.hs_records()}
        self.admin.generate(hubspot={"contacts": count})
        return [r["id"] for r in self.admin.hs_records() if r["id"] not in before]

    def record(self, record_id: str) -> dict[str, Any]:
        return dict(self.admin.hs_record(record_id)["properties"])

    def all_owners(self) -> dict[str, str | None]:
        return {r["id"]: r["properties"].get("hubspot_owner_id") for r in self.admin.hs_records()}

    def acknowledge(self, record_id: str) -> None:
        self.admin.hs_set_status(record_id, "OPEN")

    def touch(self, record_id: str) -> None:
        self.admin.hs_edit(record_id, {"jobtitle": "Edited"})

    def delete(self, record_id: str) -> None:
        self.admin.hs_delete(record_id)


class TestHubSpotContract(ConnectorContract):
    connector_class = HubSpotConnector

    @pytest.fixture
    def crm(self, make_hubspot: Callable[..., HubSpotConnector], admin: Any) -> HubSpotCrm:
        return HubSpotCrm(make_hubspot(), admin)
