"""Replay benchmark: 100,000 historical leads replayed under the config in force and a candidate, on one core.

Makes a routing history the way the worker makes it (``worker.replay.synthetic.make_history``: the
real engine, a state that frees loads on acknowledgement, the worker's own ledger events) for
``bench/engine.py``'s config (50 reps, 10 pools, 30 rules) and leads, spread over 30 days, with a
warm-up period before the window and 85% of leads acknowledged within minutes to days. The
candidate removes a pool member, moves a threshold from 1000 to 500 employees and swaps two rules
(see :func:`candidate_of`).

Timed: grouping the events into leads, the starting state (warm-up included), both runs side by
side and the JSON result (``replay_s`` wall, ``replay_cpu_s`` CPU), from events already in memory;
and, for scale, the engine alone routing the same leads once under the baseline, from the same
start and freeing loads at the same moments (``engine_alone_cpu_s``): the replay routes each lead
twice, so 2x that is its floor. On a shared machine read the CPU figures
and the ``load_average`` beside them. ``--ledger`` also writes
the history to a SQLite ledger and times ``leadroute replay --format json`` on it end to end in a
fresh process (start-up and reading the ledger included; ``cli_s`` wall, ``cli_cpu_s`` CPU).

    python bench/replay.py [--leads N] [--warmup-leads N] [--ledger] [--json]

Target (issue 14): 100,000 historical leads in under 10 s on one core (``replay_s`` on a core of its own; on a
busy one ``replay_cpu_s``, see docs/replay.md).
"""

from __future__ import annotations

import argparse
import copy
import gc
import json
import os
import random
import resource
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import yaml

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from engine import build_config, make_leads  # bench/engine.py: the same config and leads as the engine's benchmark

from worker.config import RoutingConfig, parse_config
from worker.config.diff import diff_configs
from worker.replay import Comparison, read_history, replay, start_state
from worker.replay.run import Side, StartState, route_in_order
from worker.replay.synthetic import Arrival, make_history

ROOT = Path(__file__).resolve().parents[1]
WINDOW_START = datetime(2026, 10, 1, tzinfo=UTC)
WINDOW = timedelta(days=30)


def candidate_of(doc: dict) -> dict:
    """The edits a RevOps change would make: a member leaves the catch-all's pool, rule03's threshold moves from
    1000 to 500 employees, and rule11 and rule18 (both in EMEA) swap places."""
    new = copy.deepcopy(doc)
    new["pools"]["pool9"]["members"] = new["pools"]["pool9"]["members"][1:]
    rules = {rule["name"]: i for i, rule in enumerate(new["rules"])}
    assert new["rules"][rules["rule03"]]["when"]["employees"] == {"gte": 1000}
    new["rules"][rules["rule03"]]["when"]["employees"] = {"gte": 500}
    a, b = rules["rule11"], rules["rule18"]
    new["rules"][a], new["rules"][b] = new["rules"][b], new["rules"][a]
    return new


