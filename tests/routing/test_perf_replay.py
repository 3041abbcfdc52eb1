"""Replay works with the new strategy and with A/B arms: history made under round robin, replayed under a
candidate whose smb pool is performance_weighted with a floor, and one whose rule splits into arms."""

from __future__ import annotations

from collections import Counter
from typing import Any

import pytest

from tests.replay.conftest import arrivals, config_a, edited, replay_pairs
from worker.ledger.events import LedgerEvent
from worker.replay.synthetic import make_history
from worker.routing.fairness import window_shares


@pytest.fixture(scope="module")
def history_events() -> list[LedgerEvent]:
    """The replay suite's history: 42 leads routed under its config A (round robin everywhere)."""
    return list(make_history(config_a(), arrivals()))


def _perf(doc: dict[str, Any]) -> None:
    doc["pools"]["smb"] = {"members": ["ana", "ben", "cara"], "strategy": "performance_weighted",
                           "performance": {"floor": 0.3, "fairness_window": 10}}


def test_a_replay_routes_a_performance_weighted_pool_and_keeps_its_floor(history_events: list[LedgerEvent]) -> None:
    _, candidate = edited(_perf)
    pairs, comparison = replay_pairs(history_events, config_a(), candidate)
    smb = [p.after for p in pairs if p.after.target == "pool smb"]
    assert smb and all("perf-weighted (no rate table yet: weighted round robin)" in d.reason for d in smb)
    assert set(Counter(d.owner for d in smb)) == {"ana", "ben", "cara"}
    assert len(smb) >= 10
    shares = window_shares([d.owner for d in smb], 10)  # the pool's picks, in order: at least 3 of every 10 each
    assert all(low >= 3 for low, _ in shares.values())
    assert comparison.to_dict([], {})["fidelity"]["compared"] == len(pairs)


def test_a_replay_under_a_split_names_each_leads_arm(history_events: list[LedgerEvent]) -> None:
    def split(doc: dict[str, Any]) -> None:
        rule = next(r for r in doc["rules"] if r["assign"].get("pool") == "smb")
        target = rule.pop("assign")
        rule["split"] = {"key": "lead_id", "arms": [{"name": "control", "share": 50, "assign": target},
                                                    {"name": "dach", "share": 50, "assign": {"pool": "dach"}}]}

    _, candidate = edited(split)
    pairs, _ = replay_pairs(history_events, config_a(), candidate)
    armed = [p.after for p in pairs if p.after.arm is not None]
    assert armed and {d.arm for d in armed} <= {"control", "dach"}
    assert all(d.target == ("pool smb" if d.arm == "control" else "pool dach") for d in armed if d.owner_kind == "rep")
