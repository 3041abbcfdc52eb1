"""Routing engine benchmark: decisions per second and per-decision latency, in-memory state.

Routes 100,000 synthetic raw leads (normalisation included) through a config with 50 reps,
10 pools and 30 rules on one core. The config uses the routing depth of issue 17 that costs
little: backups form one coverage cycle (rep00 -> rep01 -> ... -> rep49 -> rep00), reps have a
seniority, and least-loaded pools settle ties by ``tie_break`` (most recent contact, least
loaded, seniority). ``--overlap`` also settles the overlapping North American territories by
tie-breakers (``territory_overlap: tie_break``), which costs a second pass over the rules for
the one lead in six that is in two territories. Caps per period are on (a quarter of the reps and
three pools, low enough that they bind), as are ``relationships`` and ``rejections`` (the worker's
steps use those, the engine only carries them), and the least-loaded pools weigh CRM opportunities
(``load: {leads: 1, opportunities: 0.5}``, counts handed to the engine as data). ``--plain`` routes through the config as it was
before issue 17 (a backup chain, no tie-breakers, no caps).

    python bench/engine.py [--leads N] [--overlap | --plain] [--json] [--cpu] [--simulate]

Targets (issue 2): >= 20,000 decisions/s and p99 < 1 ms.

``--simulate`` (issue 19) also writes the same config and leads to a YAML file and a CSV, runs
``leadroute simulate --format table --summary`` on them in a fresh process at the same routing
time, and reports its wall time (start-up, reading the CSV and the summary included; the best of
three runs, each in a fresh process) against the engine's time for the same count. Target: within 1.5x.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import yaml

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from worker.config import parse_config
from worker.routing.engine import Router
from worker.routing.pipeline import PipelineCounts, PipelineLoad
from worker.routing.state import InMemoryState

ZONES = ["America/New_York", "America/Chicago", "America/Los_Angeles", "Europe/London", "Europe/Berlin", "Asia/Tokyo"]
STRATEGIES = ["round_robin", "weighted_round_robin", "least_loaded"]
INDUSTRIES = ["Software", "Healthcare", "Fintech", "Retail", "Manufacturing", "Media", "Education", "Energy"]
SOURCES = ["Demo Request", "Web Form", "Webinar", "Partner Referral", "Purchased List", "Event"]
COUNTRIES = ["US", "United States", "USA", "Canada", "DE", "Deutschland", "France", "UK", "Japan", "Brasil", "India", "NL"]
STATES = ["CA", "California", "NY", "TX", "WA", "Ontario", "", "FL"]


def build_config(rng: random.Random, plain: bool = False, overlap: bool = False) -> dict:
    reps = []
    for i in range(50):
        rep = {
            "id": f"rep{i:02d}",
            "timezone": rng.choice(ZONES),
            "hours": {"start": "08:00", "end": "18:00"},
            "skills": rng.sample(["enterprise", "healthcare", "fintech", "smb", "apac"], 2),
            "languages": rng.sample(["en", "de", "fr", "es", "ja", "pt"], 2),
            "weight": rng.randint(1, 3),
            "capacity": rng.choice([None, 200, 500, 1000]),
            "backup": f"rep{(i + 1) % 50:02d}",
        }
        if i % 10 == 0:
            rep["out_of_office"] = [{"start": "2026-12-01", "end": "2026-12-03"}]
        if i % 17 == 0:
            rep["active"] = False
        if not plain:
            rep["seniority"] = i % 5  # not from rng: --plain must route the same leads
            if i % 4 == 0:  # caps per period (issue 17): a quarter of the reps, low enough to bind
                rep["caps"] = {"daily": 1200, "weekly": 5000} if i % 8 else {"monthly": 900}
        reps.append({k: v for k, v in rep.items() if v is not None})
    if plain:
        reps[-1].pop("backup")  # a chain; otherwise rep49 -> rep00 closes one coverage cycle
    pools = {f"pool{p}": {"members": [f"rep{p * 5 + j:02d}" for j in range(5)], "strategy": STRATEGIES[p % 3]}
             for p in range(10)}
    territories = {
        "na-west": {"countries": ["US"], "states": ["CA", "WA", "OR"]},
        "na-east": {"countries": ["US"], "states": ["NY", "FL", "MA"]},
        "na": {"countries": ["US", "CA"]},
        "dach": {"countries": ["DE", "AT", "CH"]},
        "emea": {"countries": ["FR", "GB", "NL", "ES", "IT"]},
        "apac": {"countries": ["JP", "IN", "AU"]},
        "latam": {"countries": ["BR", "MX", "AR"]},
    }
    rules = [{"name": "named-account", "when": {"account_owner": {"exists": True}}, "assign": {"account_owner": True}}]
    terr_names = list(territories)
    for i in range(28):
        when: dict = {"territory": terr_names[i % len(terr_names)]}
        if i % 3 == 0:
            when["employees"] = {"gte": 1000}
        elif i % 3 == 1:
            when["employees"] = {"between": [100, 999]}
        else:
            when["any"] = [{"lead_source": "Demo Request"}, {"score": {"gte": 80}}]
        if i % 4 == 0:
            when["industry"] = rng.sample(INDUSTRIES, 3)
        if i % 5 == 0:
            when["title"] = {"matches": "(vp|chief|head)"}
        assign: dict = {"pool": f"pool{i % 10}"}
        if i % 7 == 0:
            assign["require_languages"] = ["en"]
        rules.append({"name": f"rule{i:02d}", "when": when, "assign": assign})
    rules.append({"name": "catch-all", "when": {"employees": {"exists": True}}, "assign": {"pool": "pool9"}})
    config = {
        "version": 1,
        "timezone": "America/New_York",
        "reps": reps,
        "territories": territories,
        "pools": pools,
        "queues": {"triage": {"salesforce": "00G000000000001"}},
        "accounts": {f"account{i}.com": f"rep{i % 50:02d}" for i in range(200)},
        "rules": rules,
        "fallback": {"queue": "triage"},
    }
    if not plain:
        config["tie_break"] = ["most_recent_contact", "least_loaded", "seniority"]
        if overlap:
            config["territory_overlap"] = "tie_break"
        pools["pool2"]["tie_break"] = ["seniority", "file_order"]
        rules[3]["tie_break"] = ["least_loaded", "seniority"]  # rule02 -> pool2
        for p in (1, 4, 7):  # per-member caps of a few pools
            pools[f"pool{p}"]["caps"] = {"daily": 700}
        for p in (2, 5, 8):  # the least_loaded pools weigh CRM opportunities (counts: pipeline_counts)
            pools[f"pool{p}"]["load"] = {"leads": 1, "opportunities": 0.5}
        config["relationships"] = [{"match": "crm_recent_record", "lookback": "30d"},  # read by the worker, not here
                                   {"match": "recent_decision", "lookback": "90d"}]
        config["rejections"] = {"credit_back": True}  # the same
    return config


def pipeline_counts(config: Any, at: datetime) -> PipelineLoad | None:
    """Open opportunities per rep as the worker's cache would hand them over (None: no pool weighs them)."""
    if not any(p.load is not None for p in config.pools.values()):
        return None
    counts = {rep: (i * 7) % 13 for i, rep in enumerate(config.reps)}
    return PipelineLoad({"salesforce": PipelineCounts("salesforce", counts, at.timestamp() - 120)}, 1800.0)


