"""Bad input gets the real API's error, never a 500: malformed JSON, wrong shapes, oversized
batches, unknown fields, garbage ids and query strings, on every endpoint."""

from __future__ import annotations

import json
from typing import Any

import pytest
import requests
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sandbox.client import AdminClient
from sandbox.run import SandboxInfo

from .conftest import http_session, login

SF = "/services/data/v60.0"
SF_ENDPOINTS = [
    ("GET", f"{SF}/query"), ("GET", f"{SF}/query/01gBOGUS-2000"), ("GET", f"{SF}/limits"),
    ("GET", f"{SF}/sobjects/Lead/describe"), ("POST", f"{SF}/sobjects/Lead"),
    ("GET", f"{SF}/sobjects/Lead/garbage"), ("PATCH", f"{SF}/sobjects/Lead/00Q5e00000Lea00EAH"),
    ("DELETE", f"{SF}/sobjects/Lead/nope"), ("PATCH", f"{SF}/composite/sobjects"),
    ("POST", f"{SF}/composite/sobjects"), ("GET", f"{SF}/composite/sobjects/Lead"),
    ("GET", f"{SF}/sobjects/NotAThing/123"), ("GET", "/services/data/v60.0/nonexistent"),
]
HS_ENDPOINTS = [
    ("POST", "/crm/v3/objects/contacts/search"), ("POST", "/crm/v3/objects/contacts/batch/read"),
    ("POST", "/crm/v3/objects/contacts/batch/update"), ("POST", "/crm/v3/objects/contacts"),
    ("PATCH", "/crm/v3/objects/contacts/1001"), ("GET", "/crm/v3/objects/contacts/1001"),
    ("GET", "/crm/v3/objects/contacts"), ("POST", "/crm/v3/objects/companies/search"),
    ("POST", "/crm/v3/objects/notes"), ("GET", "/crm/v3/owners"), ("GET", "/crm/v3/owners/xyz"),
    ("POST", "/crm/v3/objects/widgets/search"), ("GET", "/crm/v3/nothing/here"),
]
BODIES: list[bytes] = [
    b"", b"{", b"[]", b"null", b"42", b'"text"', b"\xff\xfe", b'{"records": "nope"}', b'{"inputs": {}}',
    b'{"records": [1, 2]}', b'{"inputs": [{"id": true}]}', b'{"filterGroups": "x"}', b'{"limit": -1}',
    b'{"limit": "ten"}', b'{"after": "abc"}', b'{"sorts": [1]}', b'{"properties": {"a": [1]}}',
    b'{"allOrNone": "yes", "records": []}', b'{"records": [{"attributes": {"type": "Lead"}}]}',
    b'{"records": [{"attributes": {"type": "Lead"}, "id": "00Q5e00000Lea00EAH", "Bogus": 1}]}',
    b'{"LastName": {"nested": true}, "Company": "x"}', b'{"inputs": [{"id": "1001", "properties": null}]}',
    b'{"filterGroups": [{"filters": [{"propertyName": "email"}]}]}',
    b'{"filterGroups": [{"filters": [{"propertyName": "email", "operator": "BETWEEN", "value": "a"}]}]}',
    b'{"properties": {"hs_timestamp": "yesterday"}}', b'{"associations": [{"to": {}}]}',
]
QUERIES = ["", "?q=", "?q=SELECT", "?q=SELECT%20Id%20FROM%20Lead%20WHERE%20Id%20%3D%20%27%", "?ids=a,b&fields=Nope",
           "?limit=abc&after=x", "?properties=&archived=maybe", "?q=SELECT%20Id%20FROM%20Lead%20LIMIT%2099999999999"]


def _headers(sandbox: SandboxInfo, token: str, path: str) -> dict[str, str]:
    bearer = sandbox.hubspot_access_token if path.startswith("/crm") else token
    return {"Authorization": f"Bearer {bearer}", "Content-Type": "application/json"}


def _check(resp: requests.Response, path: str) -> None:
    assert resp.status_code < 500, (path, resp.status_code, resp.text[:300])
    if resp.status_code >= 400:  # every error body is the API's own shape
        payload = resp.json()
        if path.startswith("/crm"):
            assert payload["status"] == "error" and payload["category"] and payload["correlationId"]
        else:
            assert isinstance(payload, list) and payload[0]["errorCode"] and payload[0]["message"]


@pytest.fixture
def token(sandbox: SandboxInfo, admin: AdminClient) -> str:
    return login(sandbox)


@pytest.mark.parametrize(("method", "path"), SF_ENDPOINTS + HS_ENDPOINTS)
def test_garbage_bodies_and_queries_never_cause_a_500(sandbox: SandboxInfo, token: str, method: str,
                                                      path: str) -> None:
    session = http_session(sandbox)
    headers = _headers(sandbox, token, path)
    for body in BODIES if method in ("POST", "PATCH") else [b""]:
        _check(session.request(method, sandbox.base_url + path, data=body, headers=headers), path)
    for query in QUERIES:
        _check(session.request(method, sandbox.base_url + path + query, headers=headers), path)


def test_oversized_batches_get_the_apis_own_errors(sandbox: SandboxInfo, token: str) -> None:
    session = http_session(sandbox)
    records = [{"attributes": {"type": "Lead"}, "id": "00Q5e00000Lea00EAH", "Title": "x"}] * 201
    sf = session.patch(f"{sandbox.base_url}{SF}/composite/sobjects", json={"records": records},
                       headers=_headers(sandbox, token, SF))
    assert sf.status_code == 400 and sf.json()[0]["errorCode"] == "EXCEEDED_ID_LIMIT"
    inputs = [{"id": str(1000 + i), "properties": {}} for i in range(101)]
    hs = session.post(f"{sandbox.base_url}/crm/v3/objects/contacts/batch/read",
                      json={"inputs": inputs, "properties": [], "propertiesWithHistory": []},
                      headers=_headers(sandbox, token, "/crm"))
    assert hs.status_code == 400 and hs.json()["category"] == "VALIDATION_ERROR"


json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-10**6, 10**6) | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=12), inner, max_size=4),
    max_leaves=12,
)
known_keys = st.sampled_from(["records", "inputs", "filterGroups", "filters", "sorts", "limit", "after",
                              "properties", "allOrNone", "attributes", "type", "id", "OwnerId", "operator",
                              "propertyName", "value", "values", "associations", "LastName", "Company"])
shaped = st.dictionaries(known_keys, json_values, max_size=5)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(endpoint=st.sampled_from([e for e in SF_ENDPOINTS + HS_ENDPOINTS if e[0] in ("POST", "PATCH")]),
       body=shaped | json_values)
def test_fuzzed_json_never_causes_a_500(sandbox: SandboxInfo, token: str, endpoint: tuple[str, str],
                                        body: Any) -> None:
    method, path = endpoint
    resp = http_session(sandbox).request(method, sandbox.base_url + path, data=json.dumps(body).encode(),
                                         headers=_headers(sandbox, token, path))
    assert resp.status_code < 500, (path, body, resp.text[:300])
