"""The replay's HTML page opened in a real headless Chromium: both charts drawn, nothing failed, nothing fetched."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import pytest

from tests.replay.conftest import config_a, edited, replay_pairs, rule_index
from worker.config.diff import diff_configs
from worker.ledger.events import LedgerEvent
from worker.replay.render import CHART_IDS, render_html

CHROMIUM = "/usr/bin/chromium"
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
        "--disable-sync", "--no-first-run"]


def swap(doc: dict[str, Any]) -> None:
    i, j = rule_index(doc, "enterprise"), rule_index(doc, "dach")
    doc["rules"][i], doc["rules"][j] = doc["rules"][j], doc["rules"][i]


@pytest.mark.browser
def test_the_replay_page_renders_both_charts_in_headless_chromium(history_events: list[LedgerEvent], tmp_path: Path) -> None:
    if not Path(CHROMIUM).is_file() and not shutil.which("chromium"):
        pytest.fail(f"{CHROMIUM} is missing: install Debian's chromium (apt-get install -y chromium); "
                    "the replay's HTML page is tested in a real browser", pytrace=False)
    from playwright.sync_api import sync_playwright  # the browser driver loads for this test only

    baseline, (_, candidate) = config_a(), edited(swap)
    _, comparison = replay_pairs(history_events, baseline, candidate)
    meta = {"source": "the ledger", "since": None, "until": None, "baseline": {"file": "a.yaml", "version": "a"},
            "candidate": {"file": "b.yaml", "version": "b"}}
    page_file = tmp_path / "replay.html"
    page_file.write_text(render_html(comparison.to_dict(diff_configs(baseline, candidate), meta)), encoding="utf-8")
    problems: list[str] = []
    with sync_playwright() as driver:
        browser = driver.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        try:
            page = browser.new_page()
            page.on("console", lambda m: problems.append(f"console {m.type}: {m.text}") if m.type == "error" else None)
            page.on("pageerror", lambda e: problems.append(f"page error: {e}"))
            page.on("requestfailed", lambda r: problems.append(f"request failed: {r.url}"))
            page.route("**/*", lambda route: route.continue_() if route.request.url.startswith("file:")
                       else (problems.append(f"went online: {route.request.url}"), route.abort()))
            page.goto(page_file.as_uri())
            bars = {}
            for chart in CHART_IDS:
                svg = f"#chart-{chart} svg.main-svg"
                page.wait_for_selector(f"{svg} .trace", state="attached", timeout=15_000)
                bars[chart] = page.eval_on_selector_all(f"{svg} .trace .point path", "nodes => nodes.length")
            headline = page.inner_text("#headline")
        finally:
            browser.close()
    assert problems == []
    assert all(n > 0 for n in bars.values()), bars
    assert "of 42 leads" in headline
