"""A dashboard under a real uvicorn server, on the test's own Redis prefix, with two users.

``users`` (session)
    ``{"alice": "alice-pw", "bob": "bob-pw"}``: alice is an operator, bob a viewer; the
    ``LEADROUTE_UI_USERS`` value with their argon2 hashes is ``users_env``.
``dashboard`` (function, factory)
    ``dashboard(prefix=None, **env) -> Board``: the web app (webhook receivers, ``/healthz`` and the
    dashboard) served on a free port, its runtime on ``prefix`` (default: the test's), the
    dashboard's settings read from ``env`` on top of the users and a secret. Keywords: ``config`` (default: the
    test routing config), ``shadow`` (a :class:`Shadow` candidate) and ``ledger_url`` (default: a ledger that does
    not exist).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import pytest
import redis
import requests

from tests.worker.conftest import RecordingEnqueuer, routing_test_config
from worker.app.runtime import Runtime
from worker.config import RoutingConfig
from worker.domain.leads import DecisionKey
from worker.steps.shadow import Shadow
from worker.store.pending import PendingSet
from worker.store.redis_store import RedisStore
from worker.web.receivers import WebSettings, create_app
from worker.web.ui.app import health_from, mount_ui
from worker.web.ui.auth import UiSettings, hash_password

SECRET = "test-dashboard-secret-0123456789"
HUBSPOT_SECRET = "hubspot-app-secret"
PASSWORDS = {"alice": "alice-pw", "bob": "bob-pw"}
CSRF = re.compile(r'name="csrf" value="([0-9a-f]+)"')


@pytest.fixture(scope="session")
def users_env() -> str:
    return f"alice:operator:{hash_password(PASSWORDS['alice'])},bob:viewer:{hash_password(PASSWORDS['bob'])}"


@dataclass
class Board:
    url: str
    rt: Runtime
    enqueue: RecordingEnqueuer
    calls: list[tuple[str, list[str], str]]

    def login(self, name: str, password: str | None = None) -> requests.Session:
        """A browser-like session logged in as ``name``."""
        session = requests.Session()
        response = session.post(self.url + "/login", data={"username": name, "password": password or PASSWORDS[name]},
                                allow_redirects=False, timeout=10)
        assert response.status_code == 303, response.text
        return session

    def csrf(self, session: requests.Session, page: str = "/ui/reps") -> str:
        found = CSRF.search(session.get(self.url + page, timeout=10).text)
        assert found, "no CSRF token on the page"
        return found.group(1)

    def record(self, lead_id: str, owner: str = "tom", crm: str = "salesforce", **extra: Any) -> None:
        """A decision as the worker records it (the log entry the live table reads, the lead's decision)."""
        decision = {"owner": owner, "rule": "smb", "reason": f"smb: -> {owner}", "considered": [owner],
                    "skipped": {}, "config_version": self.rt.config.version_hash, **extra}
        self.rt.store.record(DecisionKey(crm, self.rt.object_name(crm), lead_id, 0), decision)


@pytest.fixture
def dashboard(serve: Callable[[Any], str], sandbox: Any, redis_client: redis.Redis, redis_prefix: str, users_env: str,
              monkeypatch: pytest.MonkeyPatch, tmp_path: Any) -> Iterator[Callable[..., Board]]:
    for name, value in sandbox.env().items():  # the SLA service builds CRM clients; they point at the sandbox
        monkeypatch.setenv(name, value)
    made: list[Runtime] = []

    def make(prefix: str | None = None, *, config: RoutingConfig | None = None, shadow: Shadow | None = None,
             ledger_url: str | None = None, **env: str) -> Board:
        prefix = prefix or redis_prefix
        store = RedisStore(redis_client, prefix=prefix)
        enqueue = RecordingEnqueuer()
        rt = Runtime(config or routing_test_config()[1], store, PendingSet(redis_client, prefix), enqueue=enqueue,
                     shadow=shadow)
        made.append(rt)
        calls: list[tuple[str, list[str], str]] = []
        app = create_app(enqueue=lambda crm, ids, source: calls.append((crm, list(ids), source)),
                         first_seen=lambda ns, item: store.first_seen(ns, item, 60),
                         health_checks={"redis": store.ping}, settings=WebSettings(hubspot_app_secret=HUBSPOT_SECRET))
        settings = UiSettings.from_env({"LEADROUTE_UI_USERS": users_env, "LEADROUTE_UI_SECRET": SECRET,
                                        "LEADROUTE_PREFIX": prefix, **env})
        mount_ui(app, rt, settings, health=health_from(app),
                 ledger_url=ledger_url or f"sqlite:///{tmp_path / 'no-ledger.sqlite3'}")
        return Board(serve(app), rt, enqueue, calls)

    yield make
    for rt in made:
        rt.close()
