"""CPU per lead of one route step, in one process: where a drain's time goes before the rate limits.

    .venv/bin/python bench/route.py                     # 6,000 Salesforce leads in batches of 200
    .venv/bin/python bench/route.py --crm hubspot --leads 3000
    .venv/bin/python bench/route.py --profile 25        # and the 25 functions with the most own time
    .venv/bin/python bench/route.py --ledger compare    # the ledger outbox on versus off (target: <= 5% slower)
    .venv/bin/python bench/route.py --json

The sandbox CRM runs in its own process without added latency, and a throwaway Redis is
started on loopback; the worker side runs here, in one thread, as a drain does:
``route.route_pending`` with the after-batch hooks (metrics, SLA clocks, one notify task
per batch queued on that Redis, never consumed). The config is the shipped
``config/routing.yaml`` with the connector rate limits lifted, so nothing waits for a token:
the figure is the CPU a drain spends per lead (fetch, account lookup, normalise, decide,
write, record, hooks), which bounds how fast a backlog can drain on a given number of cores.
The first batch warms caches and imports and is not counted.

``--ledger compare`` routes fresh leads in alternating rounds with the ledger outbox off and on
(each decision, clock started and notification appending its ledger event in the same Redis
step) and prints the slowdown: the best round of each, in this process's CPU per lead and in
the Redis server's. The outbox is never moved to SQL here: that is the ledger task's work, off
the routing path (``bench/ledger.py`` measures it).
"""

from __future__ import annotations

import argparse
import copy
import cProfile
import json
import os
import pstats
import statistics
import sys
import tempfile
import time
import timeit
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
                if args.ledger != "compare":
                    return measure(args, data, sb, server.url, outbox=args.ledger == "on")
                return compare(args, data, sb, server.url)
        finally:
            server.stop()


def compare(args: argparse.Namespace, data: dict[str, Any], sb: Any, redis_url: str) -> dict[str, Any]:
    """Alternate rounds with the outbox off and on (fresh leads each), keep each side's best round."""
    rounds: dict[str, list[dict[str, Any]]] = {"off": [], "on": []}
    for n in range(args.rounds):
        for mode in ("off", "on") if n % 2 == 0 else ("on", "off"):
            result = measure(args, data, sb, redis_url, outbox=mode == "on", seed=1000 + 10 * n + (mode == "on"),
                             prefix=f"bench-{mode}-{n}")
            rounds[mode].append(result)
            if not args.json:
                print(f"  round {n + 1} ledger {mode}: {result['cpu_us_per_lead']} us/lead here, "
                      f"{result['redis_cpu_us_per_lead']} us/lead in Redis", file=sys.stderr)
    best = {mode: min(runs, key=lambda r: r["cpu_us_per_lead"]) for mode, runs in rounds.items()}
    best_redis = {mode: min(r["redis_cpu_us_per_lead"] for r in runs) for mode, runs in rounds.items()}
    median = {mode: statistics.median(r["cpu_us_per_lead"] for r in runs) for mode, runs in rounds.items()}
    off, on = best["off"], best["on"]
    total_off = off["cpu_us_per_lead"] + best_redis["off"]
    total_on = on["cpu_us_per_lead"] + best_redis["on"]
    added = hot_path_cost(data, args)
    return {
        "crm": args.crm, "leads": on["leads"], "batch": args.batch, "rounds": args.rounds,
        "off": off, "on": on, "redis_us_per_lead": best_redis,
        "worker_slowdown_pct": round((on["cpu_us_per_lead"] / off["cpu_us_per_lead"] - 1) * 100, 2),
        "worker_slowdown_median_pct": round((median["on"] / median["off"] - 1) * 100, 2),
        "redis_slowdown_pct": round((best_redis["on"] / best_redis["off"] - 1) * 100, 2) if best_redis["off"] else None,
        "total_slowdown_pct": round((total_on / total_off - 1) * 100, 2),
        "wall_slowdown_pct": round((off["leads_per_s_one_thread"] / on["leads_per_s_one_thread"] - 1) * 100, 2),
        "outbox_events_per_lead": on["outbox_events_per_lead"],
        "added_us_per_lead_alone": added,
        "added_pct_alone": round(added / off["cpu_us_per_lead"] * 100, 2),
    }


def hot_path_cost(data: dict[str, Any], args: argparse.Namespace) -> float:
    """What the outbox adds to each decision on the routing path, timed alone (steadier than a difference of
    two noisy runs): what goes beside the decision (``decision_extras``) and its JSON. The ``XADD`` itself
    runs inside the record script, in Redis."""
    from worker.domain.normalize import normalize_lead
    from worker.steps.ledger import decision_extras
    from worker.store.base import dumps

    config = parse_config(yaml.safe_dump(data, sort_keys=False), "bench-route.yaml")
    leads = [normalize_lead(lead) for lead in synthetic_leads(args.leads, seed=7)]

    def once() -> None:
        for lead in leads:
            dumps(decision_extras(config, lead))

    once()  # warm: the config's rule fields are cached on first use
    best = min(timeit.repeat(once, number=1, repeat=5))
    return round(best / len(leads) * 1e6, 2)


