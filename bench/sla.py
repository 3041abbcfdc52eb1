"""Benchmark the SLA sweep: 1,000 due leads among 10,000 and among 1,000,000 open SLA clocks.

    .venv/bin/python bench/sla.py                 # figures for a reader
    .venv/bin/python bench/sla.py --json          # one JSON object
    .venv/bin/python bench/sla.py --crm memory    # no CRM: the store + policy part alone
    .venv/bin/python bench/sla.py --url redis://host:6379/0

A full sweep is timed: claim the due timers, read their acknowledgement signals from the
CRM (the real Salesforce connector over HTTPS against the sandbox CRM, which runs in its own
process; ``--crm memory`` uses an in-process double instead), decide, write the ladder
reasons back in collection batches, log, notify (a no-op), re-arm. The due leads are at their
first rung (a reminder), the commonest sweep. Each size is swept ``--rounds`` times, the due
set restored between rounds; medians are reported, and the CRM's share is split out so the
store + policy part can be compared on its own.

Without ``--url`` (or ``REDIS_URL``) a throwaway Redis is started on loopback so the memory
figure (bytes per open SLA clock: sorted-set entry, payload, per-rep index entry) is
measured on an otherwise empty server.

Target (issue 7): the sweep among 1,000,000 open clocks takes at most 2x the sweep among 10,000.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import statistics
import sys
import tempfile
import textwrap
import time
import uuid
from collections.abc import Iterator, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import redis
import yaml

from connectors.base import AckSignal, CrmRecord, OwnerUpdate, WriteResult
from connectors.settings import SalesforceSettings
from worker.config import RoutingConfig, parse_config
from worker.domain.leads import LeadRef
from worker.sla.policy import open_record
from worker.sla.settings import CompiledSla, compile_sla
from worker.steps.sla_sweep import Notice, SlaService
from worker.store.connection import RedisServer, client_from_url, free_port, redis_server_binary
from worker.store.redis_store import RedisStore

CONFIG = textwrap.dedent(
    """\
    version: 1
    timezone: America/New_York
    reps:
      - {id: sarah, manager: maria, crm_ids: {salesforce: "0055e000001AbCdAAK"}}
      - {id: tom, manager: maria, crm_ids: {salesforce: "0055e000001ToMrAAK"}}
      - {id: ana, manager: maria, crm_ids: {salesforce: "0055e000001AnAsAAK"}}
      - {id: mike, manager: maria, crm_ids: {salesforce: "0055e000001MiKeAAK"}}
      - {id: maria, crm_ids: {salesforce: "0055e000001MaRiAAK"}}
    pools:
      sales: {members: [sarah, tom, ana, mike]}
    queues:
      triage: {salesforce: "00G5e000000TrIaEAK"}
    rules:
      - {name: everyone, assign: {pool: sales}}
    fallback: {queue: triage}
    """
)
SLA = {
    "tiers": [{
        "name": "hot", "when": {"score": {"gte": 80}}, "acknowledge_within": "15m",
        "ladder": [{"after": "10m", "action": "remind"}, {"after": "15m", "action": "escalate"},
                   {"after": "30m", "action": "reassign"}],
    }],
}
OWNERS = ("sarah", "tom", "ana", "mike")
NOW = datetime(2026, 3, 4, 15, 0, tzinfo=UTC)
SETTINGS = {
    "fields": {"Id": "id", "Company": "company", "LeadSource": "lead_source", "Lead_Score__c": "score"},
    "reason": {"field": "Routing_Reason__c"},
    "rate_limit": {"requests": 10_000, "per_seconds": 1, "burst": 1000},
}


@contextlib.contextmanager
def redis_target(url: str | None) -> Iterator[tuple[redis.Redis, str, str]]:
    """A client, a fresh prefix and a description of the server, for the run's duration."""
    if url:
        client = client_from_url(url)
        prefix = f"bench-sla-{uuid.uuid4().hex[:8]}"
        try:
            yield client, prefix, "given URL"
        finally:
            RedisStore(client, prefix).clear()
        return
    binary = redis_server_binary()
    with tempfile.TemporaryDirectory(prefix="leadroute-bench-sla-") as tmp:
        server = RedisServer(data_dir=Path(tmp), port=free_port(), persistent=False, binary=binary, die_with_parent=True)
        server.start()
        try:
            yield client_from_url(server.url), "bench", f"throwaway {binary} on loopback"
        finally:
            server.stop()


