"""The dashboard's actions are the CLI's: one shared code path, recorded in the ledger with who acted."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

from tests.web.ui.conftest import Board
from worker.ledger.events import LedgerEvent
from worker.ledger.ledger import Ledger
from worker.steps import manual
from worker.steps.ledger import flush
from worker.web.ui.auth import Sessions, UiSettings


def test_marking_a_rep_away_and_back_leaves_ledger_events_naming_who_did_it(
        dashboard: Callable[..., Board], tmp_path: Path) -> None:
    board = dashboard()
    rep = next(iter(board.rt.config.reps))
    alice = board.login("alice")
    token = board.csrf(alice)
    away = alice.post(f"{board.url}/ui/reps/{rep}/ooo", data={"csrf": token, "until": "2099-03-04", "reason": "parental"},
                      allow_redirects=False, timeout=10)
    assert away.status_code == 303, away.text
    page = alice.get(board.url + "/ui/reps", timeout=10).text
    assert "by alice (dashboard)" in page and "/back" in page
    back = alice.post(f"{board.url}/ui/reps/{rep}/back", data={"csrf": token}, allow_redirects=False, timeout=10)
    assert back.status_code == 303 and board.rt.store.availability() == {}
    ledger = Ledger.open(f"sqlite:///{tmp_path / 'ledger.sqlite3'}")
    try:
        flush(board.rt.store, ledger, config=board.rt.config)
        history = ledger.for_lead("-", rep, object="rep")
    finally:
        ledger.close()
    assert [(e.kind, e.actor) for e in history] == [("rep.away", "alice (dashboard)"), ("rep.back", "alice (dashboard)")]
    assert history[0].data == {"reason": "parental", "until": history[0].data["until"]}
    assert history[0].data["until"].startswith("2099-03-04T00:00:00")


def test_an_unknown_rep_or_a_bad_date_is_refused_with_the_reason_and_changes_nothing(
        dashboard: Callable[..., Board]) -> None:
    board = dashboard()
    alice = board.login("alice")
    token = board.csrf(alice)
    unknown = alice.post(f"{board.url}/ui/reps/nobody/ooo", data={"csrf": token}, allow_redirects=False, timeout=10)
    assert unknown.status_code == 400 and "unknown rep" in unknown.text
    rep = next(iter(board.rt.config.reps))
    bad = alice.post(f"{board.url}/ui/reps/{rep}/ooo", data={"csrf": token, "until": "next tuesday"},
                     allow_redirects=False, timeout=10)
    assert bad.status_code == 400 and "not a date" in bad.text
    assert board.rt.store.availability() == {}


def test_the_cli_and_the_dashboard_share_one_reroute_check(dashboard: Callable[..., Board]) -> None:
    board = dashboard()
    for kwargs, says in (({"to": "tom", "pool": "smb"}, "not both"), ({"to": "nobody", "pool": None}, "unknown rep"),
                         ({"to": None, "pool": "nowhere"}, "unknown pool")):
        try:
            manual.reroute(board.rt, "salesforce", "00Q1", why="x", actor="t", **kwargs)
        except manual.ManualError as exc:
            assert says in str(exc)
        else:
            raise AssertionError(f"{kwargs} was accepted")
    assert board.enqueue.reroutes == []


def test_the_demo_makes_a_one_time_operator_login_the_dashboard_accepts() -> None:
    from worker.devtools.demo import demo_login  # the demo module loads the sandbox; only this test needs it

    first, second = demo_login(), demo_login()
    assert first.password != second.password and first.env["LEADROUTE_UI_SECRET"] != second.env["LEADROUTE_UI_SECRET"]
    settings = UiSettings.from_env({**first.env, "LEADROUTE_PREFIX": "leadroute-demo"})
    assert settings is not None
    user = Sessions(settings).login("demo", first.password)
    assert user is not None and user.role == "operator"
    assert Sessions(settings).login("demo", second.password) is None


def test_the_reports_page_takes_only_its_windows_and_says_when_there_is_no_ledger_yet(
        dashboard: Callable[..., Board]) -> None:
    board = dashboard()
    bob = board.login("bob")
    page = bob.get(board.url + "/ui/reports?since=7d", timeout=10)
    assert page.status_code == 200 and "There is no ledger yet" in page.text
    assert bob.get(board.url + "/ui/reports?since=2y", timeout=10).status_code == 400
    assert bob.get(board.url + "/ui/reports/data?since=7d", timeout=30).json() == {"charts": {}, "leads": None}
    assert bob.get(board.url + "/ui/reports/data?since=1d", timeout=10).status_code == 400
    assert bob.get(board.url + "/ui/exports/everything.csv?since=7d", timeout=10).status_code == 400


def test_a_lead_is_found_by_its_id_by_an_address_at_its_domain_or_by_the_domain(dashboard: Callable[..., Board]) -> None:
    board = dashboard()
    board.record("00QFIND0000001", owner="tom", facts={"domain": "acme-widgets.com"})
    board.record("00QOTHER000001", owner="raj", facts={"domain": "globex.com"})
    bob = board.login("bob")
    for query in ("someone@acme-widgets.com", "acme-widgets.com", "www.acme-widgets.com"):
        page = bob.get(board.url + "/ui/leads", params={"q": query}, timeout=10).text
        assert "00QFIND0000001</a>" in page and "00QOTHER000001" not in page, query
    by_id = bob.get(board.url + "/ui/leads", params={"q": "00QFIND0000001"}, allow_redirects=False, timeout=10)
    assert by_id.status_code == 303 and by_id.headers["location"] == "/ui/leads/salesforce/00QFIND0000001"
    story = bob.get(board.url + by_id.headers["location"], timeout=10).text
    assert "smb: -&gt; tom" in story  # the decision (escaped), from the outbox before the ledger task moves it


def test_search_and_explain_read_the_ledger_for_leads_redis_no_longer_holds(
        dashboard: Callable[..., Board], tmp_path: Path) -> None:
    ledger = Ledger.open(f"sqlite:///{tmp_path / 'no-ledger.sqlite3'}")  # the file the dashboard fixture points at
    at = datetime(2026, 3, 2, 9, 30, tzinfo=UTC)
    ledger.write([LedgerEvent(
        event_id="decision/salesforce/Lead/00QOLD00000001/0", kind="decision", crm="salesforce", object="Lead",
        lead_id="00QOLD00000001", epoch=0, at=at, owner="raj", rule="demo-requests-smb", config_version="abc123",
        data={"reason": "demo-requests-smb: -> pool smb (raj 2)", "considered": ["tom", "raj"], "skipped": {"tom": "ooo"},
              "facts": {"domain": "old_school.com"}})])
    ledger.close()
    board = dashboard()
    bob = board.login("bob")
    for query in ("ceo@old_school.com", "old_school.com"):
        page = bob.get(board.url + "/ui/leads", params={"q": query}, timeout=30).text
        assert "00QOLD00000001</a>" in page, query
    assert "00QOLD00000001</a>" not in bob.get(board.url + "/ui/leads", params={"q": "oldxschool.com"}, timeout=30).text
    story = bob.get(board.url + "/ui/leads/salesforce/00QOLD00000001", timeout=30).text
    assert "from the ledger" in story and 'class="skipped"><td>tom</td><td>ooo</td>' in story


def test_the_reports_page_names_the_windows_and_exports_the_report_code_serves() -> None:
    from worker.cli.export import DATASETS  # the export's datasets, loaded for this check
    from worker.web.ui import app, reports  # the report's module loads numpy and Plotly

    assert tuple(reports.WINDOWS) == app.REPORT_WINDOWS and tuple(DATASETS) == app.EXPORTS
