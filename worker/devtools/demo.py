"""``leadroute demo``: the whole product on a laptop, with nothing else installed.

Starts the sandbox CRM, the embedded Redis (unless ``REDIS_URL`` is set), a Celery worker,
beat and the web process as child processes; feeds synthetic leads into both sandbox CRMs;
plays reps who acknowledge some leads and leave others to breach their SLA; and shows a
live view of assignments, loads, pending depth and SLA escalations until Ctrl-C or
``--duration`` runs out. Everything it starts, it stops. Its history goes to a ledger of its
own, a SQLite file under the data directory (started afresh each run, as its Redis state is),
and on exit it prints the ``leadroute report`` command that turns that history into a report.
"""

from __future__ import annotations

import contextlib
import os
import random
import secrets
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from rich.console import Console, Group
from rich.live import Live
from rich.markup import escape
from rich.table import Table

from sandbox.run import running
from worker.app.runtime import Runtime
from worker.config import load_config
from worker.devtools.feeder import SANDBOX_INTAKE_QUEUE, LeadFeeder, Stream
from worker.devtools.processes import NotReady, ProcessDied, Supervisor
from worker.devtools.synthetic import synthetic_leads
from worker.ledger.ledger import Ledger
from worker.steps.ledger import flush
from worker.store.connection import start_embedded
from worker.store.pending import PendingSet
from worker.store.redis_store import RedisStore

DEMO_PREFIX = "leadroute-demo"
INTAKE_QUEUE = SANDBOX_INTAKE_QUEUE
DEMO_LEDGER = "demo-ledger.sqlite3"  # under the data directory


class Reps:
    """Plays the reps: about half the leads are picked up (their status set to worked) within a minute or so."""

    def __init__(self, admin: Any, rng: random.Random) -> None:
        self.admin = admin
        self.rng = rng
        self.acked = 0
        self._to_ack: list[tuple[float, str, str]] = []

    def lead_created(self, crm: str, lead_id: str) -> None:
        if self.rng.random() < 0.5:  # a rep picks it up within a minute or so
            self._to_ack.append((time.monotonic() + self.rng.uniform(10, 70), crm, lead_id))
        self._acknowledge_due()

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


def _feeder_error(exc: Exception) -> None:  # the demo keeps going if one call fails
    print(f"feeder: {exc}", file=sys.stderr)


def _view(rt: Runtime, stream: Stream, reps: Reps, started: float) -> Group:
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
    status = (f"[bold]leadroute demo[/bold]  {elapsed}s  leads created {stream.count}, acknowledged by reps "
              f"{reps.acked}  pending: {pending}  open SLA clocks: {rt.store.open_timers()}  (Ctrl-C to stop)")
    return Group(status, assignments, loads, events)


@contextlib.contextmanager
def _redis(data_dir: Path) -> Iterator[str]:
    url = os.environ.get("REDIS_URL")
    if url:
        yield url
        return
    server = start_embedded(data_dir)
    try:
        yield server.url
    finally:
        with contextlib.suppress(Exception):
            server.stop()


DEMO_AWAY = ("raj", timedelta(days=3))


def _fresh_ledger(data_dir: Path) -> Path:
    """The demo's own ledger file, emptied: the sandbox hands out the same record ids every run, and the
    ledger keeps the first event under an id, so an old run's history would hide this one's."""
    path = data_dir / DEMO_LEDGER
    for name in (path.name, f"{path.name}-wal", f"{path.name}-shm", f"{path.name}.migrate.lock"):
        (path.parent / name).unlink(missing_ok=True)
    return path


def _close_ledger(rt: Runtime, path: Path, console: Console) -> None:
    """Move what the stopped worker left in the outbox, then say where the history is and how to report on it."""
    url = f"sqlite:///{path}"
    try:
        ledger = Ledger.open(url)
    except Exception as exc:  # the demo's summary must not fail on the ledger's account
        console.print(f"[yellow]the ledger could not be opened: {exc}[/yellow]")
        return
    try:
        flush(rt.store, ledger, config=rt.config)
        decisions = ledger.count(kinds=["decision", "reroute"])
        total = ledger.count()
    finally:
        ledger.close()
    report = path.parent / "demo-report.html"
    console.print(f"ledger: {total} events ({decisions} decisions and re-routes) in {path}")
    console.print(f"its report: DATABASE_URL={url} leadroute report --format html --out {report}")


