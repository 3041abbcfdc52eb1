"""Benchmark the Redis store: claim throughput, sweep latency, memory per timer and decision.

    .venv/bin/python bench/store.py            # figures for a reader
    .venv/bin/python bench/store.py --json     # one JSON object
    .venv/bin/python bench/store.py --url redis://host:6379/0   # an existing Redis

Without ``--url`` (or ``REDIS_URL``) it starts a throwaway Redis on a loopback TCP port
(the bundled Redis 6.2 that the embedded default runs, unless ``--server`` names
another binary), so memory figures are measured on an otherwise empty server. On an
existing Redis it works under a fresh key prefix and deletes it afterwards.

Targets (issue 3): >= 5,000 single claims/s per process; >= 20,000/s claimed in batches
(one pipelined call); ``claim_due`` of 1,000 due timers among 1,000,000 open at most 2x
the time among 10,000, and under 50 ms.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import redis

from worker.domain.leads import LeadRef
from worker.routing.state import Candidate, Strategy
from worker.store.connection import RedisServer, client_from_url, free_port, redis_server_binary
from worker.store.redis_store import PoolClaim, RedisStore

TEAM = [f"rep{i:02}" for i in range(10)]
CANDIDATES = [Candidate(r, weight=1 + i % 3, capacity=None) for i, r in enumerate(TEAM)]
TIMER_PAYLOAD = {"lead": "salesforce:Lead:00Q5e00000AbCdEFGH", "tier": "tier1", "rung": 0, "owner": "rep03"}


def sample_decision(i: int) -> dict[str, Any]:
    """A decision shaped like the engine's ``Decision.to_dict()`` (about 700 bytes of JSON)."""
    return {
        "lead_id": f"00Q5e00000{i:08}",
        "owner": "rep03",
        "owner_kind": "rep",
        "rule": "emea-enterprise-demo",
        "target": "pool emea-enterprise",
        "config_version": "3f9a1c2b7d4e",
        "routed_at": "2025-03-04T09:15:27.123456+00:00",
        "reason": "emea-enterprise-demo: territory EMEA, segment enterprise -> pool emea-enterprise, round robin",
        "considered": ["rep01", "rep02", "rep03", "rep04", "rep05"],
        "skipped": {"rep01": "ooo", "rep02": "at_capacity"},
        "strategy_state": "round robin: rep03 12/25",
        "unreadable": [],
        "facts": {"territory": "EMEA", "segment": "enterprise", "domain": "example.de", "account_owner": None},
    }


@contextlib.contextmanager
def target(url: str | None, server_binary: str | None) -> Iterator[tuple[redis.Redis, str, str]]:
    """A client, a fresh prefix and a description of the server, for the run's duration."""
    if url:
        client = client_from_url(url)
        prefix = f"bench-{uuid.uuid4().hex[:8]}"
        try:
            yield client, prefix, "given URL"
        finally:
            RedisStore(client, prefix).clear()
        return
    binary = server_binary or redis_server_binary()
    with tempfile.TemporaryDirectory(prefix="leadroute-bench-") as tmp:
        server = RedisServer(data_dir=Path(tmp), port=free_port(), persistent=False, binary=binary, die_with_parent=True)
        server.start()
        try:
            yield client_from_url(server.url), "bench", f"throwaway {binary} on loopback"
        finally:
            server.stop()


def rate(count: int, seconds: float) -> int:
    return round(count / seconds)


def script_us_per_call(client: redis.Redis) -> float:
    """Server-side time per EVALSHA since the last stats reset (independent of the round trip)."""
    return float(client.info("commandstats").get("cmdstat_evalsha", {}).get("usec_per_call", 0.0))


def bench_ping(client: redis.Redis, n: int) -> int:
    """The round-trip ceiling on this machine: PINGs per second, one at a time."""
    started = time.perf_counter()
    for _ in range(n):
        client.ping()
    return rate(n, time.perf_counter() - started)


def bench_single_claims(store: RedisStore, n: int) -> dict[str, dict[str, float]]:
    out = {}
    for strategy in Strategy:
        store.pick(f"warm-{strategy}", strategy, TEAM, CANDIDATES)
        store.client.config_resetstat()
        started = time.perf_counter()
        for _ in range(n):
            store.pick(f"single-{strategy}", strategy, TEAM, CANDIDATES)
        elapsed = time.perf_counter() - started
        out[strategy.value] = {"per_s": rate(n, elapsed), "server_us": script_us_per_call(store.client)}
    return out


