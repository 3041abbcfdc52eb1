"""The dashboard's actions are the CLI's: one shared code path, recorded in the ledger with who acted."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from tests.web.ui.conftest import Board
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
