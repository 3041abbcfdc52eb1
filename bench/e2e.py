"""End-to-end benchmark (issue 6): webhook latency, backlog drain against rate limits, worker memory.

    .venv/bin/python bench/e2e.py                    # the issue's sizes (3-4 minutes on 2 cores)
    .venv/bin/python bench/e2e.py --json             # one JSON object on stdout (progress on stderr)
    .venv/bin/python bench/e2e.py --duration 10 --leads 2000 --notify-timeout 0    # a quick run (~1 min)
    .venv/bin/python bench/e2e.py --skip backlog --rate 20 --duration 30

Everything runs as real processes, as in production (the Procfile): the sandbox CRM over
HTTPS in its own process with ``--latency-ms`` (50 ms) added to every API call, a throwaway
Redis, a Celery worker (prefork, ``--concurrency``, default the Procfile's 4), beat and, for
(a), the ``web`` process. The routing config is the shipped ``config/routing.yaml`` with the
connectors' own default rate limits, retries and batch sizes (not loosened as the tests do);
only the notification channel is pointed at a local webhook sink (``--notify none`` for no
channel at all). The sandbox's limits are set to the published ones: HubSpot 100 requests per
10 s (private apps, lower tier; ``--hubspot-limit 190`` for Professional/Enterprise) and search
5/s; Salesforce its daily allocation (100,000), with no per-second limit of its own, so our
connector's default cap (250 requests per 10 s: 25 requests/s on average, read from the
connector settings) is the Salesforce ceiling.

(a) Latency: contacts are created in the HubSpot sandbox (admin API: no API quota spent) at
    ``--rate`` leads/s for ``--duration`` s, each followed at once by a correctly signed
    HubSpot v3 ``contact.creation`` webhook to the web process. Latency runs from just before
    the webhook POST to the moment the worker sets the lead's ``written`` marker in Redis
    (right after the CRM accepted the owner write), observed through Redis keyspace
    notifications. ``--warmup`` leads go first and are not counted. Target: p95 < 1 s.
(b) Backlog: with the worker and beat running and idle, ``--leads`` records are bulk-loaded
    into one sandbox CRM (admin API, no quota), then the clock runs until every one has its
    owner written. The drain is timed from the worker's first read of the backlog (the first
    id reaching the pending set; before it the worker cannot know of the leads, and how long
    that takes is the poll interval, up to ``worker.poll_every``), and from the load for
    reference. The drain time is compared with the least time the rate limits allow for the
    calls the pipeline needs at full batch size (HubSpot: a batch read and a batch update per
    100 contacts against 100 requests/10 s, the poll's search pages against 5/s; Salesforce: a
    fetch query and a collection update per 200 leads plus the poll's 2,000-row query pages,
    against 25 requests/s). Calls per lead by endpoint come from the sandbox's counters and
    the worker's own Prometheus counters; also Redis commands per lead (``INFO commandstats``),
    CPU per process, and how long the notify queue (its own queue) takes to empty afterwards.
    Target: >= 85% of the allowed rate.
(c) Memory: RSS (VmRSS, sampled every 0.2 s, and the kernel's peak VmHWM) of the worker's
    main process and each prefork child throughout. Target: < 200 MB per process.

Missed targets are reported, not fatal: the exit status is non-zero only when the benchmark
itself fails (a process dies, a lead is never written within the time allowed...).
Child processes are stopped on exit, Ctrl-C and SIGTERM included; ``--keep`` keeps their logs.
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import itertools
import json
import math
import os
import shutil
import signal
import statistics
import sys
import tempfile
import threading
import time
import traceback
from collections import Counter
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import redis
import requests
import yaml

from sandbox.run import SandboxInfo, running
from worker.config import parse_config
from worker.devtools.feeder import SANDBOX_INTAKE_QUEUE, LeadFeeder
from worker.devtools.processes import NotReady, ProcessDied, Supervisor
from worker.devtools.synthetic import synthetic_leads
from worker.store.connection import RedisServer, free_port, redis_server_binary
from worker.web.receivers import hubspot_v3_signature

ROOT = Path(__file__).resolve().parents[1]
DEMO_CONFIG = ROOT / "config" / "routing.yaml"
APP_SECRET = "bench-e2e-hubspot-app-secret"
WEBHOOK_SECRET = "bench-e2e-webhook-secret"
OBJECTS = {"hubspot": "contacts", "salesforce": "Lead"}
RSS_TARGET_MB = 200.0
LATENCY_TARGET_S = 1.0
SHARE_TARGET = 0.85
# the published allowances the sandbox is set to (see the module docstring)
HUBSPOT_SEARCH_PER_SECOND = 5
SALESFORCE_DAILY = 100_000

def _salesforce_cap_per_second() -> float:
    """Our connector's default cap on average (connectors/settings.py): the Salesforce ceiling."""
    from connectors.settings import SalesforceSettings

    limit = SalesforceSettings.model_fields["rate_limit"].default
    return limit.requests / limit.per_seconds


SALESFORCE_CAP_PER_SECOND = _salesforce_cap_per_second()
HUBSPOT_BATCH = 100  # batch read / batch update inputs
HUBSPOT_SEARCH_PAGE = 200
SALESFORCE_BATCH = 200  # ids per fetch query, records per sObject Collections call
SALESFORCE_QUERY_PAGE = 2000


class BenchError(RuntimeError):
    """The benchmark could not complete (as opposed to a missed target)."""


