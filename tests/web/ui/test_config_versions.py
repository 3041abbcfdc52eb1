"""The rules as they were: every config version a process loads is kept in the ledger and shown at
``/ui/config/<version>``; the config page sums up shadow mode from ``leadroute report --shadow``."""

from __future__ import annotations

import copy
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import redis
import yaml
from sqlalchemy import func, select

from tests.web.ui.conftest import Board
from tests.worker.conftest import routing_test_config
from worker.app.runtime import Runtime
from worker.config import RoutingConfig, parse_config
from worker.ledger.events import LedgerEvent
from worker.ledger.ledger import Ledger
from worker.ledger.schema import configs
from worker.steps.shadow import Shadow
from worker.store.pending import PendingSet
from worker.store.redis_store import RedisStore


def changed_config(capacity: int) -> RoutingConfig:
    """The test config with its first rep's capacity changed: another version, another text."""
    data, _ = routing_test_config()
    reps = copy.deepcopy(data["reps"])
    reps[0]["capacity"] = capacity
    return routing_test_config({"reps": reps})[1]


def stored(url: str) -> dict[str, str]:
    ledger = Ledger.open(url, migrate=False)
    try:
        with ledger.engine.connect() as connection:
            return dict(connection.execute(select(configs.c.version, configs.c.text)).all())
    finally:
        ledger.close()


def test_each_version_is_saved_once_and_an_older_one_is_served_after_the_config_changed(
        dashboard: Callable[..., Board], tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'ledger.sqlite3'}"
    Ledger.open(url).close()  # migrated, as the worker leaves it
    old, new = changed_config(31), changed_config(32)
    assert old.version_hash != new.version_hash and old.text is not None

    first = dashboard(config=old, ledger_url=url)
    bob = first.login("bob")  # a viewer may read the rules
    assert bob.get(first.url + "/ui/config", timeout=10).status_code == 200
    assert stored(url) == {old.version_hash: old.text}

    again = dashboard(config=old, ledger_url=url)  # a restart on the same version adds nothing
    again.login("bob").get(again.url + "/ui/config", timeout=10)
    later = dashboard(config=new, ledger_url=url)  # the config changed
    alice = later.login("alice")
    page = alice.get(later.url + "/ui/config", timeout=10).text
    assert f'href="/ui/config/{new.version_hash}"' in page
    assert stored(url) == {old.version_hash: old.text, new.version_hash: new.text}
    ledger = Ledger.open(url, migrate=False)
    try:
        with ledger.engine.connect() as connection:
            assert connection.execute(select(func.count()).select_from(configs)).scalar_one() == 2
        assert ledger.save_config(old.version_hash, "other text") is False  # the first text stays
        assert ledger.config(old.version_hash)[1] == old.text  # type: ignore[index]
    finally:
        ledger.close()

    rules = alice.get(f"{later.url}/ui/config/{old.version_hash}", timeout=10)
    assert rules.status_code == 200
    assert "capacity: 31" in rules.text and "first loaded" in rules.text
    assert f'href="/ui/config/{new.version_hash}"' in rules.text  # and the way to the active one
    active = alice.get(f"{later.url}/ui/config/{new.version_hash}", timeout=10)
    assert active.status_code == 200 and "capacity: 32" in active.text

    unknown = alice.get(f"{later.url}/ui/config/0123456789ab", timeout=10)
    assert unknown.status_code == 404
    assert "0123456789ab is not known here" in unknown.text and "no process that loaded this version" in unknown.text


def test_an_unknown_version_without_a_ledger_is_a_clear_404(dashboard: Callable[..., Board]) -> None:
    board = dashboard()
    answer = board.login("bob").get(board.url + "/ui/config/feedbeef", timeout=10)
    assert answer.status_code == 404 and "not known here: no ledger at DATABASE_URL" in answer.text


