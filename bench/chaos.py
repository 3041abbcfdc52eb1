"""Chaos run (issue 18): route a backlog through real processes while the worker, the CRM and Redis fail.

    .venv/bin/python bench/chaos.py                          # the issue's sizes: 3,000 + 1,000 leads, both brokers
    .venv/bin/python bench/chaos.py --json                   # one JSON object on stdout (progress on stderr)
    .venv/bin/python bench/chaos.py --brokers redis --salesforce 600 --hubspot 200 --crm-fault-seconds 5
    .venv/bin/python bench/chaos.py --baseline               # also a fault-free run, to compare the times
    .venv/bin/python bench/chaos.py --faults kill             # one fault alone: what a kill costs

Everything runs as in production (the Procfile): the sandbox CRM over HTTPS in its own thread, a
throwaway Redis with AOF on (the state store, and the broker unless RabbitMQ is chosen), a Celery
worker (prefork, ``-c 2``, ``--without-gossip --without-mingle --without-heartbeat``) and beat,
all supervised by :class:`worker.devtools.processes.Supervisor`; they cache their compiled modules as Python does
by default (the image compiles them at build time), whatever PYTHONDONTWRITEBYTECODE says. The config is the shipped one with
the SLA section taken out (its reassignments would move owners on purpose), working hours and
dated absences removed, and one-second poll, drain and ledger intervals. ``--salesforce`` leads and
``--hubspot`` contacts are loaded into the CRMs' intake at once; as they are routed (owners counted
in the CRM), the faults come, each at a share of the leads routed:

* ``--kill-at`` (30%): ``kill -9`` of the worker and all its children; it is started again after
  ``--restart-delay`` s (0.2, the example systemd unit's), as a restart policy would;
* ``--crm-fault-at`` (60%): the CRMs answer ``--crm-fault-seconds`` (15) of 503s, dropped
  connections and locked rows (the sandbox's fault injection), then recover;
* ``--redis-restart-at`` (80%): Redis is stopped and started again on the same port (AOF on);
* ``--flush-at`` (90%): ``FLUSHALL``: the worker finds its state marker gone and rebuilds from the
  CRM and the ledger (``docs/operations.md``, "Redis loses its data"). With the Redis broker this
  also empties Celery's queues and bindings, so the worker and beat are restarted after it, as
  an operator would after flushing a shared broker; with RabbitMQ the queues are untouched.

A worker that exits without being killed is counted (``unexpected_exits``) and started again.

It prints, per broker: **lost** (leads still in the intake at the end), **double-assigned** (leads
whose owner was written to the CRM with two different owners, from the sandbox's recording of every
owner write), **load mismatches** (reps whose load in Redis differs from the CRM's count of the
routed leads they hold), the time to route everything, and for each fault how long routing
stalled (from the fault, or from the CRM's recovery, to the next lead routed). ``--json`` prints
the same as one object. The exit status is 1 when a lead is lost or double-assigned, or a load
does not match.
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import json
import os
import shutil
import sys
import tempfile
import time
from collections import Counter, defaultdict
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import yaml
from kombu import Connection

from worker.app.broker import BROKER_ENV, QUEUES
from worker.config import parse_config
from worker.devtools.feeder import SANDBOX_INTAKE_QUEUE, LeadFeeder
from worker.devtools.processes import Supervisor
from worker.devtools.synthetic import synthetic_leads
from worker.store.connection import RedisServer, free_port, redis_server_binary
from worker.store.redis_store import RedisStore

ROOT = Path(__file__).resolve().parents[1]
RABBITMQ_URL = os.environ.get("LEADROUTE_TEST_RABBITMQ_URL", "amqp://guest:guest@127.0.0.1:5672//")
PREFIX = "chaos"


@dataclass
class ChaosSettings:
    """One run's sizes, fault points and timings."""

    salesforce: int = 3000
    hubspot: int = 1000
    broker: str = "redis"  # or rabbitmq
    kill_at: float | None = 0.3
    crm_fault_at: float | None = 0.6
    crm_fault_seconds: float = 15.0
    redis_restart_at: float | None = 0.8
    flush_at: float | None = 0.9
    restart_delay: float = 0.2  # the example systemd unit's RestartSec (Docker's first restart waits 0.1 s)
    lease: float = 15.0  # LEADROUTE_PENDING_LEASE
    crm_latency_ms: float = 0.0  # added to every CRM call (a small run needs it to leave room between faults)
    wave: int = 20  # leads loaded with a fault that comes when everything is routed already
    batch: int | None = None  # the connectors' write batch size (default: the CRMs' largest); smaller spreads a small run out
    concurrency: int = 2
    timeout: float = 600.0
    seed: int = 18


