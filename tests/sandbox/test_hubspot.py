"""The HubSpot CRM v3 subset, driven only through hubspot-api-client over HTTPS (plus the admin API)."""

from __future__ import annotations

import json
import time
from typing import Any

import pytest
from hubspot import HubSpot
from hubspot.crm.contacts import (
    BatchInputSimplePublicObjectBatchInput,
    BatchReadInputSimplePublicObjectId,
    PublicObjectSearchRequest,
    SimplePublicObjectInput,
    SimplePublicObjectInputForCreate,
)
from hubspot.crm.contacts.exceptions import ApiException, NotFoundException, UnauthorizedException

from sandbox.client import AdminClient
from sandbox.run import SandboxInfo

from .conftest import ARCHIVED_HS, MIKE_HS, SARAH_HS, TRIAGE_HS, calls, http_session


def search(hs: HubSpot, *filters: dict[str, Any], sort: Any = None, limit: int = 100, after: str | None = None,
           properties: list[str] | None = None, groups: list[list[dict[str, Any]]] | None = None) -> Any:
    filter_groups = [{"filters": list(g)} for g in groups] if groups else ([{"filters": list(filters)}]
                                                                           if filters else [])
    req = PublicObjectSearchRequest(filter_groups=filter_groups, sorts=[sort] if sort else [], limit=limit,
                                    after=after, properties=properties or ["email", "hubspot_owner_id"])
    return hs.crm.contacts.search_api.do_search(public_object_search_request=req)


def emails(page: Any) -> list[str]:
    return [r.properties["email"] for r in page.results]


def body(exc: ApiException) -> dict[str, Any]:
    return json.loads(exc.body)


# --- search -------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("flt", "expected"), [
    ({"propertyName": "country", "operator": "EQ", "value": "de"}, ["hans.mueller@stahlwerk.de"]),
    ({"propertyName": "numemployees", "operator": "GT", "value": "4000"}, ["jane.doe@globex.com",
                                                                            "hans.mueller@stahlwerk.de"]),
    ({"propertyName": "numemployees", "operator": "GTE", "value": "4200"}, ["jane.doe@globex.com",
                                                                             "hans.mueller@stahlwerk.de"]),
    ({"propertyName": "numemployees", "operator": "LT", "value": "80"}, ["marco.bianchi@gmail.com"]),
    ({"propertyName": "numemployees", "operator": "LTE", "value": "80"}, ["carla@umbrella.io",
                                                                           "marco.bianchi@gmail.com"]),
    ({"propertyName": "numemployees", "operator": "BETWEEN", "value": "100", "highValue": "450"},
     ["bob@initech.com", "sofia@clinica-roma.it", "priya@fintechly.io"]),
    ({"propertyName": "country", "operator": "IN", "values": ["italy", "japan"]},
     ["sofia@clinica-roma.it", "marco.bianchi@gmail.com", "ken@partnerco.jp"]),
    ({"propertyName": "hubspotscore", "operator": "NOT_IN", "values": ["55", "70", "30", "60", "65"]},
     ["priya@fintechly.io", "marco.bianchi@gmail.com", "ken@partnerco.jp"]),
    ({"propertyName": "website", "operator": "NOT_HAS_PROPERTY"}, ["jane.doe@globex.com",
                                                                    "marco.bianchi@gmail.com"]),
    ({"propertyName": "email", "operator": "CONTAINS_TOKEN", "value": "*@gmail.com"}, ["marco.bianchi@gmail.com"]),
    ({"propertyName": "hs_language", "operator": "NEQ", "value": "en"},
     ["hans.mueller@stahlwerk.de", "sofia@clinica-roma.it", "marco.bianchi@gmail.com", "ken@partnerco.jp"]),
])
def test_search_filter_operators(hs: HubSpot, flt: dict[str, Any], expected: list[str]) -> None:
    assert emails(search(hs, flt)) == expected


def test_filter_groups_are_ored_and_filters_anded(hs: HubSpot) -> None:
    page = search(hs, groups=[
        [{"propertyName": "country", "operator": "EQ", "value": "DE"}],
        [{"propertyName": "country", "operator": "EQ", "value": "Italy"},
         {"propertyName": "numemployees", "operator": "LT", "value": "10"}],
    ])
    assert emails(page) == ["hans.mueller@stahlwerk.de", "marco.bianchi@gmail.com"]


