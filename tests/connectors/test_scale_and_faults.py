"""Paging at scale and every failure the connectors must ride out, proven by the sandbox's counters.

Each write test ends the same way: every record holds the owner we wrote, and the number of
successful write calls is exactly the number of batches (plus the retries the faults
forced), so nothing was skipped and nothing was written twice.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from typing import Any

import pytest
import structlog

from connectors.base import OwnerUpdate, WriteStatus
from connectors.hubspot import HubSpotConnector
from connectors.salesforce import SalesforceConnector

from .conftest import SandboxCrm, calls, hs_settings, sf_settings
from .test_contract_hubspot import HubSpotCrm
from .test_contract_salesforce import SalesforceCrm

SF_WRITE = "salesforce PATCH /composite/sobjects"
SF_TOKEN = "salesforce POST /services/oauth2/token"
HS_WRITE = "hubspot POST /crm/v3/objects/contacts/batch/update"
HS_SEARCH = "hubspot POST /crm/v3/objects/contacts/search"


@pytest.fixture(params=["salesforce", "hubspot"])
def crm(request: pytest.FixtureRequest, admin: Any) -> SandboxCrm:
    """Each sandbox CRM in turn, its connector on the suite's fast retry timings."""
    if request.param == "salesforce":
        return SalesforceCrm(request.getfixturevalue("make_salesforce")(), admin)
    return HubSpotCrm(request.getfixturevalue("make_hubspot")(), admin)


def write_all(crm: SandboxCrm, count: int, *, rounds: int = 1) -> tuple[list[str], str]:
    """Generate ``count`` leads and write one owner to each; retriable results are retried by
    calling again, as the worker's task would (at most ``rounds`` times)."""
    ids = crm.generate(count)
    owner, _ = crm.owners()
    pending = ids
    for _ in range(rounds):
        results = crm.connector.write_owners([OwnerUpdate(i, owner, "load test") for i in pending])
        assert all(r.status is not WriteStatus.FATAL for r in results), [r for r in results if not r.ok][:3]
        pending = [r.id for r in results if not r.ok]
        if not pending:
            break
    assert pending == []
    return ids, owner


def assert_all_owned(crm: SandboxCrm, ids: list[str], owner: str) -> None:
    owners = crm.all_owners()
    assert [i for i in ids if owners[i] != owner] == []


# ----------------------------------------------------------------------------- paging at scale


def test_paging_10000_records(crm: SandboxCrm) -> None:
    made = crm.generate(10_000)
    crm.admin.clear_counters()
    seen: list[str] = []
    watermark = None
    for page in crm.connector.changes(None):
        seen.extend(r.id for r in page.records)
        watermark = page.watermark
    assert len(seen) == len(set(seen))
    assert set(made) <= set(seen)
    assert watermark is not None
    if crm.name == "salesforce":
        pages = calls(crm.admin, "salesforce GET /query") + calls(crm.admin, "salesforce GET /query/{locator}")
        assert pages == math.ceil(len(seen) / 2000)
    else:
        # 50 pages of 200 fill the 10,000-result window; one re-anchored search reads the rest
        pages = calls(crm.admin, HS_SEARCH)
        assert math.ceil(len(seen) / 200) <= pages <= math.ceil(len(seen) / 200) + 1
    assert pages / len(seen) <= 0.006
    assert [p for p in crm.connector.changes(watermark) if p.records] == []


def test_hubspot_search_past_the_cap_when_one_millisecond_holds_more_than_a_window(
        make_hubspot: Callable[..., HubSpotConnector], admin: Any) -> None:
    admin.set_limits(hubspot={"search_total_max": 600})  # a small cap, same logic
    conn = make_hubspot(hs_settings(search_page_size=200, search_result_cap=600))
    # 700 contacts modified in the same millisecond (an import), then 500 more, one per millisecond
    same = "2026-01-01T00:00:00.000Z"
    made = set(admin.hs_load([{"properties": {"email": f"a{n}@example.com"}, "updatedAt": same} for n in range(700)]))
    made |= set(admin.hs_load([{"properties": {"email": f"b{n}@example.com"},
                                "updatedAt": f"2026-01-01T00:00:01.{n:03d}Z"} for n in range(500)]))
    admin.clear_counters()
    seen = [r.id for page in conn.changes(None) for r in page.records]
    assert len(seen) == len(set(seen)) and made <= set(seen)
    assert calls(admin, HS_SEARCH) <= math.ceil(len(seen) / 200) + 3


# ----------------------------------------------------------------------------- Salesforce session


