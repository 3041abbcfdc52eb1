"""The Salesforce REST subset, driven only through simple-salesforce over HTTPS (plus the admin API)."""

from __future__ import annotations

import time
from collections.abc import Callable

import pytest
import requests
from simple_salesforce import Salesforce
from simple_salesforce.exceptions import (
    SalesforceAuthenticationFailed,
    SalesforceExpiredSession,
    SalesforceMalformedRequest,
    SalesforceRefusedRequest,
    SalesforceResourceNotFound,
)

from sandbox.client import AdminClient
from sandbox.run import SandboxInfo

from .conftest import (
    FORMER_SF,
    INTAKE_SF,
    MIKE_SF,
    PARTNERS_SF,
    SARAH_SF,
    TRIAGE_SF,
    calls,
    http_session,
    login,
    sf_error,
)


def lead_ids(sf: Salesforce, where: str = "") -> list[str]:
    soql = "SELECT Id FROM Lead" + (f" WHERE {where}" if where else "") + " ORDER BY CreatedDate, Id"
    return [r["Id"] for r in sf.query_all(soql)["records"]]


def collection(sf: Salesforce, records: list[dict[str, object]], *, all_or_none: bool = False,
               auto_assign: str | None = "FALSE", method: str = "PATCH") -> list[dict[str, object]]:
    headers = {"Sforce-Auto-Assign": auto_assign} if auto_assign is not None else {}
    return sf.restful("composite/sobjects", method=method, json={"allOrNone": all_or_none, "records": records},
                      headers=headers)


def lead(record_id: str, **fields: object) -> dict[str, object]:
    return {"attributes": {"type": "Lead"}, "id": record_id, **fields}


# --- authentication -------------------------------------------------------------------------------


def test_client_credentials_token_carries_instance_url(sandbox: SandboxInfo, admin: AdminClient) -> None:
    resp = http_session(sandbox).post(f"{sandbox.salesforce_login_url}/services/oauth2/token", data={
        "grant_type": "client_credentials", "client_id": sandbox.salesforce_client_id,
        "client_secret": sandbox.salesforce_client_secret})
    body = resp.json()
    assert resp.status_code == 200
    assert body["instance_url"] == sandbox.salesforce_instance_url
    assert body["token_type"] == "Bearer" and body["access_token"].startswith("00D")


def test_password_flow_accepts_password_with_security_token(sandbox: SandboxInfo, admin: AdminClient) -> None:
    resp = http_session(sandbox).post(f"{sandbox.salesforce_login_url}/services/oauth2/token", data={
        "grant_type": "password", "client_id": sandbox.salesforce_client_id,
        "client_secret": sandbox.salesforce_client_secret, "username": sandbox.salesforce_username,
        "password": sandbox.salesforce_password + sandbox.salesforce_security_token})
    assert resp.status_code == 200 and resp.json()["access_token"]


@pytest.mark.parametrize(("change", "error"), [
    ({"client_id": "nope"}, "invalid_client_id"),
    ({"client_secret": "nope"}, "invalid_client"),
    ({"password": "wrong"}, "invalid_grant"),
    ({"grant_type": "authorization_code"}, "unsupported_grant_type"),
])
def test_bad_credentials_get_oauth_errors(sandbox: SandboxInfo, admin: AdminClient, change: dict[str, str],
                                          error: str) -> None:
    form = {"grant_type": "password", "client_id": sandbox.salesforce_client_id,
            "client_secret": sandbox.salesforce_client_secret, "username": sandbox.salesforce_username,
            "password": sandbox.salesforce_password, **change}
    resp = http_session(sandbox).post(f"{sandbox.salesforce_login_url}/services/oauth2/token", data=form)
    assert resp.status_code == 400
    assert resp.json()["error"] == error


def test_simple_salesforce_own_logins_work_through_the_domain(sandbox: SandboxInfo, admin: AdminClient) -> None:
    soap = Salesforce(username=sandbox.salesforce_username, password=sandbox.salesforce_password,
                      security_token=sandbox.salesforce_security_token, domain=sandbox.salesforce_domain,
                      session=http_session(sandbox), version=sandbox.salesforce_api_version)
    oauth = Salesforce(username=sandbox.salesforce_username, password=sandbox.salesforce_password,
                       consumer_key=sandbox.salesforce_client_id, consumer_secret=sandbox.salesforce_client_secret,
                       domain=sandbox.salesforce_domain, session=http_session(sandbox),
                       version=sandbox.salesforce_api_version)
    assert soap.query("SELECT COUNT() FROM Lead")["totalSize"] == 8
    assert oauth.query("SELECT COUNT() FROM Lead")["totalSize"] == 8
    with pytest.raises(SalesforceAuthenticationFailed):
        Salesforce(username=sandbox.salesforce_username, password="wrong", security_token="x",
                   domain=sandbox.salesforce_domain, session=http_session(sandbox))


