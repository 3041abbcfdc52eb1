"""A ledger event as plain data: what the writer accepts, and its JSON form for the outbox."""

from __future__ import annotations

import json
import subprocess
import sys
from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal
from pathlib import Path

import pytest

from worker.ledger.events import KINDS, InvalidEvent, LedgerEvent

ROOT = Path(__file__).resolve().parents[2]
BASE = {"event_id": "decision/salesforce/Lead/00Q1/0", "kind": "decision", "crm": "salesforce", "object": "Lead",
        "lead_id": "00Q1", "at": "2026-03-02T09:00:00+00:00"}


def test_an_event_survives_the_outbox_as_json() -> None:
    event = LedgerEvent.from_dict(BASE | {
        "epoch": 2, "owner": "queue:emea", "wait_seconds": 12, "amount": Decimal("10.50"),
        "lead_created_at": datetime(2026, 3, 2, 10, tzinfo=timezone(timedelta(hours=2))),
        "data": {"considered": ["mike"], "skipped": {"anna": "ooo"}},
    })
    wire = json.loads(json.dumps(event.to_dict()))
    assert LedgerEvent.from_dict(wire) == event
    assert wire["at"] == "2026-03-02T09:00:00+00:00" and wire["lead_created_at"] == "2026-03-02T08:00:00+00:00"
    assert "rule" not in wire  # None fields are left out
    assert event.wait_seconds == 12.0 and event.amount == 10.5


def test_times_may_be_datetimes_iso_strings_or_epoch_seconds_and_become_utc() -> None:
    instant = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
    for given in (instant, "2026-03-02T09:00:00Z", "2026-03-02T10:00:00+01:00", instant.timestamp()):
        at = LedgerEvent.from_dict(BASE | {"at": given}).at
        assert at == instant and at.tzinfo == UTC


@pytest.mark.parametrize(
    ("change", "problem"),
    [
        ({"kind": "decided"}, "kind: 'decided' is not one of"),
        ({"event_id": ""}, "event_id: must be a non-empty string"),
        ({"event_id": "x" * 201}, "event_id: 201 characters, at most 200"),
        ({"lead_id": ""}, "lead_id: must be a non-empty string"),
        ({"at": "2026-03-02T09:00:00"}, "has no time zone"),
        ({"at": datetime(2026, 3, 2, 9)}, "has no time zone"),
        ({"at": "yesterday"}, "not an ISO 8601 date-time"),
        ({"epoch": "1"}, "epoch: must be an integer"),
        ({"wait_seconds": float("nan")}, "wait_seconds: must be a finite number"),
        ({"amount": "12"}, "amount: must be a finite number"),
        ({"data": ["not", "a", "mapping"]}, "data: must be a mapping"),
        ({"onwer": "mike"}, "unknown field(s) onwer"),
    ],
)
def test_an_event_the_ledger_could_not_store_is_refused_naming_the_field(change: dict[str, object], problem: str) -> None:
    with pytest.raises(InvalidEvent) as caught:
        LedgerEvent.from_dict(BASE | change)
    assert problem in str(caught.value)


def test_the_required_fields_are_named_when_missing() -> None:
    with pytest.raises(InvalidEvent, match=r"missing field\(s\) at, lead_id"):
        LedgerEvent.from_dict({k: v for k, v in BASE.items() if k not in ("at", "lead_id")})


def test_the_kinds_are_the_ones_the_issue_lists() -> None:
    steps = ("start", "remind", "breach", "escalate", "reassign", "park", "stop", "close", "manual_override")
    expected = {"decision", "reroute", "ack", "notification", "outcome", *(f"sla.{step}" for step in steps)}
    shadow = {"shadow"}  # shadow mode's decisions (docs/shadow.md)
    availability = {"rep.away", "rep.back"}  # a rep marked away or back by hand (docs/ledger.md)
    assert expected | shadow | availability == KINDS


def test_the_event_type_loads_no_database_library() -> None:
    program = ("import sys, worker.ledger, worker.ledger.events\n"
               "print(sorted(m for m in ('sqlalchemy', 'alembic', 'psycopg') if m in sys.modules))")
    done = subprocess.run([sys.executable, "-c", program], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"