def test_salesforce_session_expiry_mid_write(make_salesforce: Callable[..., SalesforceConnector], admin: Any) -> None:
    conn = make_salesforce()
    crm = SalesforceCrm(conn, admin)
    ids = crm.generate(1000)
    owner, _ = crm.owners()
    original = conn._collection
    count = {"n": 0}

    def expire_before_third(method: str, records: list[dict[str, Any]], endpoint: str) -> list[dict[str, Any]]:
        count["n"] += 1
        if count["n"] == 3:
            admin.expire_sessions()
        return original(method, records, endpoint)

    conn._collection = expire_before_third  # type: ignore[method-assign]
    admin.clear_counters()
    results = conn.write_owners([OwnerUpdate(i, owner, "r") for i in ids])
    assert all(r.ok for r in results)
    assert calls(admin, SF_WRITE, "200") == 5  # 1000 / 200, each written once
    assert calls(admin, SF_WRITE, "401") == 1
    assert calls(admin, SF_TOKEN, "200") == 1  # the one refresh (the first login was before)
    assert_all_owned(crm, ids, owner)


def test_salesforce_session_expiry_mid_paging(make_salesforce: Callable[..., SalesforceConnector], admin: Any) -> None:
    conn = make_salesforce()
    admin.generate(salesforce={"Lead": 5000})
    seen: list[str] = []
    for n, page in enumerate(conn.changes(None)):
        seen.extend(r.id for r in page.records)
        if n == 0:
            admin.expire_sessions()
    assert len(seen) == len(set(seen)) == 5008
    assert calls(admin, SF_TOKEN, "200") == 2
    assert calls(admin, "salesforce GET /query/{locator}", "401") == 1


def test_salesforce_session_that_stays_expired_is_retriable(make_salesforce: Callable[..., SalesforceConnector],
                                                            admin: Any) -> None:
    conn = make_salesforce(sf_settings(retry={"attempts": 1}))
    crm = SalesforceCrm(conn, admin)
    ids = crm.generate(3)
    owner, _ = crm.owners()
    admin.script_fault("invalid_session", api="salesforce", endpoint="composite", count=2)
    results = conn.write_owners([OwnerUpdate(i, owner, "r") for i in ids])
    assert {r.status for r in results} == {WriteStatus.RETRIABLE}
    assert {r.code for r in results} == {"INVALID_SESSION_ID"}
    assert conn.write_owners([OwnerUpdate(i, owner, "r") for i in ids])[0].ok  # later, it works


# ----------------------------------------------------------------------------- 429 and 503


def test_429_storm(crm: SandboxCrm) -> None:
    crm.admin.script_fault("429", api=crm.name, endpoint="batch/update" if crm.name == "hubspot" else "composite",
                           count=3)
    started = time.monotonic()
    ids, owner = write_all(crm, crm.connector.write_batch_max * 4)
    assert time.monotonic() - started >= 3.0  # the sandbox's Retry-After: 1 was honoured each time
    assert crm.writes("429") == 3
    assert crm.writes("200") == 4
    assert_all_owned(crm, ids, owner)


def test_429s_beyond_the_retry_budget_come_back_retriable_and_nothing_is_lost(
        make_hubspot: Callable[..., HubSpotConnector], admin: Any) -> None:
    conn = make_hubspot(hs_settings(retry={"attempts": 2, "initial_wait": 0.01}))
    crm = HubSpotCrm(conn, admin)
    ids = crm.generate(300)
    owner, _ = crm.owners()
    admin.script_fault("429", api="hubspot", endpoint="batch/update", count=2)  # the first batch, twice
    results = conn.write_owners([OwnerUpdate(i, owner, "r") for i in ids])
    retry = [r.id for r in results if not r.ok]
    assert len(retry) == 100 and {r.status for r in results if not r.ok} == {WriteStatus.RETRIABLE}
    assert all(r.ok for r in conn.write_owners([OwnerUpdate(i, owner, "r") for i in retry]))
    assert crm.writes("200") == 3 and crm.writes("429") == 2
    assert_all_owned(crm, ids, owner)


def test_503_bursts(crm: SandboxCrm) -> None:
    crm.owners()  # logged in, owners known: the faults below hit the writes
    write = "batch/update" if crm.name == "hubspot" else "composite"
    crm.admin.script_fault("503", api=crm.name, endpoint=write, count=4)
    crm.admin.patch_faults(error_503_rate=0.2, seed=11, endpoints=[write])
    ids, owner = write_all(crm, crm.connector.write_batch_max * 5)
    crm.admin.clear_faults()
    failed = crm.writes("503")
    assert failed >= 4
    assert crm.writes("200") == 5
    assert_all_owned(crm, ids, owner)


