"""``leadroute demo``: the whole product on a laptop, with nothing else installed.

Starts the sandbox CRM, the embedded Redis (unless ``REDIS_URL`` is set), a Celery worker,
beat and the web process as child processes; feeds synthetic leads into both sandbox CRMs;
plays reps who acknowledge some leads and leave others to breach their SLA; and shows a
live view of assignments, loads, pending depth and SLA escalations until Ctrl-C or
``--duration`` runs out. Everything it starts, it stops.
"""

from __future__ import annotations

import contextlib
import os
import random
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from rich.console import Console, Group
from rich.live import Live
from rich.markup import escape
from rich.table import Table

from worker.app.runtime import Runtime
from worker.config import RoutingConfig
from worker.devtools.synthetic import hubspot_contact, salesforce_lead, synthetic_leads
from worker.store.connection import free_port
from worker.store.pending import PendingSet
from worker.store.redis_store import RedisStore

DEMO_PREFIX = "leadroute-demo"
INTAKE_QUEUE = "00G5e000000InTkEAK"  # the sandbox seed's Lead Intake queue


@dataclass
class Children:
    """Child processes in their own process groups, so one signal stops each whole tree."""

    env: dict[str, str]
    log_dir: Path
    procs: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)

    def start(self, name: str, args: list[str]) -> None:
        log = (self.log_dir / f"{name}.log").open("ab")
        self.procs[name] = subprocess.Popen(args, env=self.env, stdout=log, stderr=subprocess.STDOUT,
                                            start_new_session=True)

    def failed(self) -> list[str]:
        return [name for name, p in self.procs.items() if p.poll() is not None]

    def stop(self) -> None:
        for proc in self.procs.values():
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGTERM)
        deadline = time.monotonic() + 15
        for proc in self.procs.values():
            try:
                proc.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()


class Feeder(threading.Thread):
    """Creates leads in both CRMs at a steady rate and plays reps acknowledging about half of them."""

    def __init__(self, admin: Any, config: RoutingConfig, per_minute: float, seed: int = 1) -> None:
        super().__init__(daemon=True, name="demo-feeder")
        self.admin = admin
        self.config = config
        self.interval = 60.0 / per_minute
        self.rng = random.Random(seed)
        self.stop_event = threading.Event()
        self.created = 0
        self.acked = 0
        self._to_ack: list[tuple[float, str, str]] = []

    def run(self) -> None:
        leads = synthetic_leads(1_000_000, seed=self.rng.randrange(1 << 30))
        sf_map = dict(self.config.model.connectors.salesforce.fields) if self.config.model.connectors.salesforce else {}
        hs_map = dict(self.config.model.connectors.hubspot.fields) if self.config.model.connectors.hubspot else {}
        while not self.stop_event.wait(self.interval):
            lead = next(leads)
            try:
                if sf_map and (not hs_map or self.created % 2 == 0):
                    (lead_id,) = self.admin.sf_load("Lead", [salesforce_lead(lead, sf_map, INTAKE_QUEUE)])
                    crm = "salesforce"
                else:
                    (lead_id,) = self.admin.hs_load([{"properties": hubspot_contact(lead, hs_map)}])
                    crm = "hubspot"
                self.created += 1
                if self.rng.random() < 0.5:  # a rep picks it up within a minute or so
                    self._to_ack.append((time.monotonic() + self.rng.uniform(10, 70), crm, lead_id))
                self._acknowledge_due()
            except Exception as exc:  # the demo keeps going if one call fails
                print(f"feeder: {exc}", file=sys.stderr)

    def _acknowledge_due(self) -> None:
        now = time.monotonic()
        due = [t for t in self._to_ack if t[0] <= now]
        self._to_ack = [t for t in self._to_ack if t[0] > now]
        for _, crm, lead_id in due:
            if crm == "salesforce":
                self.admin.sf_set_status(lead_id, "Working - Contacted")
            else:
                self.admin.hs_set_status(lead_id, "IN_PROGRESS")
            self.acked += 1