def test_expired_session_raises_salesforce_expired_session(sf: Salesforce, admin: AdminClient) -> None:
    admin.expire_sessions()
    with pytest.raises(SalesforceExpiredSession) as info:
        sf.query("SELECT Id FROM Lead")
    assert info.value.status == 401
    assert sf_error(info.value) == {"message": "Session expired or invalid", "errorCode": "INVALID_SESSION_ID"}


def test_simple_salesforce_logs_in_again_after_expiry(sf_auto: Salesforce, admin: AdminClient) -> None:
    sf_auto.query("SELECT Id FROM Lead LIMIT 1")
    admin.expire_sessions()
    assert sf_auto.query("SELECT COUNT() FROM Lead")["totalSize"] == 8
    assert calls(admin, "salesforce GET /query", "401") == 1
    assert calls(admin, "salesforce POST /services/oauth2/token", "200") == 2


def test_sessions_expire_after_their_ttl(sandbox: SandboxInfo, admin: AdminClient) -> None:
    admin.set_limits(salesforce={"session_ttl_seconds": 1})
    session = http_session(sandbox)
    sf = Salesforce(session_id=login(sandbox, session), instance_url=sandbox.salesforce_instance_url,
                    session=session, version=sandbox.salesforce_api_version)
    sf.query("SELECT Id FROM Lead LIMIT 1")
    time.sleep(1.1)
    with pytest.raises(SalesforceExpiredSession):
        sf.query("SELECT Id FROM Lead LIMIT 1")


def test_missing_token_is_invalid_session(sandbox: SandboxInfo, admin: AdminClient) -> None:
    resp = http_session(sandbox).get(f"{sandbox.salesforce_instance_url}/services/data/v60.0/limits")
    assert resp.status_code == 401
    assert resp.json()[0]["errorCode"] == "INVALID_SESSION_ID"


# --- query ------------------------------------------------------------------------------------------


def test_paging_through_ten_thousand_leads(sf: Salesforce, admin: AdminClient) -> None:
    admin.generate(salesforce={"Lead": 10_000})
    first = sf.query("SELECT Id, Email, SystemModstamp FROM Lead ORDER BY SystemModstamp, Id")
    assert first["totalSize"] == 10_008 and first["done"] is False and len(first["records"]) == 2000
    assert first["nextRecordsUrl"].startswith("/services/data/v60.0/query/01g")
    assert first["nextRecordsUrl"].endswith("-2000")
    everything = list(sf.query_all_iter("SELECT Id, Email, SystemModstamp FROM Lead ORDER BY SystemModstamp, Id"))
    assert len(everything) == 10_008
    assert len({r["Id"] for r in everything}) == 10_008
    stamps = [r["SystemModstamp"] for r in everything]
    assert stamps == sorted(stamps)
    assert calls(admin, "salesforce GET /query/{locator}") == 5  # 10,008 rows: 2000 + 5 more pages


def test_batch_size_header_sets_page_size(sf: Salesforce, admin: AdminClient) -> None:
    admin.generate(salesforce={"Lead": 500})
    page = sf.query("SELECT Id FROM Lead", headers={"Sforce-Query-Options": "batchSize=200"})
    assert len(page["records"]) == 200 and page["nextRecordsUrl"].endswith("-200")


def test_unknown_query_locator_is_refused(sf: Salesforce) -> None:
    with pytest.raises(SalesforceMalformedRequest) as info:
        sf.query_more("01gDEADBEEF-2000")
    assert sf_error(info.value)["errorCode"] == "INVALID_QUERY_LOCATOR"


def test_bad_soql_maps_to_malformed_request(sf: Salesforce) -> None:
    with pytest.raises(SalesforceMalformedRequest) as info:
        sf.query("SELECT Id FROM Lead WHERE")
    assert info.value.status == 400
    assert sf_error(info.value)["errorCode"] == "MALFORMED_QUERY"
    assert "ERROR at Row:1:Column:26" in sf_error(info.value)["message"]
    with pytest.raises(SalesforceMalformedRequest) as info:
        sf.query("SELECT Bogus__c FROM Lead")
    assert sf_error(info.value)["errorCode"] == "INVALID_FIELD"


