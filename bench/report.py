"""Benchmark ``leadroute report`` over 1,000,000 routed leads on PostgreSQL and SQLite.

    .venv/bin/python bench/report.py                    # figures for a reader
    .venv/bin/python bench/report.py --json             # one JSON object
    .venv/bin/python bench/report.py --leads 100000     # a smaller history
    .venv/bin/python bench/report.py --keep /tmp/lr-1m --load-only   # build both ledgers once, into that directory
    .venv/bin/python bench/report.py --keep /tmp/lr-1m --only sqlite # ... and time reports on them, again and again
    .venv/bin/python bench/report.py --keep /tmp/lr-1m --only sqlite --cli-only   # the CLI alone

Each database gets the same synthetic history, written through ``Ledger.write`` in batches as
the ledger task writes it: per lead a first-routing ``decision`` (with its candidates, skip
reasons, facts and now and then an unreadable field), the SLA clock's ``sla.start``, an ``ack``
for most, the ladder's ``sla.remind``/``sla.breach``/``sla.escalate`` for the slow ones, an
``sla.reassign`` (with the new owner's clock and acknowledgement) or an ``sla.park`` for a
few, a manual ``reroute`` for one in a hundred, and ``outcome`` events (converted,
opportunity, won, lost) for about a quarter. About 3.8 events per lead.

Then the report is run as ``leadroute report --since ... --by rule`` runs it (every figure,
one grouping): once from ``events`` only (``cache=False``), once cold (the day cache emptied:
every whole day read and kept, as the first report after an upgrade or ``leadroute db warm``
does), then warm a few times (best and median printed: the target's figure), and over a period
whose two edges cut half a day of leads each (those read from ``events`` every time). The
cached reports are checked equal to the one from ``events``. The CLI itself (in a
child process, start-up included) runs warm over the whole history as JSON twice, then ``--runs``
times in its default shape (30 days back from 15:30 on the last day, that day partial) as a table
and as JSON. ``--cli-only`` times only the CLI, on the ledgers as kept.

Without ``--postgres-url`` it starts a throwaway PostgreSQL (``worker.devtools.postgres``)
with default durability over loopback TCP; SQLite is a file in a temporary directory. With
``--keep DIR`` both live in ``DIR`` (``ledger.sqlite3``, the cluster in ``postgresql/``) and
are kept: a later run with the same ``DIR`` and ``--leads`` skips the load (a million leads
take minutes to write). Delete ``DIR`` when done.

With ``--proposed-index`` it then adds, to these throwaway databases only, the index the
report would want (:data:`PROPOSED`: the report's typed columns beside ``(kind, at)``, so the
passes that read no JSON read the index instead of the table) and times the report again.
The shipped schema is not changed: that would be a ledger migration.

Target (issue 13): the report over 1,000,000 decisions in < 2 s on PostgreSQL, < 5 s on SQLite.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import resource
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from sqlalchemy import text

from worker.devtools.postgres import PostgresServer
from worker.ledger.events import LedgerEvent
from worker.ledger.ledger import Ledger
from worker.reports import Period, ReportSettings, TierWindow, build_report
from worker.reports.pieces import forget

START = datetime(2026, 1, 5, 8, 0, tzinfo=UTC)
REPS = [f"rep{i:02}" for i in range(50)]
POOLS = {f"pool-{p}": REPS[p * 5:(p + 1) * 5] for p in range(10)}
WEIGHTS = {rep: (2 if i % 7 == 0 else 1) for i, rep in enumerate(REPS)}
RULES = [f"rule-{i:02}" for i in range(29)]
TIERS = {"hot": TierWindow(900, "wall"), "warm": TierWindow(4 * 3600, "business_hours"),
         "cold": TierWindow(24 * 3600, "wall")}
SOURCES = ("web-form", "list-import", "event", "partner", "chat")
SKIPS = ("ooo", "at_capacity", "outside_hours", "missing_skill")
SPACING = 2.4  # seconds between leads: a million leads cover about 28 days
ROOT = Path(__file__).resolve().parents[1]
PROPOSED = ("epoch", "crm", "object", "lead_id", "owner", "previous_owner", "actor", "rule", "pool", "tier", "source", "arm",
            "config_version", "status", "wait_seconds", "wait_business_seconds", "lead_created_at")


def _rnd(n: int, salt: int) -> float:
    """A deterministic pseudo-random number in [0, 1) for lead ``n``: the same history on every run."""
    x = (n * 2654435761 + salt * 40503 + 12345) & 0xFFFFFFFF
    x ^= x >> 15
    x = (x * 2246822519) & 0xFFFFFFFF
    x ^= x >> 13
    return x / 2**32


def lead_history(n: int) -> list[LedgerEvent]:
    """One lead's events, from its first routing to its outcome."""
    crm, obj = ("hubspot", "contact") if n % 4 == 0 else ("salesforce", "Lead")
    lead = f"L{n:09}"
    at = START + timedelta(seconds=n * SPACING)
    fallback = n % 40 == 0
    pool = None if fallback else f"pool-{n % 10}"
    members = POOLS[pool] if pool else []
    owner = "queue:triage" if fallback else members[(n // 10) % 5]
    rule = "fallback" if fallback else RULES[n % 29]
    tier = ("hot", "warm", "cold")[n % 3]
    created_wait = 2.0 + 60.0 * _rnd(n, 1) ** 3
    context = {"crm": crm, "object": obj, "lead_id": lead, "config_version": "3f9a1c2b7d4e" if n < 600_000 else "8b1e0d4c9a2f",
               "rule": rule, "pool": pool, "tier": tier, "source": SOURCES[n % 5], "arm": "a" if n % 2 else "b",
               "lead_created_at": at - timedelta(seconds=created_wait)}
    # the SLA sweep's events carry the clock's tier and owner, not the routing's path (as worker/steps writes them)
    clock = {k: context[k] for k in ("crm", "object", "lead_id", "config_version", "tier")}
    skipped = {members[(n + 1) % 5]: SKIPS[n % 4]} if members and n % 3 == 0 else {}
    key = f"{crm}/{obj}/{lead}"
    events = [LedgerEvent(
        event_id=f"decision/{key}/0", kind="decision", at=at, epoch=0, owner=owner,
        wait_seconds=created_wait, wait_business_seconds=created_wait * 0.8, **context,
        data={"reason": f"{rule}: DE, 4,200 employees -> pool {pool} (least loaded: {owner} 3/25)",
              "target": f"pool {pool}" if pool else "queue triage", "strategy_state": f"least loaded: {owner} 3/25",
              "considered": members, "skipped": skipped,
              "facts": {"country": "DE", "employees": 4200, "segment": "enterprise", "industry": "Manufacturing"},
              "unreadable": ["employees"] if n % 50 == 0 else [], "requested_by": None})]
    if fallback:
        return events + _outcomes(n, key, at, owner, context)
    start = at + timedelta(seconds=1)
    window = TIERS[tier].seconds
    events.append(LedgerEvent(event_id=f"sla.start/{key}/0", kind="sla.start", at=start, epoch=0, owner=owner, **clock,
                              data={"deadline": (start + timedelta(seconds=window)).isoformat()}))
    ack_wait = window * 2.5 * _rnd(n, 2) ** 2  # most within the window, a tail beyond it
    late = ack_wait > window
    if late:
        events += [
            LedgerEvent(event_id=f"sla.remind/{key}/0/1", kind="sla.remind", at=start + timedelta(seconds=window * 0.7),
                        epoch=0, owner=owner, wait_seconds=window * 0.7, **clock, data={"step": 1}),
            LedgerEvent(event_id=f"sla.breach/{key}/0", kind="sla.breach", at=start + timedelta(seconds=window),
                        epoch=0, owner=owner, wait_seconds=float(window), **clock, data={}),
        ]
    if late and n % 5 == 0:
        events.append(LedgerEvent(event_id=f"sla.escalate/{key}/0/2", kind="sla.escalate", epoch=0, owner=owner,
                                  at=start + timedelta(seconds=window * 1.2), wait_seconds=window * 1.2, **clock,
                                  data={"manager": "boss"}))
    if late and n % 11 == 0:  # reassigned: a new owner, a new clock, acknowledged quickly
        new = members[(n // 10 + 1) % 5]
        moved = start + timedelta(seconds=window * 2)
        events += [
            LedgerEvent(event_id=f"sla.reassign/{key}/0/3", kind="sla.reassign", at=moved, epoch=0, owner=new,
                        previous_owner=owner, wait_seconds=window * 2.0, **clock,
                        data={"excluded": [owner]}),
            LedgerEvent(event_id=f"decision/{key}/1", kind="decision", at=moved, epoch=1, owner=new, previous_owner=owner,
                        **context, data={"via": "sla", "reason": "reassigned", "considered": members, "skipped": {}}),
            LedgerEvent(event_id=f"sla.start/{key}/1", kind="sla.start", at=moved, epoch=1, owner=new, **clock, data={}),
            LedgerEvent(event_id=f"ack/{key}/1", kind="ack", at=moved + timedelta(seconds=120), epoch=1, owner=new,
                        actor=new, wait_seconds=120.0, wait_business_seconds=120.0, **clock, data={"observed": "field"}),
        ]
        owner = new
    elif late and n % 13 == 0:
        events.append(LedgerEvent(event_id=f"sla.park/{key}/0/4", kind="sla.park", at=start + timedelta(seconds=window * 2),
                                  epoch=0, owner="queue:triage", previous_owner=owner, wait_seconds=window * 2.0,
                                  **clock, data={}))
        owner = "queue:triage"
    else:
        events.append(LedgerEvent(event_id=f"ack/{key}/0", kind="ack", at=start + timedelta(seconds=ack_wait), epoch=0,
                                  owner=owner, actor=owner, wait_seconds=ack_wait, wait_business_seconds=ack_wait * 0.7,
                                  **clock, data={"observed": "field"}))
    if n % 100 == 7 and members:
        new = members[(n // 10 + 2) % 5]
        events.append(LedgerEvent(event_id=f"reroute/{key}/2", kind="reroute", at=at + timedelta(hours=3), epoch=2,
                                  owner=new, previous_owner=owner, actor="alice (cli)", **context,
                                  data={"reason": "by hand", "requested_by": "alice (cli)", "why": "language"}))
        owner = new
    return events + _outcomes(n, key, at, owner, context)


def _outcomes(n: int, key: str, at: datetime, owner: str, context: dict[str, Any]) -> list[LedgerEvent]:
    roll = _rnd(n, 3)
    out: list[LedgerEvent] = []
    if roll < 0.25:
        out.append(LedgerEvent(event_id=f"outcome/{key}/converted", kind="outcome", at=at + timedelta(days=2),
                               owner=owner, status="converted", **context, data={"IsConverted": True}))
    if roll < 0.12:
        out.append(LedgerEvent(event_id=f"outcome/{key}/opportunity", kind="outcome", at=at + timedelta(days=2, hours=1),
                               owner=owner, status="opportunity", amount=12000.0, currency="EUR", **context, data={}))
    if roll < 0.09:
        won = roll < 0.04
        out.append(LedgerEvent(event_id=f"outcome/{key}/{'won' if won else 'lost'}", kind="outcome",
                               at=at + timedelta(days=20), owner=owner, status="won" if won else "lost",
                               amount=12000.0, currency="EUR", **context, data={"StageName": "Closed"}))
    return out


def load(ledger: Ledger, leads: int, batch: int = 5000) -> tuple[int, float]:
    """Write ``leads`` leads' histories; how many events, and the seconds spent."""
    began = time.perf_counter()
    pending: list[LedgerEvent] = []
    total = 0
    for n in range(leads):
        pending += lead_history(n)
        if len(pending) >= batch:
            total += ledger.write(pending)
            pending = []
    if pending:
        total += ledger.write(pending)
    return total, time.perf_counter() - began


def settings() -> ReportSettings:
    """What the routing config tells the report: pool members and weights, tier windows."""
    return ReportSettings(pools={p: {m: WEIGHTS[m] for m in members} for p, members in POOLS.items()},
                          tiers=dict(TIERS))


def time_report(ledger: Ledger, leads: int, runs: int) -> dict[str, Any]:
    """The whole report over the whole history: from ``events`` only (no cache), then cold (the day cache
    empty: every whole day read and kept) and warm ``runs`` times; then over a period whose edges cut
    half a day of leads each (read from ``events`` every time, the days between from the cache)."""
    period = Period(START - timedelta(days=1), START + timedelta(seconds=leads * SPACING + 86400))
    out: dict[str, Any] = {}
    began = time.perf_counter()
    report = build_report(ledger.engine, period, by="rule", settings=settings(), cache=False)
    out["report_events_only_s"] = round(time.perf_counter() - began, 3)
    assert report.leads == leads, (report.leads, leads)
    with ledger.engine.begin() as connection:
        forget(connection)
    began = time.perf_counter()
    cold = build_report(ledger.engine, period, by="rule", settings=settings())
    out["report_cold_s"] = round(time.perf_counter() - began, 3)
    assert _same(cold, report), "the cached report differs from the one read from events"
    times, cpu = [], []
    for _ in range(runs):
        began, used = time.perf_counter(), time.process_time()
        warm = build_report(ledger.engine, period, by="rule", settings=settings())
        times.append(time.perf_counter() - began)
        cpu.append(time.process_time() - used)
        assert _same(warm, report), "the cached report differs from the one read from events"
    out |= {"report_best_s": round(min(times), 3), "report_median_s": round(statistics.median(times), 3), "runs": runs,
            "report_median_cpu_s": round(statistics.median(cpu), 3)}  # this process's CPU, not the server's
    # noon of the first day to noon of the last whole day before the last lead: half a day at either edge
    end = START + timedelta(seconds=leads * SPACING)
    since = START.replace(hour=12, minute=0, second=0, microsecond=0)
    until = (end - timedelta(hours=12)).replace(hour=12, minute=0, second=0, microsecond=0)
    times, cpu = [], []
    for _ in range(runs if until > since else 0):
        began, used = time.perf_counter(), time.process_time()
        build_report(ledger.engine, Period(since, until), by="rule", settings=settings())
        times.append(time.perf_counter() - began)
        cpu.append(time.process_time() - used)
    out["report_half_day_edges_median_s"] = round(statistics.median(times), 3) if times else None
    out["report_half_day_edges_median_cpu_s"] = round(statistics.median(cpu), 3) if cpu else None
    return out


def _same(a: Any, b: Any) -> bool:
    left, right = a.to_dict(), b.to_dict()
    left.pop("generated_at"), right.pop("generated_at")
    return bool(left == right)


def time_cli(url: str, leads: int) -> tuple[float, float]:
    """``leadroute report --format json`` in a child process, start-up included: wall and the child's CPU seconds."""
    since = (START - timedelta(days=1)).isoformat()
    until = (START + timedelta(seconds=leads * SPACING + 86400)).isoformat()
    began, before = time.perf_counter(), resource.getrusage(resource.RUSAGE_CHILDREN)
    done = subprocess.run([sys.executable, "-m", "worker.cli", "report", "--since", since, "--until", until,
                           "--by", "rule", "--format", "json"], cwd=ROOT, capture_output=True, text=True,
                          env=os.environ | {"DATABASE_URL": url, "LEADROUTE_CONFIG": "/nonexistent"}, timeout=600)
    spent, after = time.perf_counter() - began, resource.getrusage(resource.RUSAGE_CHILDREN)
    if done.returncode != 0:
        raise SystemExit(f"leadroute report failed: {done.stderr.strip()[-2000:]}")
    json.loads(done.stdout)
    used = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return round(spent, 3), round(used, 3)


def default_window(leads: int) -> tuple[datetime, datetime]:
    """``leadroute report``'s default shape over this history: 30 days back from a "now" at 15:30 on the last
    day with leads before it, so that day's first 15.5 hours are a partial day read from ``events``."""
    until = (START + timedelta(seconds=leads * SPACING) - timedelta(hours=12)).replace(hour=15, minute=30, second=0,
                                                                                       microsecond=0)
    return until - timedelta(days=30), until


def time_cli_default(url: str, leads: int, format: str, runs: int) -> list[tuple[float, float]]:
    """``leadroute report --since ... --until ...`` in the default shape (:func:`default_window`, ``--by rule``),
    as a table or JSON, in a child process, start-up included, no routing config: ``runs`` times (wall, CPU)."""
    since, until = default_window(leads)
    out = []
    for _ in range(runs):
        began, before = time.perf_counter(), resource.getrusage(resource.RUSAGE_CHILDREN)
        done = subprocess.run([sys.executable, "-m", "worker.cli", "report", "--since", since.isoformat(),
                               "--until", until.isoformat(), "--format", format], cwd=ROOT, capture_output=True,
                              text=True, env=os.environ | {"DATABASE_URL": url, "LEADROUTE_CONFIG": "/nonexistent"},
                              timeout=600)
        spent, after = time.perf_counter() - began, resource.getrusage(resource.RUSAGE_CHILDREN)
        if done.returncode != 0:
            raise SystemExit(f"leadroute report failed: {done.stderr.strip()[-2000:]}")
        if format == "json":
            json.loads(done.stdout)
        used = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
        out.append((round(spent, 3), round(used, 3)))
    return out


def add_proposed_index(ledger: Ledger) -> float:
    """Create :data:`PROPOSED` on this database (PostgreSQL: INCLUDE columns, then VACUUM for index-only scans)."""
    began = time.perf_counter()
    with ledger.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as connection:
        if connection.dialect.name == "postgresql":
            connection.execute(text(f"CREATE INDEX ix_events_report ON events (kind, at) INCLUDE ({', '.join(PROPOSED)})"))
            connection.execute(text("VACUUM (ANALYZE) events"))
        else:
            connection.execute(text(f"CREATE INDEX ix_events_report ON events (kind, at, {', '.join(PROPOSED)})"))
            connection.execute(text("ANALYZE"))
    return round(time.perf_counter() - began, 1)


def bench(ledger: Ledger, url: str, leads: int, runs: int, proposed: bool = False, load_only: bool = False,
          cli_only: bool = False) -> dict[str, Any]:
    figures: dict[str, Any] = {"leads": leads}
    with ledger.engine.connect() as connection:  # first routings: SLA reassignments add decisions at later epochs
        existing = connection.execute(text("SELECT count(*) FROM events WHERE kind = 'decision' AND epoch = 0")).scalar_one()
    if existing not in (0, leads):
        raise SystemExit(f"{url}: holds {existing} decisions, neither none nor {leads}")
    if existing == 0:
        events, spent = load(ledger, leads)
        figures |= {"events_written": events, "load_s": round(spent, 1), "load_events_per_s": round(events / spent)}
    with ledger.engine.begin() as connection:
        connection.execute(text("ANALYZE events" if connection.dialect.name == "postgresql" else "ANALYZE"))
    figures["events_in_table"] = ledger.count()
    if load_only:
        return figures
    if cli_only:  # the day cache as an earlier run left it; a first report fills what is missing
        time_cli(url, leads)
    else:
        figures |= time_report(ledger, leads, runs)
    # no routing config: the same pieces as the reports above (none depends on the config)
    figures["cli_json_s"], figures["cli_json_cpu_s"] = time_cli(url, leads)
    figures["cli_json_again_s"], figures["cli_json_again_cpu_s"] = time_cli(url, leads)
    since, until = default_window(leads)
    figures["cli_default_window"] = [since.isoformat(), until.isoformat()]
    for format in ("table", "json"):  # (wall, CPU) per run, and the load while they ran
        figures[f"cli_default_{format}"] = time_cli_default(url, leads, format, runs)
        figures[f"cli_default_{format}_load"] = os.getloadavg()[0]
    if proposed:
        figures["proposed_index_build_s"] = add_proposed_index(ledger)
        figures["with_proposed_index"] = time_report(ledger, leads, runs)
    return figures


@contextlib.contextmanager
def postgres_ledger(url: str | None, keep: Path | None = None) -> Iterator[tuple[Ledger, str, str]]:
    if url:
        ledger = Ledger.open(url)
        try:
            yield ledger, url, "existing server"
        finally:
            ledger.close()
        return
    with PostgresServer(durable=True, keep=keep / "postgresql" if keep else None) as server:
        if not server.has_database("bench"):
            server.create_database("bench")
        url = server.url("bench", tcp=True)
        ledger = Ledger.open(url)
        try:
            with ledger.engine.connect() as connection:
                version = connection.execute(text("SHOW server_version")).scalar()
            yield ledger, url, f"{'kept' if keep else 'throwaway'} PostgreSQL {version}, loopback TCP"
        finally:
            ledger.close()


@contextlib.contextmanager
def sqlite_ledger(keep: Path | None) -> Iterator[tuple[Ledger, str, str]]:
    with tempfile.TemporaryDirectory(prefix="leadroute-bench-") as directory:
        path = (keep or Path(directory)) / "ledger.sqlite3"
        url = f"sqlite:///{path}"
        ledger = Ledger.open(url)
        try:
            yield ledger, url, f"SQLite {sqlite3.sqlite_version}, file, WAL"
        finally:
            ledger.close()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.add_argument("--leads", type=int, default=1_000_000, help="leads (first-routing decisions) in the history")
    parser.add_argument("--runs", type=int, default=3, help="times the report is run on each database")
    parser.add_argument("--postgres-url", help="an existing PostgreSQL database, empty or holding this history")
    parser.add_argument("--keep", type=Path, metavar="DIR",
                        help="keep both ledgers in DIR (SQLite file, PostgreSQL cluster); a later run reuses them")
    parser.add_argument("--load-only", action="store_true", help="write the history (unless kept) and time no report")
    parser.add_argument("--only", choices=("postgresql", "sqlite"), help="one database only")
    parser.add_argument("--cli-only", action="store_true",
                        help="time the CLI only (whole history, and the default shape as a table and as JSON)")
    parser.add_argument("--proposed-index", action="store_true", help="then time it again with the proposed covering index")
    args = parser.parse_args(argv)

    figures: dict[str, Any] = {}
    if args.only in (None, "postgresql"):
        with postgres_ledger(args.postgres_url, args.keep) as (ledger, url, where):
            figures["postgresql"] = {"where": where, **bench(ledger, url, args.leads, args.runs, args.proposed_index,
                                                               args.load_only, args.cli_only)}
    if args.only in (None, "sqlite"):
        with sqlite_ledger(args.keep) as (ledger, url, where):
            figures["sqlite"] = {"where": where, **bench(ledger, url, args.leads, args.runs, args.proposed_index,
                                                         args.load_only, args.cli_only)}
    targets = {}
    if "report_median_s" in figures.get("postgresql", {}):
        targets["postgresql_report_s<2"] = figures["postgresql"]["report_median_s"] < 2
    if "report_median_s" in figures.get("sqlite", {}):
        targets["sqlite_report_s<5"] = figures["sqlite"]["report_median_s"] < 5
    figures["targets"] = targets
    if args.json:
        print(json.dumps(figures))
        return 0
    for name, f in figures.items():
        if name == "targets":
            continue
        print(f"{name} ({f['where']}):")
        if "load_s" in f:
            print(f"  loaded {f['events_written']:,} events ({f['leads']:,} leads) in {f['load_s']} s "
                  f"({f['load_events_per_s']:,} events/s, batches of 5,000)")
        if "cli_default_json" in f:
            since, until = f["cli_default_window"]
            for format in ("table", "json"):
                runs = ", ".join(f"{wall} s ({cpu} s CPU)" for wall, cpu in f[f"cli_default_{format}"])
                print(f"  CLI default shape ({since} -> {until}) --format {format}: {runs}; "
                      f"load {f[f'cli_default_{format}_load']:.1f}")
        if "report_median_s" not in f:
            if "cli_json_s" in f:
                print(f"  CLI --format json over the whole history: {f['cli_json_s']} s ({f['cli_json_cpu_s']} s CPU), "
                      f"again {f['cli_json_again_s']} s ({f['cli_json_again_cpu_s']} s CPU)")
            else:
                print(f"  {f['events_in_table']:,} events in the ledger; no report timed (--load-only)")
            continue
        print(f"  report over {f['leads']:,} decisions ({f['events_in_table']:,} events), whole days from the day cache: "
              f"median {f['report_median_s']} s ({f['report_median_cpu_s']} s CPU here), best {f['report_best_s']} s "
              f"of {f['runs']}; CLI --format json {f['cli_json_s']} s ({f['cli_json_cpu_s']} s CPU), "
              f"again {f['cli_json_again_s']} s ({f['cli_json_again_cpu_s']} s CPU)")
        print(f"  with two half-day edges read from events: median {f['report_half_day_edges_median_s']} s "
              f"({f['report_half_day_edges_median_cpu_s']} s CPU here); "
              f"cold (reading and keeping every day) {f['report_cold_s']} s; events only (no cache) "
              f"{f['report_events_only_s']} s")
        if "with_proposed_index" in f:
            p = f["with_proposed_index"]
            print(f"  with the proposed index (built in {f['proposed_index_build_s']} s): median {p['report_median_s']} s, "
                  f"best {p['report_best_s']} s")
    print("targets: " + ", ".join(f"{k} {'ok' if v else 'MISSED'}" for k, v in targets.items()))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
