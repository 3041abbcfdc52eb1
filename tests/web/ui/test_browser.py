"""The dashboard in a real headless Chromium, against a real worker, beat and web process routing
leads from the sandbox CRM (one stack for the module: starting it is the expensive part).

Debian's ``/usr/bin/chromium`` driven by Playwright for Python (never Playwright's own browser
downloads). Screenshots of the main views at 1280x800 and at a phone's width go to the test's
temp directory, or to ``LEADROUTE_SCREENSHOTS`` when set (``docs/img`` for the README's).
"""

from __future__ import annotations

import os
import shutil
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from uuid import uuid4

import pytest

from tests.web.ui.conftest import PASSWORDS, SECRET
from tests.worker.test_e2e import Sink, Stack

CHROMIUM = "/usr/bin/chromium"
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
        "--disable-sync", "--no-first-run"]
SIZES = {"desktop": {"width": 1280, "height": 800}, "mobile": {"width": 390, "height": 844}}
ROUTED = 60_000  # ms a lead may take from creation in the sandbox to its row on the page (beat polls every second)
BUILT = "[data-charts][data-state=done]"  # the reports page's script has fetched and drawn the charts
PAGE = 90_000  # ms a page may take on a loaded machine
REPORT = 240_000  # ms the report's charts may take: the first build imports numpy and Plotly and reads the ledger
pytestmark = pytest.mark.browser


def demo_request(n: int) -> dict[str, Any]:
    """A lead the config sends to the smb pool (tom, raj, kim in strict rotation)."""
    return {"first_name": "Ada", "last_name": f"Browser {n}", "email": f"ada{n}@smallco{n}.com",
            "company": f"Smallco {n}", "country": "US", "state": "Ohio", "postcode": "43004", "employees": "10",
            "industry": "Software", "lead_source": "Demo Request", "score": "50", "title": "Founder"}


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory, sandbox: Any, redis_url: str, users_env: str) -> Iterator[Stack]:
    sandbox.admin.reset()
    sandbox.admin.clear_faults()
    sandbox.admin.set_limits(hubspot={"search_per_second": 1000, "ten_second_limit": 100_000})
    sink = Sink()
    tmp = tmp_path_factory.mktemp("dashboard")
    s = Stack(tmp, sandbox, redis_url, f"t-ui-{uuid4().hex[:8]}", sink)
    s.env.update({"LEADROUTE_UI_USERS": users_env, "LEADROUTE_UI_SECRET": SECRET})
    s.start("worker", "beat", "web")
    try:
        yield s
    finally:
        s.stop()
        sink.server.shutdown()


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    if not Path(CHROMIUM).is_file():
        pytest.fail(f"{CHROMIUM} is missing: install Debian's chromium (apt-get install -y chromium); the dashboard is "
                    "tested in a real browser", pytrace=False)
    from playwright.sync_api import sync_playwright  # the browser driver loads for these tests only

    with sync_playwright() as driver:
        chromium = driver.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        try:
            yield chromium
        finally:
            chromium.close()


class Tab:
    """A logged-in page that records every console error, page error, failed request and off-site request."""

    def __init__(self, browser: Any, base: str, user: str, size: str = "desktop") -> None:
        self.base = base
        self.problems: list[str] = []
        self.context = browser.new_context(viewport=SIZES[size])
        self.page = page = self.context.new_page()
        page.on("console", lambda m: self.problems.append(f"console {m.type}: {m.text}") if m.type == "error" else None)
        page.on("pageerror", lambda e: self.problems.append(f"page error: {e}"))
        # a refresh still in flight when the page is left is aborted by the browser: not a failure
        page.on("requestfailed", lambda r: None if r.failure == "net::ERR_ABORTED"
                else self.problems.append(f"request failed: {r.url} {r.failure}"))
        page.route("**/*", lambda route: route.continue_() if route.request.url.startswith((base, "data:"))
                   else (self.problems.append(f"went off-site: {route.request.url}"), route.abort()))
        page.goto(base + "/")
        assert page.url.startswith(base + "/login"), page.url
        page.fill("input[name=username]", user)
        page.fill("input[name=password]", PASSWORDS[user])
        page.click("button[type=submit]")
        page.wait_for_url(base + "/ui/")

    def close(self) -> None:
        self.context.close()


