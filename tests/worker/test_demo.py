"""`leadroute demo` starts everything, routes a stream of leads, and stops cleanly."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_the_demo_routes_a_stream_of_leads_and_stops_cleanly(redis_url: str, tmp_path: Path) -> None:
    env = dict(os.environ, REDIS_URL=redis_url, COLUMNS="160")
    result = subprocess.run(
        [sys.executable, "-m", "worker.cli", "demo", "--duration", "25", "--rate", "120"],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=180,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    summary = re.search(r"(\d+) leads created, (\d+) decisions made", result.stdout)
    assert summary, result.stdout[-2000:]
    created, decided = map(int, summary.groups())
    assert created >= 20
    assert decided >= created // 2  # the worker kept up with the stream (plus the seed's waiting leads)
    assert "Latest assignments" in result.stdout
    ledger = re.search(r"ledger: (\d+) events \((\d+) decisions and re-routes\) in (\S+)", result.stdout)
    assert ledger, result.stdout[-2000:]
    assert int(ledger.group(2)) == decided  # every decision made is in the demo's ledger, once
    assert f"DATABASE_URL=sqlite:///{ledger.group(3)} leadroute report --format html --out " in result.stdout
    assert re.search(r"raj .* ooo \(demo\)", result.stdout), "the demo marks raj away from its start, whatever the date"