def test_has_property_and_one_sort(hs: HubSpot, admin: AdminClient) -> None:
    admin.hs_change_owner("1003", SARAH_HS)
    admin.hs_change_owner("1001", MIKE_HS)
    page = search(hs, {"propertyName": "hubspot_owner_id", "operator": "HAS_PROPERTY"},
                  sort={"propertyName": "lastmodifieddate", "direction": "DESCENDING"})
    assert [r.id for r in page.results] == ["1001", "1003"]
    assert page.results[0].properties["hubspot_owner_id"] == MIKE_HS


def test_lastmodifieddate_filters_take_epoch_milliseconds(hs: HubSpot, admin: AdminClient) -> None:
    time.sleep(0.01)
    watermark = str(int(time.time() * 1000))
    time.sleep(0.01)
    admin.hs_set_status("1004", "IN_PROGRESS")
    page = search(hs, {"propertyName": "lastmodifieddate", "operator": "GTE", "value": watermark},
                  sort={"propertyName": "lastmodifieddate", "direction": "ASCENDING"},
                  properties=["email", "lastmodifieddate", "hs_lead_status"])
    assert [r.id for r in page.results] == ["1004"]
    assert page.results[0].properties["hs_lead_status"] == "IN_PROGRESS"
    assert page.results[0].properties["lastmodifieddate"].endswith("Z")


def test_paging_through_ten_thousand_contacts(hs: HubSpot, admin: AdminClient) -> None:
    admin.generate(hubspot={"contacts": 9_992})  # 8 seeded + 9,992 = exactly 10,000
    seen: list[str] = []
    after = None
    while True:
        page = search(hs, sort={"propertyName": "hs_object_id", "direction": "ASCENDING"}, limit=200, after=after)
        seen.extend(r.id for r in page.results)
        if not page.paging:
            break
        after = page.paging.next.after
    assert page.total == 10_000
    assert len(seen) == len(set(seen)) == 10_000
    assert calls(admin, "hubspot POST /crm/v3/objects/contacts/search") == 50


def test_paging_past_ten_thousand_results_is_a_400(hs: HubSpot, admin: AdminClient) -> None:
    admin.generate(hubspot={"contacts": 10_100})
    last = search(hs, limit=200, after="9800")
    assert last.paging.next.after == "10000"  # HubSpot offers the cursor, then refuses it
    with pytest.raises(ApiException) as info:
        search(hs, limit=200, after="10000")
    assert info.value.status == 400
    assert body(info.value)["category"] == "VALIDATION_ERROR"


def test_page_size_is_capped_at_200(hs: HubSpot) -> None:
    assert len(search(hs, limit=200).results) == 8
    with pytest.raises(ApiException) as info:
        search(hs, limit=201)
    assert info.value.status == 400 and "200" in body(info.value)["message"]


@pytest.mark.parametrize(("request_body", "needle"), [
    ({"filterGroups": [{"filters": [{"propertyName": "nope", "operator": "EQ", "value": "x"}]}]}, "nope"),
    ({"filterGroups": [{"filters": [{"propertyName": "email", "operator": "LIKE", "value": "x"}]}]}, "operator"),
    ({"filterGroups": [{"filters": [{"propertyName": "email", "operator": "IN"}]}]}, "values"),
    ({"filterGroups": [{"filters": [{"propertyName": "createdate", "operator": "GT", "value": "soon"}]}]}, "soon"),
    ({"filterGroups": [{"filters": []}] * 6}, "filter groups"),
    ({"sorts": [{"propertyName": "email"}, {"propertyName": "createdate"}]}, "one sort"),
    ({"limit": 10, "bogus": 1}, "bogus"),
])
def test_bad_search_requests_are_400s(sandbox: SandboxInfo, admin: AdminClient, request_body: dict[str, Any],
                                      needle: str) -> None:
    resp = http_session(sandbox).post(f"{sandbox.hubspot_base_url}/crm/v3/objects/contacts/search",
                                      json=request_body,
                                      headers={"Authorization": f"Bearer {sandbox.hubspot_access_token}"})
    assert resp.status_code == 400
    assert resp.json()["status"] == "error" and resp.json()["category"] == "VALIDATION_ERROR"
    assert needle in resp.json()["message"]


