"""Benchmark the routing ledger: ingest events/s into PostgreSQL and SQLite from one process.

    .venv/bin/python bench/ledger.py                      # figures for a reader
    .venv/bin/python bench/ledger.py --json               # one JSON object
    .venv/bin/python bench/ledger.py --events 1000000     # a bigger table (the scan figures then mean more)
    .venv/bin/python bench/ledger.py --postgres-url postgresql+psycopg://u@host/db   # an existing, empty database

Events are written as the ledger task will write them: batches of JSON-ready dicts (as they
come out of the Redis outbox), validated, and inserted with ``ON CONFLICT DO NOTHING`` in one
transaction each. A lead's history is a decision with its full context (~600 bytes of JSON),
a notification, the SLA clock's start, an acknowledgement and, for one lead in five, an
outcome. Only the ``write`` calls are timed, not making the dicts.

Without ``--postgres-url`` it starts a throwaway PostgreSQL (``worker.devtools.postgres``)
with PostgreSQL's default durability (fsync on, synchronous commit) and connects over
loopback TCP, as a worker beside its database would; SQLite is a file in a temporary
directory, in the ledger's own settings (WAL, full fsync on commit).

The machine's other load moves these figures; the CPU this process spends per event moves
little, and bounds what one process can do, so it is printed too. Also printed: a replay (the
same batches again: all duplicates), and two report-shaped scans over the table just written
(decisions by rule and owner; acknowledgements by tier), which show what the typed columns
buy. The full report benchmark belongs to ``leadroute report``.

Every write also bumps the report cache's day counters in its transaction (one indexed lookup of
the batch's first routings' and outcomes' leads, one upsert of a few rows: worker/ledger/days.py);
``--without-day-counters`` leaves that out, to measure what it costs.

Target (issue 13): >= 20,000 events/s into PostgreSQL from one worker process.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import sqlite3
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
from worker.ledger import days
from worker.ledger.ledger import Ledger

START = datetime(2026, 1, 5, 8, 0, tzinfo=UTC)
REPS = [f"rep{i:02}" for i in range(50)]
RULES = [f"rule-{i:02}" for i in range(30)]
POOLS = [f"pool-{i}" for i in range(10)]
TIERS = ("hot", "warm", "cold")
SOURCES = ("web-form", "list-import", "event", "partner", "chat")


def lead_history(n: int) -> list[dict[str, Any]]:
    """One lead's events, as dicts (the outbox's form)."""
    lead = f"00Q5e{n:010}"
    at = START + timedelta(seconds=n * 3)
    owner, rule, pool, tier = REPS[n % 50], RULES[n % 30], POOLS[n % 10], TIERS[n % 3]
    common = {"crm": "salesforce", "object": "Lead", "lead_id": lead, "epoch": 0, "config_version": "3f9a1c2b7d4e",
              "owner": owner, "rule": rule, "pool": pool, "source": SOURCES[n % 5], "arm": "a" if n % 2 else "b"}
    events = [
        common | {
            "event_id": f"decision/salesforce/Lead/{lead}/0", "kind": "decision", "at": at.isoformat(),
            "lead_created_at": (at - timedelta(seconds=40)).isoformat(), "wait_seconds": 40.0,
            "data": {
                "reason": f"{rule}: territory EMEA, segment enterprise -> {pool}, least loaded: {owner} 3/25",
                "target": f"pool {pool}", "strategy_state": f"least loaded: {owner} 3/25",
                "considered": REPS[:6], "skipped": {REPS[1]: "ooo", REPS[2]: "at_capacity", REPS[4]: "outside_hours"},
                "facts": {"country": "DE", "employees": 4200, "segment": "enterprise", "industry": "Manufacturing"},
                "unreadable": [], "requested_by": None,
            },
        },
        common | {"event_id": f"notification/salesforce/Lead/{lead}/0/slack", "kind": "notification",
                  "at": (at + timedelta(seconds=1)).isoformat(), "status": "sent", "data": {"channel": "slack"}},
        common | {"event_id": f"sla.start/salesforce/Lead/{lead}/0", "kind": "sla.start", "tier": tier,
                  "at": (at + timedelta(seconds=1)).isoformat(),
                  "data": {"deadline": (at + timedelta(minutes=15)).isoformat(), "ladder": ["remind", "escalate", "reassign"]}},
        common | {"event_id": f"ack/salesforce/Lead/{lead}/0", "kind": "ack", "tier": tier, "actor": owner,
                  "at": (at + timedelta(seconds=300 + n % 900)).isoformat(),
                  "wait_seconds": float(300 + n % 900), "wait_business_seconds": float(300 + n % 900)},
    ]
    if n % 5 == 0:
        events.append(common | {"event_id": f"outcome/salesforce/Lead/{lead}/converted", "kind": "outcome",
                                "at": (at + timedelta(days=3)).isoformat(), "status": "converted",
                                "amount": 12000.0, "currency": "EUR", "data": {"opportunity": f"006{n:012}"}})
    return events


def batches(total: int, size: int) -> Iterator[list[dict[str, Any]]]:
    batch: list[dict[str, Any]] = []
    n = 0
    produced = 0
    while produced < total:
        for event in lead_history(n):
            batch.append(event)
            produced += 1
            if len(batch) == size or produced == total:
                yield batch
                batch = []
                if produced == total:
                    return
        n += 1


SCANS = {
    "decisions_by_rule_and_owner": (
        "SELECT rule, owner, count(*), avg(wait_seconds) FROM events WHERE kind = 'decision' AND at >= :since "
        "GROUP BY rule, owner"
    ),
    "acks_by_tier": (
        "SELECT tier, count(*), avg(wait_seconds), max(wait_seconds) FROM events WHERE kind = 'ack' AND at >= :since "
        "GROUP BY tier"
    ),
}


def bench(ledger: Ledger, total: int, size: int, replay: int) -> dict[str, Any]:
    """Ingest ``total`` events in batches of ``size``; replay the first ``replay`` batches; time two scans."""
    if ledger.count():
        raise SystemExit(f"{ledger.engine.url.render_as_string(hide_password=True)}: the ledger is not empty")
    written = 0
    spent = cpu = 0.0
    kept: list[list[dict[str, Any]]] = []
    for batch in batches(total, size):
        if len(kept) < replay:
            kept.append(batch)
        began, began_cpu = time.perf_counter(), time.process_time()
        written += ledger.write(batch)
        spent += time.perf_counter() - began
        cpu += time.process_time() - began_cpu
    assert written == total, (written, total)
    began = time.perf_counter()
    replayed = sum(ledger.write(batch) for batch in kept)
    replay_s = time.perf_counter() - began
    assert replayed == 0
    replay_events = sum(len(b) for b in kept)
    scans: dict[str, float] = {}
    with ledger.engine.connect() as connection:
        if connection.dialect.name == "postgresql":
            connection.execute(text("ANALYZE events"))
        for name, sql in SCANS.items():
            began = time.perf_counter()
            rows = connection.execute(text(sql), {"since": START}).all()
            scans[name] = round(time.perf_counter() - began, 3)
            assert rows
    return {
        "events": total,
        "batch": size,
        "ingest_s": round(spent, 2),
        "events_per_s": round(total / spent),
        "client_cpu_us_per_event": round(cpu / total * 1e6, 1),
        "replay_events_per_s": round(replay_events / replay_s) if replay_s else None,
        "decisions_in_table": ledger.count(kinds=["decision"]),
        "scan_s": scans,
    }


@contextlib.contextmanager
def postgres_ledger(url: str | None) -> Iterator[tuple[Ledger, str]]:
    if url:
        ledger = Ledger.open(url)
        try:
            yield ledger, "existing server"
        finally:
            ledger.close()
        return
    with PostgresServer(durable=True) as server:
        server.create_database("bench")
        ledger = Ledger.open(server.url("bench", tcp=True))
        try:
            with ledger.engine.connect() as connection:
                version = connection.execute(text("SHOW server_version")).scalar()
            yield ledger, f"throwaway PostgreSQL {version}, loopback TCP, fsync on"
        finally:
            ledger.close()


@contextlib.contextmanager
def sqlite_ledger() -> Iterator[tuple[Ledger, str]]:
    with tempfile.TemporaryDirectory(prefix="leadroute-bench-") as directory:
        ledger = Ledger.open(f"sqlite:///{directory}/ledger.sqlite3")
        try:
            yield ledger, f"SQLite {sqlite3.sqlite_version}, file in a temp dir, WAL, synchronous=FULL"
        finally:
            ledger.close()


def _report_indexes(ledger: Ledger, keep: bool) -> None:
    """Leave migration 0007's indexes (the report's partial days), or drop them from this throwaway ledger."""
    if keep:
        return
    with ledger.engine.begin() as connection:
        for name in ("ix_events_kind_clock", "ix_events_first_routing_at"):
            connection.execute(text(f"DROP INDEX {name}"))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.add_argument("--events", type=int, default=200_000, help="events to ingest into each database")
    parser.add_argument("--batch", type=int, default=1000, help="events per write (one transaction)")
    parser.add_argument("--replay", type=int, default=20, help="batches written a second time (all duplicates)")
    parser.add_argument("--postgres-url", help="an existing, empty PostgreSQL database (default: a throwaway server)")
    parser.add_argument("--only", choices=("postgresql", "sqlite"), help="one database only")
    parser.add_argument("--without-day-counters", action="store_true",
                        help="skip the report cache's day counters (worker/ledger/days.py), to measure what they cost")
    parser.add_argument("--without-report-indexes", action="store_true",
                        help="drop migration 0007's two indexes before writing, to measure what they cost")
    args = parser.parse_args(argv)
    if args.without_day_counters:  # what the writer cost before the report's day cache: no lookup, no bump
        days.touched_days = lambda *_args: set()

    figures: dict[str, Any] = {"day_counters": not args.without_day_counters,
                               "report_indexes": not args.without_report_indexes}
    if args.only in (None, "postgresql"):
        with postgres_ledger(args.postgres_url) as (ledger, where):
            _report_indexes(ledger, not args.without_report_indexes)
            figures["postgresql"] = {"where": where, **bench(ledger, args.events, args.batch, args.replay)}
    if args.only in (None, "sqlite"):
        with sqlite_ledger() as (ledger, where):
            _report_indexes(ledger, not args.without_report_indexes)
            figures["sqlite"] = {"where": where, **bench(ledger, args.events, args.batch, args.replay)}
    if "postgresql" in figures:
        figures["targets"] = {"postgresql_events_per_s>=20000": figures["postgresql"]["events_per_s"] >= 20_000}
    if args.json:
        print(json.dumps(figures))
        return 0
    print("day counters (report cache): " + ("on" if figures["day_counters"] else "off (--without-day-counters)")
          + "; report indexes (migration 0007): " + ("on" if figures["report_indexes"] else "off (--without-report-indexes)"))
    for name, f in figures.items():
        if name in ("targets", "day_counters", "report_indexes"):
            continue
        print(f"{name} ({f['where']}):")
        print(f"  ingest: {f['events']:,} events in batches of {f['batch']:,}: {f['events_per_s']:,} events/s "
              f"({f['ingest_s']} s in write; this process's CPU {f['client_cpu_us_per_event']} us/event)")
        print(f"  replay (all duplicates): {f['replay_events_per_s']:,} events/s")
        scans = ", ".join(f"{k} {v:.3f} s" for k, v in f["scan_s"].items())
        print(f"  scans over {f['decisions_in_table']:,} decisions: {scans}")
    if "targets" in figures:
        print("targets: " + ", ".join(f"{k} {'ok' if v else 'MISSED'}" for k, v in figures["targets"].items()))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