def test_a_worker_process_migrates_the_ledger_and_keeps_its_config_text_on_first_ledger_use(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, redis_client: redis.Redis, redis_prefix: str) -> None:
    config = changed_config(33)
    url = f"sqlite:///{tmp_path / 'ledger.sqlite3'}"
    monkeypatch.setenv("DATABASE_URL", url)
    for _ in range(2):  # two processes, one after the other: the second finds the schema current and the text kept
        rt = Runtime(config, RedisStore(redis_client, prefix=redis_prefix), PendingSet(redis_client, redis_prefix))
        assert rt.ledger.count() == 0
        rt.close()
    assert stored(url) == {config.version_hash: config.text}


def test_the_config_page_sums_up_shadow_mode_from_the_shadow_report(dashboard: Callable[..., Board],
                                                                     tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'ledger.sqlite3'}"
    live = routing_test_config()[1]
    data, _ = routing_test_config()
    candidate = parse_config(yaml.safe_dump({**data, "timezone": "Europe/Berlin"}, sort_keys=False), "candidate.yaml")
    at = datetime.now(UTC) - timedelta(hours=1)  # inside the summary's last 7 days, whatever the date

    def pair(n: int, shadow_owner: str, shadow_rule: str) -> list[LedgerEvent]:
        common = {"crm": "salesforce", "object": "Lead", "lead_id": f"L{n}", "epoch": 0, "at": at + timedelta(seconds=n)}
        return [LedgerEvent(event_id=f"decision/L{n}", kind="decision", config_version=live.version_hash, owner="tom",
                            rule="smb", **common),
                LedgerEvent(event_id=f"shadow/L{n}", kind="shadow", config_version=candidate.version_hash,
                            owner=shadow_owner, rule=shadow_rule, data={"reason": "r"}, **common)]

    ledger = Ledger.open(url)
    try:
        ledger.write([*pair(1, "tom", "smb"), *pair(2, "tom", "smb"), *pair(3, "tom", "smb"),
                      *pair(4, "sarah", "enterprise")])
    finally:
        ledger.close()
    board = dashboard(config=live, ledger_url=url,
                      shadow=Shadow(candidate, None, tmp_path / "candidate.yaml"))  # type: ignore[arg-type]
    page = board.login("bob").get(board.url + "/ui/config", timeout=10).text
    assert 'id="shadow-summary"' in page and "last 7 days" in page
    assert "75.0% [" in page and "(3/4)" in page  # same owner and same rule: 3 of 4 leads
    assert "rule smb &rarr; enterprise: 1" in page
    assert "owner sarah: 0 live, 1 in shadow (+1)" in page

    plain = dashboard(config=live, ledger_url=url)  # worker.shadow not set: no summary
    assert 'id="shadow-summary"' not in plain.login("bob").get(plain.url + "/ui/config", timeout=10).text


def test_the_config_page_lists_the_latest_replays_kept_in_the_ledger(dashboard: Callable[..., Board], tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'ledger.sqlite3'}"
    ledger = Ledger.open(url)
    result = {"replay": {"leads": 120, "baseline": {"version": "base1234", "file": "routing.yaml"},
                         "candidate": {"version": "cand5678", "file": "candidate.yaml"}}}
    ledger.save_replay(result, "7 of 120 leads (5.8%) change: owner 7", at=datetime(2026, 3, 2, 9, 30, tzinfo=UTC))
    ledger.close()
    board = dashboard(ledger_url=url)
    page = board.login("bob").get(board.url + "/ui/config", timeout=10).text
    assert "7 of 120 leads (5.8%) change: owner 7" in page
    assert 'href="/ui/config/cand5678"' in page and "candidate.yaml" in page
    Ledger.open(f"sqlite:///{tmp_path / 'fresh.sqlite3'}").close()
    empty = dashboard(ledger_url=f"sqlite:///{tmp_path / 'fresh.sqlite3'}")
    assert "none yet" in empty.login("bob").get(empty.url + "/ui/config", timeout=10).text
