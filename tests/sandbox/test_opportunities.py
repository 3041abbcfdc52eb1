"""Salesforce outcomes in the sandbox: lead conversion with its Opportunity, stages that decide IsWon and
IsClosed, one currency or several, all read through simple-salesforce's SOQL as a connector reads them."""

from __future__ import annotations

import calendar
from datetime import UTC, date, datetime
from typing import Any

import pytest
from simple_salesforce import Salesforce
from simple_salesforce.exceptions import SalesforceMalformedRequest

from sandbox.client import AdminClient, AdminError
from sandbox.state import load_seed

from .conftest import SARAH_SF, sf_error

OPPORTUNITY = "Id, Name, StageName, IsWon, IsClosed, Amount, CloseDate, Probability, AccountId, OwnerId, LeadSource"


def today() -> date:
    return datetime.now(UTC).date()


def end_of_quarter(day: date) -> str:
    month = (day.month - 1) // 3 * 3 + 3
    return date(day.year, month, calendar.monthrange(day.year, month)[1]).isoformat()


def a_lead(sf: Salesforce) -> str:
    return str(sf.query("SELECT Id FROM Lead ORDER BY CreatedDate, Id LIMIT 1")["records"][0]["Id"])


def opportunity(sf: Salesforce, opportunity_id: str, fields: str = OPPORTUNITY) -> dict[str, Any]:
    rows = sf.query(f"SELECT {fields} FROM Opportunity WHERE Id IN ('{opportunity_id}')")["records"]
    assert len(rows) == 1
    return rows[0]  # type: ignore[no-any-return]


def test_converting_a_lead_creates_an_opportunity_the_lead_points_to(sf: Salesforce, admin: AdminClient) -> None:
    lead_id = a_lead(sf)
    admin.sf_change_owner(lead_id, SARAH_SF)
    converted = admin.sf_convert(lead_id, opportunity={"Amount": 12500})
    lead = sf.query(f"SELECT IsConverted, ConvertedDate, ConvertedAccountId, ConvertedOpportunityId, "
                    f"ConvertedOpportunity.StageName, ConvertedOpportunity.Amount FROM Lead WHERE Id = '{lead_id}'"
                    )["records"][0]
    assert lead["IsConverted"] is True and lead["ConvertedDate"] == today().isoformat()  # a date, no time
    assert lead["ConvertedOpportunityId"] == converted["opportunity_id"]
    assert lead["ConvertedOpportunity"]["StageName"] == "Prospecting"
    assert lead["ConvertedOpportunity"]["Amount"] == 12500.0
    opp = opportunity(sf, converted["opportunity_id"])
    assert opp["Name"] == f"{converted['lead']['Company']}-"
    assert (opp["IsWon"], opp["IsClosed"], opp["Probability"]) == (False, False, 10.0)
    assert opp["CloseDate"] == end_of_quarter(today())
    assert opp["AccountId"] == converted["account_id"] == lead["ConvertedAccountId"]
    assert opp["OwnerId"] == SARAH_SF and opp["LeadSource"] == converted["lead"]["LeadSource"]


def test_a_conversion_without_an_opportunity_leaves_the_reference_empty(sf: Salesforce, admin: AdminClient) -> None:
    lead_id = a_lead(sf)
    converted = admin.sf_convert(lead_id, opportunity=False)
    assert converted["opportunity_id"] is None
    lead = sf.query(f"SELECT IsConverted, ConvertedOpportunityId FROM Lead WHERE Id = '{lead_id}'")["records"][0]
    assert lead == {"attributes": lead["attributes"], "IsConverted": True, "ConvertedOpportunityId": None}
    assert sf.query("SELECT COUNT() FROM Opportunity")["totalSize"] == 0


@pytest.mark.parametrize("fields", [{"Bogus__c": 1}, {"StageName": "Daydreaming"}, {"Amount": "a lot"}])
def test_a_bad_opportunity_field_refuses_the_whole_conversion(sf: Salesforce, admin: AdminClient,
                                                              fields: dict[str, Any]) -> None:
    lead_id = a_lead(sf)
    with pytest.raises(AdminError) as info:
        admin.sf_convert(lead_id, opportunity=fields)
    assert info.value.status == 400
    assert sf.Lead.get(lead_id)["IsConverted"] is False
    assert sf.query("SELECT COUNT() FROM Opportunity")["totalSize"] == 0
    assert sf.query("SELECT COUNT() FROM Contact")["totalSize"] == 3  # the seed's, no new one