def test_relationship_fields_come_back_nested(sf: Salesforce) -> None:
    rows = sf.query("SELECT Id, Owner.Name, Account.Owner.Email FROM Contact WHERE Email = 'jane.doe@globex.com'")
    rec = rows["records"][0]
    assert rec["Owner"]["Name"] == "Sarah Chen"
    assert rec["Account"]["Owner"]["Email"] == "sarah@example.com"
    assert rec["Account"]["attributes"]["type"] == "Account"


def test_count_query(sf: Salesforce) -> None:
    assert sf.query(f"SELECT COUNT() FROM Lead WHERE OwnerId = '{INTAKE_SF}'") == {
        "totalSize": 8, "done": True, "records": []}


def test_query_all_includes_deleted_records(sf: Salesforce, admin: AdminClient) -> None:
    victim = lead_ids(sf)[0]
    admin.sf_delete("Lead", victim)
    assert victim not in lead_ids(sf)
    deleted = sf.query_all(f"SELECT Id, IsDeleted FROM Lead WHERE Id = '{victim}'", include_deleted=True)
    assert deleted["records"][0]["IsDeleted"] is True


# --- sObjects ---------------------------------------------------------------------------------------


def test_create_get_update_cycle_advances_modstamps(sf: Salesforce) -> None:
    created = sf.Lead.create({"LastName": "Lovelace", "Company": "Analytical", "Email": "ada@analytical.io"},
                             headers={"Sforce-Auto-Assign": "FALSE"})
    assert created["success"] is True and created["id"].startswith("00Q")
    before = sf.Lead.get(created["id"])
    assert before["Name"] == "Lovelace" and before["Status"] == "Open - Not Contacted"
    assert before["CreatedDate"].endswith("+0000")
    status = sf.Lead.update(created["id"], {"Title": "Countess"}, headers={"Sforce-Auto-Assign": "FALSE"})
    assert status == 204
    after = sf.Lead.get(created["id"])
    assert after["Title"] == "Countess"
    assert after["SystemModstamp"] > before["SystemModstamp"]
    assert after["LastModifiedDate"] > before["LastModifiedDate"]


def test_get_with_field_list(sf: Salesforce) -> None:
    rec = sf.Lead.get(lead_ids(sf)[0], params={"fields": "Email,Company"})
    assert set(rec) == {"attributes", "Id", "Email", "Company"}


def test_unknown_record_and_object_are_not_found(sf: Salesforce) -> None:
    with pytest.raises(SalesforceResourceNotFound):
        sf.Lead.get("00Q5e00000NotThere")
    with pytest.raises(SalesforceResourceNotFound):
        sf.Nonexistent__c.get("a0X5e00000NotThere")


@pytest.mark.parametrize(("fields", "code"), [
    ({"LastName": "X", "Company": "Y", "Bogus__c": 1}, "INVALID_FIELD"),
    ({"LastName": "X", "Company": "Y", "NumberOfEmployees": "many"}, "JSON_PARSER_ERROR"),
    ({"LastName": "X"}, "REQUIRED_FIELD_MISSING"),
    ({"LastName": "X", "Company": "Y", "Status": "Bogus"}, "INVALID_OR_NULL_FOR_RESTRICTED_PICKLIST"),
    ({"LastName": "X", "Company": "Y", "CreatedDate": "2024-01-01T00:00:00Z"}, "INVALID_FIELD_FOR_INSERT_UPDATE"),
    ({"LastName": "X", "Company": "Y", "OwnerId": FORMER_SF}, "INACTIVE_OWNER_OR_USER"),
    ({"LastName": "X", "Company": "Y", "OwnerId": "not-an-id"}, "MALFORMED_ID"),
    ({"LastName": "X", "Company": "Y", "Email": "no-at-sign"}, "INVALID_EMAIL_ADDRESS"),
    ({"LastName": "X", "Company": "Y" * 300}, "STRING_TOO_LONG"),
])
def test_invalid_writes_are_refused_like_salesforce(sf: Salesforce, fields: dict[str, object], code: str) -> None:
    with pytest.raises(SalesforceMalformedRequest) as info:
        sf.Lead.create(fields)
    assert sf_error(info.value)["errorCode"] == code


