"""The dashboard is closed unless configured, and then only as wide as each user's role.

Every request goes over real HTTP to the real app under uvicorn, against a real Redis.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest
import requests
from starlette.applications import Starlette

from tests.web.ui.conftest import HUBSPOT_SECRET, PASSWORDS, SECRET, Board
from worker.web.receivers import create_app, hubspot_v3_signature
from worker.web.ui.app import mount_ui, plotly_js
from worker.web.ui.auth import LoginLimiter, UiConfigError, UiSettings, parse_users, verify_password

ROOT = Path(__file__).resolve().parents[3]


def test_the_dashboard_is_off_unless_users_or_a_trusted_header_are_configured(serve: Callable[[Starlette], str]) -> None:
    assert UiSettings.from_env({}) is None
    app = create_app(enqueue=lambda *a: None, first_seen=lambda *a: True)
    mount_ui(app, None, None)  # type: ignore[arg-type]
    base = serve(app)
    response = requests.get(base + "/", timeout=10)
    assert response.status_code == 404
    assert "LEADROUTE_UI_USERS" in response.json()["error"]
    assert requests.get(base + "/ui/reps", timeout=10).status_code == 404


@pytest.mark.parametrize(("env", "says"), [
    ({"LEADROUTE_UI_USERS": "alice:operator:$argon2id$x"}, "LEADROUTE_UI_SECRET is unset"),
    ({"LEADROUTE_UI_USERS": "alice:operator:$argon2id$x", "LEADROUTE_UI_SECRET": "short"}, "shorter than 16"),
    ({"LEADROUTE_UI_TRUSTED_HEADER": "X-User", "LEADROUTE_UI_SECRET": SECRET}, "LEADROUTE_UI_TRUSTED_PROXIES is not"),
    ({"LEADROUTE_UI_USERS": "alice:admin:$argon2id$x", "LEADROUTE_UI_SECRET": SECRET}, "role viewer or operator"),
    ({"LEADROUTE_UI_USERS": "alice:viewer:plaintext", "LEADROUTE_UI_SECRET": SECRET}, "not an argon2 hash"),
])
def test_a_dashboard_turned_on_with_bad_settings_fails_saying_what_to_fix(env: dict[str, str], says: str) -> None:
    with pytest.raises(UiConfigError, match=says):
        UiSettings.from_env(env)


def test_hash_password_reads_stdin_and_prints_a_hash_the_users_variable_accepts() -> None:
    done = subprocess.run([sys.executable, "-m", "worker.cli", "ui", "hash-password"], input="s3cret pass\n",
                          capture_output=True, text=True, cwd=ROOT, timeout=60)
    assert done.returncode == 0, done.stderr
    hashed = done.stdout.strip()
    assert hashed.startswith("$argon2id$") and "," in hashed  # argon2's own parameters carry commas
    users = parse_users(f"alice:operator:{hashed},bob:viewer:{hashed}")
    assert [(u.name, u.role) for u in users.values()] == [("alice", "operator"), ("bob", "viewer")]
    assert verify_password(users["alice"].password_hash, "s3cret pass")
    assert not verify_password(users["alice"].password_hash, "s3cret pass ")


def test_add_user_writes_the_users_line_of_an_env_file_and_keeps_the_rest(tmp_path: Path) -> None:
    env_file = tmp_path / "web.env"
    env_file.write_text("LEADROUTE_UI_SECRET=abc\n")
    for name, role in (("alice", "operator"), ("bob", "viewer"), ("alice", "viewer")):
        done = subprocess.run([sys.executable, "-m", "worker.cli", "ui", "add-user", name, "--role", role,
                               "--env-file", str(env_file)], input=f"{name}-pw\n", capture_output=True, text=True,
                              cwd=ROOT, timeout=60)
        assert done.returncode == 0, done.stderr
    lines = env_file.read_text().splitlines()
    assert lines[0] == "LEADROUTE_UI_SECRET=abc"
    assert lines[1].startswith("LEADROUTE_UI_USERS='") and len(lines) == 2
    users = parse_users(lines[1].split("=", 1)[1].strip("'"))
    assert {n: u.role for n, u in users.items()} == {"alice": "viewer", "bob": "viewer"}
    assert verify_password(users["alice"].password_hash, "alice-pw")


def test_without_a_session_root_answers_401_or_redirects_a_browser_to_login(dashboard: Callable[..., Board]) -> None:
    board = dashboard()
    assert requests.get(board.url + "/", headers={"Accept": "application/json"}, timeout=10).status_code == 401
    browser = requests.get(board.url + "/", headers={"Accept": "text/html"}, allow_redirects=False, timeout=10)
    assert browser.status_code == 303 and browser.headers["location"].startswith("/login")
    for path in ("/ui/", "/ui/live", "/ui/reps", "/ui/leads?q=x", "/ui/reports", "/ui/config", "/ui/live.json"):
        assert requests.get(board.url + path, timeout=10).status_code == 401, path
    assert requests.post(board.url + "/ui/reps/tom/ooo", data={"csrf": "x"}, timeout=10).status_code == 401


def test_login_sets_a_signed_httponly_samesite_cookie_and_opens_the_live_page(dashboard: Callable[..., Board]) -> None:
    board = dashboard()
    board.record("00QLIVE0000001", owner="tom")
    response = requests.post(board.url + "/login", data={"username": "alice", "password": PASSWORDS["alice"]},
                             allow_redirects=False, timeout=10)
    assert response.status_code == 303 and response.headers["location"] == "/ui/"
    cookie = response.headers["set-cookie"]
    assert "HttpOnly" in cookie and "SameSite=strict" in cookie and "Path=/" in cookie
    name, _, value = cookie.split(";")[0].partition("=")
    page = requests.get(board.url + "/ui/", cookies={name: value}, timeout=10)
    assert page.status_code == 200
    assert "00QLIVE0000001" in page.text and "alice (operator)" in page.text
    assert "frame-ancestors 'none'" in page.headers["content-security-policy"]
    tampered = value[:-2] + ("AA" if not value.endswith("AA") else "BB")
    assert requests.get(board.url + "/ui/", cookies={name: tampered}, timeout=10).status_code == 401


def test_a_wrong_password_is_refused_and_logins_are_rate_limited_per_user_and_address(
        dashboard: Callable[..., Board]) -> None:
    board = dashboard()
    for _ in range(5):
        wrong = requests.post(board.url + "/login", data={"username": "alice", "password": "guess"}, timeout=10)
        assert wrong.status_code == 401
    blocked = requests.post(board.url + "/login", data={"username": "alice", "password": PASSWORDS["alice"]},
                            allow_redirects=False, timeout=10)
    assert blocked.status_code == 429 and int(blocked.headers["retry-after"]) > 0
    board.login("bob")  # another user from the same address is not locked out by alice's failures


def test_the_login_limiter_lets_a_user_try_again_once_the_window_has_passed() -> None:
    now = [1000.0]
    limiter = LoginLimiter(per_user=3, per_address=10, window=60, clock=lambda: now[0])
    for _ in range(3):
        limiter.failed("alice", "10.0.0.1")
    assert limiter.retry_after("alice", "10.0.0.1") == pytest.approx(60)
    assert limiter.retry_after("alice", "10.0.0.2") == 0
    now[0] += 61
    assert limiter.retry_after("alice", "10.0.0.1") == 0


def test_an_action_without_the_sessions_csrf_token_is_refused_and_changes_nothing(dashboard: Callable[..., Board]) -> None:
    board = dashboard()
    rep = next(iter(board.rt.config.reps))
    alice = board.login("alice")
    for data in ({}, {"csrf": "0" * 64}):
        refused = alice.post(f"{board.url}/ui/reps/{rep}/ooo", data=data, allow_redirects=False, timeout=10)
        assert refused.status_code == 403 and "CSRF" in refused.text
    assert board.rt.store.availability() == {}
    token = board.csrf(alice)
    cross_site = alice.post(f"{board.url}/ui/reps/{rep}/ooo", data={"csrf": token}, allow_redirects=False,
                            headers={"Origin": "http://evil.example"}, timeout=10)
    assert cross_site.status_code == 403 and board.rt.store.availability() == {}
    done = alice.post(f"{board.url}/ui/reps/{rep}/ooo", data={"csrf": token, "until": "2099-01-02", "reason": "holiday"},
                      allow_redirects=False, timeout=10)
    assert done.status_code == 303, done.text
    override = board.rt.store.availability()[rep]
    assert (override.available, override.reason, override.set_by) == (False, "holiday", "alice (dashboard)")
    assert override.until is not None and override.until.year == 2099


def test_a_viewer_sees_everything_but_cannot_act(dashboard: Callable[..., Board]) -> None:
    board = dashboard()
    board.record("00QVIEW0000001")
    rep = next(iter(board.rt.config.reps))
    bob = board.login("bob")
    reps_page = bob.get(board.url + "/ui/reps", timeout=10)
    assert reps_page.status_code == 200 and rep in reps_page.text
    assert "/ooo" not in reps_page.text  # no action forms for a viewer
    token = board.csrf(bob, "/ui/")  # the logout form carries the viewer's token
    for path, data in ((f"/ui/reps/{rep}/ooo", {"csrf": token}),
                       ("/ui/leads/salesforce/00QVIEW0000001/reroute", {"csrf": token, "reason": "mine"})):
        refused = bob.post(board.url + path, data=data, allow_redirects=False, timeout=10)
        assert refused.status_code == 403 and "only operators" in refused.text
    assert board.rt.store.availability() == {} and board.enqueue.reroutes == []


def test_an_operator_reroute_needs_a_reason_and_is_recorded_with_who_asked(dashboard: Callable[..., Board]) -> None:
    board = dashboard()
    board.record("00QMOVE0000001", owner="tom")
    alice = board.login("alice")
    token = board.csrf(alice)
    url = board.url + "/ui/leads/salesforce/00QMOVE0000001/reroute"
    no_reason = alice.post(url, data={"csrf": token, "target": "rep:tom"}, allow_redirects=False, timeout=10)
    assert no_reason.status_code == 400 and board.enqueue.reroutes == []
    pool = next(iter(board.rt.config.pools))
    done = alice.post(url, data={"csrf": token, "target": f"pool:{pool}", "reason": "wrong territory"},
                      allow_redirects=False, timeout=10)
    assert done.status_code == 303, done.text
    [asked] = board.enqueue.reroutes
    assert asked == {"crm": "salesforce", "lead_id": "00QMOVE0000001", "to_rep": None, "pool": pool,
                     "why": "wrong territory", "requested_by": "alice (dashboard)", "epoch": 1}


def test_one_prefix_never_shows_another_prefixs_data_nor_accepts_its_sessions(
        dashboard: Callable[..., Board], redis_prefix: str) -> None:
    first, second = dashboard(), dashboard(prefix=redis_prefix + "-other")
    first.record("00QFIRST000001", owner="tom")
    second.record("00QSECOND00001", owner="tom")
    alice_first = first.login("alice")
    page = alice_first.get(first.url + "/ui/", timeout=10).text
    assert "00QFIRST000001" in page and "00QSECOND00001" not in page
    alice_second = second.login("alice")
    page = alice_second.get(second.url + "/ui/", timeout=10).text
    assert "00QSECOND00001" in page and "00QFIRST000001" not in page
    found = alice_second.get(second.url + "/ui/leads?q=00QFIRST000001", timeout=10)
    assert "00QFIRST000001</a>" not in found.text and "no lead matches" in found.text
    # the same users and secret, but a session of the first configuration is worthless under the second
    for cookie in alice_first.cookies:
        assert requests.get(second.url + "/ui/", cookies={cookie.name: cookie.value}, timeout=10).status_code == 401
    assert {c.name for c in alice_first.cookies} != {c.name for c in alice_second.cookies}


def test_a_trusted_proxys_header_is_believed_only_from_the_configured_addresses(dashboard: Callable[..., Board]) -> None:
    header = {"X-Forwarded-User": "carol"}
    trusted = dashboard(LEADROUTE_UI_TRUSTED_HEADER="X-Forwarded-User", LEADROUTE_UI_TRUSTED_PROXIES="127.0.0.1",
                        LEADROUTE_UI_TRUSTED_OPERATORS="carol")
    page = requests.get(trusted.url + "/ui/", headers=header, timeout=10)
    assert page.status_code == 200 and "carol (operator)" in page.text
    viewer = requests.get(trusted.url + "/ui/", headers={"X-Forwarded-User": "dave"}, timeout=10)
    assert "dave (viewer)" in viewer.text
    elsewhere = dashboard(LEADROUTE_UI_TRUSTED_HEADER="X-Forwarded-User", LEADROUTE_UI_TRUSTED_PROXIES="10.9.9.9")
    assert requests.get(elsewhere.url + "/ui/", headers=header, timeout=10).status_code == 401


def test_webhooks_stay_outside_the_login_authenticated_by_their_signatures(dashboard: Callable[..., Board]) -> None:
    board = dashboard()
    url = board.url + "/webhooks/hubspot"
    body = json.dumps([{"eventId": 7, "subscriptionId": 1, "portalId": 62515, "appId": 1, "occurredAt": 1,
                        "subscriptionType": "contact.creation", "attemptNumber": 0, "objectId": 4242}]).encode()
    ts = str(int(time.time() * 1000))
    signed = {"Content-Type": "application/json", "X-HubSpot-Request-Timestamp": ts,
              "X-HubSpot-Signature-v3": hubspot_v3_signature(HUBSPOT_SECRET, "POST", url, body, ts)}
    accepted = requests.post(url, data=body, headers=signed, allow_redirects=False, timeout=10)
    assert accepted.status_code == 200, accepted.text
    assert board.calls == [("hubspot", ["4242"], "webhook")]
    forged = requests.post(url, data=body, headers={**signed, "X-HubSpot-Signature-v3": "AAAA"}, allow_redirects=False,
                           timeout=10)
    assert forged.status_code == 401 and board.calls == [("hubspot", ["4242"], "webhook")]
    assert requests.get(board.url + "/healthz", timeout=10).status_code == 200


def test_plotly_js_is_served_by_the_web_process_from_the_plotly_package(dashboard: Callable[..., Board]) -> None:
    board = dashboard()
    served = requests.get(board.url + "/ui/static/plotly.min.js", timeout=30)
    assert served.status_code == 200 and served.content == plotly_js().read_bytes()
    assert requests.get(board.url + "/ui/static/../auth.py", timeout=10).status_code == 404
    assert SECRET not in requests.get(board.url + "/ui/static/ui.js", timeout=10).text


def test_behind_a_proxy_that_rewrites_host_the_public_urls_origin_is_this_site(dashboard: Callable[..., Board]) -> None:
    board = dashboard(LEADROUTE_PUBLIC_URL="https://leads.example.com")
    rep = next(iter(board.rt.config.reps))
    alice = board.login("alice")
    token = board.csrf(alice)
    elsewhere = alice.post(f"{board.url}/ui/reps/{rep}/ooo", data={"csrf": token}, allow_redirects=False,
                           headers={"Origin": "https://leads.example.com.evil.example"}, timeout=10)
    assert elsewhere.status_code == 403
    public = alice.post(f"{board.url}/ui/reps/{rep}/ooo", data={"csrf": token}, allow_redirects=False,
                        headers={"Origin": "https://leads.example.com"}, timeout=10)
    assert public.status_code == 303 and rep in board.rt.store.availability()
