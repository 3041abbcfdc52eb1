"""Salesforce keeps the connector contract: Leads in the sandbox org, through simple-salesforce over HTTPS."""

from __future__ import annotations

import math
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any, ClassVar

import pytest

from connectors import salesforce
from connectors.base import OutcomeState
from connectors.salesforce import SalesforceConnector
from sandbox.state import load_seed

from .conftest import SandboxCrm, calls, sf_settings
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
    currency: ClassVar[str] = "USD"  # the seed org's single currency
    outcome_batch: ClassVar[int] = 200  # ids in one SOQL IN list

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

    def convert(self, record_id: str, *, opportunity: bool = True, amount: float | None = None,
                won: bool | None = None) -> str | None:
        fields = {"Amount": amount} if amount is not None else {}
        made = self.admin.sf_convert(record_id, opportunity=fields if opportunity else False)["opportunity_id"]
        if made and won is not None:
            self.admin.sf_set_stage(made, won=won)
        return made  # type: ignore[no-any-return]

    def outcome_calls(self, leads: int, opportunities: int) -> int:
        """One query per 200 leads, one per 200 opportunities."""
        return math.ceil(leads / 200) + math.ceil(opportunities / 200)

    pipeline_page: ClassVar[int] = 2000  # the connector's default query batch size
    domain_calls: ClassVar[int] = 2  # one query on Leads, one on Contacts

    def domain_record(self, email: str, owner: str, created_at: datetime) -> str:
        (rid,) = self.admin.sf_load("Lead", [{"LastName": "Domain", "Company": email.partition("@")[2], "Email": email,
                                              "Status": "Working - Contacted", "OwnerId": owner,
                                              "CreatedDate": created_at.isoformat()}])
        return str(rid)


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

    # ------------------------------------------------------------------ outcomes, as only Salesforce has them

    def test_a_single_currency_org_is_asked_for_its_currency_once(self, make_salesforce: Callable[..., SalesforceConnector],
                                                                  admin: Any) -> None:
        crm = SalesforceCrm(make_salesforce(), admin)
        ids = crm.generate(2)
        crm.convert(ids[0], amount=500)
        crm.convert(ids[1], amount=700, won=True)
        crm.connector.list_owners()  # the login
        admin.clear_counters()
        first = crm.connector.read_outcomes(ids[:1])
        assert first[ids[0]].currency == "USD"
        # the lead query; the Opportunity query asking for CurrencyIsoCode, refused; again without it; the org's currency
        assert calls(admin, "salesforce GET /query") == 4 and calls(admin, "salesforce GET /query", "400") == 1
        admin.clear_counters()
        again = crm.connector.read_outcomes(ids)
        assert [again[i].currency for i in ids] == ["USD", "USD"]
        assert calls(admin, "salesforce GET /query") == 2  # learnt once: leads, opportunities

    def test_a_multi_currency_org_reports_each_opportunitys_currency(self, make_salesforce: Callable[..., SalesforceConnector],
                                                                    admin: Any) -> None:
        seed = load_seed()
        seed["salesforce"].update({"multi_currency": True, "currency": "EUR", "currencies": ["GBP"]})
        admin.reset(seed)
        crm = SalesforceCrm(make_salesforce(), admin)
        ids = crm.generate(2)
        pounds = admin.sf_convert(ids[0], opportunity={"Amount": 100, "CurrencyIsoCode": "GBP"})["opportunity_id"]
        crm.convert(ids[1], amount=250)
        crm.connector.list_owners()
        admin.clear_counters()
        outcomes = crm.connector.read_outcomes(ids)
        assert outcomes[ids[0]].opportunity_id == pounds
        assert [(outcomes[i].amount, outcomes[i].currency) for i in ids] == [(100.0, "GBP"), (250.0, "EUR")]
        assert calls(admin, "salesforce GET /query", "200") == 2 and calls(admin, "salesforce GET /query") == 2

    def test_outcomes_answer_by_the_id_as_asked_and_a_failed_query_is_retried(
            self, make_salesforce: Callable[..., SalesforceConnector], admin: Any) -> None:
        crm = SalesforceCrm(make_salesforce(), admin)
        [lead] = crm.generate(1)
        crm.convert(lead, amount=900, won=True)
        admin.script_fault("503", api="salesforce", endpoint="GET /query", count=2)
        outcomes = crm.connector.read_outcomes([lead[:15]])
        assert list(outcomes) == [lead[:15]] and outcomes[lead[:15]].id == lead[:15]
        assert outcomes[lead[:15]].status is OutcomeState.WON and outcomes[lead[:15]].amount == 900.0
        assert calls(admin, "salesforce GET /query", "503") == 2

    def test_contacts_are_never_converted(self, make_salesforce: Callable[..., SalesforceConnector], admin: Any) -> None:
        contacts = make_salesforce(sf_settings(object="Contact", fields={"Id": "id", "Email": "email"}))
        ids = [r["Id"] for r in admin.sf_records("Contact")]
        outcomes = contacts.read_outcomes([*ids, "0035e0000009zzzAAA"])
        assert set(outcomes) == set(ids)
        assert all(o.status is OutcomeState.OPEN and o.opportunity_id is None for o in outcomes.values())

    def test_list_owners_lists_the_queues_beside_the_users(self, crm: Any) -> None:
        queues = [o for o in crm.connector.list_owners() if o.kind == "queue"]
        assert "00G5e000000InTkEAK" in {q.id for q in queues}  # the seed's intake queue, read from Group
        assert all(q.id.startswith("00G") and q.name for q in queues)

    # ------------------------------------------------------------------ same-domain records, as only Salesforce has queues

    def test_leads_owned_by_queues_do_not_crowd_out_a_reps_lead_on_the_domain(
        self, make_salesforce: Callable[..., SalesforceConnector], admin: Any, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        monkeypatch.setattr(salesforce, "RECENT_ROWS_PER_QUERY", 2)  # the newest rows a query takes
        crm = SalesforceCrm(make_salesforce(), admin)
        rep, _ = crm.owners()
        now = datetime.now(UTC).replace(microsecond=0)
        mine = crm.domain_record("cfo@queued-contract.com", rep, now - timedelta(days=3))
        for days in (1, 2):  # newer, in the intake queue: a queue is nobody to route to the same rep as
            crm.domain_record(f"q{days}@queued-contract.com", "00G5e000000InTkEAK", now - timedelta(days=days))
        found = crm.connector.recent_by_domain(["queued-contract.com"], now - timedelta(days=30))
        assert [(r.id, r.owner_id) for r in found["queued-contract.com"]] == [(mine, rep)]