@dataclass
class Fault:
    """One fault: when (seconds from the start, share routed), and how long routing stalled after it."""

    kind: str
    at_s: float
    routed_share: float
    stall_s: float | None = None  # from the fault (the CRM's recovery, for crm_fault) to the next lead routed
    note: str = ""
    at: str = ""  # wall clock (UTC), to line the fault up with the processes' logs
    ended: str = ""  # the CRM's recovery (crm_fault), likewise
    held: int = 0  # kill: the unrouted leads the dead worker held under its leases (its batches)
    held_routed_s: float | None = None  # kill: from the kill until the last of them was routed


@dataclass
class ChaosResult:
    """What a run found."""

    broker: str
    leads: int
    routed: int = 0
    lost: int = 0
    double_assigned: int = 0
    load_mismatches: dict[str, tuple[int, int]] = field(default_factory=dict)  # rep -> (Redis, CRM)
    routed_all_s: float | None = None
    faults: list[Fault] = field(default_factory=list)
    unexpected_exits: int = 0
    owner_writes: int = 0

    @property
    def ok(self) -> bool:
        return self.lost == 0 and self.double_assigned == 0 and not self.load_mismatches

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["load_mismatches"] = {rep: {"redis": a, "crm": b} for rep, (a, b) in self.load_mismatches.items()}
        out["ok"] = self.ok
        return out

    def lines(self) -> list[str]:
        out = [f"{self.broker}: {self.routed}/{self.leads} routed"
               + (f" in {self.routed_all_s:.1f} s" if self.routed_all_s is not None else " (timed out)"),
               f"  lost {self.lost}, double-assigned {self.double_assigned}, load mismatches {len(self.load_mismatches)}"
               + "".join(f" [{rep}: redis {a} crm {b}]" for rep, (a, b) in self.load_mismatches.items())
               + f", unexpected worker exits {self.unexpected_exits}, owner writes {self.owner_writes}"]
        for f in self.faults:
            stall = "no lead routed after it" if f.stall_s is None else f"routing resumed {f.stall_s:.1f} s after"
            out.append(f"  {f.kind} at {f.at_s:.1f} s ({f.routed_share:.0%} routed): {stall}" + (f"; {f.note}" if f.note else ""))
            if f.held:
                done = "not all routed" if f.held_routed_s is None else f"the last routed {f.held_routed_s:.1f} s after the kill"
                out.append(f"    the {f.held} leads the dead worker held: {done}")
        return out


def chaos_config(settings: ChaosSettings) -> dict[str, Any]:
    """The shipped config without its SLA, hours and dated absences, with one-second intervals."""
    data = copy.deepcopy(yaml.safe_load((ROOT / "config" / "routing.yaml").read_text()))
    data.pop("sla", None)
    data.pop("hours", None)
    for rep in data["reps"]:
        rep.pop("hours", None)
        rep.pop("out_of_office", None)
    data["worker"] = {"poll_every": "1s", "drain_every": "1s", "reconcile_orphans_every": "5s", "orphan_age": "5s",
                      "reconcile_loads_every": "1h", "ledger_flush_every": "1s"}
    data["notifications"] = {"channels": []}
    if settings.batch:
        for crm in ("salesforce", "hubspot"):
            data["connectors"][crm]["write_batch_size"] = settings.batch
    return data


def purge_rabbitmq(url: str) -> None:
    """Empty leadroute's queues on RabbitMQ, so a run never sees another's task messages."""
    with Connection(url) as conn:
        conn.ensure_connection(max_retries=3)
        channel = conn.default_channel
        for queue in QUEUES:
            channel.queue_declare(queue=queue, durable=True, auto_delete=False)
            channel.queue_purge(queue)


