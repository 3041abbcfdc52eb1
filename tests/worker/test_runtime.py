"""The process runtime: what a prefork parent prepares once, and what each child builds itself."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from worker.app import runtime
from worker.config import load_config


@pytest.fixture
def fresh_runtime(monkeypatch: pytest.MonkeyPatch, sandbox: Any, redis_url: str) -> Iterator[None]:
    for name, value in sandbox.env().items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("REDIS_URL", redis_url)
    monkeypatch.setattr(runtime, "_preloaded", None)
    runtime.set_runtime(None)
    yield
    built = runtime._runtime
    runtime.set_runtime(None)
    if built is not None:
        built.close()


def test_warm_up_keeps_the_parsed_config_for_the_runtime_of_the_same_file(
    fresh_runtime: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("LEADROUTE_CONFIG", "config/routing.yaml")
    config = load_config(Path("config/routing.yaml"))
    runtime.warm_up(config)
    assert "connectors.salesforce" in sys.modules and "connectors.hubspot" in sys.modules
    built = runtime.get_runtime()
    assert built.config is config  # not parsed again
    assert set(built.crms) == {"salesforce", "hubspot"}


def test_a_runtime_for_another_config_file_parses_that_file(fresh_runtime: None, monkeypatch: pytest.MonkeyPatch) -> None:
    runtime.warm_up(load_config(Path("config/routing.yaml")))
    monkeypatch.setenv("LEADROUTE_CONFIG", "config/routing.example.yaml")
    built = runtime.get_runtime()
    assert built.crms == []  # the example file configures no connectors


def test_a_worker_starts_without_touching_sql_and_its_first_ledger_use_migrates(
    fresh_runtime: None, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    # The prefork parent's warm-up stands between a restarted worker and its first routed lead: it must not wait
    # for SQL (migrating held every restart, up to a connect timeout with SQL unreachable), which routing never needs
    from worker.app import lifecycle

    database = tmp_path / "ledger.sqlite3"
    monkeypatch.setenv("LEADROUTE_CONFIG", "config/routing.yaml")
    monkeypatch.setenv("DATABASE_URL", f"sqlite:///{database}")
    lifecycle._warm_up()
    assert not database.exists()  # no ledger opened, let alone migrated
    assert runtime.get_runtime().ledger.count() == 0  # a child's first ledger task migrates it
    assert database.exists()
