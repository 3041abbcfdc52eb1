"""How fast the sandbox CRM serves the real client libraries over HTTPS on loopback.

Later benchmarks (connectors, end-to-end routing) run against the sandbox; this one shows the
sandbox itself is not their bottleneck (target: >= 1,000 simple requests/s through each client).
The sandbox runs in its own process (its own core and GIL); rate limits are lifted for the run.

    .venv/bin/python bench/sandbox.py            # human-readable table
    .venv/bin/python bench/sandbox.py --json     # machine-readable figures
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import requests
from hubspot import HubSpot
from hubspot.crm.contacts import (
    BatchInputSimplePublicObjectBatchInput,
    PublicObjectSearchRequest,
)
from simple_salesforce import Salesforce

from sandbox.run import SandboxInfo, running

UNLIMITED = {
    "salesforce": {"daily_api_requests": 10**9},
    "hubspot": {"ten_second_limit": 10**9, "daily_limit": 10**9, "search_per_second": 10**9},
}


def _sf_client(sb: SandboxInfo) -> Salesforce:
    session = requests.Session()
    session.verify = str(sb.ca_bundle)
    session.trust_env = False  # REQUESTS_CA_BUNDLE in the environment would override verify=
    token = session.post(f"{sb.salesforce_login_url}/services/oauth2/token", data={
        "grant_type": "client_credentials", "client_id": sb.salesforce_client_id,
        "client_secret": sb.salesforce_client_secret}, timeout=10).json()["access_token"]
    return Salesforce(session_id=token, instance_url=sb.salesforce_instance_url, session=session,
                      version=sb.salesforce_api_version)


def _hs_client(sb: SandboxInfo) -> HubSpot:
    return HubSpot(access_token=sb.hubspot_access_token, host=sb.hubspot_base_url, ssl_ca_cert=str(sb.ca_bundle))


def _measure(name: str, fn: Callable[[int, int], object], count: int, threads: int, unit: str = "requests",
             per_call: int = 1) -> dict[str, Any]:
    """Run ``fn(i, thread)`` ``count`` times split over ``threads``; report calls/s, units/s, latency."""
    latencies: list[float] = []
    lock = threading.Lock()
    per_thread = max(1, count // threads)

    def worker(t: int) -> None:
        local = []
        for i in range(t * per_thread, (t + 1) * per_thread):
            t0 = time.perf_counter()
            fn(i, t)
            local.append(time.perf_counter() - t0)
        with lock:
            latencies.extend(local)

    for t in range(threads):  # warm-up: connections, TLS handshakes
        for i in range(10):
            fn(i, t)
    started = time.perf_counter()
    pool = [threading.Thread(target=worker, args=(t,)) for t in range(threads)]
    for th in pool:
        th.start()
    for th in pool:
        th.join()
    elapsed = time.perf_counter() - started
    calls = len(latencies)
    latencies.sort()
    return {
        "name": name, "calls": calls, "seconds": round(elapsed, 3),
        "requests_per_s": round(calls / elapsed, 1),
        "units": unit, "units_per_s": round(calls * per_call / elapsed, 1),
        "p50_ms": round(statistics.median(latencies) * 1000, 2),
        "p99_ms": round(latencies[max(0, int(len(latencies) * 0.99) - 1)] * 1000, 2),
    }


def _paging(name: str, pages: int, records: int, seconds: float) -> dict[str, Any]:
    return {"name": name, "calls": pages, "seconds": round(seconds, 3), "requests_per_s": round(pages / seconds, 1),
            "units": "records", "units_per_s": round(records / seconds, 1), "p50_ms": None, "p99_ms": None}


def run(count: int, threads: int, paging_records: int) -> dict[str, Any]:
    with running(mode="process", limits=UNLIMITED) as sb:
        admin = sb.admin
        admin.generate(salesforce={"Lead": paging_records}, hubspot={"contacts": paging_records})
        results: list[dict[str, Any]] = []

        # --- Salesforce through simple-salesforce (one client, i.e. one keep-alive session, per thread)
        sfs = [_sf_client(sb) for _ in range(threads)]
        lead_ids = [r["Id"] for r in sfs[0].query("SELECT Id FROM Lead LIMIT 2000")["records"]]
        results.append(_measure("salesforce GET sobjects/Lead/{id}",
                                lambda i, t: sfs[t].Lead.get(lead_ids[i % len(lead_ids)]), count, threads))
        results.append(_measure("salesforce GET /limits", lambda i, t: sfs[t].limits(), count, threads))
        results.append(_measure(
            "salesforce SOQL by Id",
            lambda i, t: sfs[t].query(f"SELECT Id, Email, OwnerId FROM Lead WHERE Id = '{lead_ids[i % len(lead_ids)]}'"),
            count, threads))
        owners = ["0055e000001AbCdAAK", "0055e000001MiKeAAK"]

        def collection(i: int, t: int) -> None:
            body = {"allOrNone": False, "records": [
                {"attributes": {"type": "Lead"}, "id": lead_ids[(i * 200 + j) % len(lead_ids)], "OwnerId": owners[i % 2]}
                for j in range(200)]}
            sfs[t].restful("composite/sobjects", method="PATCH", json=body, headers={"Sforce-Auto-Assign": "FALSE"})

        results.append(_measure("salesforce PATCH composite/sobjects x200", collection, max(10, count // 20),
                                threads, unit="records", per_call=200))
        t0 = time.perf_counter()
        n = sum(1 for _ in sfs[0].query_all_iter("SELECT Id, Email, OwnerId, SystemModstamp FROM Lead "
                                                 "ORDER BY SystemModstamp ASC, Id ASC"))
        results.append(_paging(f"salesforce query_all_iter {n} leads", -(-n // 2000), n, time.perf_counter() - t0))

        # --- HubSpot through hubspot-api-client (API objects built once, as a connector should)
        hss = [_hs_client(sb) for _ in range(threads)]
        basic = [h.crm.contacts.basic_api for h in hss]
        search = [h.crm.contacts.search_api for h in hss]
        batch = [h.crm.contacts.batch_api for h in hss]
        owners_api = [h.crm.owners.owners_api for h in hss]
        contact_ids = [c["id"] for c in admin.hs_records("contacts")[:2000]]
        results.append(_measure("hubspot GET contacts/{id}",
                                lambda i, t: basic[t].get_by_id(contact_ids[i % len(contact_ids)]), count, threads))
        results.append(_measure("hubspot GET owners", lambda i, t: owners_api[t].get_page(limit=100), count, threads))
        req = PublicObjectSearchRequest(
            filter_groups=[{"filters": [{"propertyName": "hs_lead_status", "operator": "EQ", "value": "NEW"}]}],
            sorts=[{"propertyName": "lastmodifieddate", "direction": "ASCENDING"}],
            properties=["email", "hubspot_owner_id"], limit=10)
        results.append(_measure("hubspot POST contacts/search (10/page)",
                                lambda i, t: search[t].do_search(public_object_search_request=req), count, threads))
        hs_owner_ids = ["51234567", "51234568"]

        def hs_batch(i: int, t: int) -> None:
            inputs = [{"id": contact_ids[(i * 100 + j) % len(contact_ids)],
                       "properties": {"hubspot_owner_id": hs_owner_ids[i % 2]}} for j in range(100)]
            batch[t].update(batch_input_simple_public_object_batch_input=BatchInputSimplePublicObjectBatchInput(
                inputs=inputs))

        results.append(_measure("hubspot POST contacts/batch/update x100", hs_batch, max(10, count // 20), threads,
                                unit="records", per_call=100))
        t0 = time.perf_counter()
        after, pages, seen = None, 0, 0
        while True:
            full = PublicObjectSearchRequest(properties=["email"], limit=200, after=after,
                                             sorts=[{"propertyName": "hs_object_id", "direction": "ASCENDING"}])
            page = search[0].do_search(public_object_search_request=full)
            pages += 1
            seen += len(page.results)
            if not page.paging or seen >= 10_000:
                break
            after = page.paging.next.after
        results.append(_paging(f"hubspot search paging {seen} contacts", pages, seen, time.perf_counter() - t0))
        server_counts = admin.counters()["total"]
    return {"count": count, "threads": threads, "results": results, "server_requests": server_counts}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--requests", type=int, default=2000, help="calls per simple endpoint (default 2000)")
    parser.add_argument("--threads", type=int, default=1, help="client threads (default 1)")
    parser.add_argument("--paging-records", type=int, default=10_000, help="records to page through (default 10000)")
    parser.add_argument("--json", action="store_true", help="print JSON instead of a table")
    args = parser.parse_args(argv)
    report = run(args.requests, args.threads, args.paging_records)
    if args.json:
        print(json.dumps(report, indent=2))
        return 0
    print(f"sandbox CRM over HTTPS on loopback, {args.threads} client thread(s), server in its own process")
    print(f"{'operation':48} {'calls':>6} {'req/s':>9} {'units/s':>12} {'p50 ms':>8} {'p99 ms':>8}")
    for r in report["results"]:
        units = f"{r['units_per_s']:.0f} {r['units'][:3]}"
        p50 = "-" if r["p50_ms"] is None else f"{r['p50_ms']:.2f}"
        p99 = "-" if r["p99_ms"] is None else f"{r['p99_ms']:.2f}"
        print(f"{r['name']:48} {r['calls']:>6} {r['requests_per_s']:>9.1f} {units:>12} {p50:>8} {p99:>8}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
