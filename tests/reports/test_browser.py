"""The HTML report opened in a real headless Chromium: every chart rendered, nothing failed.

Debian's ``/usr/bin/chromium``, driven by Playwright for Python (never Playwright's own
browser downloads). Without it the test fails and says what to install: a report nobody
has seen render is not tested.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from tests.reports.conftest import NOW, PERIOD, SETTINGS
from worker.ledger.ledger import Ledger
from worker.reports import build_report
from worker.reports.html import CHART_IDS, render

CHROMIUM = "/usr/bin/chromium"
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
        "--disable-sync", "--no-first-run"]


@pytest.mark.browser
@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_every_chart_renders_in_headless_chromium_without_errors(history: Ledger, tmp_path: Path) -> None:
    if not Path(CHROMIUM).is_file() and not shutil.which("chromium"):
        pytest.fail(f"{CHROMIUM} is missing: install Debian's chromium (apt-get install -y chromium); "
                    "the HTML report is tested in a real browser", pytrace=False)
    from playwright.sync_api import sync_playwright  # the browser driver loads for this test only

    page_file = tmp_path / "report.html"
    page_file.write_text(render(build_report(history, PERIOD, settings=SETTINGS, now=NOW)), encoding="utf-8")
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
            marks = {}
            for chart in CHART_IDS:
                svg = f"#chart-{chart} svg.main-svg"
                page.wait_for_selector(f"{svg} .trace", state="attached", timeout=15_000)
                # a bar or a marker is a path in a .point; a line is a path.js-line
                marks[chart] = page.eval_on_selector_all(f"{svg} .trace .point path, {svg} .trace path.js-line",
                                                         "nodes => nodes.length")
        finally:
            browser.close()
    assert problems == []
    assert all(n > 0 for n in marks.values()), marks