def test_the_stage_decides_won_closed_and_probability(sf: Salesforce, admin: AdminClient) -> None:
    opp_id = admin.sf_convert(a_lead(sf))["opportunity_id"]
    won = admin.sf_set_stage(opp_id, won=True, amount=9000)
    assert (won["StageName"], won["IsWon"], won["IsClosed"], won["Probability"]) == ("Closed Won", True, True, 100.0)
    assert won["Amount"] == 9000.0 and won["CloseDate"] == today().isoformat()  # closed today
    admin.sf_set_stage(opp_id, "Negotiation/Review", close_date="2030-03-31")
    reopened = opportunity(sf, opp_id)
    assert (reopened["IsWon"], reopened["IsClosed"], reopened["Probability"]) == (False, False, 90.0)
    assert reopened["CloseDate"] == "2030-03-31"
    sf.Opportunity.update(opp_id, {"StageName": "Closed Lost"})  # through the API, as a rep's edit would be
    lost = opportunity(sf, opp_id)
    assert (lost["StageName"], lost["IsWon"], lost["IsClosed"], lost["Probability"]) == ("Closed Lost", False, True, 0.0)


def test_won_and_closed_are_read_only_and_stages_are_a_restricted_picklist(sf: Salesforce, admin: AdminClient) -> None:
    opp_id = admin.sf_convert(a_lead(sf))["opportunity_id"]
    with pytest.raises(SalesforceMalformedRequest) as info:
        sf.Opportunity.update(opp_id, {"IsWon": True})
    assert sf_error(info.value)["errorCode"] == "INVALID_FIELD_FOR_INSERT_UPDATE"
    with pytest.raises(AdminError) as refused:
        admin.sf_set_stage(opp_id, "Daydreaming")
    assert refused.value.status == 400
    with pytest.raises(SalesforceMalformedRequest) as info:
        sf.Opportunity.create({"Name": "No stage"})
    assert sf_error(info.value)["errorCode"] == "REQUIRED_FIELD_MISSING"
    with pytest.raises(AdminError):
        admin.sf_set_stage(a_lead(sf), won=True)  # a lead has no stage


def test_a_single_currency_org_has_no_currency_iso_code_but_a_default_currency(sf: Salesforce,
                                                                               admin: AdminClient) -> None:
    opp_id = admin.sf_convert(a_lead(sf), opportunity={"Amount": 100})["opportunity_id"]
    with pytest.raises(SalesforceMalformedRequest) as info:
        opportunity(sf, opp_id, "Id, Amount, CurrencyIsoCode")
    assert sf_error(info.value)["errorCode"] == "INVALID_FIELD"
    assert "CurrencyIsoCode" in sf_error(info.value)["message"]
    org = sf.query("SELECT Id, DefaultCurrencyIsoCode FROM Organization")["records"]
    assert [r["DefaultCurrencyIsoCode"] for r in org] == ["USD"]


def test_a_multi_currency_org_has_currency_iso_code_on_each_opportunity(sf: Salesforce, admin: AdminClient) -> None:
    seed = load_seed()
    seed["salesforce"].update({"multi_currency": True, "currency": "EUR", "currencies": ["GBP", "USD"]})
    admin.reset(seed)
    leads = [r["Id"] for r in sf.query("SELECT Id FROM Lead ORDER BY CreatedDate, Id LIMIT 2")["records"]]
    pounds = admin.sf_convert(leads[0], opportunity={"Amount": 100, "CurrencyIsoCode": "GBP"})["opportunity_id"]
    corporate = admin.sf_convert(leads[1], opportunity={"Amount": 200})["opportunity_id"]
    assert opportunity(sf, pounds, "Id, CurrencyIsoCode")["CurrencyIsoCode"] == "GBP"
    assert opportunity(sf, corporate, "Id, CurrencyIsoCode")["CurrencyIsoCode"] == "EUR"  # the corporate currency
    with pytest.raises(SalesforceMalformedRequest) as info:
        sf.Opportunity.update(pounds, {"CurrencyIsoCode": "XYZ"})
    assert sf_error(info.value)["errorCode"] == "INVALID_OR_NULL_FOR_RESTRICTED_PICKLIST"