def say(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def percentile(values: list[float], q: float) -> float:
    """Nearest-rank percentile (q in 0..100) of a non-empty list."""
    ordered = sorted(values)
    return ordered[max(0, math.ceil(q / 100 * len(ordered)) - 1)]


# ----------------------------------------------------------------------------- config


def intake_queue(data: dict[str, Any]) -> str:
    """The Salesforce intake queue id from the config's intake condition (``OwnerId eq ...``)."""

    def walk(cond: Any) -> Iterator[dict[str, Any]]:
        if isinstance(cond, dict):
            yield cond
            for key in ("all", "any"):
                for sub in cond.get(key) or ():
                    yield from walk(sub)

    for cond in walk(data["connectors"]["salesforce"].get("intake")):
        if cond.get("field") == "OwnerId" and "eq" in cond:
            return str(cond["eq"])
    raise BenchError("config/routing.yaml: no Salesforce intake queue (OwnerId eq ...) to load leads into")


def bench_config(sink_url: str | None, hubspot_limit: int = 100) -> dict[str, Any]:
    """The shipped demo config, unchanged except for where notifications go.

    Unlike the tests' ``routing_test_config`` this keeps the connectors' default rate
    limits, retries and batch sizes, and the shipped worker schedule (poll 2 s, drain 1 s).
    Only for a HubSpot tier other than the default 100 requests/10 s is the connector's
    ``rate_limit.requests`` raised to match, as its documentation says to.
    """
    data = copy.deepcopy(yaml.safe_load(DEMO_CONFIG.read_text()))
    if hubspot_limit != 100:
        data["connectors"]["hubspot"]["rate_limit"] = {"requests": hubspot_limit, "per_seconds": 10, "burst": 3,
                                                       "headroom": 0.02}
    if sink_url:
        data["notifications"] = {"channels": ["webhook"], "webhook": {"url": sink_url, "timeout": 5}}
    else:
        data.pop("notifications", None)
    parse_config(yaml.safe_dump(data, sort_keys=False), "bench-routing.yaml")  # fail early on a bad file
    return data


def connector_limits(data: dict[str, Any]) -> dict[str, Any]:
    """The effective connector rate limits (steady tokens/s) of the config, for the report."""
    config = parse_config(yaml.safe_dump(data, sort_keys=False), "bench-routing.yaml")
    out: dict[str, Any] = {}
    for crm, settings in config.model.connectors.enabled().items():
        entry = {"requests": settings.rate_limit.requests, "per_seconds": settings.rate_limit.per_seconds,
                 "burst": settings.rate_limit.burst, "steady_per_second": round(settings.rate_limit.rate, 3)}
        search = getattr(settings, "search_rate_limit", None)
        if search is not None:
            entry["search_steady_per_second"] = round(search.rate, 3)
        out[crm] = entry
    return out


# ----------------------------------------------------------------------------- helpers: sink, /proc


class Sink:
    """A local endpoint standing in for the generic notification webhook (keep-alive, 204)."""

    def __init__(self) -> None:
        self.received = 0
        self._lock = threading.Lock()
        sink = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self) -> None:
                self.rfile.read(int(self.headers.get("Content-Length", "0")))
                with sink._lock:
                    sink.received += 1
                self.send_response(204)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                return

        ThreadingHTTPServer.daemon_threads = True
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"
        threading.Thread(target=self.server.serve_forever, daemon=True, name="sink").start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


_TICK = os.sysconf("SC_CLK_TCK")


def proc_status(pid: int) -> dict[str, int]:
    """VmRSS / VmHWM in kB (empty when the process is gone)."""
    out: dict[str, int] = {}
    try:
        with open(f"/proc/{pid}/status") as fh:
            for line in fh:
                if line.startswith(("VmRSS:", "VmHWM:")):
                    key, value = line.split(":", 1)
                    out[key] = int(value.split()[0])
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        pass
    return out


def proc_cpu_s(pid: int) -> float | None:
    """User + system CPU seconds of one process."""
    try:
        with open(f"/proc/{pid}/stat") as fh:
            fields = fh.read().rpartition(")")[2].split()
    except (FileNotFoundError, ProcessLookupError):
        return None
    return (int(fields[11]) + int(fields[12])) / _TICK


def proc_children(pid: int) -> list[int]:
    try:
        with open(f"/proc/{pid}/task/{pid}/children") as fh:
            return [int(p) for p in fh.read().split()]
    except (FileNotFoundError, ProcessLookupError):
        pass
    found = []  # kernels without the children file: scan
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as fh:
                    if int(fh.read().rpartition(")")[2].split()[1]) == pid:
                        found.append(int(entry))
            except (FileNotFoundError, ProcessLookupError, IndexError, ValueError):
                continue
    return found


def child_pid_by_cmdline(needle: str) -> int | None:
    """A direct child of this process whose command line contains ``needle`` (the sandbox)."""
    for pid in proc_children(os.getpid()):
        try:
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if needle in cmdline:
            return pid
    return None


class MemorySampler:
    """Samples VmRSS of named processes (and the worker's prefork children) every ``every`` s."""

    def __init__(self, every: float = 0.2) -> None:
        self.every = every
        self.roots: dict[str, int] = {}
        self.max_rss: dict[tuple[str, int], int] = {}
        self.hwm: dict[tuple[str, int], int] = {}
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._run, daemon=True, name="rss-sampler")
        self._thread.start()

    def track(self, role: str, pid: int) -> None:
        with self._lock:
            self.roots[role] = pid

    def untrack(self, role: str) -> None:
        self.sample_once()
        with self._lock:
            self.roots.pop(role, None)

    def pids(self) -> list[tuple[str, int]]:
        with self._lock:
            roots = dict(self.roots)
        out = []
        for role, pid in roots.items():
            out.append((role, pid))
            if role == "worker":
                out.extend(("worker-child", child) for child in proc_children(pid))
        return out

    def sample_once(self) -> None:
        for role, pid in self.pids():
            status = proc_status(pid)
            if "VmRSS" in status:
                key = (role, pid)
                with self._lock:
                    self.max_rss[key] = max(self.max_rss.get(key, 0), status["VmRSS"])
                    self.hwm[key] = max(self.hwm.get(key, 0), status.get("VmHWM", 0))

    def _run(self) -> None:
        while not self._stop.wait(self.every):
            with contextlib.suppress(Exception):
                self.sample_once()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(5)

    def report(self, roles: tuple[str, ...]) -> dict[str, Any]:
        with self._lock:
            keys = [k for k in self.max_rss if k[0] in roles]
            return {f"{role}:{pid}": {"max_rss_mb": round(self.max_rss[(role, pid)] / 1024, 1),
                                      "peak_hwm_mb": round(self.hwm.get((role, pid), 0) / 1024, 1)}
                    for role, pid in sorted(keys)}


# ----------------------------------------------------------------------------- the stack


class Stack:
    """Worker / beat / web processes for one phase (the devtools supervisor: own sessions, logs in
    ``workdir``), their memory sampled."""

    def __init__(self, workdir: Path, env: dict[str, str], concurrency: int, sampler: MemorySampler) -> None:
        self.workdir, self.concurrency, self.sampler = workdir, concurrency, sampler
        self.processes = Supervisor(env, workdir, cwd=ROOT, stop_timeout=8)
        self.web_url: str | None = None

    def start(self, name: str) -> None:
        if name == "worker":
            proc = self.processes.worker(concurrency=self.concurrency, loglevel="INFO", pool="prefork",
                                         nodename=f"bench-{os.getpid()}@%h", heartbeat=False)
        elif name == "beat":
            proc = self.processes.beat(self.workdir / "beat-schedule", loglevel="INFO")
        elif name == "web":
            proc = self.processes.web()
            self.web_url = proc.url
        else:
            raise ValueError(name)
        self.sampler.track(name, proc.pid)

    def wait_ready(self, timeout: float = 60) -> None:
        """Until every process is ready: the worker answers a ping, beat has started, /healthz answers."""
        try:
            self.processes.wait_ready(timeout=timeout)
        except (ProcessDied, NotReady) as exc:
            raise BenchError(str(exc)) from None

    def check_alive(self) -> None:
        try:
            self.processes.check_alive()
        except ProcessDied as exc:
            raise BenchError(str(exc)) from None

    def tail(self, name: str, chars: int = 3000) -> str:
        return self.processes.tail(name, chars)

    def cpu(self) -> dict[str, float]:
        """CPU seconds so far per role (worker children summed; sandbox, Redis and this process too)."""
        out: dict[str, float] = {"bench": sum(os.times()[:2])}
        for role, pid in self.sampler.pids():
            out[role] = out.get(role, 0.0) + (proc_cpu_s(pid) or 0.0)
        return out

    def stop(self) -> None:
        for name in list(self.processes.procs):
            self.sampler.untrack(name)
        self.processes.stop()  # SIGTERM, SIGKILL to what is left of each group 8 s later