def screenshot(page: Any, name: str, tmp_path: Path) -> Path:
    target = Path(os.environ.get("LEADROUTE_SCREENSHOTS") or tmp_path)
    target.mkdir(parents=True, exist_ok=True)
    path = target / f"{name}.png"
    page.screenshot(path=str(path), full_page=False)
    return path


def test_login_then_the_live_table_shows_a_lead_routed_by_the_worker(stack: Stack, browser: Any) -> None:
    tab = Tab(browser, stack.url("web"), "alice")
    try:
        assert tab.page.inner_text("#user") == "alice (operator)"
        [lead_id] = stack.feeder.load("salesforce", [demo_request(1)])
        started = time.monotonic()
        row = tab.page.wait_for_selector(f'#assignments tr[data-lead="{lead_id}"]', timeout=ROUTED)
        assert row is not None
        assert tab.page.inner_text(f'#assignments tr[data-lead="{lead_id}"] .rule') == "demo-requests-smb"
        assert time.monotonic() - started < ROUTED / 1000
        assert tab.page.inner_text(f'#assignments tr[data-lead="{lead_id}"] .owner') in ("tom", "raj", "kim")
        assert tab.problems == []
    finally:
        tab.close()


def test_an_operator_marks_a_rep_out_of_office_and_the_next_lead_skips_them_as_explain_shows(
        stack: Stack, browser: Any, tmp_path: Path) -> None:
    tab = Tab(browser, stack.url("web"), "alice")
    page = tab.page
    try:
        page.goto(stack.url("web") + "/ui/reps")
        page.fill("#rep-tom input[name=reason]", "vacation")
        page.click("#rep-tom form.ooo button")
        page.wait_for_selector("p.notice")
        assert "tom away" in page.inner_text("p.notice")
        assert "vacation" in page.inner_text("#rep-tom .status")
        ids = stack.feeder.load("salesforce", [demo_request(n) for n in (2, 3, 4)])
        page.goto(stack.url("web") + "/ui/")
        for lead_id in ids:
            page.wait_for_selector(f'#assignments tr[data-lead="{lead_id}"]', timeout=ROUTED)
        owners = {page.inner_text(f'#assignments tr[data-lead="{i}"] .owner') for i in ids}
        assert owners and "tom" not in owners and owners <= {"raj", "kim"}
        page.goto(f"{stack.url('web')}/ui/leads/salesforce/{ids[0]}")
        page.wait_for_selector("table.candidates")
        skipped = page.inner_text("table.candidates tr.skipped")
        assert "tom" in skipped and "vacation" in skipped, skipped  # the override's reason is why
        assert page.inner_text("article.decision .owner") in ("raj", "kim")
        screenshot(page, "dashboard-explain", tmp_path)
        page.goto(stack.url("web") + "/ui/reps")
        page.click("#rep-tom form button")  # back
        page.wait_for_selector("p.notice")
        assert "tom back" in page.inner_text("p.notice")
        assert tab.problems == []
    finally:
        tab.close()


def test_a_viewer_cannot_act_and_a_post_without_the_csrf_token_is_refused(stack: Stack, browser: Any) -> None:
    base = stack.url("web")
    viewer = Tab(browser, base, "bob")
    operator = Tab(browser, base, "alice")
    try:
        viewer.page.goto(base + "/ui/reps")
        assert viewer.page.query_selector_all("form.ooo") == []
        post = ("([path, token]) => fetch(path, {method: 'POST', body: new URLSearchParams(token ? {csrf: token} : {})})"
                ".then(r => r.status)")
        token = viewer.page.get_attribute("form[action='/logout'] input[name=csrf]", "value")
        assert viewer.page.evaluate(post, ["/ui/reps/kim/ooo", token]) == 403
        operator.page.goto(base + "/ui/reps")
        assert operator.page.evaluate(post, ["/ui/reps/kim/ooo", ""]) == 403
        operator.page.reload()
        assert "kim" in operator.page.inner_text("#rep-kim") and operator.page.query_selector("#rep-kim form.ooo")
    finally:
        viewer.close()
        operator.close()