def test_malformed_json_body_is_a_parser_error(sandbox: SandboxInfo, admin: AdminClient) -> None:
    session = http_session(sandbox)
    resp = session.post(f"{sandbox.salesforce_instance_url}/services/data/v60.0/sobjects/Lead",
                        data=b'{"LastName": ', headers={"Authorization": f"Bearer {login(sandbox, session)}",
                                                         "Content-Type": "application/json"})
    assert resp.status_code == 400
    assert resp.json()[0]["errorCode"] == "JSON_PARSER_ERROR"


# --- assignment rules -------------------------------------------------------------------------------


def test_without_the_header_the_native_assignment_rule_overwrites_the_owner(sf: Salesforce) -> None:
    first, second = lead_ids(sf)[:2]
    collection(sf, [lead(first, OwnerId=SARAH_SF)], auto_assign=None)
    collection(sf, [lead(second, OwnerId=SARAH_SF)], auto_assign="TRUE")
    assert sf.Lead.get(first)["OwnerId"] == INTAKE_SF
    assert sf.Lead.get(second)["OwnerId"] == INTAKE_SF


def test_auto_assign_false_keeps_the_owner_we_wrote(sf: Salesforce) -> None:
    first = lead_ids(sf)[0]
    collection(sf, [lead(first, OwnerId=SARAH_SF)], auto_assign="FALSE")
    assert sf.Lead.get(first)["OwnerId"] == SARAH_SF


def test_assignment_rule_entries_match_in_order(sf: Salesforce) -> None:
    made = sf.Lead.create({"LastName": "Ref", "Company": "PartnerCo", "LeadSource": "Partner Referral"})
    assert sf.Lead.get(made["id"])["OwnerId"] == PARTNERS_SF


# --- sObject Collections ----------------------------------------------------------------------------


def test_collection_update_reports_per_record_results(sf: Salesforce) -> None:
    ids = lead_ids(sf)
    results = collection(sf, [lead(ids[0], OwnerId=SARAH_SF), lead("00Q5e00000NoSuchAA", OwnerId=SARAH_SF),
                              lead(ids[1], OwnerId=FORMER_SF), lead(ids[2], OwnerId=TRIAGE_SF)])
    assert results[0] == {"id": ids[0], "success": True, "errors": []}
    assert results[1]["success"] is False and results[1]["errors"][0]["statusCode"] == "INVALID_CROSS_REFERENCE_KEY"
    assert results[2]["errors"][0]["statusCode"] == "INACTIVE_OWNER_OR_USER"
    assert set(results[2]["errors"][0]) == {"statusCode", "message", "fields"}
    assert results[3]["success"] is True
    assert sf.Lead.get(ids[0])["OwnerId"] == SARAH_SF


def test_all_or_none_rolls_everything_back(sf: Salesforce) -> None:
    ids = lead_ids(sf)
    results = collection(sf, [lead(ids[0], OwnerId=SARAH_SF), lead(ids[1], Status="Bogus")], all_or_none=True)
    assert results[0]["id"] == ids[0] and results[0]["success"] is False
    assert results[0]["errors"][0]["statusCode"] == "ALL_OR_NONE_OPERATION_ROLLED_BACK"
    assert results[1]["errors"][0]["statusCode"] == "INVALID_OR_NULL_FOR_RESTRICTED_PICKLIST"
    assert sf.Lead.get(ids[0])["OwnerId"] == INTAKE_SF


def test_all_or_none_true_with_no_failures_applies_everything(sf: Salesforce) -> None:
    ids = lead_ids(sf)[:3]
    results = collection(sf, [lead(i, OwnerId=MIKE_SF) for i in ids], all_or_none=True)
    assert all(r["success"] for r in results)
    assert {sf.Lead.get(i)["OwnerId"] for i in ids} == {MIKE_SF}


def test_collections_are_capped_at_200_records(sf: Salesforce, admin: AdminClient) -> None:
    admin.generate(salesforce={"Lead": 201})
    ids = lead_ids(sf)
    assert len(collection(sf, [lead(i, OwnerId=SARAH_SF) for i in ids[:200]])) == 200
    with pytest.raises(SalesforceMalformedRequest) as info:
        collection(sf, [lead(i, OwnerId=SARAH_SF) for i in ids[:201]])
    assert sf_error(info.value)["errorCode"] == "EXCEEDED_ID_LIMIT"