def test_reads_ride_out_faults_too(crm: SandboxCrm) -> None:
    crm.generate(900)
    crm.owners()
    read = "search" if crm.name == "hubspot" else "query"
    crm.admin.script_fault("503", api=crm.name, endpoint=read, count=2)
    crm.admin.script_fault("429", api=crm.name, endpoint=read, count=1)
    seen = [r.id for page in crm.connector.changes(None) for r in page.records]
    assert len(seen) == len(set(seen)) == 908
    assert calls(crm.admin, HS_SEARCH if crm.name == "hubspot" else "salesforce GET /query", "503") == 2


def test_login_rides_out_faults(make_salesforce: Callable[..., SalesforceConnector], admin: Any) -> None:
    conn = make_salesforce()
    admin.script_fault("503", api="salesforce", endpoint="oauth2", count=1)
    admin.script_fault("429", api="salesforce", endpoint="oauth2", count=1)
    assert conn.list_owners()
    assert calls(admin, SF_TOKEN, "200") == 1


# ----------------------------------------------------------------------------- lock contention


def test_salesforce_lock_errors_are_retried_alone(make_salesforce: Callable[..., SalesforceConnector],
                                                 admin: Any) -> None:
    conn = make_salesforce()
    crm = SalesforceCrm(conn, admin)
    ids = crm.generate(400)
    owner, _ = crm.owners()
    locked = [ids[3], ids[250], ids[399]]
    for record_id in locked:
        admin.script_fault("lock_row", api="salesforce", ids=[record_id], count=1)
    admin.clear_counters()
    results = conn.write_owners([OwnerUpdate(i, owner, "r") for i in ids])
    assert all(r.ok for r in results)
    assert calls(admin, SF_WRITE, "200") == 2 + 2  # two batches, then each batch's locked records alone
    assert_all_owned(crm, ids, owner)


def test_salesforce_rows_that_stay_locked_are_reported_retriable(
        make_salesforce: Callable[..., SalesforceConnector], admin: Any) -> None:
    conn = make_salesforce()
    crm = SalesforceCrm(conn, admin)
    ids = crm.generate(10)
    owner, _ = crm.owners()
    admin.patch_faults(lock_row_ids=[ids[0]])
    admin.clear_counters()
    results = conn.write_owners([OwnerUpdate(i, owner, "r") for i in ids])
    assert results[0].status is WriteStatus.RETRIABLE and results[0].code == "UNABLE_TO_LOCK_ROW"
    assert all(r.ok for r in results[1:])
    assert calls(admin, SF_WRITE, "200") == 3  # lock_attempts = 3
    admin.clear_faults()
    assert conn.write_owners([OwnerUpdate(ids[0], owner, "r")])[0].ok
    assert_all_owned(crm, ids, owner)


def test_hubspot_bad_records_are_isolated_and_the_rest_written(make_hubspot: Callable[..., HubSpotConnector],
                                                               admin: Any) -> None:
    conn = make_hubspot()
    crm = HubSpotCrm(conn, admin)
    ids = crm.generate(100)
    owner, _ = crm.owners()
    updates = [OwnerUpdate(i, owner, "r") for i in ids]
    updates[37] = OwnerUpdate(ids[37], "424242", "archived or unknown owner")
    results = conn.write_owners(updates)
    assert [r.id for r in results if not r.ok] == [ids[37]]
    assert results[37].status is WriteStatus.FATAL
    owners = crm.all_owners()
    assert all(owners[i] == owner for n, i in enumerate(ids) if n != 37)
    assert crm.writes("400") == 7  # log2(100) splits down to the one bad record


# ----------------------------------------------------------------------------- daily allocation


@pytest.mark.parametrize("name", ["salesforce", "hubspot"])
def test_daily_limit_nearly_used_up_slows_down(name: str, request: pytest.FixtureRequest, admin: Any) -> None:
    limit = {"requests": 10, "per_seconds": 1, "burst": 1, "headroom": 0}
    if name == "salesforce":
        conn: Any = request.getfixturevalue("make_salesforce")(sf_settings(rate_limit=limit))
        crm: SandboxCrm = SalesforceCrm(conn, admin)
    else:
        conn = request.getfixturevalue("make_hubspot")(hs_settings(rate_limit={**limit, "per_seconds": 1}))
        crm = HubSpotCrm(conn, admin)
    ids = crm.generate(conn.write_batch_max * 4)
    owner, _ = crm.owners()
    admin.reset_usage()
    admin.set_limits(**({"salesforce": {"daily_api_requests": 100}} if name == "salesforce"
                        else {"hubspot": {"daily_limit": 100}}))
    other = request.getfixturevalue("make_" + name)()  # other integrations used most of the day's calls
    while (other.daily.share or 0) < 0.9:
        other.fetch([ids[0]])
    assert not conn.daily.slowed
    conn.fetch([ids[0]])  # our first response tells us
    assert conn.daily.slowed
    admin.clear_counters()
    with structlog.testing.capture_logs():
        started = time.monotonic()
        results = conn.write_owners([OwnerUpdate(i, owner, "r") for i in ids])
        elapsed = time.monotonic() - started
    assert all(r.ok for r in results)
    # 4 calls at a quarter of 9 tokens/s: about 0.44 s apart instead of 0.11
    assert elapsed >= 3 * (1 / (9 * 0.25)) * 0.9
    assert crm.writes("200") == 4
    assert_all_owned(crm, ids, owner)


