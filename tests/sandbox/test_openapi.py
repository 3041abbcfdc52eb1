"""Contract test: what the real HubSpot client sends and what the sandbox answers both conform to
HubSpot's own OpenAPI specifications (shared/specs/hubspot), checked with openapi-core.

Two adjustments to the loaded specs, both to match what HubSpot really sends: HubSpot returns
``null`` for a requested property that has no value (``"phone": null``) although its specs type
property values as plain strings, so those values are marked nullable; and its error responses
are declared as ``*/*`` (which openapi-core cannot parse) while HubSpot sends
``application/json``, so the Error response is declared as JSON.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl

import pytest
from hubspot import HubSpot
from hubspot.crm.companies import PublicObjectSearchRequest as CompanySearch
from hubspot.crm.contacts import (
    BatchInputSimplePublicObjectBatchInput,
    BatchReadInputSimplePublicObjectId,
    PublicObjectSearchRequest,
    SimplePublicObjectInput,
    SimplePublicObjectInputForCreate,
)
from hubspot.crm.contacts.exceptions import ApiException
from hubspot.crm.objects.notes import SimplePublicObjectInputForCreate as NoteInput
from openapi_core import OpenAPI
from openapi_core.testing import MockRequest, MockResponse

from sandbox.client import AdminClient

from .conftest import SARAH_HS

SPEC_DIR = Path(__file__).resolve().parents[2].parent / "shared" / "specs" / "hubspot"
SPEC_FOR = {"contacts": "contacts", "companies": "companies", "notes": "notes", "owners": "crmOwners"}


def _nullable_property_values(node: Any) -> None:
    if isinstance(node, dict):
        props = node.get("properties")
        if isinstance(props, dict) and isinstance(props.get("properties"), dict):
            extra = props["properties"].get("additionalProperties")
            if isinstance(extra, dict) and extra.get("type") == "string":
                extra["nullable"] = True
        for value in node.values():
            _nullable_property_values(value)
    elif isinstance(node, list):
        for value in node:
            _nullable_property_values(value)


@pytest.fixture(scope="module")
def specs() -> dict[str, OpenAPI]:
    assert SPEC_DIR.is_dir(), f"HubSpot's OpenAPI specs are expected at {SPEC_DIR} (shared/ beside the repo)"
    out = {}
    for key, name in SPEC_FOR.items():
        data = json.loads((SPEC_DIR / f"{name}.json").read_text())
        _nullable_property_values(data)
        error = data["components"]["responses"]["Error"]["content"]
        error["application/json"] = error.pop("*/*")
        out[key] = OpenAPI.from_dict(data)
    return out


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
    for failing in (
        lambda: contacts.basic_api.get_by_id("424242"),
        lambda: contacts.search_api.do_search(public_object_search_request=PublicObjectSearchRequest(
            filter_groups=[], sorts=[], properties=["email"], limit=500, after="0")),
        lambda: contacts.batch_api.update(BatchInputSimplePublicObjectBatchInput(inputs=[
            {"id": "1001", "properties": {"hubspot_owner_id": "1"}}])),
    ):
        with pytest.raises(ApiException):
            failing()
    admin.set_limits(hubspot={"ten_second_limit": 0})
    with pytest.raises(ApiException):
        contacts.basic_api.get_by_id("1001")


def _as_openapi(exchange: dict[str, Any]) -> tuple[MockRequest, MockResponse]:
    request = MockRequest(
        "https://api.hubapi.com", exchange["method"].lower(), exchange["path"].rstrip("/"),
        args=dict(parse_qsl(exchange["query"])) or None, headers=exchange["request_headers"],
        data=exchange["request_body"].encode() or None,
    )
    response = MockResponse(exchange["response_body"].encode(), status_code=exchange["status"],
                            headers=exchange["response_headers"], content_type="application/json")
    return request, response


@pytest.mark.filterwarnings("ignore:Unsupported scheme type:UserWarning")  # openapi-core has no oauth2 checker
def test_requests_and_responses_conform_to_hubspot_openapi(hs: HubSpot, admin: AdminClient,
                                                           specs: dict[str, OpenAPI]) -> None:
    admin.start_recording()
    _drive_every_endpoint(hs, admin)
    exchanges = [e for e in admin.stop_recording() if e["api"] == "hubspot"]
    statuses = {(e["endpoint"], e["status"]) for e in exchanges}
    assert ("POST /crm/v3/objects/contacts/batch/update", 207) in statuses
    assert ("GET /crm/v3/objects/contacts/{id}", 429) in statuses
    problems = []
    for exchange in exchanges:
        kind = "owners" if exchange["path"].startswith("/crm/v3/owners") else exchange["path"].split("/")[4]
        request, response = _as_openapi(exchange)
        errors = [*specs[kind].iter_request_errors(request), *specs[kind].iter_response_errors(request, response)]
        for err in errors:
            detail = getattr(err.__cause__, "schema_errors", None) or [err.__cause__ or err]
            problems.append(f"{exchange['endpoint']} {exchange['status']}: {err}: {[str(d)[:200] for d in detail]}")
    assert problems == []
