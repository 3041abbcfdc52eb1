"""Contract test: what the real HubSpot client sends and what the sandbox answers both conform to
HubSpot's published API schemas, as the generated models of HubSpot's own Python client state them
(see ``hubspot_models``): property names, JSON types, date-times, required properties and enums,
for every endpoint the connector uses, success and error bodies alike.
"""

from __future__ import annotations

import json
import re
import time
from typing import Any

import pytest
from hubspot import HubSpot
from hubspot.crm.associations.v4 import BatchInputPublicFetchAssociationsBatchRequest
from hubspot.crm.associations.v4.exceptions import ApiException as AssociationsApiException
from hubspot.crm.companies import PublicObjectSearchRequest as CompanySearch
from hubspot.crm.contacts import (
    BatchInputSimplePublicObjectBatchInput,
    BatchReadInputSimplePublicObjectId,
    PublicObjectSearchRequest,
    SimplePublicObjectInput,
    SimplePublicObjectInputForCreate,
)
from hubspot.crm.contacts.exceptions import ApiException
from hubspot.crm.deals import BatchReadInputSimplePublicObjectId as DealsRead
from hubspot.crm.deals import SimplePublicObjectInputForCreate as DealInput
from hubspot.crm.objects.notes import SimplePublicObjectInputForCreate as NoteInput

from sandbox.client import AdminClient

from .conftest import SARAH_HS
from .hubspot_models import problems

PACKAGE = {"contacts": "crm.contacts", "companies": "crm.companies", "notes": "crm.objects.notes", "owners": "crm.owners",
           "deals": "crm.deals", "associations": "crm.associations.v4"}
_OBJ = r"/crm/v3/objects/(?P<otype>contacts|companies|notes|deals)"
# (method, path pattern) -> (request model, {status: response model}); any status >= 400 answers an Error
ENDPOINTS: list[tuple[str, re.Pattern[str], str | None, dict[int, str]]] = [
    ("POST", re.compile(_OBJ + r"/search$"), "PublicObjectSearchRequest",
     {200: "CollectionResponseWithTotalSimplePublicObjectForwardPaging"}),
    ("POST", re.compile(_OBJ + r"/batch/read$"), "BatchReadInputSimplePublicObjectId",
     {200: "BatchResponseSimplePublicObject", 207: "BatchResponseSimplePublicObjectWithErrors"}),
    ("POST", re.compile(_OBJ + r"/batch/update$"), "BatchInputSimplePublicObjectBatchInput",
     {200: "BatchResponseSimplePublicObject", 207: "BatchResponseSimplePublicObjectWithErrors"}),
    ("POST", re.compile(_OBJ + r"$"), "SimplePublicObjectInputForCreate", {201: "SimplePublicObject"}),
    ("GET", re.compile(_OBJ + r"/[^/]+$"), None, {200: "SimplePublicObjectWithAssociations"}),
    ("PATCH", re.compile(_OBJ + r"/[^/]+$"), "SimplePublicObjectInput", {200: "SimplePublicObject"}),
    ("POST", re.compile(r"/crm/v4/(?P<otype>associations)/[^/]+/[^/]+/batch/read$"),
     "BatchInputPublicFetchAssociationsBatchRequest",
     {200: "BatchResponsePublicAssociationMultiWithLabel", 207: "BatchResponsePublicAssociationMultiWithLabelWithErrors"}),
    ("GET", re.compile(r"/crm/v3/(?P<otype>owners)/?$"), None, {200: "CollectionResponsePublicOwnerForwardPaging"}),
    ("GET", re.compile(r"/crm/v3/(?P<otype>owners)/[^/]+$"), None, {200: "PublicOwner"}),
]