def test_daily_limit_used_up_hands_the_work_back(make_salesforce: Callable[..., SalesforceConnector],
                                                 admin: Any) -> None:
    conn = make_salesforce()
    crm = SalesforceCrm(conn, admin)
    ids = crm.generate(5)
    owner, _ = crm.owners()
    admin.reset_usage()
    admin.set_limits(salesforce={"daily_api_requests": 1})
    conn.fetch([ids[0]])  # the last call of the day
    admin.clear_counters()
    started = time.monotonic()
    results = conn.write_owners([OwnerUpdate(i, owner, "r") for i in ids])
    assert time.monotonic() - started < 2  # not hammering, not sleeping an hour
    assert {(r.status, r.code) for r in results} == {(WriteStatus.RETRIABLE, "REQUEST_LIMIT_EXCEEDED")}
    assert calls(admin, SF_WRITE) == 1


# ----------------------------------------------------------------------------- dropped connections


def test_dropped_connections(crm: SandboxCrm) -> None:
    crm.owners()
    write = "batch/update" if crm.name == "hubspot" else "composite"
    crm.admin.script_fault("drop", api=crm.name, endpoint=write, count=2)
    ids, owner = write_all(crm, crm.connector.write_batch_max * 2)
    assert crm.writes("dropped") == 2
    assert crm.writes("200") == 2
    assert_all_owned(crm, ids, owner)


# ----------------------------------------------------------------------------- auth flows and reasons


@pytest.mark.parametrize("flow", ["client_credentials", "password"])
def test_salesforce_auth_flows(flow: str, sandbox: Any, admin: Any) -> None:
    conn = SalesforceConnector.from_env(sf_settings(), env={**sandbox.env(), "SALESFORCE_AUTH_FLOW": flow})
    try:
        assert conn.credentials.flow == flow
        assert conn.list_owners()
    finally:
        conn.close()


def test_salesforce_reasons_as_tasks(make_salesforce: Callable[..., SalesforceConnector], admin: Any) -> None:
    conn = make_salesforce(sf_settings(reason={"field": "Routing_Reason__c", "activity": True}))
    crm = SalesforceCrm(conn, admin)
    ids = crm.generate(3)
    owner, _ = crm.owners()
    results = conn.write_owners([OwnerUpdate(i, owner, f"why {n}") for n, i in enumerate(ids)])
    assert all(r.ok and r.warning is None for r in results)
    tasks = {t["WhoId"]: t for t in admin.sf_records("Task")}
    assert {tasks[i]["Description"] for i in ids} == {"why 0", "why 1", "why 2"}
    assert calls(admin, "salesforce POST /composite/sobjects", "200") == 1  # one collection for all Tasks


def test_hubspot_reasons_as_notes(make_hubspot: Callable[..., HubSpotConnector], admin: Any) -> None:
    conn = make_hubspot(hs_settings(reason={"activity": True}))
    crm = HubSpotCrm(conn, admin)
    ids = crm.generate(2)
    results = conn.attach_reasons({ids[0]: "SLA: escalated", ids[1]: "SLA: reassigned"})
    assert all(r.ok and r.warning is None for r in results)
    bodies = sorted(n["properties"]["hs_note_body"] for n in admin.hs_records("notes"))
    assert bodies == ["SLA: escalated", "SLA: reassigned"]


def test_hubspot_looks_up_many_domains_in_one_companies_search(make_hubspot: Any, admin: Any) -> None:
    connector = make_hubspot()
    admin.clear_counters()
    owners = connector.account_owners([f"fresh-{i}.example" for i in range(30)] + ["initech.com"])
    assert owners["initech.com"] is not None and owners["fresh-0.example"] is None
    calls = admin.counters()["endpoints"]
    assert calls["hubspot POST /crm/v3/objects/companies/search"]["total"] == 1