def _away_this_week(rt: Runtime) -> None:
    """Mark one rep out of office from now, as `leadroute ooo` would, so the demo shows an absence
    whatever the date (the config's dated windows are examples and may lie in the past)."""
    rep, length = DEMO_AWAY
    if rep in rt.config.reps:
        rt.store.set_availability(rep, False, until=datetime.now(UTC) + length, reason="ooo (demo)", set_by="demo")


@dataclass(frozen=True)
class DemoLogin:
    """The demo's one-time dashboard operator: a random password and session secret, printed at start."""

    user: str
    password: str
    env: dict[str, str]


def demo_login() -> DemoLogin:
    """A fresh operator login for this run's dashboard (``LEADROUTE_UI_USERS`` and ``LEADROUTE_UI_SECRET``)."""
    from worker.web.ui.auth import hash_password  # argon2 loads for the demo's login only

    password = secrets.token_urlsafe(9)
    return DemoLogin("demo", password, {"LEADROUTE_UI_USERS": f"demo:operator:{hash_password(password)}",
                                         "LEADROUTE_UI_SECRET": secrets.token_urlsafe(32)})


def run_demo(config_path: Path, duration: float | None, per_minute: float, data_dir: Path = Path("var")) -> int:
    """Run the demo; returns a process exit status."""
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
        ledger_path = _fresh_ledger(data_dir)
        env = dict(os.environ)
        env.update(sandbox.env())
        env.update({
            "REDIS_URL": redis_url, "LEADROUTE_CONFIG": str(config_path.resolve()), "LEADROUTE_PREFIX": DEMO_PREFIX,
            "LEADROUTE_LOG_FORMAT": "json", "PYTHONPATH": str(Path(__file__).resolve().parents[2]),
            "DATABASE_URL": f"sqlite:///{ledger_path.resolve()}",
        })
        login = demo_login()
        env.update(login.env)
        processes = Supervisor(env, log_dir, stop_timeout=15)
        processes.worker(concurrency=2)
        processes.beat(data_dir / "demo-beat-schedule")
        web = processes.web()
        rng = random.Random(1)
        reps = Reps(sandbox.admin, rng)
        feeder = LeadFeeder(sandbox, config, intake_queue=INTAKE_QUEUE)
        stream = feeder.stream(synthetic_leads(1_000_000, seed=rng.randrange(1 << 30)), rate=per_minute / 60,
                               on_created=reps.lead_created, on_error=_feeder_error)
        started = time.monotonic()
        status = 0
        try:
            processes.wait_ready(timeout=120)
            stream.start("demo-feeder")
            started = time.monotonic()
            console.print(f"sandbox CRM at {sandbox.base_url}, web at {web.url}, logs in {log_dir}")
            console.print(f"dashboard at {web.url}/ : user {login.user}, password {login.password} (this run only)")
            with Live(_view(rt, stream, reps, started), console=console, refresh_per_second=2,
                      transient=not console.is_terminal) as live:
                while duration is None or time.monotonic() - started < duration:
                    time.sleep(1)
                    if dead := processes.died():
                        console.print(f"[red]{', '.join(dead)} stopped unexpectedly; see {log_dir}[/red]")
                        status = 1
                        break
                    live.update(_view(rt, stream, reps, started))
        except (ProcessDied, NotReady) as exc:  # while starting
            console.print(f"[red]{', '.join(exc.names)} did not start; see {log_dir}[/red]")
            status = 1
        except KeyboardInterrupt:
            pass
        finally:
            stream.stop()
            processes.stop()
            feeder.close()
        routed = len(rt.store.recent(100_000, kind="decision"))
        console.print(_view(rt, stream, reps, started))
        console.print(f"demo stopped at {datetime.now(UTC):%H:%M:%S} UTC: {stream.count} leads created, "
                      f"{routed} decisions made")
        _close_ledger(rt, ledger_path, console)
        rt.close()
        return status