def test_the_reports_charts_render_with_marks_and_no_console_errors(stack: Stack, browser: Any) -> None:
    base = stack.url("web")
    tab = Tab(browser, base, "alice")
    page = tab.page
    try:
        deadline = time.monotonic() + 300
        while True:  # the ledger task moves decisions to SQL every second
            page.goto(base + "/ui/reports?since=24h", timeout=PAGE)
            page.wait_for_selector(BUILT, state="attached", timeout=REPORT)  # the page fetches its charts once shown
            marks = page.eval_on_selector_all(".chart svg.main-svg .trace .point path", "nodes => nodes.length")
            if marks:
                break
            assert time.monotonic() < deadline, page.content()[:2000]
            time.sleep(1)
        for chart in ("speed", "compliance", "load", "conversion"):
            page.wait_for_selector(f"#chart-{chart} svg.main-svg", state="attached", timeout=PAGE)
        for chart in ("speed", "load"):
            count = page.eval_on_selector_all(f"#chart-{chart} svg.main-svg .trace .point path", "nodes => nodes.length")
            assert count > 0, chart
        links = [a.get_attribute("href") for a in page.query_selector_all("main a[href*='since=24h']")]
        assert "/ui/reports/report.html?since=24h" in links and "/ui/exports/decisions.csv?since=24h" in links
        csv_text = page.evaluate("fetch('/ui/exports/decisions.csv?since=24h').then(r => r.text())")
        assert csv_text.splitlines()[0].startswith("event_id,kind,") and len(csv_text.splitlines()) > 1
        assert tab.problems == []
    finally:
        tab.close()


@pytest.mark.parametrize("size", list(SIZES))
def test_the_main_views_fit_the_screen_and_are_captured(stack: Stack, browser: Any, size: str, tmp_path: Path) -> None:
    base = stack.url("web")
    tab = Tab(browser, base, "alice", size)
    page = tab.page
    try:
        found = ""
        for view, path, ready in (("live", "/ui/", "#assignments"), ("reps", "/ui/reps", "#reps"),
                                  ("leads", "/ui/leads?q=smallco2.com", "#results"),
                                  ("reports", "/ui/reports?since=24h", "main"), ("config", "/ui/config", "#version"),
                                  ("explain", None, "table.candidates")):
            path = path or found  # the explain page of the first lead the search found
            page.goto(base + path, timeout=PAGE)
            page.wait_for_selector(ready)
            if view == "reports":
                page.wait_for_selector(BUILT, state="attached", timeout=REPORT)
                page.wait_for_selector("#chart-speed svg.main-svg", state="attached", timeout=PAGE)
            if view == "leads":  # search reads the ledger, which takes a decision from the outbox a moment after routing
                deadline = time.monotonic() + PAGE / 1000
                while page.query_selector("#results a") is None and time.monotonic() < deadline:
                    page.wait_for_timeout(500)
                    page.goto(base + path, timeout=PAGE)
                found = page.get_attribute("#results a", "href") or ""
            overflow = page.evaluate("document.documentElement.scrollWidth - window.innerWidth")
            assert overflow <= 1, f"{view} is {overflow}px wider than a {size} screen"
            assert screenshot(page, f"dashboard-{view}-{size}", tmp_path).stat().st_size > 5_000
        assert tab.problems == []
    finally:
        tab.close()


def test_without_chromium_the_suite_says_what_to_install() -> None:
    assert Path(CHROMIUM).is_file() or shutil.which("chromium") is None