# --- rate limits --------------------------------------------------------------------------------------


def test_search_has_its_own_limit_of_five_per_second(hs: HubSpot, admin: AdminClient) -> None:
    admin.set_limits(hubspot={"search_per_second": 5})
    for _ in range(5):
        search(hs)
    with pytest.raises(ApiException) as info:
        search(hs)
    assert info.value.status == 429
    assert body(info.value)["policyName"] == "SECONDLY"
    assert info.value.headers["Retry-After"] == "1"
    hs.crm.contacts.basic_api.get_by_id("1001")  # other endpoints are not affected
    time.sleep(1.05)
    search(hs)


def test_ten_second_limit_answers_429_with_hubspot_body_and_headers(hs: HubSpot, admin: AdminClient) -> None:
    admin.set_limits(hubspot={"ten_second_limit": 3})
    basic = hs.crm.contacts.basic_api
    for expected_remaining in ("2", "1", "0"):
        _, status, headers = basic.get_by_id_with_http_info("1001")
        assert status == 200
        assert headers["X-HubSpot-RateLimit-Max"] == "3"
        assert headers["X-HubSpot-RateLimit-Remaining"] == expected_remaining
        assert headers["X-HubSpot-RateLimit-Interval-Milliseconds"] == "10000"
    with pytest.raises(ApiException) as info:
        basic.get_by_id("1001")
    err = info.value
    assert err.status == 429
    assert body(err)["message"] == "You have reached your ten_secondly_rolling limit."
    assert body(err)["errorType"] == "RATE_LIMIT" and body(err)["policyName"] == "TEN_SECONDLY_ROLLING"
    assert body(err)["status"] == "error" and body(err)["correlationId"]
    assert err.headers["X-HubSpot-RateLimit-Remaining"] == "0"
    assert 1 <= int(err.headers["Retry-After"]) <= 10
    assert calls(admin, "hubspot GET /crm/v3/objects/contacts/{id}", "429") == 1


def test_default_client_retries_a_429_after_retry_after(sandbox: SandboxInfo, admin: AdminClient) -> None:
    """Worth knowing: with its default urllib3 retries the client sleeps Retry-After and retries GETs
    (not the POSTs of search and batch), so a connector should switch those retries off."""
    default = HubSpot(access_token=sandbox.hubspot_access_token, host=sandbox.hubspot_base_url,
                      ssl_ca_cert=str(sandbox.ca_bundle))
    admin.script_fault("429", api="hubspot", endpoint="GET /crm/v3/objects/contacts/{id}")
    started = time.monotonic()
    assert default.crm.contacts.basic_api.get_by_id("1001").id == "1001"
    assert time.monotonic() - started >= 0.9
    assert calls(admin, "hubspot GET /crm/v3/objects/contacts/{id}", "429") == 1
    assert calls(admin, "hubspot GET /crm/v3/objects/contacts/{id}", "200") == 1


def test_daily_allowance(hs: HubSpot, admin: AdminClient) -> None:
    admin.set_limits(hubspot={"daily_limit": 2})
    admin.reset_usage()
    _, _, headers = hs.crm.contacts.basic_api.get_by_id_with_http_info("1001")
    assert headers["X-HubSpot-RateLimit-Daily"] == "2" and headers["X-HubSpot-RateLimit-Daily-Remaining"] == "1"
    hs.crm.contacts.basic_api.get_by_id("1001")
    with pytest.raises(ApiException) as info:
        hs.crm.contacts.basic_api.get_by_id("1001")
    assert info.value.status == 429 and body(info.value)["policyName"] == "DAILY"
    assert "Retry-After" not in info.value.headers


# --- objects ------------------------------------------------------------------------------------------


def test_get_by_id_with_properties(hs: HubSpot) -> None:
    contact = hs.crm.contacts.basic_api.get_by_id("1001", properties=["email", "hs_lead_status", "phone"])
    assert contact.properties == {"email": "jane.doe@globex.com", "hs_lead_status": "NEW", "phone": None}
    default = hs.crm.contacts.basic_api.get_by_id("1001")
    assert set(default.properties) == {"createdate", "email", "firstname", "hs_object_id", "lastmodifieddate",
                                       "lastname"}
    by_email = hs.crm.contacts.basic_api.get_by_id("carla@umbrella.io", id_property="email")
    assert by_email.id == "1003"