def _drive_every_endpoint(hs: HubSpot, admin: AdminClient) -> None:
    contacts = hs.crm.contacts
    contacts.search_api.do_search(public_object_search_request=PublicObjectSearchRequest(
        filter_groups=[{"filters": [{"propertyName": "hs_lead_status", "operator": "EQ", "value": "NEW"},
                                    {"propertyName": "lastmodifieddate", "operator": "GTE", "value": "0"}]}],
        sorts=["lastmodifieddate"], properties=["email", "phone", "hubspot_owner_id"], limit=3, after="0"))
    contacts.basic_api.get_by_id("1001", properties=["email", "phone"])
    made = contacts.basic_api.create(SimplePublicObjectInputForCreate(properties={"email": "oa@example.io"},
                                                                      associations=[]))
    contacts.basic_api.update(made.id, SimplePublicObjectInput(properties={"jobtitle": "CTO"}))
    contacts.batch_api.read(BatchReadInputSimplePublicObjectId(
        inputs=[{"id": "1001"}, {"id": "1002"}], properties=["email"], properties_with_history=[]))
    contacts.batch_api.read(BatchReadInputSimplePublicObjectId(
        inputs=[{"id": "1001"}, {"id": "55555"}], properties=["email"], properties_with_history=[]))
    contacts.batch_api.update(BatchInputSimplePublicObjectBatchInput(inputs=[
        {"id": "1001", "properties": {"hubspot_owner_id": SARAH_HS}}]))
    contacts.batch_api.update(BatchInputSimplePublicObjectBatchInput(inputs=[
        {"id": "1002", "properties": {"hubspot_owner_id": SARAH_HS}},
        {"id": "55555", "properties": {"hubspot_owner_id": SARAH_HS}}]))
    hs.crm.owners.owners_api.get_page(limit=3)
    hs.crm.owners.owners_api.get_by_id(int(SARAH_HS))
    hs.crm.companies.search_api.do_search(public_object_search_request=CompanySearch(
        filter_groups=[{"filters": [{"propertyName": "domain", "operator": "EQ", "value": "globex.com"}]}],
        sorts=["name"], properties=["domain", "hubspot_owner_id"], limit=1, after="0"))
    hs.crm.objects.notes.basic_api.create(NoteInput(
        properties={"hs_timestamp": str(int(time.time() * 1000)), "hs_note_body": "Routed by leadroute"},
        associations=[{"to": {"id": "1001"}, "types": [{"associationCategory": "HUBSPOT_DEFINED",
                                                         "associationTypeId": 202}]}]))
    deal = hs.crm.deals.basic_api.create(DealInput(
        properties={"dealname": "Globex platform", "dealstage": "closedwon", "amount": "5000"},
        associations=[{"to": {"id": "1001"}, "types": [{"associationCategory": "HUBSPOT_DEFINED",
                                                          "associationTypeId": 3}]}]))
    hs.crm.deals.batch_api.read(DealsRead(inputs=[{"id": deal.id}], properties=["dealstage", "hs_is_closed_won"],
                                          properties_with_history=[]))
    hs.crm.deals.batch_api.read(DealsRead(inputs=[{"id": deal.id}, {"id": "55555"}], properties=["amount"],
                                          properties_with_history=[]))
    associations = hs.crm.associations.v4.batch_api
    associations.get_page("contacts", "deals", BatchInputPublicFetchAssociationsBatchRequest(inputs=[{"id": "1001"}]))
    associations.get_page("contacts", "deals", BatchInputPublicFetchAssociationsBatchRequest(
        inputs=[{"id": "1001"}, {"id": "1002"}]))
    for failing in (
        lambda: associations.get_page("contacts", "deals", BatchInputPublicFetchAssociationsBatchRequest(
            inputs=[{"id": str(i)} for i in range(1001)])),
        lambda: contacts.basic_api.get_by_id("424242"),
        lambda: contacts.search_api.do_search(public_object_search_request=PublicObjectSearchRequest(
            filter_groups=[], sorts=[], properties=["email"], limit=500, after="0")),
        lambda: contacts.batch_api.update(BatchInputSimplePublicObjectBatchInput(inputs=[
            {"id": "1001", "properties": {"hubspot_owner_id": "1"}}])),
    ):
        with pytest.raises((ApiException, AssociationsApiException)):
            failing()
    admin.set_limits(hubspot={"ten_second_limit": 0})
    with pytest.raises(ApiException):
        contacts.basic_api.get_by_id("1001")


