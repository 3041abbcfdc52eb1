"""Fault injection (latency, 503, 429, dropped connections, expiry, locked rows) and request counters."""

from __future__ import annotations

import time

import pytest
import requests
from hubspot import HubSpot
from hubspot.crm.contacts.exceptions import ApiException, ServiceException
from simple_salesforce import Salesforce
from simple_salesforce.exceptions import SalesforceExpiredSession, SalesforceGeneralError

from sandbox.client import AdminClient, AdminError
from sandbox.run import SandboxInfo

from .conftest import calls


def test_latency_is_fixed_plus_jitter(sf: Salesforce, admin: AdminClient) -> None:
    admin.set_faults(latency_ms=60, jitter_ms=40, seed=1)
    started = time.monotonic()
    for _ in range(3):
        sf.query("SELECT Id FROM Lead LIMIT 1")
    elapsed = time.monotonic() - started
    assert 0.18 <= elapsed < 1.0


def test_latency_can_target_one_api(sf: Salesforce, hs: HubSpot, admin: AdminClient) -> None:
    admin.set_faults(latency_ms=300, apis=["hubspot"])
    started = time.monotonic()
    sf.query("SELECT Id FROM Lead LIMIT 1")
    assert time.monotonic() - started < 0.25
    started = time.monotonic()
    hs.crm.contacts.basic_api.get_by_id("1001")
    assert time.monotonic() - started >= 0.3


def test_503_rate_one_fails_everything_until_reset(sf: Salesforce, hs: HubSpot, admin: AdminClient) -> None:
    admin.set_faults(error_503_rate=1.0)
    with pytest.raises(SalesforceGeneralError) as sf_info:
        sf.query("SELECT Id FROM Lead")
    assert sf_info.value.status == 503
    with pytest.raises(ServiceException) as hs_info:
        hs.crm.contacts.basic_api.get_by_id("1001")
    assert hs_info.value.status == 503
    admin.clear_faults()
    assert sf.query("SELECT COUNT() FROM Lead")["totalSize"] == 8


def test_fault_rates_are_reproducible_with_a_seed(sf: Salesforce, admin: AdminClient) -> None:
    def outcomes() -> list[bool]:
        admin.set_faults(error_503_rate=0.5, seed=42, apis=["salesforce"])
        out = []
        for _ in range(12):
            try:
                sf.query("SELECT Id FROM Lead LIMIT 1")
                out.append(True)
            except SalesforceGeneralError:
                out.append(False)
        return out

    first = outcomes()
    assert first == outcomes()
    assert True in first and False in first


def test_429_rate_applies_to_hubspot(hs: HubSpot, admin: AdminClient) -> None:
    admin.set_faults(error_429_rate=1.0)
    with pytest.raises(ApiException) as info:
        hs.crm.contacts.basic_api.get_by_id("1001")
    assert info.value.status == 429
    assert info.value.headers["Retry-After"] == "1"
    assert "X-HubSpot-RateLimit-Daily" in info.value.headers


def test_scripted_faults_hit_exactly_the_next_matching_requests(sf: Salesforce, admin: AdminClient) -> None:
    admin.script_fault("503", api="salesforce", endpoint="GET /query", count=2)
    assert sf.limits()  # another endpoint is untouched
    for _ in range(2):
        with pytest.raises(SalesforceGeneralError):
            sf.query("SELECT Id FROM Lead")
    assert sf.query("SELECT COUNT() FROM Lead")["totalSize"] == 8
    assert admin.faults()["scripted"] == []
    assert calls(admin, "salesforce GET /query", "503") == 2
    assert calls(admin, "salesforce GET /query", "200") == 1


def test_scripted_session_expiry(sf: Salesforce, sf_auto: Salesforce, admin: AdminClient) -> None:
    admin.script_fault("invalid_session", api="salesforce")
    with pytest.raises(SalesforceExpiredSession):
        sf.query("SELECT Id FROM Lead")
    with pytest.raises(SalesforceExpiredSession):  # the session really is gone now
        sf.query("SELECT Id FROM Lead")
    admin.script_fault("invalid_session", api="salesforce")
    assert sf_auto.query("SELECT COUNT() FROM Lead")["totalSize"] == 8  # re-logs in by itself


def test_dropped_connection_surfaces_as_connection_error(sf: Salesforce, admin: AdminClient) -> None:
    admin.script_fault("drop", api="salesforce", endpoint="GET /query")
    with pytest.raises(requests.ConnectionError):
        sf.query("SELECT Id FROM Lead")
    assert sf.query("SELECT COUNT() FROM Lead")["totalSize"] == 8  # the pool reconnects
    assert calls(admin, "salesforce GET /query", "dropped") == 1


def test_dropped_connection_rate(sf: Salesforce, admin: AdminClient) -> None:
    admin.set_faults(drop_rate=1.0, apis=["salesforce"])
    with pytest.raises(requests.ConnectionError):
        sf.limits()


def test_hubspot_client_recovers_from_a_dropped_get_by_itself(sandbox: SandboxInfo, admin: AdminClient) -> None:
    default = HubSpot(access_token=sandbox.hubspot_access_token, host=sandbox.hubspot_base_url,
                      ssl_ca_cert=str(sandbox.ca_bundle))
    admin.script_fault("drop", api="hubspot")
    assert default.crm.contacts.basic_api.get_by_id("1001").id == "1001"  # urllib3 retried the GET
    assert calls(admin, "hubspot GET /crm/v3/objects/contacts/{id}", "dropped") == 1


def test_lock_row_rate(sf: Salesforce, admin: AdminClient) -> None:
    ids = [r["Id"] for r in sf.query("SELECT Id FROM Lead")["records"]]
    admin.set_faults(lock_row_rate=1.0, apis=["salesforce"])
    body = {"allOrNone": False, "records": [{"attributes": {"type": "Lead"}, "id": i, "Title": "x"} for i in ids]}
    results = sf.restful("composite/sobjects", method="PATCH", json=body, headers={"Sforce-Auto-Assign": "FALSE"})
    assert {r["errors"][0]["statusCode"] for r in results} == {"UNABLE_TO_LOCK_ROW"}


def test_counters_by_endpoint_and_status_can_be_cleared(sf: Salesforce, hs: HubSpot, admin: AdminClient) -> None:
    admin.clear_counters()
    sf.query("SELECT Id FROM Lead")
    sf.Lead.get(sf.query("SELECT Id FROM Lead LIMIT 1")["records"][0]["Id"])
    hs.crm.owners.owners_api.get_page()
    counts = admin.counters()
    assert counts["total"] == 4
    assert counts["endpoints"]["salesforce GET /query"] == {"200": 2, "total": 2}
    assert counts["endpoints"]["salesforce GET /sobjects/Lead/{id}"] == {"200": 1, "total": 1}
    assert counts["endpoints"]["hubspot GET /crm/v3/owners"] == {"200": 1, "total": 1}
    admin.clear_counters()
    assert admin.counters() == {"total": 0, "endpoints": {}}


def test_bad_fault_settings_are_refused(admin: AdminClient) -> None:
    for bad in ({"error_503_rate": 2}, {"latency_ms": -1}, {"apis": ["zendesk"]}, {"typo_rate": 0.1}):
        with pytest.raises(AdminError) as info:
            admin.set_faults(**bad)
        assert info.value.status == 400
    with pytest.raises(AdminError):
        admin.script_fault("explode")
