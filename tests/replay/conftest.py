"""The replay's fixtures: a history made under config A by the real engine, written to a real SQLite ledger.

``CONFIG_A`` routes partner referrals to a queue, 1,000+ employees to pool ``enterprise`` (eve, fay),
Germany, Austria and Switzerland to pool ``dach`` (dora, dirk), under 1,000 employees to pool
``smb`` (ana, ben, cara), each pool a round robin, everything else to the queue ``triage``. It knows
two accounts' owners but no rule of it reads them.

:func:`arrivals` are 42 leads ten minutes apart from ``T0`` (Monday 2 March 2026, 09:00 UTC), in
a fixed pattern of sizes and countries, each acknowledged 25 minutes after routing except every
seventh. ``history_events`` are the ledger events of routing them under A (``make_history``: the
engine, a state that frees loads on acknowledgements, the worker's own event builders); ``ledger``
is a SQLite ledger holding them, ``ledger_url`` its URL.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml

from worker.config import RoutingConfig, parse_config
from worker.ledger.events import LedgerEvent
from worker.ledger.ledger import Ledger
from worker.replay import Comparison, read_history, replay, start_state
from worker.replay.run import Exposure
from worker.replay.synthetic import Arrival, make_history
from worker.routing.engine import Decision

T0 = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)

CONFIG_A = """\
version: 1
timezone: UTC
reps:
  - {id: ana}
  - {id: ben}
  - {id: cara}
  - {id: eve}
  - {id: fay}
  - {id: dora}
  - {id: dirk}
pools:
  enterprise: {members: [eve, fay], strategy: round_robin}
  dach: {members: [dora, dirk], strategy: round_robin}
  smb: {members: [ana, ben, cara], strategy: round_robin}
queues:
  triage: {salesforce: "00G000000000001"}
  partners: {salesforce: "00G000000000002"}
accounts: {company3.com: eve, company10.com: ben}   # no rule reads them under A, but the ledger records them
rules:
  - name: partners
    when: {lead_source: Partner Referral}
    assign: {queue: partners}
  - name: enterprise
    when: {employees: {gte: 1000}}
    assign: {pool: enterprise}
  - name: dach
    when: {country: [DE, AT, CH]}
    assign: {pool: dach}
  - name: smb
    when: {employees: {lt: 1000}}
    assign: {pool: smb}
fallback: {queue: triage}
"""

SIZES = ["50", "600", "1500", "800", "5000", "200", "lots"]
COUNTRIES = ["US", "DE", "GB", "US", "France"]


def config_a() -> RoutingConfig:
    return parse_config(CONFIG_A, "a.yaml")


def edited(edit: Callable[[dict[str, Any]], None]) -> tuple[str, RoutingConfig]:
    """Config A with ``edit`` applied to its parsed YAML: (the YAML text, the config)."""
    doc = yaml.safe_load(CONFIG_A)
    edit(doc)
    text = yaml.safe_dump(doc, sort_keys=False)
    return text, parse_config(text, "candidate.yaml")


def rule_index(doc: dict[str, Any], name: str) -> int:
    return next(i for i, rule in enumerate(doc["rules"]) if rule["name"] == name)


def lead(i: int) -> dict[str, Any]:
    return {"id": f"L{i:02d}", "email": f"p{i}@company{i}.com", "employees": SIZES[i % len(SIZES)],
            "country": COUNTRIES[i % len(COUNTRIES)], "lead_source": "Partner Referral" if i % 11 == 5 else "Web Form",
            "created_at": (T0 + timedelta(minutes=10 * i - 2)).isoformat()}


def arrivals(n: int = 42) -> list[Arrival]:
    out = []
    for i in range(n):
        at = T0 + timedelta(minutes=10 * i)
        out.append(Arrival(lead(i), at, None if i % 7 == 6 else at + timedelta(minutes=25)))
    return out


@pytest.fixture(scope="session")
def history_events() -> list[LedgerEvent]:
    return list(make_history(config_a(), arrivals()))


@pytest.fixture
def ledger(tmp_path: Path, history_events: list[LedgerEvent]) -> Iterator[Ledger]:
    opened = Ledger.open(f"sqlite:///{tmp_path / 'ledger.sqlite3'}")
    opened.write(history_events)
    yield opened
    opened.close()


@pytest.fixture
def ledger_url(ledger: Ledger) -> str:
    return ledger.engine.url.render_as_string(hide_password=False)


@dataclass(frozen=True)
class Pair:
    """One lead's two answers."""

    lead_id: str
    before: Decision
    after: Decision
    exposure_before: Exposure
    exposure_after: Exposure


def replay_pairs(events: list[LedgerEvent], baseline: RoutingConfig, candidate: RoutingConfig,
                 since: datetime | None = T0, until: datetime | None = None) -> tuple[list[Pair], Comparison]:
    """Every lead's (before, after), and the comparison, through the replay's own functions."""
    history = read_history(events, since, until)
    comparison = Comparison(baseline, candidate)
    pairs: list[Pair] = []

    def visit(lead: Any, before: Decision, eb: Exposure, after: Decision, ea: Exposure) -> None:
        pairs.append(Pair(lead.lead_id, before, after, eb, ea))
        comparison.add(lead, before, eb, after, ea)

    replay(history.leads, baseline, candidate, start_state(history.earlier, since, baseline), visit)
    return pairs, comparison
