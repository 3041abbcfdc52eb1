"""HubSpot keeps the connector contract: contacts in the sandbox portal, through hubspot-api-client over HTTPS."""

from __future__ import annotations

import math
from collections.abc import Callable
from datetime import datetime
from typing import Any, ClassVar

import pytest

from connectors.base import OutcomeState
from connectors.hubspot import HubSpotConnector, parse_hs_datetime

from .conftest import SandboxCrm, calls
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
    currency: ClassVar[str] = "USD"  # the harness's deals carry it in deal_currency_code
    outcome_batch: ClassVar[int] = 100  # contacts in one batch read

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

    pipeline_page: ClassVar[int] = 200  # the connector's default search page
    domain_calls: ClassVar[int] = 1  # one contacts search per 50 domains

    def domain_record(self, email: str, owner: str, created_at: datetime) -> str:
        (rid,) = self.admin.hs_load([{"properties": {"email": email, "hubspot_owner_id": owner,
                                                     "createdate": created_at.isoformat()}}])
        return str(rid)

    def convert(self, record_id: str, *, opportunity: bool = True, amount: float | None = None,
                won: bool | None = None) -> str | None:
        if not opportunity:
            self.admin.hs_convert(record_id)  # lifecycle stage "opportunity", no deal
            return None
        props = {"deal_currency_code": self.currency, **({"amount": str(amount)} if amount is not None else {})}
        deal = str(self.admin.hs_add_deal(record_id, **props)["deal"]["id"])
        if won is not None:
            self.admin.hs_set_deal_stage(deal, won=won)
        return deal

    def outcome_calls(self, leads: int, opportunities: int) -> int:
        """Contacts 100 a read, their deals' associations 1,000 contacts a read, the deals 100 a read."""
        return math.ceil(leads / 100) + math.ceil(leads / 1000) + math.ceil(opportunities / 100)


class TestHubSpotContract(ConnectorContract):
    connector_class = HubSpotConnector

    @pytest.fixture
    def crm(self, make_hubspot: Callable[..., HubSpotConnector], admin: Any) -> HubSpotCrm:
        return HubSpotCrm(make_hubspot(), admin)

    # ------------------------------------------------------------------ outcomes, as only HubSpot has them

    def test_a_contact_with_several_deals_is_told_by_its_won_one_else_its_open_one(
            self, make_hubspot: Callable[..., HubSpotConnector], admin: Any) -> None:
        crm = HubSpotCrm(make_hubspot(), admin)
        ids = crm.generate(2)
        crm.convert(ids[0], amount=300, won=False)
        won = crm.convert(ids[0], amount=4000, won=True)
        crm.convert(ids[0], amount=50)
        crm.convert(ids[1], amount=300, won=False)
        still_open = crm.convert(ids[1], amount=999)
        outcomes = crm.connector.read_outcomes(ids)
        assert (outcomes[ids[0]].opportunity_id, outcomes[ids[0]].status, outcomes[ids[0]].amount) == (
            won, OutcomeState.WON, 4000.0)
        assert (outcomes[ids[1]].opportunity_id, outcomes[ids[1]].status, outcomes[ids[1]].amount) == (
            still_open, OutcomeState.OPPORTUNITY, 999.0)
        assert outcomes[ids[0]].opportunities == 3 and outcomes[ids[1]].opportunities == 2
        assert outcomes[ids[0]].fields["lifecyclestage"] == "customer"  # won: HubSpot's lifecycle sync

    def test_a_contact_with_more_deals_than_a_page_is_read_on_with_its_after(
            self, make_hubspot: Callable[..., HubSpotConnector], admin: Any) -> None:
        admin.set_limits(hubspot={"association_page_max": 2})
        crm = HubSpotCrm(make_hubspot(), admin)
        ids = crm.generate(2)
        made = [crm.convert(ids[0], amount=10 * n) for n in range(1, 6)]
        crm.convert(ids[1], amount=7, won=True)
        admin.clear_counters()
        outcomes = crm.connector.read_outcomes(ids)
        assert outcomes[ids[0]].opportunities == 5 and outcomes[ids[0]].opportunity_id == made[0]  # the earliest open
        assert outcomes[ids[1]].status is OutcomeState.WON
        # one contacts read, three rounds of associations (the second contact's in the first), one deals read
        assert calls(admin, "hubspot POST /crm/v4/associations/contacts/deals/batch/read") == 3
        assert admin.counters()["total"] == 5

    def test_a_contact_at_the_opportunity_stage_converted_on_the_day_it_got_there(
            self, make_hubspot: Callable[..., HubSpotConnector], admin: Any) -> None:
        crm = HubSpotCrm(make_hubspot(), admin)
        [contact] = crm.generate(1)
        crm.convert(contact, opportunity=False)
        reached = admin.hs_record(contact)["properties"]["hs_lifecyclestage_opportunity_date"]
        [outcome] = crm.connector.read_outcomes([contact]).values()
        assert outcome.status is OutcomeState.CONVERTED
        assert outcome.converted_at == parse_hs_datetime(reached)
        assert (outcome.fields["lifecyclestage"], outcome.fields["hs_lead_status"]) == ("opportunity", "OPEN_DEAL")

    def test_every_outcome_read_goes_through_the_call_runner_and_is_retried(
            self, make_hubspot: Callable[..., HubSpotConnector], admin: Any) -> None:
        crm = HubSpotCrm(make_hubspot(), admin)
        [contact] = crm.generate(1)
        crm.convert(contact, amount=1200, won=True)
        for endpoint in ("contacts/batch/read", "associations/contacts/deals", "deals/batch/read"):
            admin.script_fault("503", api="hubspot", endpoint=endpoint, count=1)
        outcome = crm.connector.read_outcomes([contact])[contact]
        assert outcome.status is OutcomeState.WON and outcome.amount == 1200.0
        assert crm.connector.runner.calls == 6  # three reads, each refused once and retried
        assert sum(counts.get("503", 0) for counts in admin.counters()["endpoints"].values()) == 3