class PendingWatcher:
    """The moment the first id of a backlog reaches the pending set (the worker has read it)."""

    def __init__(self, url: str, key: str) -> None:
        self.client = redis.Redis.from_url(url)
        self.key = key
        self.at: float | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True, name="pending-watcher")
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set() and self.at is None:
            if self.client.zcard(self.key):
                self.at = time.time()
                return
            time.sleep(0.005)

    def close(self) -> None:
        self._stop.set()
        self._thread.join(2)
        self.client.close()


class WrittenWatcher:
    """When each ``written`` marker of one CRM is set, from Redis keyspace notifications."""

    def __init__(self, url: str, prefix: str, crm: str) -> None:
        self.client = redis.Redis.from_url(url, decode_responses=True)
        self.client.config_set("notify-keyspace-events", "K$")
        db = self.client.connection_pool.connection_kwargs.get("db", 0)
        self.pattern = f"__keyspace@{db}__:{prefix}:written:{crm}:{OBJECTS[crm]}:*"
        self.times: dict[str, float] = {}
        self.lock = threading.Lock()
        self.pubsub = self.client.pubsub()
        self.pubsub.psubscribe(self.pattern)
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:  # the subscription is live once confirmed
            msg = self.pubsub.get_message(timeout=0.5)
            if msg and msg["type"] == "psubscribe":
                break
        else:
            raise BenchError("Redis keyspace notifications: no subscription confirmation")
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True, name="written-watcher")
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                msg = self.pubsub.get_message(timeout=0.2)
            except (redis.ConnectionError, ValueError):
                return
            if not msg or msg["type"] != "pmessage" or msg["data"] != "set":
                continue
            at = time.time()
            parts = msg["channel"].rsplit(":", 2)  # ...:written:crm:obj:<lead id>:<epoch>
            with self.lock:
                self.times.setdefault(parts[-2], at)

    def count(self, ids: set[str] | None = None) -> int:
        with self.lock:
            return len(self.times) if ids is None else sum(1 for i in ids if i in self.times)

    def snapshot(self) -> dict[str, float]:
        with self.lock:
            return dict(self.times)

    def close(self) -> None:
        self._stop.set()
        self._thread.join(2)
        with contextlib.suppress(Exception):
            self.pubsub.close()
        self.client.close()


def read_metrics(directory: Path) -> dict[str, float]:
    """Sample values aggregated over the worker's processes (prometheus multiprocess files)."""
    from prometheus_client import CollectorRegistry
    from prometheus_client.multiprocess import MultiProcessCollector

    registry = CollectorRegistry()
    MultiProcessCollector(registry, path=str(directory))
    out: dict[str, float] = {}
    for family in registry.collect():
        for sample in family.samples:
            labels = ",".join(f"{k}={v}" for k, v in sorted(sample.labels.items()))
            out[f"{sample.name}{{{labels}}}"] = out.get(f"{sample.name}{{{labels}}}", 0.0) + sample.value
    return out


def metric_by(metrics: dict[str, float], name: str, label: str, **labels: str) -> dict[str, float]:
    out: dict[str, float] = {}
    for key, value in metrics.items():
        base, _, rest = key.partition("{")
        if base != name:
            continue
        have = dict(kv.split("=", 1) for kv in rest.rstrip("}").split(",") if kv)
        if all(have.get(k) == v for k, v in labels.items()):
            out[have.get(label, "")] = out.get(have.get(label, ""), 0.0) + value
    return out


def diff(after: dict[str, float], before: dict[str, float]) -> dict[str, float]:
    return {k: v - before.get(k, 0.0) for k, v in after.items() if v - before.get(k, 0.0)}


def sandbox_calls(admin: Any, api: str) -> dict[str, dict[str, int]]:
    """The sandbox's request counters for one API: endpoint -> status -> count."""
    counters = admin.counters()
    out: dict[str, dict[str, int]] = {}
    for key, statuses in counters.get("endpoints", {}).items():
        prefix, _, endpoint = key.partition(" ")
        if prefix == api:
            out[endpoint] = {str(s): int(n) for s, n in statuses.items() if s != "total"}
    return out


# ----------------------------------------------------------------------------- the benchmark