def test_unknown_contact_is_not_found(hs: HubSpot) -> None:
    with pytest.raises(NotFoundException) as info:
        hs.crm.contacts.basic_api.get_by_id("999999")
    assert body(info.value)["category"] == "OBJECT_NOT_FOUND"


def test_bad_token_is_unauthorized(sandbox: SandboxInfo, admin: AdminClient) -> None:
    bad = HubSpot(access_token="pat-na1-wrong", host=sandbox.hubspot_base_url, ssl_ca_cert=str(sandbox.ca_bundle))
    with pytest.raises(UnauthorizedException) as info:
        bad.crm.contacts.basic_api.get_by_id("1001")
    assert body(info.value)["category"] == "INVALID_AUTHENTICATION"


def test_create_and_duplicate_email(hs: HubSpot) -> None:
    made = hs.crm.contacts.basic_api.create(SimplePublicObjectInputForCreate(
        properties={"email": "new@lead.io", "firstname": "New"}))
    assert made.id and made.properties["email"] == "new@lead.io"
    with pytest.raises(ApiException) as info:
        hs.crm.contacts.basic_api.create(SimplePublicObjectInputForCreate(properties={"email": "new@lead.io"}))
    assert info.value.status == 409 and body(info.value)["category"] == "CONFLICT"


def test_update_advances_lastmodifieddate(hs: HubSpot) -> None:
    before = hs.crm.contacts.basic_api.get_by_id("1001")
    after = hs.crm.contacts.basic_api.update("1001", SimplePublicObjectInput(properties={"jobtitle": "COO"}))
    assert after.updated_at > before.updated_at
    assert after.properties["jobtitle"] == "COO"


def test_batch_read_reports_missing_ids(hs: HubSpot) -> None:
    result = hs.crm.contacts.batch_api.read(BatchReadInputSimplePublicObjectId(
        inputs=[{"id": "1001"}, {"id": "424242"}], properties=["email"], properties_with_history=[]))
    assert [r.id for r in result.results] == ["1001"]
    assert result.num_errors == 1
    assert result.errors[0].category == "OBJECT_NOT_FOUND" and result.errors[0].context == {"ids": ["424242"]}


def test_batch_update_writes_owners_and_reports_missing_records(hs: HubSpot, admin: AdminClient) -> None:
    result = hs.crm.contacts.batch_api.update(BatchInputSimplePublicObjectBatchInput(inputs=[
        {"id": "1001", "properties": {"hubspot_owner_id": SARAH_HS}},
        {"id": "777777", "properties": {"hubspot_owner_id": SARAH_HS}},
        {"id": "1002", "properties": {"hubspot_owner_id": TRIAGE_HS, "leadroute_reason": "fallback: no rule"}},
    ]))
    assert sorted(r.id for r in result.results) == ["1001", "1002"]
    assert result.errors[0].category == "OBJECT_NOT_FOUND" and result.errors[0].context == {"ids": ["777777"]}
    stored = admin.hs_record("1002")["properties"]
    assert stored["hubspot_owner_id"] == TRIAGE_HS and stored["leadroute_reason"] == "fallback: no rule"
    assert stored["hubspot_owner_assigneddate"]


def test_batch_update_is_capped_at_100_inputs(hs: HubSpot, admin: AdminClient) -> None:
    admin.generate(hubspot={"contacts": 100})
    ids = [c["id"] for c in admin.hs_records()][:101]
    batch = hs.crm.contacts.batch_api
    ok = batch.update(BatchInputSimplePublicObjectBatchInput(
        inputs=[{"id": i, "properties": {"hs_lead_status": "OPEN"}} for i in ids[:100]]))
    assert len(ok.results) == 100
    with pytest.raises(ApiException) as info:
        batch.update(BatchInputSimplePublicObjectBatchInput(
            inputs=[{"id": i, "properties": {"hs_lead_status": "OPEN"}} for i in ids]))
    assert info.value.status == 400 and "100" in body(info.value)["message"]


