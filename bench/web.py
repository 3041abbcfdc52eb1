"""Benchmark the operator dashboard: page loads over a 100,000-decision ledger, live-update latency, web RSS.

    .venv/bin/python bench/web.py                 # figures for a reader
    .venv/bin/python bench/web.py --json          # one JSON object
    .venv/bin/python bench/web.py --leads 20000   # a smaller ledger

Sets up, in a temporary directory: a throwaway Redis, a SQLite ledger holding ``--leads`` leads'
histories (bench/report.py's synthetic history, moved to end yesterday so the 30-day window
holds all of it: about 3.8 events per lead, one first-routing ``decision`` each, plus SLA steps,
re-routes and outcomes), and the last 200 decisions in Redis as the worker leaves them. Then
starts the real ``leadroute web`` process (uvicorn) with the dashboard on, logs in over HTTP and:

* **page load**: each page fetched 1 + ``--runs`` times over loopback HTTP (server time plus
  transfer; the first is a warm-up and not counted), median and worst: the live page, a lead
  search by domain (a scan of the ledger's JSON), a lead's explain page, the config page (counts
  the ledger, reused for 30 s) and the reports page; and the live page's full load in headless
  Chromium (navigation start to the load event, scripts and styles included);
* **live-update latency**: with the live page open in Chromium, a decision is recorded in Redis
  as the worker records it once the owner is written, and the time until its row is on the
  screen is measured, ``--updates`` times (the page polls every second);
* **report charts**: the reports page fetches its charts from ``/ui/reports/data``: the first fetch
  builds the whole report over the ledger, later ones within a minute reuse it;
* **web RSS**: the web process's VmRSS and VmHWM from /proc/PID/status, before and after the
  30-day report has been built in it.

Targets (issue 16): page load < 500 ms with 100,000 decisions; live update < 2 s.
"""

from __future__ import annotations

import argparse
import dataclasses
import importlib.util
import json
import os
import re
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import requests

from worker.config import load_config
from worker.devtools.processes import Supervisor
from worker.domain.leads import DecisionKey
from worker.ledger.ledger import Ledger
from worker.store.connection import RedisServer, free_port, redis_server_binary
from worker.store.redis_store import RedisStore
from worker.web.ui.auth import hash_password

ROOT = Path(__file__).resolve().parents[1]
CHROMIUM = "/usr/bin/chromium"
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--no-first-run"]
PREFIX = "bench-web"
PASSWORD = "bench-password"
CONFIG = ROOT / "config" / "routing.yaml"
PAGE_TARGET_MS = 500.0
LIVE_TARGET_S = 2.0