class Owners:
    """Who owns each tracked lead in the sandbox now (admin API: no quota, no faults)."""

    def __init__(self, admin: Any, ids: dict[str, list[str]]) -> None:
        self.admin = admin
        self.ids = {crm: set(found) for crm, found in ids.items()}

    def now(self) -> dict[tuple[str, str], str | None]:
        out: dict[tuple[str, str], str | None] = {}
        if self.ids.get("salesforce"):
            for rec in self.admin.sf_records("Lead"):
                if rec["Id"] in self.ids["salesforce"]:
                    owner = rec.get("OwnerId")
                    out[("salesforce", rec["Id"])] = None if owner in (None, "", SANDBOX_INTAKE_QUEUE) else owner
        if self.ids.get("hubspot"):
            for rec in self.admin.hs_records():
                if str(rec["id"]) in self.ids["hubspot"]:
                    owner = (rec.get("properties") or {}).get("hubspot_owner_id")
                    out[("hubspot", str(rec["id"]))] = owner or None
        return out


def owner_writes(exchanges: list[dict[str, Any]]) -> dict[tuple[str, str], set[str]]:
    """Every owner written to each record by an accepted CRM call (Salesforce sObject Collections PATCH,
    HubSpot batch update), from the sandbox's recording."""
    written: dict[tuple[str, str], set[str]] = defaultdict(set)
    for ex in exchanges:
        if not 200 <= int(ex.get("status", 0)) < 300 or ex.get("method") not in ("PATCH", "POST"):
            continue
        try:
            body = json.loads(ex.get("request_body") or "{}")
        except ValueError:
            continue
        if ex.get("api") == "salesforce" and "composite/sobjects" in ex.get("path", ""):
            results = _json_list(ex.get("response_body"))
            for i, rec in enumerate(body.get("records") or []):
                ok = i >= len(results) or bool((results[i] or {}).get("success", True))
                if ok and rec.get("OwnerId") and rec.get("Id", rec.get("id")):
                    written[("salesforce", str(rec.get("Id", rec.get("id"))))].add(str(rec["OwnerId"]))
        elif ex.get("api") == "hubspot" and ex.get("path", "").endswith("/batch/update"):
            failed = _hubspot_failed(ex.get("response_body"))
            for item in body.get("inputs") or []:
                owner = (item.get("properties") or {}).get("hubspot_owner_id")
                if owner and str(item.get("id")) not in failed:
                    written[("hubspot", str(item["id"]))].add(str(owner))
    return written


def _json_list(text: Any) -> list[Any]:
    try:
        value = json.loads(text or "[]")
    except ValueError:
        return []
    return value if isinstance(value, list) else []


def _hubspot_failed(text: Any) -> set[str]:
    try:
        value = json.loads(text or "{}")
    except ValueError:
        return set()
    failed: set[str] = set()
    for error in (value.get("errors") or []) if isinstance(value, dict) else []:
        for ctx in (error.get("context") or {}).get("ids", []) or []:
            failed.add(str(ctx))
    return failed


def crm_loads(admin: Any, owners: dict[tuple[str, str], str | None], config: Any) -> Counter[str]:
    """The routed leads each rep holds in the CRMs (none is acknowledged in a chaos run: no SLA, no rep acts)."""
    by_crm_id = {(crm, crm_id): rep for rep, r in config.reps.items() for crm, crm_id in r.crm_ids.items()}
    return Counter(rep for (crm, _), owner in owners.items() if owner and (rep := by_crm_id.get((crm, owner))))