class Timed:
    """Wraps a connector and adds up the time spent in CRM calls."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.seconds = 0.0
        self.calls = 0

    def _time(self, name: str, *args: Any) -> Any:
        started = time.perf_counter()
        try:
            return getattr(self.inner, name)(*args)
        finally:
            self.seconds += time.perf_counter() - started
            self.calls += 1

    def read_acks(self, ids: Sequence[str]) -> Mapping[str, AckSignal]:
        return self._time("read_acks", ids)

    def fetch(self, ids: Sequence[str]) -> Mapping[str, CrmRecord]:
        return self._time("fetch", ids)

    def write_owners(self, updates: Sequence[OwnerUpdate]) -> Sequence[WriteResult]:
        return self._time("write_owners", updates)

    def attach_reasons(self, reasons: Mapping[str, str]) -> Sequence[WriteResult]:
        return self._time("attach_reasons", reasons)


class MemoryCrm:
    """No network: every lead exists, unacknowledged, with its owner (for ``--crm memory``)."""

    def __init__(self, owners: Mapping[str, str]) -> None:
        self.owners = dict(owners)

    def read_acks(self, ids: Sequence[str]) -> dict[str, AckSignal]:
        return {i: AckSignal(i, False, False, self.owners[i], None, {}) for i in ids}

    def fetch(self, ids: Sequence[str]) -> dict[str, CrmRecord]:
        return {}

    def write_owners(self, updates: Sequence[OwnerUpdate]) -> list[WriteResult]:
        return [WriteResult.success(u.id) for u in updates]

    def attach_reasons(self, reasons: Mapping[str, str]) -> list[WriteResult]:
        return [WriteResult.success(i) for i in reasons]


def used_memory(client: redis.Redis) -> int:
    return int(client.info("memory")["used_memory"])


def fill(svc: SlaService, config: RoutingConfig, sla: CompiledSla, count: int, offset: int) -> None:
    """``count`` open clocks that are not due yet, stored exactly as ``SlaService.start`` stores them."""
    tier = sla.tiers[0]
    store = svc.store
    payloads = {}
    for owner in OWNERS:
        record = open_record(LeadRef("salesforce", "Lead", "x"), tier, owner, NOW, None)
        payloads[owner] = record.to_payload()
    first_due = NOW.timestamp() + 600
    for start in range(offset, offset + count, 10_000):
        end = min(start + 10_000, offset + count)
        timers, index = [], {}
        for i in range(start, end):
            owner = OWNERS[i % len(OWNERS)]
            tid = f"sla:salesforce:Lead:00Q5e0{i:012}"
            timers.append((tid, first_due + i % 600, payloads[owner]))
            index.setdefault(owner, []).append(tid)
        store.schedule_many(timers)
        pipe = store.client.pipeline(transaction=False)
        for owner, ids in index.items():
            pipe.sadd(store.key("sla", "rep", owner), *ids)
        pipe.execute()


def due_batch(ids: Sequence[str], owners: Mapping[str, str], epoch: int) -> list[tuple[Any, ...]]:
    """Clocks assigned 10m30s ago: their reminder is due. A new epoch per round, so the
    once-only marks of the previous round do not turn the reminders into no-ops."""
    lead = {"lead_source": "Demo Request", "score": 90}
    at = NOW - timedelta(minutes=10, seconds=30)
    return [(LeadRef("salesforce", "Lead", i), owners[i], lead, at, epoch) for i in ids]


def sweep_size(
    client: redis.Redis, prefix: str, config: RoutingConfig, sla: CompiledSla, crm: Any, due_ids: Sequence[str],
    owners: Mapping[str, str], open_total: int, rounds: int,
) -> dict[str, Any]:
    store = RedisStore(client, prefix)
    store.clear()
    notices: list[Notice] = []
    timed = Timed(crm)
    svc = SlaService(store, sla, config, {"salesforce": timed}, notices.append, batch=len(due_ids))
    before = used_memory(client)
    fill(svc, config, sla, open_total - len(due_ids), 0)
    svc.start_many(due_batch(due_ids, owners, 0))
    loaded = used_memory(client)
    assert store.open_timers() == open_total, store.open_timers()
    totals, crm_parts = [], []
    for n in range(rounds):
        svc.start_many(due_batch(due_ids, owners, n + 1))  # the same 1,000 at their first rung again
        timed.seconds, timed.calls, notices[:] = 0.0, 0, []
        started = time.perf_counter()
        report = svc.sweep(NOW)
        total = time.perf_counter() - started
        assert report.due == len(due_ids) and not report.errors, (report.due, report.errors[:3])
        assert [(a.action, a.status) for a in report.actions] == [("remind", "done")] * len(due_ids)
        totals.append(total)
        crm_parts.append(timed.seconds)
    store.clear()
    median_total, median_crm = statistics.median(totals), statistics.median(crm_parts)
    return {
        "open": open_total,
        "due": len(due_ids),
        "sweep_ms": round(median_total * 1000, 1),
        "crm_ms": round(median_crm * 1000, 1),
        "store_policy_ms": round((median_total - median_crm) * 1000, 1),
        "crm_calls": timed.calls,
        "bytes_per_open_clock": round((loaded - before) / open_total),
        "rounds_ms": [round(t * 1000, 1) for t in totals],
    }


@contextlib.contextmanager
def crm_target(kind: str, redis_client: redis.Redis, prefix: str, due: int) -> Iterator[tuple[Any, list[str], str]]:
    """The CRM the sweep reads: the sandbox through the real Salesforce connector, or a double."""
    if kind == "memory":
        ids = [f"00Q5e9{i:012}" for i in range(due)]
        yield MemoryCrm({i: "0055e000001AbCdAAK" for i in ids}), ids, "in-memory double (no network)"
        return
    from connectors.salesforce import SalesforceConnector
    from sandbox.run import running

    with running(mode="process") as info:
        admin = info.admin
        admin.set_limits(salesforce={"daily_api_requests": 10_000_000})
        ids = admin.sf_load("Lead", [
            {"LastName": f"Bench {i}", "Company": f"Co {i}", "LeadSource": "Demo Request", "Lead_Score__c": 90,
             "Status": "Open - Not Contacted", "OwnerId": "0055e000001AbCdAAK"} for i in range(due)
        ])
        conn = SalesforceConnector.from_env(SalesforceSettings.model_validate(SETTINGS), redis_client=redis_client,
                                            prefix=prefix + "-crm", env=info.env())
        try:
            yield conn, ids, "sandbox CRM (own process) through the Salesforce connector over HTTPS"
        finally:
            conn.close()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.add_argument("--url", default=os.environ.get("REDIS_URL"), help="an existing Redis (default: throwaway)")
    parser.add_argument("--crm", choices=("sandbox", "memory"), default="sandbox")
    parser.add_argument("--due", type=int, default=1000)
    parser.add_argument("--small", type=int, default=10_000)
    parser.add_argument("--big", type=int, default=1_000_000)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args(argv)

    config = parse_config(CONFIG, "bench.yaml")
    check = compile_sla(yaml.safe_load(json.dumps(SLA)), config)
    assert check.compiled is not None, check.errors
    sla = check.compiled
    with redis_target(args.url) as (client, prefix, where), crm_target(args.crm, client, prefix, args.due) as (crm, ids, how):
        owners = {i: OWNERS[n % len(OWNERS)] for n, i in enumerate(ids)}
        if isinstance(crm, MemoryCrm):
            crm.owners = {i: config.reps[o].crm_ids["salesforce"] for i, o in owners.items()}
        else:
            from connectors.base import OwnerUpdate as Update

            results = crm.write_owners([Update(i, config.reps[o].crm_ids["salesforce"], "bench") for i, o in owners.items()])
            assert all(r.ok for r in results)
        sweep_size(client, prefix, config, sla, crm, ids, owners, args.small, 1)  # warm up connections and scripts
        small = sweep_size(client, prefix, config, sla, crm, ids, owners, args.small, args.rounds)
        big = sweep_size(client, prefix, config, sla, crm, ids, owners, args.big, args.rounds)
        version = client.info("server")["redis_version"]
    figures: dict[str, Any] = {
        "redis": {"version": version, "where": where},
        "crm": how,
        "small": small,
        "big": big,
        "ratio": round(big["sweep_ms"] / small["sweep_ms"], 2),
        "store_policy_ratio": round(big["store_policy_ms"] / small["store_policy_ms"], 2),
        "bytes_per_open_clock": big["bytes_per_open_clock"],
    }
    figures["targets"] = {"sweep_big<=2x_small": figures["ratio"] <= 2.0}
    if args.json:
        print(json.dumps(figures))
        return 0
    print(f"Redis {version} ({where}); CRM: {how}")
    for label in ("small", "big"):
        f = figures[label]
        print(
            f"sweep of {f['due']:,} due among {f['open']:>9,} open: {f['sweep_ms']:8.1f} ms"
            f"  (CRM {f['crm_ms']:.1f} ms in {f['crm_calls']} calls, store + policy {f['store_policy_ms']:.1f} ms)"
        )
    print(f"ratio big/small: {figures['ratio']} (store + policy alone: {figures['store_policy_ratio']})")
    print(f"Redis memory per open SLA clock: {figures['bytes_per_open_clock']} bytes")
    print("targets: " + ", ".join(f"{k} {'ok' if v else 'MISSED'}" for k, v in figures["targets"].items()))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
