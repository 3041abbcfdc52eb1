"""What shadow mode costs a drain: CPU per lead with a candidate config decided beside the live one, against none.

    .venv/bin/python bench/shadow.py                 # 3,000 Salesforce leads in batches of 200, 3 rounds per side
    .venv/bin/python bench/shadow.py --leads 6000 --rounds 5
    .venv/bin/python bench/shadow.py --json

Set up as ``bench/route.py`` (the sandbox CRM in its own process without added latency, a
throwaway Redis, the demo config with the rate limits lifted; the first batch warms up and is
not counted). Rounds alternate between shadow off and on, with fresh leads each, and the best
round of each side is kept. The candidate is the demo config with one pool member removed. The
shadow step runs after each batch's owners are written, so the figures are the extra CPU per
lead a drain spends, in this process and in Redis, and the shadow step's own wall time per
batch: none of it comes before an owner write. ``crm_requests_per_lead`` must be equal on both
sides, because shadow decisions make no CRM call.
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import yaml

from bench.e2e import intake_queue
from bench.route import bench_config, redis_cpu
from sandbox.run import running
from worker.config import parse_config
from worker.devtools.synthetic import hubspot_contact, salesforce_lead, synthetic_leads
from worker.store.connection import RedisServer, client_from_url, free_port


def candidate(data: dict[str, Any]) -> dict[str, Any]:
    """The demo config with raj taken out of the smb pool: a typical small edit."""
    cand = copy.deepcopy(data)
    cand["pools"]["smb"]["members"] = [m for m in cand["pools"]["smb"]["members"] if m != "raj"]
    return cand


def measure(args: argparse.Namespace, data: dict[str, Any], sb: Any, redis_url: str, *, with_shadow: bool,
            seed: int, prefix: str) -> dict[str, Any]:
    # the worker loads here, after the sandbox's environment is set
    from worker.app import tasks
    from worker.app.runtime import Runtime, set_runtime
    from worker.observability.logs import configure_logging
    from worker.steps import route, shadow
    from worker.store.pending import PendingSet
    from worker.store.redis_store import RedisStore

    configure_logging("WARNING")
    config = parse_config(yaml.safe_dump(data, sort_keys=False), "bench-shadow.yaml")
    client = client_from_url(redis_url)
    store = RedisStore(client, prefix=prefix)
    rt = Runtime(config, store, PendingSet(client, prefix))
    if with_shadow:
        cand = parse_config(yaml.safe_dump(candidate(data), sort_keys=False), "bench-candidate.yaml")
        rt.shadow = shadow.Shadow(cand, store.shadow(cand.version_hash), Path("bench-candidate.yaml"))
    set_runtime(rt)
    spent: list[float] = []
    real = shadow.shadow_batch

    def timed(*a: Any, **k: Any) -> int:
        started = time.perf_counter()
        try:
            return real(*a, **k)
        finally:
            spent.append(time.perf_counter() - started)

    route.shadow_batch = timed  # the drain's own call, timed
    fields = dict(data["connectors"][args.crm]["fields"])
    leads = list(synthetic_leads(args.leads + args.batch, seed=seed))
    if args.crm == "salesforce":
        ids = sb.admin.sf_load("Lead", [salesforce_lead(lead, fields, intake_queue(data)) for lead in leads])
    else:
        ids = sb.admin.hs_load([{"properties": hubspot_contact(lead, fields)} for lead in leads])
    route.enqueue(rt, args.crm, ids, "bench")
    route.route_pending(rt, args.crm, limit=args.batch, on_batch=tasks.after_batch)  # warm-up, not counted
    spent.clear()
    sb.admin.clear_counters()
    routed = 0
    server_cpu = redis_cpu(client)
    wall, cpu = time.perf_counter(), time.process_time()
    while report := route.route_pending(rt, args.crm, limit=args.batch, on_batch=tasks.after_batch).handled:
        routed += len(report)
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    server_cpu = redis_cpu(client) - server_cpu
    requests = int(sb.admin.counters()["total"])
    route.shadow_batch = real
    result = {
        "shadow": with_shadow, "leads": routed, "batch": args.batch,
        "cpu_us_per_lead": round(cpu / routed * 1e6, 1), "redis_cpu_us_per_lead": round(server_cpu / routed * 1e6, 1),
        "leads_per_s_one_thread": round(routed / wall, 1),
        "crm_requests_per_lead": round(requests / routed, 3),
        "shadow_ms_per_batch": round(sum(spent) / len(spent) * 1000, 2) if spent else None,
    }
    store.clear()
    rt.close()
    set_runtime(None)
    return result


def run(args: argparse.Namespace) -> dict[str, Any]:
    data = bench_config()
    rounds: dict[str, list[dict[str, Any]]] = {"off": [], "on": []}
    with tempfile.TemporaryDirectory() as tmp:
        server = RedisServer(data_dir=Path(tmp), port=free_port(), persistent=False, die_with_parent=True).start()
        os.environ["REDIS_URL"] = server.url
        try:
            with running(mode="process") as sb:
                os.environ.update(sb.env())
                for n in range(args.rounds):
                    for mode in ("off", "on") if n % 2 == 0 else ("on", "off"):
                        result = measure(args, data, sb, server.url, with_shadow=mode == "on",
                                         seed=2000 + 10 * n + (mode == "on"), prefix=f"bench-shadow-{mode}-{n}")
                        rounds[mode].append(result)
                        if not args.json:
                            print(f"  round {n + 1} shadow {mode}: {result['cpu_us_per_lead']} us/lead here, "
                                  f"{result['redis_cpu_us_per_lead']} us/lead in Redis", file=sys.stderr)
        finally:
            server.stop()
    best = {mode: min(runs, key=lambda r: r["cpu_us_per_lead"]) for mode, runs in rounds.items()}
    redis = {mode: min(r["redis_cpu_us_per_lead"] for r in runs) for mode, runs in rounds.items()}
    off, on = best["off"], best["on"]
    return {
        "crm": args.crm, "leads": on["leads"], "batch": args.batch, "rounds": args.rounds, "off": off, "on": on,
        "added_cpu_us_per_lead": round(on["cpu_us_per_lead"] - off["cpu_us_per_lead"], 1),
        "added_redis_cpu_us_per_lead": round(redis["on"] - redis["off"], 1),
        "worker_slowdown_pct": round((on["cpu_us_per_lead"] / off["cpu_us_per_lead"] - 1) * 100, 1),
        "shadow_ms_per_batch": on["shadow_ms_per_batch"],
        "crm_requests_per_lead": {"off": off["crm_requests_per_lead"], "on": on["crm_requests_per_lead"]},
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--crm", choices=("salesforce", "hubspot"), default="salesforce")
    parser.add_argument("--leads", type=int, default=3000, help="leads measured per round (a warm-up batch comes first)")
    parser.add_argument("--batch", type=int, default=200, help="leads per route step (the CRM's write batch)")
    parser.add_argument("--rounds", type=int, default=3, help="rounds of each side")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    args = parser.parse_args()
    result = run(args)
    if args.json:
        print(json.dumps(result))
        return
    off, on = result["off"], result["on"]
    print(f"{result['leads']:,} {result['crm']} leads in batches of {result['batch']}, best of {result['rounds']} rounds")
    print(f"  shadow off: {off['cpu_us_per_lead']} us/lead here, {off['redis_cpu_us_per_lead']} us/lead in Redis, "
          f"{off['crm_requests_per_lead']} CRM requests/lead")
    print(f"  shadow on:  {on['cpu_us_per_lead']} us/lead here, {on['redis_cpu_us_per_lead']} us/lead in Redis, "
          f"{on['crm_requests_per_lead']} CRM requests/lead")
    print(f"  added: {result['added_cpu_us_per_lead']} us/lead here ({result['worker_slowdown_pct']:+}%), "
          f"{result['added_redis_cpu_us_per_lead']} us/lead in Redis; the shadow step: {result['shadow_ms_per_batch']} ms "
          "per batch, after its owners are written")


if __name__ == "__main__":
    main()