def redis_cpu(client: Any) -> float:
    """CPU seconds the Redis server has used (its own process: what the outbox costs it)."""
    info = client.info("cpu")
    return float(info["used_cpu_user"]) + float(info["used_cpu_sys"])


def measure(args: argparse.Namespace, data: dict[str, Any], sb: Any, redis_url: str, *, outbox: bool = True,
            seed: int = 404, prefix: str = "bench") -> dict[str, Any]:
    from worker.app import tasks
    from worker.app.runtime import Runtime, set_runtime
    from worker.observability.logs import configure_logging
    from worker.steps import route
    from worker.store.pending import PendingSet
    from worker.store.redis_store import RedisStore

    configure_logging("WARNING")  # one INFO line per batch is not what is measured
    config = parse_config(yaml.safe_dump(data, sort_keys=False), "bench-route.yaml")
    client = client_from_url(redis_url)
    rt = Runtime(config, RedisStore(client, prefix=prefix, ledger_outbox=outbox), PendingSet(client, prefix))
    set_runtime(rt)
    fields = dict(data["connectors"][args.crm]["fields"])
    leads = list(synthetic_leads(args.leads + args.batch, seed=seed))
    if args.crm == "salesforce":
        ids = sb.admin.sf_load("Lead", [salesforce_lead(lead, fields, intake_queue(data)) for lead in leads])
    else:
        ids = sb.admin.hs_load([{"properties": hubspot_contact(lead, fields)} for lead in leads])
    route.enqueue(rt, args.crm, ids, "bench")
    route.route_pending(rt, args.crm, limit=args.batch, on_batch=tasks.after_batch)  # warm-up, not counted
    appended_before = rt.store.outbox_stats().depth

    profile = cProfile.Profile() if args.profile else None
    routed = 0
    server_cpu = redis_cpu(client)
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
    server_cpu = redis_cpu(client) - server_cpu
    written = sum(1 for rid in ids if client.exists(rt.store.key("written", args.crm, rt.object_name(args.crm), rid, 0)))
    appended = rt.store.outbox_stats().depth - appended_before
    result = {
        "crm": args.crm, "leads": routed, "batch": args.batch, "written": written, "ledger_outbox": outbox,
        "wall_seconds": round(wall, 3), "cpu_seconds": round(cpu, 3),
        "cpu_us_per_lead": round(cpu / routed * 1e6, 1) if routed else None,
        "redis_cpu_us_per_lead": round(server_cpu / routed * 1e6, 1) if routed else None,
        "leads_per_s_one_thread": round(routed / wall, 1) if wall else None,
        "outbox_events_per_lead": round(appended / routed, 2) if routed else None,
        "profiled": bool(profile),
    }
    rt.store.clear()  # the next round starts from an empty Redis
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
    parser.add_argument("--ledger", choices=("on", "off", "compare"), default="on",
                        help="the ledger outbox on (as shipped), off, or both in alternating rounds")
    parser.add_argument("--rounds", type=int, default=3, help="rounds of each side with --ledger compare")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    args = parser.parse_args()
    result = run(args)
    if args.json:
        print(json.dumps(result))
        return
    if args.ledger == "compare":
        off, on = result["off"], result["on"]
        print(f"{args.crm}: {on['leads']} leads per round in batches of {args.batch}, best of {args.rounds} rounds each")
        print(f"  ledger outbox off: {off['cpu_us_per_lead']} us/lead here + {result['redis_us_per_lead']['off']} us/lead "
              "in Redis")
        print(f"  ledger outbox on:  {on['cpu_us_per_lead']} us/lead here + {result['redis_us_per_lead']['on']} us/lead "
              f"in Redis ({on['outbox_events_per_lead']} events appended per lead)")
        print(f"  slowdown, best rounds: {result['worker_slowdown_pct']}% worker CPU (median rounds "
              f"{result['worker_slowdown_median_pct']}%), {result['redis_slowdown_pct']}% Redis CPU, "
              f"{result['total_slowdown_pct']}% both, {result['wall_slowdown_pct']}% wall (target <= 5%)")
        print(f"  the outbox's own work on the routing path, timed alone: {result['added_us_per_lead_alone']} us/lead "
              f"= {result['added_pct_alone']}% of the worker CPU per lead")
        return
    print(f"{args.crm}: {result['leads']} leads in batches of {args.batch}; {result['written']} owners written "
          "(the warm-up batch included)")
    print(f"  CPU {result['cpu_seconds']} s = {result['cpu_us_per_lead']} us per lead"
          f"{' (profiled: slower)' if result['profiled'] else ''}")
    print(f"  wall {result['wall_seconds']} s = {result['leads_per_s_one_thread']} leads/s in one thread "
          "(sandbox without latency, no rate limit)")


if __name__ == "__main__":
    main()