@pytest.mark.parametrize(("props", "error"), [
    ({"no_such_property": "x"}, "PROPERTY_DOESNT_EXIST"),
    ({"hubspot_owner_id": "123"}, "INVALID_OWNER_ID"),
    ({"hubspot_owner_id": ARCHIVED_HS}, "INVALID_OWNER_ID"),
    ({"hs_lead_status": "MAYBE"}, "INVALID_OPTION"),
    ({"lastmodifieddate": "1700000000000"}, "READ_ONLY_VALUE"),
])
def test_invalid_property_values_reject_the_whole_batch(hs: HubSpot, admin: AdminClient, props: dict[str, str],
                                                        error: str) -> None:
    with pytest.raises(ApiException) as info:
        hs.crm.contacts.batch_api.update(BatchInputSimplePublicObjectBatchInput(inputs=[
            {"id": "1001", "properties": {"jobtitle": "Boss"}}, {"id": "1002", "properties": props}]))
    assert info.value.status == 400
    assert body(info.value)["category"] == "VALIDATION_ERROR" and error in body(info.value)["message"]
    assert admin.hs_record("1001")["properties"].get("jobtitle") == "VP Operations"  # nothing was written


def test_owners_are_paged(hs: HubSpot) -> None:
    owners_api = hs.crm.owners.owners_api
    first = owners_api.get_page(limit=4)
    assert [o.id for o in first.results] == ["51234567", "51234568", "51234569", "51234570"]
    rest, after = [], first.paging.next.after
    while after:
        page = owners_api.get_page(limit=4, after=after)
        rest.extend(page.results)
        after = page.paging.next.after if page.paging else None
    everyone = first.results + rest
    assert len(everyone) == 10  # 8 reps and 2 queues; the archived owner is hidden
    assert {o.type for o in everyone} == {"PERSON", "QUEUE"}
    assert owners_api.get_page(email="sarah@example.com").results[0].id == SARAH_HS
    assert [o.id for o in owners_api.get_page(archived=True).results] == [ARCHIVED_HS]


def test_companies_search_by_domain(hs: HubSpot) -> None:
    from hubspot.crm.companies import PublicObjectSearchRequest as CompanySearch

    page = hs.crm.companies.search_api.do_search(public_object_search_request=CompanySearch(
        filter_groups=[{"filters": [{"propertyName": "domain", "operator": "EQ", "value": "globex.com"}]}],
        properties=["domain", "hubspot_owner_id"], limit=10))
    assert page.total == 1 and page.results[0].properties["hubspot_owner_id"] == SARAH_HS


def test_note_associated_with_a_contact(hs: HubSpot, admin: AdminClient) -> None:
    from hubspot.crm.objects.notes import SimplePublicObjectInputForCreate as NoteInput
    from hubspot.crm.objects.notes.exceptions import ApiException as NotesApiException

    note = hs.crm.objects.notes.basic_api.create(NoteInput(
        properties={"hs_timestamp": str(int(time.time() * 1000)), "hs_note_body": "Routed to Sarah: rule enterprise"},
        associations=[{"to": {"id": "1001"}, "types": [{"associationCategory": "HUBSPOT_DEFINED",
                                                         "associationTypeId": 202}]}]))
    assert note.properties["hs_note_body"].startswith("Routed")
    contact = admin.hs_record("1001")
    assert contact["associations"]["notes"] == [note.id]
    assert contact["properties"]["num_notes"] == "1"
    with pytest.raises(NotesApiException) as info:
        hs.crm.objects.notes.basic_api.create(NoteInput(properties={"hs_note_body": "no timestamp"}))
    assert info.value.status == 400


def test_malformed_json_gets_hubspot_validation_error(sandbox: SandboxInfo, admin: AdminClient) -> None:
    resp = http_session(sandbox).post(f"{sandbox.hubspot_base_url}/crm/v3/objects/contacts/batch/update",
                                      data=b'{"inputs": [', headers={
                                          "Authorization": f"Bearer {sandbox.hubspot_access_token}",
                                          "Content-Type": "application/json"})
    assert resp.status_code == 400
    assert resp.json()["category"] == "VALIDATION_ERROR"
    assert resp.json()["message"].startswith("Invalid input JSON on line 1")