class Bench:
    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.stack_exit = contextlib.ExitStack()
        keep = Path(args.keep) if args.keep else None
        if keep is not None:
            keep.mkdir(parents=True, exist_ok=True)
        self.workdir = keep or Path(tempfile.mkdtemp(prefix="leadroute-bench-e2e-"))
        self.sampler = MemorySampler()
        self.stack: Stack | None = None
        self.sink: Sink | None = None
        self.sb: SandboxInfo | None = None
        self.redis_url = ""
        self.data: dict[str, Any] = {}
        self.config: Any = None
        self.phase_no = 0

    # -- lifecycle

    def __enter__(self) -> Bench:
        return self

    def __exit__(self, *exc: Any) -> None:
        if self.stack is not None:
            self.stack.stop()
        self.sampler.stop()
        if self.sink is not None:
            self.sink.close()
        self.stack_exit.close()
        if not self.args.keep:
            shutil.rmtree(self.workdir, ignore_errors=True)

    def start_services(self) -> None:
        args = self.args
        say(f"starting the sandbox CRM (own process, {args.latency_ms:g} ms latency) and Redis ...")
        self.sb = self.stack_exit.enter_context(running(mode="process"))
        sandbox_pid = child_pid_by_cmdline("-m sandbox")
        if sandbox_pid:
            self.sampler.track("sandbox", sandbox_pid)
        data_dir = self.workdir / "redis"
        data_dir.mkdir(exist_ok=True)
        server = RedisServer(data_dir=data_dir, port=free_port(), persistent=False,
                             binary=redis_server_binary(prefer_path=True), die_with_parent=True).start()
        self.stack_exit.callback(server.stop)
        if server.process is not None:
            self.sampler.track("redis", server.process.pid)
        self.redis_url = server.url
        if args.notify == "webhook":
            self.sink = Sink()
        self.data = bench_config(self.sink.url if self.sink else None, args.hubspot_limit)
        self.config = parse_config(yaml.safe_dump(self.data, sort_keys=False), "bench-routing.yaml")

    def new_phase(self, name: str, procs: tuple[str, ...]) -> tuple[Stack, str, Path]:
        """Stop the previous phase, wipe Redis and the sandbox, start ``procs`` on a fresh prefix."""
        assert self.sb is not None
        if self.stack is not None:
            self.stack.stop()
            self.stack = None
        self.phase_no += 1
        phase_dir = self.workdir / f"{self.phase_no}-{name}"
        phase_dir.mkdir(parents=True, exist_ok=True)
        redis.Redis.from_url(self.redis_url).flushall()
        admin = self.sb.admin
        admin.reset()
        admin.clear_faults()
        admin.set_limits(
            hubspot={"ten_second_limit": self.args.hubspot_limit, "search_per_second": HUBSPOT_SEARCH_PER_SECOND},
            salesforce={"daily_api_requests": SALESFORCE_DAILY},
        )
        admin.reset_usage()
        admin.patch_faults(latency_ms=self.args.latency_ms)
        admin.clear_counters()
        config_path = phase_dir / "routing.yaml"
        config_path.write_text(yaml.safe_dump(self.data, sort_keys=False))
        metrics_dir = phase_dir / "prometheus"
        metrics_dir.mkdir()
        prefix = f"bench-{name}"
        env = {k: v for k, v in os.environ.items() if not k.startswith(("LEADROUTE_", "SALESFORCE_", "HUBSPOT_"))}
        env.pop("PROMETHEUS_MULTIPROC_DIR", None)
        env.update(self.sb.env())
        env.update({
            "REDIS_URL": self.redis_url, "LEADROUTE_PREFIX": prefix, "LEADROUTE_CONFIG": str(config_path),
            "LEADROUTE_WEBHOOK_SECRET": WEBHOOK_SECRET, "HUBSPOT_APP_SECRET": APP_SECRET,
            "LEADROUTE_LOG_FORMAT": "json", "PROMETHEUS_MULTIPROC_DIR": str(metrics_dir),
            "PYTHONPATH": str(ROOT) + (os.pathsep + os.environ["PYTHONPATH"] if os.environ.get("PYTHONPATH") else ""),
        })
        stack = Stack(phase_dir, env, self.args.concurrency, self.sampler)
        self.stack = stack
        for proc in procs:
            stack.start(proc)
        stack.wait_ready()
        return stack, prefix, metrics_dir

    def pending_depth(self, prefix: str, crm: str) -> int:
        return int(redis.Redis.from_url(self.redis_url).zcard(f"{prefix}:pending:{crm}"))

    def redis_commands(self) -> dict[str, int]:
        """Calls per Redis command so far (``INFO commandstats``), Celery's own traffic included."""
        stats = redis.Redis.from_url(self.redis_url).info("commandstats")
        return {name.removeprefix("cmdstat_"): int(v["calls"]) for name, v in stats.items() if isinstance(v, dict)}

    def queue_length(self, queue: str) -> int:
        return int(redis.Redis.from_url(self.redis_url).llen(queue))

    # -- (a) webhook -> owner written

    def latency(self) -> dict[str, Any]:
        assert self.sb is not None
        args = self.args
        stack, prefix, metrics_dir = self.new_phase("latency", ("worker", "beat", "web"))
        assert stack.web_url is not None
        say(f"(a) latency: worker (-c {args.concurrency}), beat and web started and ready (/healthz answers)")
        web = requests.Session()
        web.trust_env = False
        watcher = WrittenWatcher(self.redis_url, prefix, "hubspot")
        leads = LeadFeeder(self.sb, self.config)
        try:
            feeder = WebhookFeeder(leads, self.sb, stack.web_url, web)
            if args.warmup:
                say(f"(a) warm-up: {args.warmup} leads at {args.rate:g}/s (not counted) ...")
                warm = feeder.run(args.warmup, args.rate, seed=101, start=0)
                self._wait_written(watcher, set(warm.posted), 120, stack, "the warm-up leads")
            self._wait_idle(stack, prefix, ("hubspot", "salesforce"))  # the seed's intake records routed too
            count = max(1, round(args.rate * args.duration))
            say(f"(a) measuring: {count} leads at {args.rate:g}/s for {args.duration:g} s ...")
            before_calls = sandbox_calls(self.sb.admin, "hubspot")
            before_metrics = read_metrics(metrics_dir)
            before_redis = self.redis_commands()
            cpu_before, cpu_t0 = stack.cpu(), time.monotonic()
            run = feeder.run(count, args.rate, seed=202, start=100_000)
            self._wait_written(watcher, set(run.posted), max(30.0, 5 * args.duration), stack, "the measured leads",
                               fail=False)
            cpu = _cpu_share(stack.cpu(), cpu_before, time.monotonic() - cpu_t0)
            written = watcher.snapshot()
            calls = _call_diff(sandbox_calls(self.sb.admin, "hubspot"), before_calls)
            metrics = diff(read_metrics(metrics_dir), before_metrics)
            redis_calls = _counts_diff(self.redis_commands(), before_redis)
        finally:
            watcher.close()
            leads.close()
        latencies = [written[i] - t for i, t in run.posted.items() if i in written]
        missing = [i for i in run.posted if i not in written]
        result: dict[str, Any] = {
            "crm": "hubspot",
            "rate_target_per_s": args.rate,
            "rate_achieved_per_s": round(run.achieved_rate, 2),
            "leads": len(run.posted),
            "written": len(latencies),
            "not_written": len(missing),
            "warmup_leads": args.warmup,
        }
        if latencies:
            result.update({
                "p50_s": round(percentile(latencies, 50), 3),
                "p95_s": round(percentile(latencies, 95), 3),
                "p99_s": round(percentile(latencies, 99), 3),
                "max_s": round(max(latencies), 3),
                "mean_s": round(statistics.fmean(latencies), 3),
            })
        result["target_p95_s"] = LATENCY_TARGET_S
        result["met"] = bool(latencies) and not missing and result["p95_s"] < LATENCY_TARGET_S
        result["webhook_answer_ms"] = {"p50": round(percentile(run.post_ms, 50), 1),
                                       "p95": round(percentile(run.post_ms, 95), 1),
                                       "max": round(max(run.post_ms), 1)}
        result["webhook_statuses"] = dict(Counter(str(s) for s in run.statuses))
        total_calls = sum(sum(s.values()) for s in calls.values())
        last = max((written[i] for i in run.posted if i in written), default=run.started + run.elapsed)
        span = max(last - run.started, 1e-9)  # from the first webhook to the last owner written
        result["hubspot_calls"] = calls
        result["hubspot_calls_per_lead"] = round(total_calls / max(1, len(run.posted)), 2)
        result["hubspot_rate_limited_429"] = sum(s.get("429", 0) for s in calls.values())
        general = sum(n for ep, s in calls.items() if "/search" not in ep for n in s.values())
        result["hubspot_general_calls_per_s"] = round(general / span, 2)
        result["hubspot_general_limit_per_s"] = args.hubspot_limit / 10
        result["batch_updates"] = _batch_stats(metrics, "hubspot", len(latencies))
        result["rate_limit_wait"] = _waits(metrics, "hubspot")
        result["worker_histogram_ingest_to_written"] = _histogram(metrics, "hubspot")
        result["redis_commands"] = _redis_summary(redis_calls, len(run.posted))
        result["notify_queue_at_end"] = self.queue_length("notify")
        result["cpu_share_of_one_core"] = cpu
        return result

    def _notify_lag(self, stack: Stack, t0: float, sent_before: int) -> dict[str, Any]:
        """After the owners: how long until the notify queue is empty (notifications have their own queue)."""
        left = self.queue_length("notify")
        out: dict[str, Any] = {"notify_queue_at_drain_end": left}
        if self.args.notify_timeout <= 0:
            return out
        deadline = time.monotonic() + self.args.notify_timeout
        while left and time.monotonic() < deadline:
            stack.check_alive()
            time.sleep(0.2)
            left = self.queue_length("notify")
        out["notify_queue_empty_after_s"] = round(time.time() - t0, 1) if not left else None
        out["notify_queue_left_after_timeout"] = left
        if self.sink is not None:
            out["notifications_delivered"] = self.sink.received - sent_before
        return out

    def _wait_idle(self, stack: Stack, prefix: str, crms: tuple[str, ...], timeout: float = 90) -> None:
        """Until nothing is pending for ``crms`` for 2 s (checked after at least one poll of each)."""
        deadline = time.monotonic() + timeout
        quiet = 0
        while quiet < 4:
            stack.check_alive()
            if time.monotonic() > deadline:
                raise BenchError(f"the worker never went idle:\n{stack.tail('worker')}")
            idle = all(self.pending_depth(prefix, crm) == 0 for crm in crms)
            quiet = quiet + 1 if idle else 0
            time.sleep(0.5)

    def _wait_written(self, watcher: WrittenWatcher, ids: set[str], timeout: float, stack: Stack, what: str,
                      fail: bool = True) -> None:
        deadline = time.monotonic() + timeout
        while watcher.count(ids) < len(ids):
            stack.check_alive()
            if time.monotonic() > deadline:
                message = f"timed out: {watcher.count(ids)}/{len(ids)} of {what} written after {timeout:g} s"
                if fail:
                    raise BenchError(f"{message}\n{stack.tail('worker')}")
                say(message)
                return
            time.sleep(0.05)

    # -- (b) backlog drain

    def backlog(self, crm: str) -> dict[str, Any]:
        assert self.sb is not None
        args = self.args
        n = args.leads
        stack, prefix, metrics_dir = self.new_phase(f"backlog-{crm}", ("worker", "beat"))
        say(f"(b) backlog {crm}: worker (-c {args.concurrency}) and beat started; waiting until they are idle ...")
        admin = self.sb.admin
        api = "salesforce" if crm == "salesforce" else "hubspot"
        deadline = time.monotonic() + 90
        started = time.monotonic()
        quiet = 0
        while quiet < 4:  # polled at least once, nothing pending (the seed's intake records routed)
            stack.check_alive()
            if time.monotonic() > deadline:
                raise BenchError(f"the worker never polled {crm} or never went idle:\n{stack.tail('worker')}")
            polled = sum(sum(s.values()) for s in sandbox_calls(admin, api).values()) > 0
            idle = polled and self.pending_depth(prefix, crm) == 0 and time.monotonic() - started > 4
            quiet = quiet + 1 if idle else 0
            time.sleep(0.5)
        watcher = WrittenWatcher(self.redis_url, prefix, crm)
        feeder = LeadFeeder(self.sb, self.config,
                            intake_queue=intake_queue(self.data) if crm == "salesforce" else SANDBOX_INTAKE_QUEUE)
        try:
            bodies = feeder.records(crm, synthetic_leads(n, seed=303))
            admin.clear_counters()
            sent_before = self.sink.received if self.sink else 0
            before_metrics = read_metrics(metrics_dir)
            before_redis = self.redis_commands()
            cpu_before = stack.cpu()
            load_started = time.time()
            detector = PendingWatcher(self.redis_url, f"{prefix}:pending:{crm}")
            ids = feeder.load_records(crm, bodies)
            t0 = time.time()
            cpu_t0 = time.monotonic()
            say(f"(b) backlog {crm}: {len(ids)} leads loaded in {t0 - load_started:.2f} s; draining ...")
            wanted = set(ids)
            timeline: list[tuple[float, int]] = []
            last_report = time.monotonic()
            deadline = time.monotonic() + args.drain_timeout
            timed_out = False
            while True:
                done = watcher.count(wanted)
                timeline.append((time.time() - t0, done))
                if done >= len(wanted):
                    break
                stack.check_alive()
                if time.monotonic() > deadline:
                    timed_out = True
                    break
                if time.monotonic() - last_report >= 10:
                    last_report = time.monotonic()
                    say(f"    {time.time() - t0:6.1f} s: {done:>6}/{len(wanted)} written, "
                        f"{self.pending_depth(prefix, crm)} pending")
                time.sleep(0.1)
            cpu = _cpu_share(stack.cpu(), cpu_before, time.monotonic() - cpu_t0)
            written = watcher.snapshot()
            calls = sandbox_calls(admin, api)
            metrics = diff(read_metrics(metrics_dir), before_metrics)
            redis_calls = _counts_diff(self.redis_commands(), before_redis)
        finally:
            watcher.close()
            feeder.close()
        times = sorted(written[i] - t0 for i in wanted if i in written)
        if timed_out:
            say(f"(b) backlog {crm}: only {len(times)}/{n} written within --drain-timeout {args.drain_timeout:g} s")
        elapsed = times[-1] if times and not timed_out else float(args.drain_timeout)
        result: dict[str, Any] = {
            "crm": crm,
            "leads": n,
            "written": len(times),
            "timed_out": timed_out,
            "load_seconds": round(t0 - load_started, 2),
            "drain_seconds": round(elapsed, 2),
            "first_written_s": round(times[0], 2) if times else None,
            "half_written_s": round(times[len(times) // 2], 2) if times else None,
            "leads_per_s": round(len(times) / elapsed, 1) if elapsed > 0 else None,
        }
        detector.close()
        detected = max(0.0, detector.at - t0) if detector.at is not None else None
        result["detected_s"] = round(detected, 2) if detected is not None else None
        result.update(_theory(crm, n, calls, metrics, args, 0.0 if timed_out else elapsed, detected))  # no share when unfinished
        result["steady_leads_per_s"] = _steady_rate(times)
        pacing = connector_limits(self.data)[crm]["steady_per_second"]
        batch = HUBSPOT_BATCH if crm == "hubspot" else SALESFORCE_BATCH
        ceiling = pacing * batch / 2  # one read and one write per full batch
        result["connector_pacing_leads_per_s"] = round(ceiling, 1)
        steady = result["steady_leads_per_s"]
        result["steady_share_of_connector_pacing"] = round(steady / ceiling, 3) if steady else None
        result.update(self._notify_lag(stack, t0, sent_before))
        result["sandbox_calls"] = calls
        result["connector_calls"] = {k: int(v) for k, v in sorted(
            metric_by(metrics, "leadroute_crm_calls_total", "endpoint", connector=crm).items())}
        result["batch_updates"] = _batch_stats(metrics, crm, len(times))
        result["rate_limit_wait"] = _waits(metrics, crm)
        result["redis_commands"] = _redis_summary(redis_calls, n)
        result["cpu_share_of_one_core"] = cpu
        return result


# ----------------------------------------------------------------------------- (a) feeder


class FeedRun:
    def __init__(self) -> None:
        self.posted: dict[str, float] = {}
        self.post_ms: list[float] = []
        self.statuses: list[int] = []
        self.started = time.time()
        self.elapsed = 0.0

    @property
    def achieved_rate(self) -> float:
        return len(self.posted) / self.elapsed if self.elapsed > 0 else 0.0


class WebhookFeeder:
    """Contacts created by the devtools feeder (admin API) on an open-loop schedule, each followed
    at once by its signed HubSpot v3 ``contact.creation`` webhook to the web process."""

    _event_ids = itertools.count(int(time.time()) * 1000)

    def __init__(self, feeder: LeadFeeder, sb: SandboxInfo, web_url: str, web: requests.Session) -> None:
        self.feeder, self.sb, self.web = feeder, sb, web
        self.url = web_url + "/webhooks/hubspot"

    def _post(self, contact_id: str) -> tuple[float, float, int]:
        now_ms = int(time.time() * 1000)
        body = json.dumps([{
            "eventId": next(self._event_ids), "subscriptionId": 4_849_549, "portalId": self.sb.hubspot_portal_id,
            "appId": 54_321, "occurredAt": now_ms, "subscriptionType": "contact.creation", "attemptNumber": 0,
            "objectId": int(contact_id), "changeSource": "CRM",
        }]).encode()
        timestamp = str(now_ms)
        headers = {"Content-Type": "application/json", "X-HubSpot-Request-Timestamp": timestamp,
                   "X-HubSpot-Signature-v3": hubspot_v3_signature(APP_SECRET, "POST", self.url, body, timestamp)}
        sent = time.time()
        response = self.web.post(self.url, data=body, headers=headers, timeout=10)
        return sent, (time.time() - sent) * 1000, response.status_code

    def run(self, count: int, rate: float, seed: int, start: int) -> FeedRun:
        run = FeedRun()

        def post(crm: str, contact_id: str) -> None:
            sent, ms, status = self._post(contact_id)
            run.statuses.append(status)
            run.post_ms.append(ms)
            if status != 200:
                raise BenchError(f"the web process answered {status} to a signed webhook")
            run.posted[contact_id] = sent

        leads = list(synthetic_leads(count, seed=seed, start=start))
        stream = self.feeder.stream(leads, rate=rate, crms=("hubspot",), on_created=post).run()
        run.started, run.elapsed = stream.started, stream.elapsed
        return run


# ----------------------------------------------------------------------------- figures


def _call_diff(after: dict[str, dict[str, int]], before: dict[str, dict[str, int]]) -> dict[str, dict[str, int]]:
    out: dict[str, dict[str, int]] = {}
    for endpoint, statuses in after.items():
        for status, n in statuses.items():
            d = n - before.get(endpoint, {}).get(status, 0)
            if d:
                out.setdefault(endpoint, {})[status] = d
    return out


def _counts_diff(after: dict[str, int], before: dict[str, int]) -> dict[str, int]:
    return {k: v - before.get(k, 0) for k, v in after.items() if v - before.get(k, 0) > 0}


def _redis_summary(calls: dict[str, int], leads: int) -> dict[str, Any]:
    """Redis commands per lead over the window, with the commonest ones."""
    total = sum(calls.values())
    top = sorted(calls.items(), key=lambda kv: -kv[1])[:8]
    return {"per_lead": round(total / max(1, leads), 1), "total": total,
            "top_per_lead": {name: round(n / max(1, leads), 2) for name, n in top}}


def _cpu_share(after: dict[str, float], before: dict[str, float], seconds: float) -> dict[str, float]:
    """Each role's CPU use over the window, as a share of one core (1.0 = one core busy)."""
    if seconds <= 0:
        return {}
    out = {role: round((after[role] - before.get(role, 0.0)) / seconds, 2) for role in after}
    out["total"] = round(sum(out.values()), 2)
    return out


def _waits(metrics: dict[str, float], crm: str) -> dict[str, float]:
    seconds = metric_by(metrics, "leadroute_rate_limit_wait_seconds_total", "reason", connector=crm)
    waits = metric_by(metrics, "leadroute_rate_limit_waits_total", "reason", connector=crm)
    return {**{f"{r}_waits": int(v) for r, v in waits.items()}, **{f"{r}_seconds": round(v, 1) for r, v in seconds.items()}}


def _batch_stats(metrics: dict[str, float], crm: str, written: int) -> dict[str, Any]:
    """Owner-write calls and leads per call (from the connector's own call counter)."""
    by_endpoint = metric_by(metrics, "leadroute_crm_calls_total", "endpoint", connector=crm)
    writes = sum(v for ep, v in by_endpoint.items() if ep.endswith(":owners") or ep.endswith("update:owners"))
    return {"owner_write_calls": int(writes), "leads_per_write_call": round(written / writes, 1) if writes else None}


def _histogram(metrics: dict[str, float], crm: str) -> dict[str, Any]:
    """The worker's own routing-latency histogram (ingest -> owner written) as cumulative shares."""
    buckets = {}
    for key, value in metrics.items():
        if key.startswith("leadroute_routing_latency_seconds_bucket{") and f"crm={crm}" in key:
            le = key.split("le=", 1)[1].split(",")[0].rstrip("}")
            buckets[le] = buckets.get(le, 0.0) + value
    total = buckets.get("+Inf", 0.0)
    if not total:
        return {}
    wanted = ("0.25", "0.5", "0.75", "1.0", "1.5", "2.0")
    out: dict[str, Any] = {f"<= {le} s": round(buckets[le] / total, 3) for le in wanted if le in buckets}
    out["count"] = int(total)
    return out


def _steady_rate(times: list[float]) -> float | None:
    """Leads/s between 10% and 90% written (start-up and tail excluded)."""
    if len(times) < 20:
        return None
    lo, hi = times[len(times) // 10], times[len(times) * 9 // 10]
    return round(0.8 * len(times) / (hi - lo), 1) if hi > lo else None


def _theory(crm: str, n: int, calls: dict[str, dict[str, int]], metrics: dict[str, float], args: argparse.Namespace,
            elapsed: float, detected: float | None = None) -> dict[str, Any]:
    """The least time the rate limits allow for the calls the pipeline needs at full batches, against
    the drain time from the worker's first read of the backlog and, for reference, from the load."""
    total = {ep: sum(s.values()) for ep, s in calls.items()}
    observed = sum(total.values())
    connector = metric_by(metrics, "leadroute_crm_calls_total", "endpoint", connector=crm)
    per_lead = {ep: round(c / n, 4) for ep, c in sorted(total.items())}
    out: dict[str, Any] = {"calls_observed": observed, "calls_per_lead_observed": round(observed / n, 4),
                           "calls_per_lead_by_endpoint": per_lead,
                           "rate_limited_429": sum(s.get("429", 0) for s in calls.values())}
    if crm == "hubspot":
        general_rate = args.hubspot_limit / 10
        batches = math.ceil(n / HUBSPOT_BATCH)
        general_min = 2 * batches  # one batch/read + one batch/update per 100
        search_min = math.ceil(n / HUBSPOT_SEARCH_PAGE)  # the poll's search pages
        search_seen = sum(c for ep, c in total.items() if ep.endswith("/search"))
        general_seen = observed - search_seen
        ideal = max(general_min / general_rate, search_min / HUBSPOT_SEARCH_PER_SECOND)
        at_observed = max(general_seen / general_rate, search_seen / HUBSPOT_SEARCH_PER_SECOND)
        # a rolling 10 s window lets 100 calls through at once: the strict floor is one window less
        strict = max(10 * (math.ceil(general_min / args.hubspot_limit) - 1), search_min / HUBSPOT_SEARCH_PER_SECOND)
        out["limits"] = {"general_per_s": general_rate, "search_per_s": HUBSPOT_SEARCH_PER_SECOND,
                         "batch_size": HUBSPOT_BATCH, "search_page": HUBSPOT_SEARCH_PAGE}
        out["calls_needed"] = {"general": general_min, "search": search_min}
        out["calls_made"] = {"general": general_seen, "search": search_seen}
        out["strict_window_min_seconds"] = round(strict, 2)
        out["share_vs_strict_window_min"] = round(strict / elapsed, 3) if elapsed else None  # from the load
    else:
        batches = math.ceil(n / SALESFORCE_BATCH)
        needed = 2 * batches + math.ceil(n / SALESFORCE_QUERY_PAGE)  # fetch + write per 200, poll pages
        ideal = needed / SALESFORCE_CAP_PER_SECOND
        api_calls = sum(c for ep, c in total.items() if "oauth2" not in ep)
        at_observed = api_calls / SALESFORCE_CAP_PER_SECOND
        out["limits"] = {"per_s": SALESFORCE_CAP_PER_SECOND, "daily": SALESFORCE_DAILY, "batch_size": SALESFORCE_BATCH,
                         "query_page": SALESFORCE_QUERY_PAGE,
                         "note": "the sandbox has no per-second Salesforce limit; the cap is our connector's default"}
        out["calls_needed"] = {"api": needed}
        out["calls_made"] = {"api": api_calls, "connector": {k: int(v) for k, v in sorted(connector.items())}}
        out["daily_allocation_used"] = round(api_calls / SALESFORCE_DAILY, 4)
    out["min_seconds"] = round(ideal, 2)
    out["min_seconds_at_calls_made"] = round(at_observed, 2)
    draining = elapsed - detected if elapsed and detected is not None else 0.0
    out["drain_from_detection_s"] = round(draining, 2) if draining > 0 else None
    out["share_of_allowed"] = round(ideal / draining, 3) if draining > 0 else None
    out["share_of_allowed_from_load"] = round(ideal / elapsed, 3) if elapsed else None
    out["pacing_share"] = round(at_observed / draining, 3) if draining > 0 else None
    out["target_share"] = SHARE_TARGET
    out["met"] = draining > 0 and ideal / draining >= SHARE_TARGET
    return out


def memory_report(sampler: MemorySampler) -> dict[str, Any]:
    workers = sampler.report(("worker", "worker-child"))
    others = sampler.report(("beat", "web", "sandbox", "redis"))
    worst = max((max(v["max_rss_mb"], v["peak_hwm_mb"]) for v in workers.values()), default=0.0)
    return {"worker_processes": workers, "max_worker_process_mb": worst, "target_mb": RSS_TARGET_MB,
            "met": bool(workers) and worst < RSS_TARGET_MB, "other_processes": others}


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{value:.1%}"


def print_report(result: dict[str, Any]) -> None:
    cfg = result["setup"]
    print(f"\nleadroute end-to-end benchmark  (sandbox latency {cfg['latency_ms']:g} ms, worker -c {cfg['concurrency']}, "
          f"notifications: {cfg['notify']}, {cfg['cpus']} CPUs)")
    print(f"sandbox limits: HubSpot {cfg['hubspot_limit']} req/10 s + search {HUBSPOT_SEARCH_PER_SECOND}/s; "
          f"Salesforce {SALESFORCE_DAILY:,}/day (no per-second limit)")
    limits = cfg["connector_rate_limits"]
    label = "defaults" if cfg["hubspot_limit"] == 100 else "HubSpot raised to the tier"
    print(f"connector limits ({label}): " + "; ".join(
        f"{crm} {v['requests']}/{v['per_seconds']:g}s burst {v['burst']} = {v['steady_per_second']}/s"
        + (f", search {v['search_steady_per_second']}/s" if "search_steady_per_second" in v else "")
        for crm, v in limits.items()))
    lat = result.get("latency")
    if lat:
        print(f"\n(a) webhook -> owner written, HubSpot, {lat['leads']} leads at {lat['rate_achieved_per_s']}/s "
              f"(target rate {lat['rate_target_per_s']:g}/s, {lat['warmup_leads']} warm-up leads not counted)")
        if "p50_s" in lat:
            print(f"    p50 {lat['p50_s'] * 1000:.0f} ms   p95 {lat['p95_s'] * 1000:.0f} ms   p99 {lat['p99_s'] * 1000:.0f} ms"
                  f"   max {lat['max_s'] * 1000:.0f} ms   mean {lat['mean_s'] * 1000:.0f} ms   "
                  f"({lat['written']}/{lat['leads']} written)")
        print(f"    target p95 < {lat['target_p95_s']:g} s: {'MET' if lat['met'] else 'NOT MET'}")
        w = lat["webhook_answer_ms"]
        print(f"    webhook answered in p50 {w['p50']} ms / p95 {w['p95']} ms / max {w['max']} ms; statuses "
              f"{lat['webhook_statuses']}")
        print(f"    HubSpot calls: {lat['hubspot_calls_per_lead']}/lead, general {lat['hubspot_general_calls_per_s']}/s "
              f"of {lat['hubspot_general_limit_per_s']:g}/s allowed, 429s {lat['hubspot_rate_limited_429']}; "
              f"owner writes {lat['batch_updates']}")
        print(f"    rate-limit waits: {lat['rate_limit_wait'] or 'none'}")
        if lat["worker_histogram_ingest_to_written"]:
            print(f"    worker's own histogram (ingest -> written): {lat['worker_histogram_ingest_to_written']}")
        print(f"    Redis: {lat['redis_commands']['per_lead']} commands/lead, top {lat['redis_commands']['top_per_lead']}")
        print(f"    CPU (share of one core): {lat['cpu_share_of_one_core']}")
    for crm, b in result.get("backlog", {}).items():
        print(f"\n(b) backlog drain, {crm}: {b['written']}/{b['leads']} leads written in {b['drain_seconds']} s "
              f"({b['leads_per_s']} leads/s; steady {b['steady_leads_per_s']}/s; first after {b['first_written_s']} s, "
              f"half after {b['half_written_s']} s){' TIMED OUT' if b['timed_out'] else ''}")
        print(f"    least time the limits allow: {b['min_seconds']} s for {b['calls_needed']} calls at {b['limits']}")
        print(f"    share of allowed: {_pct(b['share_of_allowed'])} over the {b['drain_from_detection_s']} s from the "
              f"worker's first read of the backlog ({b['detected_s']} s after the load)  (target >= "
              f"{b['target_share']:.0%}: {'MET' if b['met'] else 'NOT MET'}); from the load: "
              f"{_pct(b['share_of_allowed_from_load'])}")
        print(f"    calls made: {b['calls_made']} = {b['calls_per_lead_observed']}/lead; at those calls the limits allow "
              f"{b['min_seconds_at_calls_made']} s (pacing share {_pct(b['pacing_share'])}); 429s {b['rate_limited_429']}")
        if "strict_window_min_seconds" in b:
            print(f"    (counting the rolling window's initial 100-call allowance: floor {b['strict_window_min_seconds']} s, "
                  f"share {_pct(b['share_vs_strict_window_min'])})")
        print("    calls per lead by endpoint: " + ", ".join(f"{ep} {v}" for ep, v in b["calls_per_lead_by_endpoint"].items()))
        steady_share = b["steady_share_of_connector_pacing"]
        print(f"    steady state {b['steady_leads_per_s']} leads/s = "
              f"{_pct(steady_share)} of the "
              f"{b['connector_pacing_leads_per_s']} leads/s the connector's own pacing allows at full batches")
        print(f"    owner writes {b['batch_updates']}; rate-limit waits {b['rate_limit_wait'] or 'none'}")
        empty = b.get("notify_queue_empty_after_s")
        print(f"    notifications (own queue): {b['notify_queue_at_drain_end']} still queued when the last owner was written; "
              + (f"queue empty {empty} s after the load" if empty is not None else
                 f"{b.get('notify_queue_left_after_timeout', '?')} left after --notify-timeout")
              + (f", {b['notifications_delivered']} delivered" if "notifications_delivered" in b else ""))
        print(f"    Redis: {b['redis_commands']['per_lead']} commands/lead, top {b['redis_commands']['top_per_lead']}")
        print(f"    CPU (share of one core): {b['cpu_share_of_one_core']}")
    mem = result["memory"]
    print("\n(c) worker RSS per process (max sampled VmRSS / kernel peak VmHWM), all phases:")
    for name, v in mem["worker_processes"].items():
        print(f"    {name:<22} {v['max_rss_mb']:7.1f} MB / {v['peak_hwm_mb']:7.1f} MB")
    print(f"    largest {mem['max_worker_process_mb']} MB; target < {mem['target_mb']:g} MB: "
          f"{'MET' if mem['met'] else 'NOT MET'}")
    others = ", ".join(f"{k} {v['max_rss_mb']} MB" for k, v in mem["other_processes"].items())
    print(f"    others (not targeted): {others}")
    print(f"\ntotal run time {result['seconds']} s; load average (1/5/15 min) at start {cfg['load_average_at_start']}, "
          f"at end {cfg['load_average_at_end']} (other work on this machine skews the figures)")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n", 1)[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--json", action="store_true", help="print one JSON object (progress goes to stderr)")
    parser.add_argument("--rate", type=float, default=20.0, help="(a) leads per second (default 20)")
    parser.add_argument("--duration", type=float, default=60.0, help="(a) seconds of traffic (default 60)")
    parser.add_argument("--warmup", type=int, default=40, help="(a) leads sent first and not counted (default 40)")
    parser.add_argument("--leads", type=int, default=20_000, help="(b) backlog size per CRM (default 20,000)")
    parser.add_argument("--crms", default="hubspot,salesforce", help="(b) which CRMs to drain (default both)")
    parser.add_argument("--drain-timeout", type=float, default=300.0, help="(b) give up after this many seconds")
    parser.add_argument("--notify-timeout", type=float, default=120.0,
                        help="(b) after the owners, wait this long for the notify queue to empty (0: do not wait)")
    parser.add_argument("--skip", default="", help="comma-separated phases to skip: latency, backlog")
    parser.add_argument("--latency-ms", type=float, default=50.0, help="latency added to every sandbox API call")
    parser.add_argument("--hubspot-limit", type=int, default=100,
                        help="HubSpot requests per 10 s, for the sandbox and (when not 100) the connector's "
                             "rate_limit.requests: 100 = lower published tier (default), 190 = Pro/Enterprise")
    parser.add_argument("--concurrency", type=int, default=4, help="worker prefork children (Procfile default 4)")
    parser.add_argument("--notify", choices=("webhook", "none"), default="webhook",
                        help="notification channel: a local webhook sink (default) or none")
    parser.add_argument("--keep", metavar="DIR", help="keep configs and process logs in DIR")
    args = parser.parse_args(argv)
    skip = {s.strip() for s in args.skip.split(",") if s.strip()}
    unknown = skip - {"latency", "backlog"}
    crms = [c.strip() for c in args.crms.split(",") if c.strip()]
    if unknown or any(c not in OBJECTS for c in crms) or args.rate <= 0 or args.leads <= 0:
        parser.error("bad --skip, --crms, --rate or --leads")

    interrupted: list[int] = []

    def on_signal(signum: int, frame: Any) -> None:
        interrupted.append(signum)
        raise KeyboardInterrupt

    # A terminal's Ctrl-C reaches the sandbox child too, which may then fail a request before
    # our own KeyboardInterrupt is seen: the flag tells an interruption from a real failure.
    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    started = time.monotonic()
    result: dict[str, Any] = {"setup": {
        "latency_ms": args.latency_ms, "hubspot_limit": args.hubspot_limit, "concurrency": args.concurrency,
        "notify": args.notify, "cpus": os.cpu_count(), "rate": args.rate, "duration": args.duration,
        "warmup": args.warmup, "leads": args.leads, "crms": crms,
        "load_average_at_start": [round(x, 2) for x in os.getloadavg()],
    }}
    try:
        with Bench(args) as bench:
            bench.start_services()
            result["setup"]["connector_rate_limits"] = connector_limits(bench.data)
            if "latency" not in skip:
                result["latency"] = bench.latency()
            if "backlog" not in skip:
                result["backlog"] = {}
                for crm in crms:
                    result["backlog"][crm] = bench.backlog(crm)
            if bench.stack is not None:
                bench.stack.stop()
                bench.stack = None
            result["memory"] = memory_report(bench.sampler)
            if args.keep:
                result["setup"]["logs"] = str(bench.workdir)
    except KeyboardInterrupt:
        say("interrupted; child processes stopped")
        return 130
    except BenchError as exc:
        if interrupted:
            say("interrupted; child processes stopped")
            return 130
        say(f"benchmark failed: {exc}")
        return 1
    except Exception:
        if interrupted:
            say("interrupted; child processes stopped")
            return 130
        say(f"benchmark failed:\n{traceback.format_exc()}")
        return 1
    result["seconds"] = round(time.monotonic() - started, 1)
    result["setup"]["load_average_at_end"] = [round(x, 2) for x in os.getloadavg()]
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        print_report(result)
    lost = result.get("latency", {}).get("not_written", 0) + sum(
        b["leads"] - b["written"] for b in result.get("backlog", {}).values())
    if lost:
        say(f"benchmark failed: {lost} lead(s) never had their owner written (figures above are incomplete)")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