def exchange_problems(exchange: dict[str, Any]) -> list[str]:
    """What in one recorded request/response pair breaks HubSpot's schema for its endpoint."""

    name = f"{exchange['endpoint']} {exchange['status']}"
    for method, pattern, request_model, responses in ENDPOINTS:
        match = pattern.match(exchange["path"])
        if method != exchange["method"].upper() or match is None:
            continue
        package = PACKAGE[match.group("otype")]
        found = []
        if request_model and exchange["request_body"]:
            found += problems(package, request_model, json.loads(exchange["request_body"]), "request")
        status = exchange["status"]
        model = "Error" if status >= 400 else responses.get(status)
        if model is None:
            return [f"{name}: status {status} is not one HubSpot documents for this endpoint"]
        if exchange["content_type"].split(";")[0] != "application/json":
            found.append(f"response content-type {exchange['content_type']!r}")
        found += problems(package, model, json.loads(exchange["response_body"]), "response")
        return [f"{name}: {p}" for p in found]
    return [f"{name}: an endpoint this contract does not cover"]


def test_requests_and_responses_conform_to_hubspots_schemas(hs: HubSpot, admin: AdminClient) -> None:
    admin.start_recording()
    _drive_every_endpoint(hs, admin)
    exchanges = [e for e in admin.stop_recording() if e["api"] == "hubspot"]
    statuses = {(e["endpoint"], e["status"]) for e in exchanges}
    assert ("POST /crm/v3/objects/contacts/batch/update", 207) in statuses
    assert ("GET /crm/v3/objects/contacts/{id}", 429) in statuses
    assert ("POST /crm/v3/objects/deals/batch/read", 207) in statuses
    assert {("POST /crm/v4/associations/contacts/deals/batch/read", s) for s in (200, 207, 400)} <= statuses
    assert len({e["endpoint"] for e in exchanges}) >= 11
    assert [p for e in exchanges for p in exchange_problems(e)] == []


def test_the_contract_check_catches_what_the_client_would_let_through() -> None:
    good = {"id": "1", "properties": {"email": "a@b.io", "phone": None}, "createdAt": "2026-01-02T03:04:05.000Z",
            "updatedAt": "2026-01-02T03:04:05.000Z", "archived": False}
    assert problems("crm.contacts", "SimplePublicObject", good) == []
    assert problems("crm.contacts", "SimplePublicObject", {**good, "ownerId": "7"}) == [
        "$.ownerId: not a property of SimplePublicObject"]
    assert problems("crm.contacts", "SimplePublicObject", {**good, "archived": "false"}) == [
        "$.archived: expected bool, got str 'false'"]
    assert problems("crm.contacts", "SimplePublicObject", {**good, "createdAt": "yesterday"}) == [
        "$.createdAt: expected an ISO 8601 datetime, got 'yesterday'"]
    missing = {k: v for k, v in good.items() if k != "id"}
    assert problems("crm.contacts", "SimplePublicObject", missing) == [
        "$: SimplePublicObject: Invalid value for `id`, must not be `None`"]
    error = {"status": "error", "message": "m", "correlationId": "c", "category": "VALIDATION_ERROR"}
    assert problems("crm.contacts", "Error", error) == []
    assert problems("crm.contacts", "Error", {**error, "errors": [{"message": 3}]})[0].startswith("$.errors[0].message:")
    batch = {"status": "COMPLETE", "results": [], "startedAt": "2026-01-02T03:04:05Z", "completedAt": "2026-01-02T03:04:05Z"}
    assert problems("crm.contacts", "BatchResponseSimplePublicObject", batch) == []
    assert "must be one of" in problems("crm.contacts", "BatchResponseSimplePublicObject", {**batch, "status": "DONE"})[0]