def run(settings: ChaosSettings, sandbox: Any, work: Path, *, log: Callable[[str], None] = print) -> ChaosResult:
    """One chaos run against ``sandbox`` (a :class:`sandbox.run.SandboxInfo`), processes and logs in ``work``."""
    admin = sandbox.admin
    admin.reset()
    admin.clear_faults()
    admin.reset_usage()
    admin.set_limits(hubspot={"search_per_second": 1000, "ten_second_limit": 100_000})
    if settings.crm_latency_ms:
        admin.patch_faults(latency_ms=settings.crm_latency_ms)
    data = chaos_config(settings)
    config_path = work / "routing.yaml"
    config_path.write_text(yaml.safe_dump(data, sort_keys=False))
    config = parse_config(config_path.read_text(), str(config_path))
    server = RedisServer(data_dir=work / "redis", port=free_port(), persistent=True,
                         binary=redis_server_binary(prefer_path=True), die_with_parent=True).start()
    env = dict(os.environ)
    env.update(sandbox.env())
    env.update({"REDIS_URL": server.url, "LEADROUTE_PREFIX": PREFIX, "LEADROUTE_CONFIG": str(config_path),
                "DATABASE_URL": f"sqlite:///{work / 'ledger.sqlite3'}", "LEADROUTE_PENDING_LEASE": str(settings.lease),
                "LEADROUTE_VISIBILITY_TIMEOUT": "30", "LEADROUTE_LOG_FORMAT": "json",
                "PYTHONPATH": str(ROOT)})
    env.pop(BROKER_ENV, None)
    # the processes may cache their compiled modules (__pycache__, as Python does by default), so the worker
    # restarted after the kill starts as a deployed one does, not compiling the project again:
    # PYTHONDONTWRITEBYTECODE=1, set on some machines, made every start compile it (~0.4 s of each restart)
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    if settings.broker == "rabbitmq":
        env[BROKER_ENV] = RABBITMQ_URL
        purge_rabbitmq(RABBITMQ_URL)
    elif settings.broker != "redis":
        raise ValueError(f"broker: redis or rabbitmq, not {settings.broker!r}")
    processes = Supervisor(env, work, cwd=ROOT, stop_timeout=30)
    feeder = LeadFeeder(sandbox, config)
    store = RedisStore.connect(server.url, prefix=PREFIX)
    result = ChaosResult(settings.broker, settings.salesforce + settings.hubspot)
    nodename = f"chaos-{os.getpid()}-{settings.broker}@%h"

    def start(*names: str) -> None:
        for name in names:
            if name == "worker":
                processes.worker(concurrency=settings.concurrency, pool="prefork", nodename=nodename, heartbeat=False)
            else:
                processes.beat(work / "beat-schedule", loglevel="INFO")
        processes.wait_ready(*names, timeout=120)

    try:
        if settings.salesforce:
            feeder.load("salesforce", synthetic_leads(settings.salesforce, seed=settings.seed))
        if settings.hubspot:
            feeder.load("hubspot", synthetic_leads(settings.hubspot, seed=settings.seed + 1))
        waiting = {"salesforce": [r["Id"] for r in admin.sf_records("Lead") if r.get("OwnerId") == SANDBOX_INTAKE_QUEUE],
                   "hubspot": [str(r["id"]) for r in admin.hs_records()
                               if not (r.get("properties") or {}).get("hubspot_owner_id")]}
        watch = Owners(admin, waiting)  # ours and the seed's leads waiting in the intake: the worker routes them all
        result.leads = sum(len(v) for v in waiting.values())
        admin.start_recording()
        started = time.monotonic()
        start("worker", "beat")
        plan = sorted((share, kind) for kind, share in (("kill", settings.kill_at), ("crm_fault", settings.crm_fault_at),
                                                         ("redis_restart", settings.redis_restart_at),
                                                         ("flush", settings.flush_at)) if share is not None)
        pending_stall: list[tuple[Fault, float, int]] = []  # (fault, stall measured from, routed then)
        fault_ends: float | None = None
        flushed: Fault | None = None
        flushed_at = 0.0
        routed = 0
        held: dict[tuple[str, str], float | None] = {}  # the dead worker's leads -> seconds from the kill to routed
        killed_at = 0.0
        while time.monotonic() - started < settings.timeout:
            owners = watch.now()
            routed = sum(1 for owner in owners.values() if owner)
            now = time.monotonic()
            for key in [k for k, waited in held.items() if waited is None and owners.get(k)]:
                held[key] = now - killed_at
            for item in list(pending_stall):
                fault, since, before = item
                if routed > before and now >= since:
                    fault.stall_s = round(now - since, 2)
                    pending_stall.remove(item)
            if fault_ends is not None and now >= fault_ends:
                admin.clear_faults()
                if settings.crm_latency_ms:
                    admin.patch_faults(latency_ms=settings.crm_latency_ms)
                fault_ends = None  # the stall of a CRM fault counts from the CRM's recovery
                for f in result.faults:
                    if f.kind == "crm_fault" and not f.ended:
                        f.ended = _wall()
                pending_stall[:] = [(f, now, routed) if f.kind == "crm_fault" else (f, s, r) for f, s, r in pending_stall]
            if routed >= result.leads:
                if not plan and fault_ends is None:
                    result.routed_all_s = round(now - started, 2)
                    break
                for fault, _, _ in pending_stall:  # routing outran the faults: the next one brings a new wave
                    fault.note = "; ".join(filter(None, (fault.note, "nothing was left to route after it")))
                pending_stall.clear()
            if processes.died():
                result.unexpected_exits += 1
                log(f"{settings.broker}: the worker exited without being killed; starting it again\n{processes.logs(2000)}")
                start(*[name for name in processes.died()])
            share = routed / result.leads
            settled = not pending_stall and fault_ends is None  # one fault at a time: the last one is behind us
            if plan and settled and (share >= plan[0][0] or routed >= result.leads):
                _, kind = plan.pop(0)
                fault = Fault(kind, round(now - started, 2), round(share, 3), at=_wall())
                if routed >= result.leads:  # so that there is routing after this fault to measure
                    wave = feeder.load("salesforce", synthetic_leads(settings.wave, seed=settings.seed + 10 + len(plan)))
                    watch.ids.setdefault("salesforce", set()).update(wave)
                    result.leads += len(wave)
                    fault.note = f"every lead was routed before it: {len(wave)} more loaded with it"
                result.faults.append(fault)
                log(f"{settings.broker}: {kind} at {fault.at_s:.1f} s, {share:.0%} routed")
                if kind == "kill":
                    processes.kill("worker")
                    killed_at = time.monotonic()
                    pending = store.pending_set()
                    held = {(crm, rid): None for crm in watch.ids for rid in pending.not_due(crm)
                            if (crm, rid) in owners and not owners[(crm, rid)]}
                    time.sleep(settings.restart_delay)  # the restart policy's delay
                    start("worker")
                elif kind == "crm_fault":
                    admin.patch_faults(error_503_rate=0.5, drop_rate=0.2, lock_row_rate=0.3)
                    fault_ends = time.monotonic() + settings.crm_fault_seconds
                elif kind == "redis_restart":
                    server.stop()
                    server.start()
                elif kind == "flush":
                    store.client.flushall()
                    flushed, flushed_at = fault, time.time()
                    if settings.broker == "redis":  # Celery's queues and bindings went with it
                        processes.stop("worker", "beat", timeout=10)
                        start("worker", "beat")
                        fault.note = "; ".join(filter(None, (fault.note, "worker and beat restarted (their broker was flushed)")))
                    else:
                        fault.note = "; ".join(filter(None, (fault.note, "the worker kept running")))
                pending_stall.append((fault, now if kind != "crm_fault" else float("inf"), routed))
            time.sleep(0.2)
        result.routed = routed
        for fault in result.faults:
            if fault.kind == "kill" and held:
                fault.held = len(held)
                waits = list(held.values())
                fault.held_routed_s = None if None in waits else round(max(w for w in waits if w is not None), 2)
        final = watch.now()
        result.lost = sum(1 for owner in final.values() if not owner)
        writes = owner_writes(admin.stop_recording())
        result.owner_writes = sum(len(v) for v in writes.values())
        result.double_assigned = sum(1 for key, owners in writes.items() if len(owners) > 1 and key in final)
        _settle(store)
        if flushed is not None:
            marker = store.state_marker()
            if marker is not None and marker.rebuilt:
                flushed.note += f"; state rebuilt {marker.stamped_at - flushed_at:.1f} s after the flush"
        expected = crm_loads(admin, final, config)
        actual = store.all_loads()
        result.load_mismatches = {rep: (actual.get(rep, 0), expected.get(rep, 0))
                                  for rep in sorted(set(actual) | set(expected)) if actual.get(rep, 0) != expected.get(rep, 0)}
        if result.load_mismatches:
            log(f"{settings.broker}: load mismatch: {_explain_loads(store, final, config, writes)}")
        return result
    finally:
        with contextlib.suppress(Exception):
            admin.clear_faults()
        processes.stop()
        feeder.close()
        store.client.close()
        server.stop()
        if settings.broker == "rabbitmq":
            with contextlib.suppress(Exception):
                purge_rabbitmq(RABBITMQ_URL)