def _history_module() -> Any:
    spec = importlib.util.spec_from_file_location("bench_report", ROOT / "bench" / "report.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def fill_ledger(ledger: Ledger, leads: int) -> tuple[int, int, str]:
    """bench/report.py's history, moved to end a day ago, with a company domain in each decision's facts."""
    history = _history_module()
    end = history.START + timedelta(seconds=leads * history.SPACING)
    shift = (datetime.now(UTC) - timedelta(days=1)) - end
    decisions = written = 0
    pending: list[Any] = []
    for n in range(leads):
        for event in history.lead_history(n):
            changes: dict[str, Any] = {"at": event.at + shift}
            if event.lead_created_at is not None:
                changes["lead_created_at"] = event.lead_created_at + shift
            if event.kind == "decision":
                decisions += 1
                data = dict(event.data)
                data["facts"] = {**(data.get("facts") or {}), "domain": f"company{n % 20_000}.com"}
                changes["data"] = data
            pending.append(dataclasses.replace(event, **changes))
        if len(pending) >= 5000:
            written += ledger.write(pending)
            pending = []
    written += ledger.write(pending)
    return written, decisions, "L000000007"


def seed_redis(store: RedisStore, count: int = 200) -> None:
    """The latest decisions as the worker leaves them in Redis (the live table reads these)."""
    for i in range(count):
        store.record(DecisionKey("salesforce", "Lead", f"00QSEED{i:07}", 0),
                     {"owner": "tom", "rule": "demo-requests-smb", "reason": "demo-requests-smb: -> pool smb (tom 1/40)",
                      "considered": ["tom", "raj", "kim"], "skipped": {"raj": "ooo"}})


def time_get(session: requests.Session, url: str, runs: int) -> dict[str, float]:
    """The first GET's milliseconds, and median and worst of ``runs`` more; fails on anything but 200."""
    times = []
    first = 0.0
    for i in range(runs + 1):
        began = time.perf_counter()
        response = session.get(url, timeout=120)
        elapsed = (time.perf_counter() - began) * 1000
        if response.status_code != 200:
            raise RuntimeError(f"GET {url}: {response.status_code} {response.text[:300]}")
        if i:
            times.append(elapsed)
        else:
            first = elapsed
    return {"first_ms": round(first, 1), "median_ms": round(statistics.median(times), 1), "max_ms": round(max(times), 1),
            "bytes": len(response.content)}


def rss(pid: int) -> dict[str, float]:
    """VmRSS and VmHWM of ``pid`` in MiB."""
    text = Path(f"/proc/{pid}/status").read_text()
    found = {k: int(v) / 1024 for k, v in re.findall(r"^(VmRSS|VmHWM):\s+(\d+) kB", text, re.M)}
    return {"rss_mib": round(found["VmRSS"], 1), "hwm_mib": round(found["VmHWM"], 1)}


def browser_figures(base: str, store: RedisStore, runs: int, updates: int) -> dict[str, Any]:
    """The live page's full load in Chromium, and owner-written -> row-shown latencies."""
    from playwright.sync_api import sync_playwright  # only when Chromium is there

    with sync_playwright() as driver:
        browser = driver.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        try:
            page = browser.new_context(viewport={"width": 1280, "height": 800}).new_page()
            page.goto(base + "/login")
            page.fill("input[name=username]", "bench")
            page.fill("input[name=password]", PASSWORD)
            page.click("button[type=submit]")
            page.wait_for_url(base + "/ui/")
            loads = []
            for i in range(runs + 1):
                page.goto(base + "/ui/", wait_until="load")
                timing = page.evaluate("JSON.stringify(performance.getEntriesByType('navigation')[0])")
                nav = json.loads(timing)
                if i:
                    loads.append(nav["loadEventEnd"] - nav["startTime"])
            latencies = []
            for i in range(updates):
                lead = f"00QLIVE{i:07}{int(time.time() * 1000) % 100000}"
                began = time.perf_counter()
                store.record(DecisionKey("salesforce", "Lead", lead, 0),
                             {"owner": "kim", "rule": "manhattan", "reason": "manhattan: -> kim", "considered": ["kim"],
                              "skipped": {}})
                page.wait_for_selector(f'#assignments tr[data-lead="{lead}"]', timeout=30_000)
                latencies.append(time.perf_counter() - began)
                time.sleep(0.37 * (i % 3))  # land at different points of the page's one-second poll
        finally:
            browser.close()
    return {"live_page_load_ms": {"median_ms": round(statistics.median(loads), 1), "max_ms": round(max(loads), 1)},
            "live_update_s": {"median": round(statistics.median(latencies), 3), "max": round(max(latencies), 3),
                              "samples": [round(x, 3) for x in latencies]}}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--leads", type=int, default=100_000, help="leads in the ledger (one first decision each)")
    parser.add_argument("--runs", type=int, default=5, help="timed fetches per page")
    parser.add_argument("--updates", type=int, default=10, help="live updates timed")
    parser.add_argument("--keep", type=Path, help="the SQLite ledger file to write, or to reuse when it exists "
                        "(written by an earlier run: its history ends the day before it was written)")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    args = parser.parse_args(argv)
    say = (lambda *a: None) if args.json else (lambda *a: print(*a, file=sys.stderr, flush=True))
    with tempfile.TemporaryDirectory(prefix="bench-web-") as tmp_name:
        tmp = Path(tmp_name)
        server = RedisServer(data_dir=tmp, port=free_port(), persistent=False, binary=redis_server_binary(prefer_path=True),
                             die_with_parent=True).start()
        processes = None
        try:
            path = args.keep.resolve() if args.keep else tmp / "ledger.sqlite3"
            url = f"sqlite:///{path}"
            ledger = Ledger.open(url)
            if args.keep and ledger.count():
                events, decisions = ledger.count(), ledger.count(kinds=["decision"])
                with ledger.engine.connect() as connection:  # the leads: one first routing each
                    args.leads = int(connection.exec_driver_sql(
                        "select count(*) from events where kind = 'decision' and epoch = 0").scalar_one())
                some_lead = "L000000007"
                say(f"reusing {path}: {events:,} events")
            else:
                say(f"writing {args.leads:,} leads' histories to the ledger ...")
                began = time.perf_counter()
                events, decisions, some_lead = fill_ledger(ledger, args.leads)
                say(f"  {events:,} events ({decisions:,} decision events) in {time.perf_counter() - began:.1f} s")
            ledger.close()
            store = RedisStore.connect(server.url, prefix=PREFIX)
            seed_redis(store)
            env = dict(os.environ)
            env.update({"REDIS_URL": server.url, "LEADROUTE_PREFIX": PREFIX, "DATABASE_URL": url,
                        "LEADROUTE_CONFIG": str(CONFIG), "PYTHONPATH": str(ROOT), "LEADROUTE_LOG_FORMAT": "json",
                        "LEADROUTE_UI_USERS": f"bench:operator:{hash_password(PASSWORD)}",
                        "LEADROUTE_UI_SECRET": "bench-secret-0123456789abcdef"})
            env.pop("LEADROUTE_BROKER_URL", None)
            processes = Supervisor(env, tmp, cwd=ROOT, stop_timeout=15)
            web = processes.web()
            processes.wait_ready("web", timeout=120)
            base = str(web.url)
            session = requests.Session()
            login = session.post(base + "/login", data={"username": "bench", "password": PASSWORD}, allow_redirects=False,
                                 timeout=30)
            if login.status_code != 303:
                raise RuntimeError(f"login: {login.status_code} {login.text[:300]}")
            crm = "salesforce"
            pages = {
                "live": "/ui/", "live_fragment": "/ui/live", "search_by_domain": "/ui/leads?q=someone@company7.com",
                "explain": f"/ui/leads/{crm}/{some_lead}", "config": "/ui/config", "reports_page": "/ui/reports?since=30d",
            }
            figures: dict[str, Any] = {"leads": args.leads, "ledger_events": events, "ledger_decisions": decisions,
                                       "pages": {}}
            for name, path in pages.items():
                say(f"timing {path} ...")
                figures["pages"][name] = time_get(session, base + path, args.runs)
            if Path(CHROMIUM).is_file():
                say("timing the live page and live updates in Chromium ...")
                figures.update(browser_figures(base, store, args.runs, args.updates))
            figures["web_memory"] = rss(web.pid)
            say("timing the report's charts (the whole report over the ledger; reused for a minute) ...")
            figures["report_charts_30d"] = time_get(session, base + "/ui/reports/data?since=30d", args.runs)
            figures["web_memory_after_report"] = rss(web.pid)
            load_config(CONFIG)
        finally:
            if processes is not None:
                processes.stop()
            server.stop()
    if args.json:
        print(json.dumps(figures))
        return 0
    print(f"ledger: {figures['ledger_events']:,} events, {figures['ledger_decisions']:,} decision events "
          f"({figures['leads']:,} leads; SQLite)")
    print(f"page load over loopback HTTP, first / median / worst of {args.runs} more (target < {PAGE_TARGET_MS:.0f} ms):")
    for name, got in figures["pages"].items():
        verdict = "ok" if got["median_ms"] < PAGE_TARGET_MS else "over target"
        print(f"  {name:18} {got['first_ms']:8.1f} / {got['median_ms']:8.1f} / {got['max_ms']:8.1f} ms  "
              f"({got['bytes']:,} bytes)  {verdict}")
    if "live_page_load_ms" in figures:
        live = figures["live_page_load_ms"]
        print(f"  {'live in Chromium':18} {live['median_ms']:8.1f} ms / {live['max_ms']:8.1f} ms  (navigation to load event)")
        update = figures["live_update_s"]
        print(f"live update, decision recorded -> row shown in Chromium (target < {LIVE_TARGET_S:.0f} s): "
              f"median {update['median']:.3f} s, worst {update['max']:.3f} s over {len(update['samples'])}")
    charts = figures["report_charts_30d"]
    print(f"report charts for 30 days (fetched by the reports page): first {charts['first_ms']:.0f} ms (builds the report), "
          f"then {charts['median_ms']:.1f} ms median (reused for a minute)")
    memory, after = figures["web_memory"], figures["web_memory_after_report"]
    print(f"web process memory: RSS {memory['rss_mib']:.1f} MiB (high-water {memory['hwm_mib']:.1f} MiB); after building "
          f"the 30-day report: RSS {after['rss_mib']:.1f} MiB (high-water {after['hwm_mib']:.1f} MiB)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