def make_leads(rng: random.Random, n: int) -> list[dict]:
    leads = []
    for i in range(n):
        domain = f"account{rng.randrange(2000)}.com" if rng.random() < 0.5 else "gmail.com"
        leads.append({
            "id": f"L{i}",
            "email": f"person{i}@{domain}",
            "company": f"Company {i}",
            "country": rng.choice(COUNTRIES),
            "state": rng.choice(STATES),
            "employees": rng.choice(["12", "99", "100", "1,000", "5k+", "250-500", "", "lots", str(rng.randrange(20000))]),
            "industry": rng.choice(INDUSTRIES),
            "lead_source": rng.choice(SOURCES),
            "score": str(rng.randrange(100)),
            "title": rng.choice(["VP Sales", "Engineer", "Head of IT", "Chief of Staff", "Intern"]),
        })
    return leads


def time_simulate(doc: dict, leads: list[dict], at: datetime, runs: int = 3) -> dict:
    """``leadroute simulate --format table --summary`` on ``leads``, each run in a fresh process: the best wall
    time of ``runs`` (the least disturbed by whatever else the machine is doing), every run's, and its answer."""
    with tempfile.TemporaryDirectory(prefix="leadroute-bench-") as tmp:
        config_file, leads_file = Path(tmp) / "bench.yaml", Path(tmp) / "leads.csv"
        config_file.write_text(yaml.safe_dump(doc, sort_keys=False), encoding="utf-8")
        with leads_file.open("w", newline="", encoding="utf-8") as handle:
            writer = csv.DictWriter(handle, fieldnames=list(leads[0]))
            writer.writeheader()
            writer.writerows(leads)
        command = [sys.executable, "-m", "worker.cli", "simulate", "--config", str(config_file), "--leads",
                   str(leads_file), "--format", "table", "--summary", "--at", at.isoformat()]
        seconds = []
        for _ in range(runs):
            start = time.perf_counter()
            done = subprocess.run(command, cwd=Path(__file__).resolve().parents[1], capture_output=True, text=True,
                                  env={**os.environ, "LEADROUTE_PROGRESS": "0"}, check=False)
            seconds.append(time.perf_counter() - start)
            if done.returncode != 0:
                raise SystemExit(f"simulate failed ({done.returncode}): {done.stderr.strip()[-2000:]}")
    routed = next((line for line in done.stdout.splitlines() if line.startswith("Routing simulation")), "")
    return {"simulate_s": round(min(seconds), 3), "simulate_runs_s": [round(x, 3) for x in seconds],
            "simulate_summary": routed}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--leads", type=int, default=100_000)
    depth = parser.add_mutually_exclusive_group()
    depth.add_argument("--overlap", action="store_true", help="also settle overlapping territories by tie-breakers")
    depth.add_argument("--plain", action="store_true", help="the config without the issue 17 features")
    parser.add_argument("--json", action="store_true", help="print one JSON object instead of text")
    parser.add_argument("--cpu", action="store_true",
                        help="time by this process's CPU time instead of the wall clock (a busy, shared machine)")
    parser.add_argument("--simulate", action="store_true",
                        help="also time `leadroute simulate --format table --summary` on the same leads")
    args = parser.parse_args()
    rng = random.Random(42)
    doc = build_config(rng, args.plain, args.overlap)
    config = parse_config(yaml.safe_dump(doc, sort_keys=False), "bench.yaml")
    leads = make_leads(rng, args.leads)
    at = datetime(2026, 12, 1, 16, 0, tzinfo=UTC)
    pipeline = pipeline_counts(config, at)
    router = Router(config, InMemoryState(), pipeline=pipeline)
    for lead in leads[:2000]:  # warm caches (country tables, zone objects)
        router.route(lead, at=at)
    router = Router(config, InMemoryState(), pipeline=pipeline)
    timings = []
    ties = walks = capped = 0
    clock = time.process_time_ns if args.cpu else time.perf_counter_ns
    start = clock()
    for lead in leads:
        t0 = clock()
        decision = router.route(lead, at=at)
        timings.append(clock() - t0)
        ties += bool(decision.tie_breaks)
        walks += bool(decision.chain)
        capped += any(why.endswith("_cap") for why in decision.skipped.values())
    total_s = (clock() - start) / 1e9
    timings.sort()
    result = {
        "leads": len(leads),
        "reps": len(config.reps),
        "pools": len(config.pools),
        "rules": len(config.rules),
        "decisions_per_s": round(len(leads) / total_s),
        "p50_us": round(timings[len(timings) // 2] / 1000, 1),
        "p99_us": round(timings[int(len(timings) * 0.99)] / 1000, 1),
        "mean_us": round(statistics.fmean(timings) / 1000, 1),
        "total_s": round(total_s, 3),
        "config": "plain" if args.plain else "overlap" if args.overlap else "default",
        "clock": "cpu" if args.cpu else "wall",
        "ties_settled": ties,  # decisions that name a tie-breaker
        "backup_walks": walks,  # decisions that walked a backup chain
        "capped_skips": capped,  # decisions that passed over a rep at a cap per period
    }
    if args.simulate:
        result.update(time_simulate(doc, leads, at))
        result["simulate_vs_engine"] = round(result["simulate_s"] / total_s, 2)  # target <= 1.5
    if args.json:
        print(json.dumps(result))
    else:
        print(f"{result['leads']:,} leads, {result['reps']} reps, {result['pools']} pools, {result['rules']} rules")
        print(f"decisions/s: {result['decisions_per_s']:,}")
        print(f"p50: {result['p50_us']} us   p99: {result['p99_us']} us   mean: {result['mean_us']} us")
        print(f"ties settled by a tie-breaker: {ties:,}   backup walks: {walks:,}   passed a capped rep: {capped:,}")
        if args.simulate:
            print(f"simulate --format table --summary: {result['simulate_s']} s for {len(leads):,} leads (best of "
                  f"{', '.join(map(str, result['simulate_runs_s']))}) against {result['total_s']} s in the engine: "
                  f"{result['simulate_vs_engine']}x (target <= 1.5x)")


if __name__ == "__main__":
    main()