def arrivals(leads: list[dict], start: datetime, span: timedelta, rng: random.Random) -> list[Arrival]:
    step = span / max(1, len(leads))
    out = []
    for i, lead in enumerate(leads):
        at = start + step * i
        lead = dict(lead, created_at=(at - timedelta(seconds=rng.randrange(120))).isoformat())
        acked = at + timedelta(minutes=rng.randrange(5, 3 * 24 * 60)) if rng.random() < 0.85 else None
        out.append(Arrival(lead, at, acked))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--leads", type=int, default=100_000, help="leads first routed in the window")
    parser.add_argument("--warmup-leads", type=int, default=10_000, help="leads routed in the 3 days before it")
    parser.add_argument("--ledger", action="store_true", help="also time `leadroute replay` on a SQLite ledger")
    parser.add_argument("--json", action="store_true", help="print one JSON object instead of text")
    args = parser.parse_args()
    rng = random.Random(42)
    doc = build_config(rng)
    baseline = parse_config(yaml.safe_dump(doc, sort_keys=False), "baseline.yaml")
    candidate_doc = candidate_of(doc)
    candidate = parse_config(yaml.safe_dump(candidate_doc, sort_keys=False), "candidate.yaml")
    leads = make_leads(rng, args.warmup_leads + args.leads)
    warm = arrivals(leads[: args.warmup_leads], WINDOW_START - timedelta(days=3), timedelta(days=3), rng)
    window = arrivals(leads[args.warmup_leads:], WINDOW_START, WINDOW, rng)
    made = time.perf_counter()
    events = list(make_history(baseline, [*warm, *window]))
    made_s = time.perf_counter() - made
    gc.freeze()  # as `leadroute replay` does once the history is read,
    gc.disable()  # and it pauses the cycle collector while it groups and routes (they make no cycles)

    start, cpu = time.perf_counter(), time.process_time()
    history = read_history(events, WINDOW_START, WINDOW_START + WINDOW)
    grouped_s = time.perf_counter() - start
    state = start_state(history.earlier, WINDOW_START, baseline)
    state_s = time.perf_counter() - start - grouped_s
    comparison = Comparison(baseline, candidate)
    replay(history.leads, baseline, candidate, state, comparison.add)
    result = comparison.to_dict(diff_configs(baseline, candidate), {"source": "bench"})
    replay_s, replay_cpu_s = time.perf_counter() - start, time.process_time() - cpu
    gc.enable()
    engine_cpu_s = engine_alone(baseline, history.leads, state)
    figures = {
        "leads": comparison.leads,
        "warmup_leads": len(history.earlier),
        "events": len(events),
        "replay_s": round(replay_s, 3),
        "replay_cpu_s": round(replay_cpu_s, 3),
        "engine_alone_cpu_s": round(engine_cpu_s, 3),  # the same leads routed once, under the baseline alone, as replayed
        "replay_vs_engine": round(replay_cpu_s / engine_cpu_s, 2),
        "load_average": os.getloadavg()[0],
        "group_s": round(grouped_s, 3),
        "start_state_s": round(state_s, 3),
        "leads_per_s": round(comparison.leads / replay_s),
        "history_made_s": round(made_s, 3),
        "changed": {k: result["changes"][k] for k in ("leads", "owner", "rule", "pool")},
        "fidelity_owner_agreement": result["fidelity"]["owner_agreement"],
        "config_diff": [c["text"] for c in result["config_diff"]],
    }
    if args.ledger:
        figures.update(time_cli(events, doc, candidate_doc))
    if args.json:
        print(json.dumps(figures))
        return
    print(f"{figures['leads']:,} leads replayed (+{figures['warmup_leads']:,} warm-up) from {figures['events']:,} events")
    print(f"replay: {figures['replay_s']} s wall, {figures['replay_cpu_s']} s CPU ({figures['leads_per_s']:,} leads/s; "
          f"grouping {figures['group_s']} s, starting state {figures['start_state_s']} s); target < 10 s")
    print(f"the engine alone on the same leads, one config, as replayed: {figures['engine_alone_cpu_s']} s CPU; the replay costs "
          f"{figures['replay_vs_engine']}x that (two configs); load average {figures['load_average']:.1f}")
    print(f"changed: {figures['changed']}; baseline agrees with the record on {figures['fidelity_owner_agreement']:.2%}")
    for text in figures["config_diff"]:
        print(f"  - {text}")
    if args.ledger:
        print(f"leadroute replay on a SQLite ledger: {figures['cli_s']} s wall, {figures['cli_cpu_s']} s CPU end to end "
              f"({figures['cli_stderr']}; ledger written in {figures['ledger_write_s']} s)")


def engine_alone(config: RoutingConfig, leads: list, start: StartState) -> float:
    """CPU seconds to route ``leads`` once under ``config`` alone, from the same start and freeing loads at the same
    moments: the replay's floor is twice this (it routes every lead under two configs)."""
    side = Side.start(config, start)
    began = time.process_time()
    route_in_order(side, leads)
    return time.process_time() - began


def time_cli(events: list, doc: dict, candidate_doc: dict) -> dict:
    """Write the history to a SQLite ledger and time ``leadroute replay --format json`` on it in a fresh process."""
    from worker.ledger.ledger import Ledger  # SQLAlchemy loads for --ledger only

    with tempfile.TemporaryDirectory(prefix="leadroute-replay-bench-") as tmp:
        url = f"sqlite:///{Path(tmp) / 'ledger.sqlite3'}"
        ledger = Ledger.open(url)
        began = time.perf_counter()
        for i in range(0, len(events), 5000):
            ledger.write(events[i: i + 5000])
        write_s = time.perf_counter() - began
        ledger.close()
        base, cand = Path(tmp) / "baseline.yaml", Path(tmp) / "candidate.yaml"
        base.write_text(yaml.safe_dump(doc, sort_keys=False), encoding="utf-8")
        cand.write_text(yaml.safe_dump(candidate_doc, sort_keys=False), encoding="utf-8")
        command = [sys.executable, "-m", "worker.cli", "replay", "--config", str(cand), "--against", str(base),
                   "--since", WINDOW_START.isoformat(), "--until", (WINDOW_START + WINDOW).isoformat(),
                   "--warmup", "3d", "--ledger", url, "--format", "json"]
        began, children = time.perf_counter(), resource.getrusage(resource.RUSAGE_CHILDREN)
        done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, env={**os.environ, "LEADROUTE_PROGRESS": "0"},
                              check=False)
        cli_s = time.perf_counter() - began
        used = resource.getrusage(resource.RUSAGE_CHILDREN)
        cli_cpu_s = used.ru_utime + used.ru_stime - children.ru_utime - children.ru_stime
        if done.returncode != 0:
            raise SystemExit(f"replay failed ({done.returncode}): {done.stderr.strip()[-2000:]}")
        leads = json.loads(done.stdout)["replay"]["leads"]
    return {"cli_s": round(cli_s, 3), "cli_cpu_s": round(cli_cpu_s, 3), "cli_leads": leads, "ledger_write_s": round(write_s, 3),
            "cli_stderr": done.stderr.strip().splitlines()[-1:]}


if __name__ == "__main__":
    main()
