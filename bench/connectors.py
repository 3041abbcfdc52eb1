"""Connector throughput against the sandbox CRMs with their real published limits.

For each CRM: 20,000 changed records are read through ``changes()`` and 20,000 owner
changes are written through ``write_owners()`` by several worker threads, each with its own
connector, all sharing one Redis token bucket (the production path). The sandbox runs in
its own process with HubSpot's private-app limit (100 requests per 10 s, batches of 100)
and Salesforce's collection cap (200); the connectors run with their default settings.

Figures: records/s written as a share of the theoretical maximum (the allowance the
connector is configured to use times the batch size: HubSpot 100 req / 10 s x 100 = 1,000
records/s; Salesforce 25 req/s x 200 = 5,000 records/s), 429s received, write calls per
record, read calls per changed record. Targets: >= 90%, 0, <= 0.0101 (HubSpot) /
<= 0.0051 (Salesforce), <= 0.006.

    .venv/bin/python bench/connectors.py                  # table
    .venv/bin/python bench/connectors.py --json           # machine-readable
    .venv/bin/python bench/connectors.py --records 5000 --crm hubspot --latency-ms 20
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import structlog

from connectors.base import Connector, OwnerUpdate, create_connector
from connectors.settings import HubSpotSettings, SalesforceSettings
from sandbox.run import SandboxInfo, running
from worker.store.connection import RedisServer, client_from_url, free_port

PUBLISHED = {
    "salesforce": {"daily_api_requests": 10**9, "collection_max": 200},  # no per-second limit, only daily
    "hubspot": {"ten_second_limit": 100, "search_per_second": 5, "batch_max": 100, "daily_limit": 10**9},
}
WRITE = {"salesforce": "salesforce PATCH /composite/sobjects", "hubspot": "hubspot POST /crm/v3/objects/contacts/batch/update"}
READS = {
    "salesforce": ("salesforce GET /query", "salesforce GET /query/{locator}"),
    "hubspot": ("hubspot POST /crm/v3/objects/contacts/search",),
}
TARGETS = {"salesforce": {"write_calls_per_record": 0.0051}, "hubspot": {"write_calls_per_record": 0.0101}}


def _count(counters: dict[str, Any], endpoint: str, status: str | None = None) -> int:
    item = counters["endpoints"].get(endpoint, {})
    return int(item.get(status, 0) if status else item.get("total", 0))


def _statuses(counters: dict[str, Any], prefix: str, status: str) -> int:
    return sum(int(v.get(status, 0)) for k, v in counters["endpoints"].items() if k.startswith(prefix))


def _settings(crm: str) -> SalesforceSettings | HubSpotSettings:
    if crm == "salesforce":
        return SalesforceSettings(intake=None)
    return HubSpotSettings(intake=None)


def _owners(conn: Connector) -> list[str]:
    return [u.id for u in conn.list_owners() if u.active and u.kind == "user"]


def bench_crm(crm: str, sb: SandboxInfo, redis_url: str, records: int, workers: int) -> dict[str, Any]:
    admin = sb.admin
    admin.reset()
    admin.set_limits(**{crm: PUBLISHED[crm]})
    admin.generate(**{crm: {"Lead" if crm == "salesforce" else "contacts": records}})
    redis = client_from_url(redis_url)
    prefix = f"bench-{crm}-{time.time_ns()}"
    settings = _settings(crm)
    make = lambda: create_connector(crm, settings, redis_client=redis, prefix=prefix, env=sb.env())  # noqa: E731
    conns = [make() for _ in range(workers)]
    owners = _owners(conns[0])
    admin.clear_counters()

    # --- read: every changed record, through the change feed
    started = time.perf_counter()
    ids: list[str] = []
    for page in conns[0].changes(None):
        ids.extend(r.id for r in page.records)
    read_seconds = time.perf_counter() - started
    counters = admin.counters()
    read_calls = sum(_count(counters, e) for e in READS[crm])

    # --- write: one owner change per record, split over workers sharing the bucket
    admin.clear_counters()
    chunk = conns[0].write_batch_max * 5  # what a route task hands over under a backlog
    jobs = [ids[i : i + chunk] for i in range(0, len(ids), chunk)]
    lock = threading.Lock()
    failed: list[str] = []

    def worker(conn: Connector) -> None:
        while True:
            with lock:
                if not jobs:
                    return
                job = jobs.pop()
            updates = [OwnerUpdate(i, owners[n % len(owners)], "bench") for n, i in enumerate(job)]
            results = conn.write_owners(updates)
            bad = [r.id for r in results if not r.ok]
            if bad:
                with lock:
                    failed.extend(bad)

    threads = [threading.Thread(target=worker, args=(c,)) for c in conns]
    started = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    write_seconds = time.perf_counter() - started
    counters = admin.counters()
    write_calls = _count(counters, WRITE[crm])
    too_many = _statuses(counters, crm, "429")
    for conn in conns:
        conn.close()

    limit = settings.rate_limit
    allowed_calls_per_s = limit.requests / limit.per_seconds
    batch = conns[0].write_batch_max
    theoretical = allowed_calls_per_s * batch
    rate = len(ids) / write_seconds
    return {
        "crm": crm,
        "records": len(ids),
        "workers": workers,
        "read_seconds": round(read_seconds, 3),
        "read_calls": read_calls,
        "read_calls_per_record": round(read_calls / max(1, len(ids)), 5),
        "write_seconds": round(write_seconds, 3),
        "records_per_second": round(rate, 1),
        "theoretical_max_records_per_second": round(theoretical, 1),
        "share_of_max": round(rate / theoretical, 4),
        "write_calls": write_calls,
        "write_calls_per_record": round(write_calls / max(1, len(ids)), 5),
        "responses_429": too_many,
        "failed_records": len(failed),
        "targets": {"share_of_max": 0.9, "responses_429": 0, "read_calls_per_record": 0.006, **TARGETS[crm]},
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--records", type=int, default=20_000)
    parser.add_argument("--workers", type=int, default=2, help="writer threads, each with its own connector")
    parser.add_argument("--crm", choices=["salesforce", "hubspot", "both"], default="both")
    parser.add_argument("--latency-ms", type=float, default=0.0, help="sandbox latency per request")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(40))  # errors only

    crms = ["salesforce", "hubspot"] if args.crm == "both" else [args.crm]
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        server = RedisServer(data_dir=Path(tmp), port=free_port(), persistent=False).start()
        try:
            faults = {"latency_ms": args.latency_ms} if args.latency_ms else None
            with running(mode="process", faults=faults) as sb:
                for crm in crms:
                    results.append(bench_crm(crm, sb, server.url, args.records, args.workers))
        finally:
            server.stop()
    if args.json:
        print(json.dumps(results, indent=2))
        return
    for r in results:
        print(f"{r['crm']}: {r['records']} records, {r['workers']} writer threads sharing one Redis bucket")
        print(f"  write: {r['records_per_second']:.0f} records/s = {r['share_of_max']:.1%} of "
              f"{r['theoretical_max_records_per_second']:.0f} (target >= 90%)")
        print(f"  429s received: {r['responses_429']} (target 0); failed records: {r['failed_records']}")
        print(f"  write calls per record: {r['write_calls_per_record']:.5f} "
              f"(target <= {r['targets']['write_calls_per_record']}; {r['write_calls']} calls)")
        print(f"  read calls per changed record: {r['read_calls_per_record']:.5f} (target <= 0.006; "
              f"{r['read_calls']} calls in {r['read_seconds']:.1f}s)")
        ok = (r["share_of_max"] >= 0.9 and r["responses_429"] == 0 and r["failed_records"] == 0
              and r["write_calls_per_record"] <= r["targets"]["write_calls_per_record"]
              and r["read_calls_per_record"] <= 0.006)
        print(f"  {'all targets met' if ok else 'TARGET MISSED'}")


if __name__ == "__main__":
    main()