def _view(rt: Runtime, feeder: Feeder, started: float) -> Group:
    assignments = Table(title="Latest assignments", expand=True)
    for col, width in (("time", 8), ("crm", 10), ("lead", 18), ("owner", 14), ("reason", None)):
        assignments.add_column(col, width=width, overflow="fold", no_wrap=width is not None)
    for entry in rt.store.recent(12, kind="decision"):
        crm, _, lead_id = entry.lead.partition(":")
        assignments.add_row(entry.at.astimezone().strftime("%H:%M:%S"), crm, lead_id.partition(":")[2],
                            escape(str(entry.data.get("owner"))), escape(str(entry.data.get("reason", ""))))
    events = Table(title="SLA and other events", expand=True)
    for col in ("time", "event", "lead", "detail"):
        events.add_column(col, overflow="fold")
    shown = 0
    for entry in rt.store.recent(200):
        if entry.kind == "decision":
            continue
        detail = ", ".join(f"{k}={v}" for k, v in list(entry.data.items())[:4])
        events.add_row(entry.at.astimezone().strftime("%H:%M:%S"), escape(entry.kind), escape(entry.lead),
                       escape(detail[:120]))
        shown += 1
        if shown == 8:
            break
    loads = Table(title="Open load per rep")
    loads.add_column("rep")
    loads.add_column("load", justify="right")
    loads.add_column("override")
    current = rt.store.loads(list(rt.config.reps))
    away = rt.store.unavailable(list(rt.config.reps))
    for rep_id, rep in rt.config.reps.items():
        cap = f"/{rep.capacity}" if rep.capacity is not None else ""
        loads.add_row(rep_id, f"{current[rep_id]}{cap}", escape(away.get(rep_id, "")))
    pending = ", ".join(f"{crm} {rt.pending.depth(crm)}" for crm in rt.crms)
    elapsed = int(time.monotonic() - started)
    status = (f"[bold]leadroute demo[/bold]  {elapsed}s  leads created {feeder.created}, acknowledged by reps "
              f"{feeder.acked}  pending: {pending}  open SLA clocks: {rt.store.open_timers()}  (Ctrl-C to stop)")
    return Group(status, assignments, loads, events)


@contextlib.contextmanager
def _redis(data_dir: Path) -> Iterator[str]:
    url = os.environ.get("REDIS_URL")
    if url:
        yield url
        return
    from worker.store.connection import start_embedded

    server = start_embedded(data_dir)
    try:
        yield server.url
    finally:
        with contextlib.suppress(Exception):
            server.stop()


DEMO_AWAY = ("raj", timedelta(days=3))


def _away_this_week(rt: Runtime) -> None:
    """Mark one rep out of office from now, as `leadroute ooo` would, so the demo shows an absence
    whatever the date (the config's dated windows are examples and may lie in the past)."""
    rep, length = DEMO_AWAY
    if rep in rt.config.reps:
        rt.store.set_availability(rep, False, until=datetime.now(UTC) + length, reason="ooo (demo)", set_by="demo")


def run_demo(config_path: Path, duration: float | None, per_minute: float, data_dir: Path = Path("var")) -> int:
    """Run the demo; returns a process exit status."""
    from sandbox.run import running
    from worker.config import load_config

    console = Console()
    config = load_config(config_path)
    data_dir.mkdir(parents=True, exist_ok=True)
    log_dir = data_dir / "demo-logs"
    log_dir.mkdir(exist_ok=True)
    with running(mode="process") as sandbox, _redis(data_dir) as redis_url:
        sandbox.admin.set_limits(hubspot={"search_per_second": 50})
        store = RedisStore.connect(redis_url, prefix=DEMO_PREFIX)
        store.clear()
        rt = Runtime(config, store, PendingSet(store.client, store.prefix))
        _away_this_week(rt)
        env = dict(os.environ)
        env.update(sandbox.env())
        env.update({
            "REDIS_URL": redis_url, "LEADROUTE_CONFIG": str(config_path.resolve()), "LEADROUTE_PREFIX": DEMO_PREFIX,
            "LEADROUTE_LOG_FORMAT": "json", "PYTHONPATH": str(Path(__file__).resolve().parents[2]),
        })
        children = Children(env, log_dir)
        web_port = free_port()
        celery = [sys.executable, "-m", "celery", "-A", "worker.app.celery_app"]
        children.start("worker", [*celery, "worker", "-Q", "ingest,route,notify,sla", "-c", "2",
                                  "--without-gossip", "--without-mingle"])
        children.start("beat", [*celery, "beat", "--schedule", str(data_dir / "demo-beat-schedule")])
        children.start("web", [sys.executable, "-m", "worker.cli", "web", "--port", str(web_port)])
        feeder = Feeder(sandbox.admin, config, per_minute)
        feeder.start()
        started = time.monotonic()
        console.print(f"sandbox CRM at {sandbox.base_url}, web at http://127.0.0.1:{web_port}, logs in {log_dir}")
        status = 0
        try:
            with Live(_view(rt, feeder, started), console=console, refresh_per_second=2,
                      transient=not console.is_terminal) as live:
                while duration is None or time.monotonic() - started < duration:
                    time.sleep(1)
                    if dead := children.failed():
                        console.print(f"[red]{', '.join(dead)} stopped unexpectedly; see {log_dir}[/red]")
                        status = 1
                        break
                    live.update(_view(rt, feeder, started))
        except KeyboardInterrupt:
            pass
        finally:
            feeder.stop_event.set()
            children.stop()
        routed = len(rt.store.recent(100_000, kind="decision"))
        console.print(_view(rt, feeder, started))
        console.print(f"demo stopped at {datetime.now(UTC):%H:%M:%S} UTC: {feeder.created} leads created, "
                      f"{routed} decisions made")
        rt.close()
        return status