def bench_decide_once(store: RedisStore, n: int) -> int:
    def route(state: Any) -> dict[str, Any]:
        pick = state.pick("decide", Strategy.ROUND_ROBIN, TEAM, CANDIDATES)
        return {"owner": pick.rep_id, "strategy_state": pick.detail}

    started = time.perf_counter()
    for i in range(n):
        store.decide_once(LeadRef("salesforce", "Lead", f"single-{i}").at(0), route)
    return rate(n, time.perf_counter() - started)


def bench_batch(store: RedisStore, n: int, batch: int) -> dict[str, int]:
    keys = [LeadRef("hubspot", "contact", f"batch-{i}").at(0) for i in range(n)]
    claim_time = record_time = 0.0
    server_us = 0.0
    for start in range(0, n, batch):
        chunk = keys[start : start + batch]
        requests = [PoolClaim(k, "batch", Strategy.ROUND_ROBIN, TEAM, CANDIDATES) for k in chunk]
        store.client.config_resetstat()
        t0 = time.perf_counter()
        claims = store.claim_many(requests)
        t1 = time.perf_counter()
        server_us += script_us_per_call(store.client) * -(-len(chunk) // 1000)  # claim.lua calls
        store.record_many([(c.key, {"owner": c.pick.rep_id, "strategy_state": c.pick.detail}) for c in claims])
        t2 = time.perf_counter()
        claim_time += t1 - t0
        record_time += t2 - t1
    return {
        "claims_per_s": rate(n, claim_time),
        "decisions_per_s": rate(n, claim_time + record_time),
        "server_us_per_claim": round(server_us / n, 2),
        "batch": batch,
    }


def fill_timers(store: RedisStore, start: int, count: int, due_from: float) -> None:
    """``count`` open timers due from ``due_from`` on, one second apart; in 10,000-timer chunks."""
    for s in range(start, start + count, 10_000):
        e = min(s + 10_000, start + count)
        store.schedule_many([(f"sf:Lead:{i}", due_from + i, TIMER_PAYLOAD) for i in range(s, e)])


def bench_claim_due(store: RedisStore, open_timers: int, due: int = 1000, runs: int = 7) -> dict[str, float]:
    """Latency of claiming ``due`` due timers while ``open_timers`` are open in total."""
    store.client.delete(store.key("timers"), store.key("timers", "payload"))
    fill_timers(store, 0, open_timers - due, due_from=1e9)  # not due yet
    samples = []
    for run in range(runs):
        ids = range(10_000_000 + run * due, 10_000_000 + (run + 1) * due)
        store.schedule_many([(f"due:{i}", 1000.0 + i % due, TIMER_PAYLOAD) for i in ids])
        started = time.perf_counter()
        claimed = store.claim_due(now=5000.0, limit=due)
        samples.append((time.perf_counter() - started) * 1000)
        assert len(claimed) == due, len(claimed)
    assert store.open_timers() == open_timers - due
    return {"open": open_timers, "due": due, "median_ms": round(statistics.median(samples), 2), "max_ms": round(max(samples), 2)}


def used_memory(client: redis.Redis) -> int:
    return int(client.info("memory")["used_memory"])


def bench_timer_bytes(store: RedisStore, n: int = 100_000) -> dict[str, int]:
    store.client.delete(store.key("timers"), store.key("timers", "payload"))
    before = used_memory(store.client)
    fill_timers(store, 0, n, due_from=1e9)
    after = used_memory(store.client)
    store.client.delete(store.key("timers"), store.key("timers", "payload"))
    return {"bytes_per_timer": round((after - before) / n), "payload_json_bytes": len(json.dumps(TIMER_PAYLOAD))}


def bench_decision_bytes(store: RedisStore, n: int = 20_000) -> dict[str, int]:
    """Memory per decision: the claim journal + decision hash (with TTL) + its log entry."""
    before = used_memory(store.client)
    log_before = store.log_length()
    for start in range(0, n, 1000):
        keys = [LeadRef("salesforce", "Lead", f"mem-{i}").at(0) for i in range(start, start + 1000)]
        claims = store.claim_many([PoolClaim(k, "mem", Strategy.ROUND_ROBIN, TEAM, CANDIDATES) for k in keys])
        store.record_many([(c.key, sample_decision(i)) for i, c in enumerate(claims, start)])
    after = used_memory(store.client)
    assert store.log_length() - log_before >= n * 0.9
    return {"bytes_per_decision": round((after - before) / n), "payload_json_bytes": len(json.dumps(sample_decision(0)))}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.add_argument("--url", default=os.environ.get("REDIS_URL"), help="an existing Redis (default: throwaway)")
    parser.add_argument("--server", help="redis-server binary for the throwaway server")
    parser.add_argument("--claims", type=int, default=20_000, help="single claims per strategy")
    parser.add_argument("--batch-claims", type=int, default=100_000, help="claims in the batch run")
    parser.add_argument("--batch", type=int, default=1000, help="claims per pipelined call")
    parser.add_argument("--big", type=int, default=1_000_000, help="open timers in the large sweep case")
    args = parser.parse_args(argv)

    with target(args.url, args.server) as (client, prefix, where):
        store = RedisStore(client, prefix, log_maxlen=max(100_000, args.claims * 2))
        info = client.info("server")
        figures: dict[str, Any] = {
            "redis": {"version": info["redis_version"], "where": where},
            "ping_per_s": bench_ping(client, 5000),
            "single_claims_per_s": bench_single_claims(store, args.claims),
            "decide_once_per_s": bench_decide_once(store, args.claims // 4),
            "batch": bench_batch(store, args.batch_claims, args.batch),
        }
        store.clear()
        figures["decision_memory"] = bench_decision_bytes(store)
        store.clear()
        figures["timer_memory"] = bench_timer_bytes(store)
        small = bench_claim_due(store, 10_000)
        big = bench_claim_due(store, args.big)
        figures["claim_due"] = {"small": small, "big": big, "ratio": round(big["median_ms"] / small["median_ms"], 2)}
        store.clear()

    figures["targets"] = {
        "single_claims_per_s>=5000": min(v["per_s"] for v in figures["single_claims_per_s"].values()) >= 5000,
        "batch_claims_per_s>=20000": figures["batch"]["claims_per_s"] >= 20_000,
        "claim_due_big<=2x_small": figures["claim_due"]["ratio"] <= 2.0,
        "claim_due_big<50ms": figures["claim_due"]["big"]["median_ms"] < 50,
    }
    if args.json:
        print(json.dumps(figures))
        return 0
    print(f"Redis {figures['redis']['version']} ({figures['redis']['where']})")
    print(f"round-trip ceiling: {figures['ping_per_s']:,} PINGs/s")
    print("single claims/s per process (one Lua round trip each):")
    for name, value in figures["single_claims_per_s"].items():
        print(f"  {name:<22} {value['per_s']:>8,}/s   script {value['server_us']:5.1f} us in Redis")
    print(f"decide_once/s (lease + journaled pick + record): {figures['decide_once_per_s']:>8,}")
    b = figures["batch"]
    print(
        f"batch of {b['batch']}: claims/s {b['claims_per_s']:>8,} ({b['server_us_per_claim']} us each in Redis)"
        f"   claim+record decisions/s {b['decisions_per_s']:>8,}"
    )
    cd = figures["claim_due"]
    for label in ("small", "big"):
        c = cd[label]
        print(
            f"claim_due {c['due']:,} due among {c['open']:>9,} open: median {c['median_ms']:6.2f} ms, max {c['max_ms']:6.2f} ms"
        )
    print(f"  ratio big/small: {cd['ratio']}")
    tm, dm = figures["timer_memory"], figures["decision_memory"]
    print(f"bytes per open SLA timer: {tm['bytes_per_timer']} (payload JSON {tm['payload_json_bytes']} B)")
    print(
        f"bytes per decision (journal + record + log entry): {dm['bytes_per_decision']}"
        f" (payload JSON {dm['payload_json_bytes']} B)"
    )
    print("targets: " + ", ".join(f"{k} {'ok' if v else 'MISSED'}" for k, v in figures["targets"].items()))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
