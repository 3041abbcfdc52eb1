"""CPU per lead of one route step, in one process: where a drain's time goes before the rate limits.

    .venv/bin/python bench/route.py                     # 6,000 Salesforce leads in batches of 200
    .venv/bin/python bench/route.py --crm hubspot --leads 3000
    .venv/bin/python bench/route.py --profile 25        # and the 25 functions with the most own time
    .venv/bin/python bench/route.py --json

The sandbox CRM runs in its own process without added latency, and a throwaway Redis is
started on loopback; the worker side runs here, in one thread, as a drain does:
``route.route_pending`` with the after-batch hooks (metrics, SLA clocks, one notify task
per batch queued on that Redis, never consumed). The config is the shipped
``config/routing.yaml`` with the connector rate limits lifted, so nothing waits for a token:
the figure is the CPU a drain spends per lead (fetch, account lookup, normalise, decide,
write, record, hooks), which bounds how fast a backlog can drain on a given number of cores.
The first batch warms caches and imports and is not counted.
"""

from __future__ import annotations

import argparse
import copy
import cProfile
import json
import os
import pstats
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import yaml

from bench.e2e import intake_queue
from sandbox.run import running
from worker.config import parse_config
from worker.devtools.synthetic import hubspot_contact, salesforce_lead, synthetic_leads
from worker.store.connection import RedisServer, client_from_url, free_port

ROOT = Path(__file__).resolve().parents[1]
UNLIMITED = {"requests": 100_000, "per_seconds": 1, "burst": 1000}


def bench_config() -> dict[str, Any]:
    """The demo config, its connectors unthrottled (this measures CPU, not pacing)."""
    data = copy.deepcopy(yaml.safe_load((ROOT / "config" / "routing.yaml").read_text()))
    for crm in ("salesforce", "hubspot"):
        data["connectors"][crm]["rate_limit"] = dict(UNLIMITED)
    data["connectors"]["hubspot"]["search_rate_limit"] = dict(UNLIMITED)
    return data


def run(args: argparse.Namespace) -> dict[str, Any]:
    data = bench_config()
    with tempfile.TemporaryDirectory() as tmp:
        server = RedisServer(data_dir=Path(tmp), port=free_port(), persistent=False, die_with_parent=True).start()
        os.environ["REDIS_URL"] = server.url
        try:
            with running(mode="process") as sb:
                os.environ.update(sb.env())
                return measure(args, data, sb, server.url)
        finally:
            server.stop()


def measure(args: argparse.Namespace, data: dict[str, Any], sb: Any, redis_url: str) -> dict[str, Any]:
    from worker.app import tasks
    from worker.app.runtime import Runtime, set_runtime
    from worker.observability.logs import configure_logging
    from worker.steps import route
    from worker.store.pending import PendingSet
    from worker.store.redis_store import RedisStore

    configure_logging("WARNING")  # one INFO line per batch is not what is measured
    config = parse_config(yaml.safe_dump(data, sort_keys=False), "bench-route.yaml")
    client = client_from_url(redis_url)
    rt = Runtime(config, RedisStore(client, prefix="bench"), PendingSet(client, "bench"))
    set_runtime(rt)
    fields = dict(data["connectors"][args.crm]["fields"])
    leads = list(synthetic_leads(args.leads + args.batch, seed=404))
    if args.crm == "salesforce":
        ids = sb.admin.sf_load("Lead", [salesforce_lead(lead, fields, intake_queue(data)) for lead in leads])
    else:
        ids = sb.admin.hs_load([{"properties": hubspot_contact(lead, fields)} for lead in leads])
    route.enqueue(rt, args.crm, ids, "bench")
    route.route_pending(rt, args.crm, limit=args.batch, on_batch=tasks.after_batch)  # warm-up, not counted

    profile = cProfile.Profile() if args.profile else None
    routed = 0
    wall, cpu = time.perf_counter(), time.process_time()
    if profile:
        profile.enable()
    while True:
        report = route.route_pending(rt, args.crm, limit=args.batch, on_batch=tasks.after_batch)
        if not report.handled:
            break
        routed += len(report.handled)
    if profile:
        profile.disable()
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    written = sum(1 for rid in ids if client.exists(rt.store.key("written", args.crm, rt.object_name(args.crm), rid, 0)))
    result = {
        "crm": args.crm, "leads": routed, "batch": args.batch, "written": written,
        "wall_seconds": round(wall, 3), "cpu_seconds": round(cpu, 3),
        "cpu_us_per_lead": round(cpu / routed * 1e6, 1) if routed else None,
        "leads_per_s_one_thread": round(routed / wall, 1) if wall else None,
        "profiled": bool(profile),
    }
    rt.close()
    set_runtime(None)
    if profile:
        stats = pstats.Stats(profile, stream=sys.stderr)
        stats.sort_stats("tottime").print_stats(args.profile)
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--crm", choices=("salesforce", "hubspot"), default="salesforce")
    parser.add_argument("--leads", type=int, default=6000, help="leads measured (a warm-up batch comes first)")
    parser.add_argument("--batch", type=int, default=200, help="leads per route step (the CRM's write batch)")
    parser.add_argument("--profile", type=int, default=0, metavar="N",
                        help="profile the run (slower) and print the N functions with the most own time to stderr")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    args = parser.parse_args()
    result = run(args)
    if args.json:
        print(json.dumps(result))
        return
    print(f"{args.crm}: {result['leads']} leads in batches of {args.batch}; {result['written']} owners written "
          "(the warm-up batch included)")
    print(f"  CPU {result['cpu_seconds']} s = {result['cpu_us_per_lead']} us per lead"
          f"{' (profiled: slower)' if result['profiled'] else ''}")
    print(f"  wall {result['wall_seconds']} s = {result['leads_per_s_one_thread']} leads/s in one thread "
          "(sandbox without latency, no rate limit)")


if __name__ == "__main__":
    main()