def test_unknown_field_in_a_collection_fails_the_whole_request(sf: Salesforce) -> None:
    with pytest.raises(SalesforceMalformedRequest) as info:
        collection(sf, [lead(lead_ids(sf)[0], Routing_Reasn__c="typo")])
    assert sf_error(info.value)["errorCode"] == "INVALID_FIELD"


def test_locked_rows_fail_per_record(sf: Salesforce, admin: AdminClient) -> None:
    ids = lead_ids(sf)
    admin.patch_faults(lock_row_ids=[ids[1]])
    results = collection(sf, [lead(i, OwnerId=SARAH_SF) for i in ids[:3]])
    assert [r["success"] for r in results] == [True, False, True]
    assert results[1]["errors"][0]["statusCode"] == "UNABLE_TO_LOCK_ROW"
    admin.clear_faults()
    assert collection(sf, [lead(ids[1], OwnerId=SARAH_SF)])[0]["success"] is True


def test_scripted_lock_fault_hits_the_next_write_only(sf: Salesforce, admin: AdminClient) -> None:
    ids = lead_ids(sf)
    admin.script_fault("lock_row", api="salesforce", count=1)
    first = collection(sf, [lead(i, OwnerId=SARAH_SF) for i in ids[:2]])
    second = collection(sf, [lead(i, OwnerId=SARAH_SF) for i in ids[:2]])
    assert [r["success"] for r in first] == [False, True]
    assert [r["success"] for r in second] == [True, True]


def test_collection_create_and_retrieve(sf: Salesforce) -> None:
    who = lead_ids(sf)[0]
    made = collection(sf, [{"attributes": {"type": "Task"}, "WhoId": who, "Subject": "Routed", "Status": "Completed"}],
                      method="POST")
    assert made[0]["success"] and made[0]["id"].startswith("00T")
    got = sf.restful("composite/sobjects/Task", params={"ids": made[0]["id"] + ",00T5e00000Missing", "fields":
                                                       "Subject,WhoId,IsClosed"})
    assert got[0]["Subject"] == "Routed" and got[0]["IsClosed"] is True and got[1] is None


# --- limits -----------------------------------------------------------------------------------------


def test_limits_endpoint_and_limit_info_header(sf: Salesforce, admin: AdminClient) -> None:
    admin.set_limits(salesforce={"daily_api_requests": 15000})
    admin.reset_usage()
    sf.query("SELECT Id FROM Lead LIMIT 1")
    assert sf.api_usage["api-usage"].used == 1 and sf.api_usage["api-usage"].total == 15000
    limits = sf.limits()
    assert limits["DailyApiRequests"] == {"Max": 15000, "Remaining": 15000 - 2}


def test_spent_daily_allocation_is_refused_with_403(sf: Salesforce, admin: AdminClient) -> None:
    admin.set_limits(salesforce={"daily_api_requests": 3})
    admin.reset_usage()
    for _ in range(3):
        sf.query("SELECT Id FROM Lead LIMIT 1")
    with pytest.raises(SalesforceRefusedRequest) as info:
        sf.query("SELECT Id FROM Lead LIMIT 1")
    assert info.value.status == 403
    assert sf_error(info.value) == {"message": "TotalRequests Limit exceeded.", "errorCode": "REQUEST_LIMIT_EXCEEDED"}


def test_no_429_and_no_retry_after_from_salesforce(sandbox: SandboxInfo, admin: AdminClient,
                                                   make_sf: Callable[[], Salesforce]) -> None:
    admin.set_limits(salesforce={"daily_api_requests": 0})
    session = http_session(sandbox)
    resp = session.get(f"{sandbox.salesforce_instance_url}/services/data/v60.0/limits",
                       headers={"Authorization": f"Bearer {login(sandbox, session)}"})
    assert resp.status_code == 403 and "Retry-After" not in resp.headers
    assert resp.headers["Sforce-Limit-Info"] == "api-usage=0/0"


def test_requests_session_without_trust_env_uses_only_the_sandbox_ca(sandbox: SandboxInfo,
                                                                      admin: AdminClient) -> None:
    session = requests.Session()
    session.verify = str(sandbox.ca_bundle)
    session.trust_env = False
    assert session.get(sandbox.admin_url + "/health").json() == {"ok": True}
