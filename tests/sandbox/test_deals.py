"""HubSpot outcomes in the sandbox: deals and their stages, deal-contact associations read in batches
through the v4 associations API, and contacts' lifecycle stages, all through hubspot-api-client."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hubspot import HubSpot
from hubspot.crm.associations.v4 import BatchInputPublicFetchAssociationsBatchRequest
from hubspot.crm.associations.v4.exceptions import ApiException as AssociationsApiException
from hubspot.crm.contacts.exceptions import ApiException as ContactsApiException
from hubspot.crm.deals import BatchReadInputSimplePublicObjectId, SimplePublicObjectInput, SimplePublicObjectInputForCreate
from hubspot.crm.deals.exceptions import ApiException

from sandbox.client import AdminClient, AdminError

from .conftest import MIKE_HS, calls

DEAL_PROPERTIES = ["dealname", "dealstage", "pipeline", "amount", "closedate", "deal_currency_code", "hs_is_closed",
                   "hs_is_closed_won", "hs_is_closed_lost", "hubspot_owner_id"]
ASSOCIATIONS = "hubspot POST /crm/v4/associations/contacts/deals/batch/read"


def deals_of(hs: HubSpot, *contact_ids: str, after: dict[str, str] | None = None) -> Any:
    inputs = [{"id": i, **({"after": after[i]} if after and i in after else {})} for i in contact_ids]
    return hs.crm.associations.v4.batch_api.get_page(
        "contacts", "deals", BatchInputPublicFetchAssociationsBatchRequest(inputs=inputs))


def read_deals(hs: HubSpot, *deal_ids: str) -> dict[str, dict[str, Any]]:
    page = hs.crm.deals.batch_api.read(BatchReadInputSimplePublicObjectId(
        inputs=[{"id": i} for i in deal_ids], properties=DEAL_PROPERTIES, properties_with_history=[]))
    return {d.id: d.properties for d in page.results}


def test_a_deal_created_through_the_api_with_a_contact(hs: HubSpot, admin: AdminClient) -> None:
    deal = hs.crm.deals.basic_api.create(SimplePublicObjectInputForCreate(
        properties={"dealname": "Globex platform", "dealstage": "qualifiedtobuy", "amount": "5000"},
        associations=[{"to": {"id": "1001"}, "types": [{"associationCategory": "HUBSPOT_DEFINED",
                                                          "associationTypeId": 3}]}]))
    stored = read_deals(hs, deal.id)[deal.id]
    assert stored["pipeline"] == "default" and stored["dealstage"] == "qualifiedtobuy" and stored["amount"] == "5000"
    assert (stored["hs_is_closed"], stored["hs_is_closed_won"]) == ("false", "false")
    assert stored["closedate"] is None
    contact = hs.crm.contacts.basic_api.get_by_id("1001", associations=["deals"])
    assert [a.id for a in contact.associations["deals"].results] == [deal.id]


def test_closing_a_deal_sets_the_calculated_flags_and_the_close_date(hs: HubSpot, admin: AdminClient) -> None:
    won = admin.hs_add_deal("1001", amount="12000")["deal"]["id"]
    lost = admin.hs_add_deal("1002")["deal"]["id"]
    hs.crm.deals.basic_api.update(won, SimplePublicObjectInput(properties={"dealstage": "closedwon"}))
    hs.crm.deals.basic_api.update(lost, SimplePublicObjectInput(properties={"dealstage": "closedlost",
                                                                            "closedate": "2030-01-15T00:00:00Z"}))
    stored = read_deals(hs, won, lost)
    assert (stored[won]["hs_is_closed"], stored[won]["hs_is_closed_won"], stored[won]["hs_is_closed_lost"]) == (
        "true", "true", "false")
    assert stored[won]["closedate"]  # closed now: HubSpot fills in the close date
    assert (stored[lost]["hs_is_closed"], stored[lost]["hs_is_closed_won"], stored[lost]["hs_is_closed_lost"]) == (
        "true", "false", "true")
    assert stored[lost]["closedate"] == "2030-01-15T00:00:00Z"  # as written
    with pytest.raises(ApiException) as info:
        hs.crm.deals.basic_api.update(won, SimplePublicObjectInput(properties={"hs_is_closed_won": "false"}))
    assert info.value.status == 400 and "READ_ONLY_VALUE" in json.loads(info.value.body)["message"]
    with pytest.raises(ApiException) as info:
        hs.crm.deals.basic_api.update(won, SimplePublicObjectInput(properties={"dealstage": "signed"}))
    assert "INVALID_OPTION" in json.loads(info.value.body)["message"]


def test_associations_are_read_in_one_batch_and_contacts_without_deals_are_errors(hs: HubSpot,
                                                                                 admin: AdminClient) -> None:
    first = admin.hs_add_deal("1001")["deal"]["id"]
    second = admin.hs_add_deal("1001")["deal"]["id"]
    other = admin.hs_add_deal("1003")["deal"]["id"]
    admin.clear_counters()
    page = deals_of(hs, "1001", "1002", "1003", "55555")
    assert calls(admin, ASSOCIATIONS, "207") == 1
    found = {r._from.id: [(t.to_object_id, [(a.category, a.type_id) for a in t.association_types]) for t in r.to]
             for r in page.results}
    assert found == {"1001": [(first, [("HUBSPOT_DEFINED", 4)]), (second, [("HUBSPOT_DEFINED", 4)])],
                     "1003": [(other, [("HUBSPOT_DEFINED", 4)])]}
    assert page.num_errors == 2
    assert sorted(e.context["fromObjectId"][0] for e in page.errors) == ["1002", "55555"]
    back = hs.crm.associations.v4.batch_api.get_page("deals", "contacts", BatchInputPublicFetchAssociationsBatchRequest(
        inputs=[{"id": first}]))
    assert [(t.to_object_id, t.association_types[0].type_id) for t in back.results[0].to] == [("1001", 3)]


def test_a_contact_with_many_deals_is_paged_by_its_own_after(hs: HubSpot, admin: AdminClient) -> None:
    admin.set_limits(hubspot={"association_page_max": 2})
    made = [admin.hs_add_deal("1001")["deal"]["id"] for _ in range(3)]
    admin.hs_add_deal("1002")
    page = deals_of(hs, "1001", "1002")
    by_contact = {r._from.id: r for r in page.results}
    assert [t.to_object_id for t in by_contact["1001"].to] == made[:2]
    assert by_contact["1002"].paging is None
    after = by_contact["1001"].paging.next.after
    rest = deals_of(hs, "1001", after={"1001": after})
    assert [t.to_object_id for t in rest.results[0].to] == made[2:] and rest.results[0].paging is None
    with pytest.raises(AssociationsApiException) as info:
        deals_of(hs, "1001", after={"1001": "not-a-token"})
    assert info.value.status == 400


def test_at_most_a_thousand_inputs_per_associations_read(hs: HubSpot, admin: AdminClient) -> None:
    assert deals_of(hs, *(str(2000 + i) for i in range(1000))).num_errors == 1000
    with pytest.raises(AssociationsApiException) as info:
        deals_of(hs, *(str(2000 + i) for i in range(1001)))
    assert info.value.status == 400 and "1000" in json.loads(info.value.body)["message"]


def test_an_archived_deal_is_no_longer_associated(hs: HubSpot, admin: AdminClient) -> None:
    kept = admin.hs_add_deal("1001")["deal"]["id"]
    gone = admin.hs_add_deal("1001")["deal"]["id"]
    hs.crm.deals.basic_api.archive(gone)
    assert [t.to_object_id for t in deals_of(hs, "1001").results[0].to] == [kept]
    assert read_deals(hs, kept, gone).keys() == {kept}


def test_a_rep_adds_a_deal_and_wins_it_moving_the_contact_up_its_lifecycle(hs: HubSpot, admin: AdminClient) -> None:
    admin.hs_change_owner("1001", MIKE_HS)
    added = admin.hs_add_deal("1001", amount="7500", deal_currency_code="EUR")
    deal, contact = added["deal"], added["record"]["properties"]
    assert deal["properties"]["hubspot_owner_id"] == MIKE_HS and deal["properties"]["dealstage"] == "appointmentscheduled"
    assert deal["associations"] == {"contacts": ["1001"]}
    assert contact["lifecyclestage"] == "opportunity" and contact["hs_lifecyclestage_opportunity_date"]
    admin.hs_set_deal_stage(deal["id"], won=True, amount="8000")
    stored = read_deals(hs, deal["id"])[deal["id"]]
    assert (stored["dealstage"], stored["amount"], stored["deal_currency_code"]) == ("closedwon", "8000", "EUR")
    after = admin.hs_record("1001")["properties"]
    assert after["lifecyclestage"] == "customer" and after["hs_lifecyclestage_customer_date"]
    assert after["hs_lifecyclestage_opportunity_date"] == contact["hs_lifecyclestage_opportunity_date"]  # kept
    admin.hs_add_deal("1001")  # a second deal never moves a customer back to opportunity
    assert admin.hs_record("1001")["properties"]["lifecyclestage"] == "customer"
    with pytest.raises(AdminError) as info:
        admin.hs_set_deal_stage(deal["id"], "signed")
    assert info.value.status == 400
    with pytest.raises(AdminError):
        admin.hs_set_deal_stage("1001", won=True)  # a contact has no stage


def test_lifecycle_stage_dates_are_set_once_and_read_only(hs: HubSpot, admin: AdminClient) -> None:
    contacts = hs.crm.contacts.basic_api
    contacts.update("1002", SimplePublicObjectInput(properties={"lifecyclestage": "salesqualifiedlead"}))
    first = contacts.get_by_id("1002", properties=["hs_lifecyclestage_salesqualifiedlead_date"]).properties
    assert first["hs_lifecyclestage_salesqualifiedlead_date"]
    contacts.update("1002", SimplePublicObjectInput(properties={"lifecyclestage": "opportunity"}))
    contacts.update("1002", SimplePublicObjectInput(properties={"lifecyclestage": "salesqualifiedlead"}))
    again = contacts.get_by_id("1002", properties=["hs_lifecyclestage_salesqualifiedlead_date",
                                                   "hs_lifecyclestage_opportunity_date"]).properties
    assert again["hs_lifecyclestage_salesqualifiedlead_date"] == first["hs_lifecyclestage_salesqualifiedlead_date"]
    assert again["hs_lifecyclestage_opportunity_date"]
    with pytest.raises(ContactsApiException) as info:
        contacts.update("1002", SimplePublicObjectInput(properties={"hs_lifecyclestage_customer_date": "0"}))
    assert info.value.status == 400 and "READ_ONLY_VALUE" in json.loads(info.value.body)["message"]