def _wall() -> str:
    """Now, as the processes' JSON logs write it (UTC, milliseconds)."""
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _explain_loads(store: RedisStore, owners: dict[tuple[str, str], str | None], config: Any,
                   writes: dict[tuple[str, str], set[str]]) -> str:
    """Leads whose holder in Redis is not their owner in the CRM, for a load that does not match."""
    by_crm_id = {(crm, crm_id): rep for rep, r in config.reps.items() for crm, crm_id in r.crm_ids.items()}
    out = []
    for crm in ("salesforce", "hubspot"):
        held = store.open_leads(crm)
        for (c, lead_id), owner in owners.items():
            if c != crm:
                continue
            rep = by_crm_id.get((crm, owner)) if owner else None
            if held.get(lead_id) != rep:
                wrote = sorted(writes.get((crm, lead_id), ()))
                out.append(f"{crm}:{lead_id} held by {held.get(lead_id)} owned by {rep or owner} writes {wrote}")
    kinds = Counter(e.kind for e in store.log_range())
    return "; ".join(out[:20]) + f"; log: {dict(kinds)}"


def _settle(store: RedisStore, timeout: float = 60.0) -> None:
    """Wait until the state is marked (rebuilt, after a flush), no batch is leased and the outbox is empty:
    the loads are final."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        leased = sum(store.client.zcount(store.key("pending", crm), time.time(), "+inf") for crm in ("salesforce", "hubspot"))
        if store.state_marker() is not None and not leased and store.outbox_stats().depth == 0:
            return
        time.sleep(0.2)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    defaults = ChaosSettings()
    parser.add_argument("--brokers", default="redis,rabbitmq", help="comma-separated: redis, rabbitmq")
    parser.add_argument("--salesforce", type=int, default=defaults.salesforce)
    parser.add_argument("--hubspot", type=int, default=defaults.hubspot)
    parser.add_argument("--kill-at", type=float, default=defaults.kill_at)
    parser.add_argument("--crm-fault-at", type=float, default=defaults.crm_fault_at)
    parser.add_argument("--crm-fault-seconds", type=float, default=defaults.crm_fault_seconds)
    parser.add_argument("--redis-restart-at", type=float, default=defaults.redis_restart_at)
    parser.add_argument("--flush-at", type=float, default=defaults.flush_at)
    parser.add_argument("--no-flush", action="store_true", help="leave out the FLUSHALL")
    parser.add_argument("--faults", default="kill,crm_fault,redis_restart,flush",
                        help="comma-separated: which faults to inject (e.g. kill alone, to see what a kill costs)")
    parser.add_argument("--lease", type=float, default=defaults.lease)
    parser.add_argument("--restart-delay", type=float, default=defaults.restart_delay,
                        help="seconds between the kill and the worker's restart (the restart policy's delay)")
    parser.add_argument("--crm-latency-ms", type=float, default=defaults.crm_latency_ms)
    parser.add_argument("--batch", type=int, default=None, help="the connectors' write batch size (default: the largest)")
    parser.add_argument("--timeout", type=float, default=defaults.timeout)
    parser.add_argument("--baseline", action="store_true", help="also a run without faults, for the time to route everything")
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--keep", action="store_true", help="keep the processes' logs")
    args = parser.parse_args(argv)
    faults = {f.strip() for f in args.faults.split(",") if f.strip()}
    if unknown := faults - {"kill", "crm_fault", "redis_restart", "flush"}:
        parser.error(f"--faults: unknown {', '.join(sorted(unknown))} (kill, crm_fault, redis_restart, flush)")
    if args.no_flush:
        faults.discard("flush")
    from sandbox.run import running  # the sandbox loads only when the benchmark runs

    say = (lambda line: print(line, file=sys.stderr, flush=True)) if args.json else print
    results: list[dict[str, Any]] = []
    ok = True
    with running() as sandbox:
        for broker in [b.strip() for b in args.brokers.split(",") if b.strip()]:
            runs = [("baseline", True)] if args.baseline else []
            runs.append(("chaos", False))
            for label, calm in runs:
                settings = ChaosSettings(
                    salesforce=args.salesforce, hubspot=args.hubspot, broker=broker,
                    kill_at=None if calm or "kill" not in faults else args.kill_at,
                    crm_fault_at=None if calm or "crm_fault" not in faults else args.crm_fault_at,
                    crm_fault_seconds=args.crm_fault_seconds,
                    redis_restart_at=None if calm or "redis_restart" not in faults else args.redis_restart_at,
                    flush_at=None if calm or "flush" not in faults else args.flush_at, lease=args.lease,
                    restart_delay=args.restart_delay,
                    crm_latency_ms=args.crm_latency_ms, batch=args.batch, timeout=args.timeout)
                work = Path(tempfile.mkdtemp(prefix=f"chaos-{broker}-{label}-"))
                try:
                    result = run(settings, sandbox, work, log=say)
                finally:
                    if not args.keep:
                        shutil.rmtree(work, ignore_errors=True)
                results.append({"run": label, **result.to_dict()})
                ok = ok and result.ok
                for line in [f"[{label}]", *result.lines()]:
                    say(line)
    if args.json:
        print(json.dumps({"runs": results, "ok": ok}))
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
