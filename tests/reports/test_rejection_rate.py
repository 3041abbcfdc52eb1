"""The rejection rate per rep (issue 17) on a hand-built history, on SQLite and on PostgreSQL.

A rejection is recorded as the ``decision`` that routed the handed-back lead again, at a later
epoch, with ``data.via == "rejection"`` and the rep who handed it back as ``previous_owner``
(``worker.steps.handback``), whether the rep set a rejection status in the CRM, put the lead
back in the intake, or someone ran ``leadroute reject``. Per rep, ``rejected`` counts those
and ``rejection_rate`` is rejected out of received, with its Wilson interval. Every number
below is worked out by hand from :func:`events`; the day cache must give the same answers.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import delete, insert, select

from tests.reports.test_figures import assert_rate
from worker.ledger.events import LedgerEvent
from worker.ledger.ledger import Ledger
from worker.ledger.schema import report_pieces
from worker.reports import Period, ReportSettings, build_report
from worker.reports.html import render
from worker.reports.model import RepAcceptance
from worker.reports.pieces import Piece

T0 = datetime(2026, 6, 1, tzinfo=UTC)  # a Monday
PERIOD = Period(T0, T0 + timedelta(days=3))  # whole days: the cache keeps each
EDGES = Period(T0 + timedelta(hours=5), T0 + timedelta(days=2, hours=13))  # partial days at both ends
NOW = T0 + timedelta(days=10)
SETTINGS = ReportSettings(pools={"emea": {"ann": 1, "bob": 1, "cat": 1}})


def h(hours: float) -> datetime:
    return T0 + timedelta(hours=hours)


def ev(kind: str, lead: str, at: datetime, epoch: int, **fields: Any) -> LedgerEvent:
    return LedgerEvent(event_id=f"{kind}/salesforce/Lead/{lead}/{epoch}", kind=kind, crm="salesforce", object="Lead",
                       lead_id=lead, at=at, epoch=epoch, config_version="cv1", rule="emea", pool="emea", **fields)


def first(lead: str, at: datetime, owner: str) -> LedgerEvent:
    return ev("decision", lead, at, 0, owner=owner, wait_seconds=5.0, lead_created_at=at - timedelta(seconds=5),
              data={"reason": f"emea -> {owner}", "skipped": {}, "unreadable": []})


def again(lead: str, at: datetime, epoch: int, owner: str, previous: str, via: str, **data: Any) -> LedgerEvent:
    """A re-decision at a later epoch, as ``worker.steps.ledger.decision_event`` writes it."""
    return ev("decision", lead, at, epoch, owner=owner, previous_owner=previous,
              data={"via": via, "reason": f"{via}: -> {owner}", "skipped": {}, "unreadable": [], **data})


def rejection(lead: str, at: datetime, epoch: int, owner: str, by: str, excluded: list[str], **data: Any) -> LedgerEvent:
    return again(lead, at, epoch, owner, by, "rejection", excluded=excluded, **data)


def events() -> list[LedgerEvent]:
    """ann is first given L1-L4, bob L5-L6, cat L7; over the next two days:

    * ann rejects L1 by CRM status (-> bob) and L2 by ``leadroute reject`` (-> bob), and bob rejects L2 in
      turn (-> cat, ann and bob excluded): ann 2 rejections, bob 1;
    * L5 is reassigned by the SLA from bob to ann (an ``sla.reassign`` and its re-decision): not a rejection;
    * L3 is handed off by a trigger from ann to cat: not a rejection either;
    * before the period, ann rejected L0 (-> bob), and after it she rejects L4 (-> cat): neither counts.
    """
    return [
        first("L0", h(-30), "ann"), rejection("L0", h(-29), 1, "bob", "ann", ["ann"], why="status Rejected"),
        first("L1", h(1), "ann"), first("L2", h(2), "ann"), first("L3", h(3), "ann"), first("L4", h(4), "ann"),
        first("L5", h(5), "bob"), first("L6", h(6), "bob"), first("L7", h(7), "cat"),
        rejection("L1", h(10), 1, "bob", "ann", ["ann"], why="status Rejected - Not my territory"),
        rejection("L2", h(26), 1, "bob", "ann", ["ann"], why="wrong region", requested_by="ops (cli)"),
        rejection("L2", h(50), 2, "cat", "bob", ["ann", "bob"], why="status Rejected - Not my territory"),
        ev("sla.reassign", "L5", h(30), 0, owner="ann", previous_owner="bob", tier="hot", wait_seconds=1800.0, data={}),
        again("L5", h(30), 1, "ann", "bob", "sla"),
        again("L3", h(40), 1, "cat", "ann", "trigger", trigger="mql"),
        rejection("L4", h(80), 1, "cat", "ann", ["ann"], why="status Rejected"),  # after the period
    ]


@pytest.fixture
def ledger(database_url: str) -> Iterator[Ledger]:
    opened = Ledger.open(database_url)
    assert opened.write(events()) == len(events())
    yield opened
    opened.close()


def acceptance(ledger: Ledger, period: Period = PERIOD, *, cache: bool = True) -> dict[str, RepAcceptance]:
    report = build_report(ledger, period, settings=SETTINGS, now=NOW, cache=cache)
    return {r.rep: r for r in report.acceptance.reps}


def test_each_rep_s_rejections_out_of_the_leads_they_received(ledger: Ledger) -> None:
    reps = acceptance(ledger)
    ann, bob, cat = reps["ann"], reps["bob"], reps["cat"]
    # ann: L1-L4 first, L5 by the SLA's reassignment; rejected L1 and L2 (L0 and L4 are outside the period)
    assert (ann.received, ann.rejected) == (5, 2)
    assert_rate(ann.rejection_rate, 2, 5)
    assert_rate(ann.kept, 3, 5)  # L3's hand-off by a trigger is not a lead she failed to keep
    # bob: L5, L6 first, L1 and L2 from ann's rejections; rejected L2; L5 left him by reassignment
    assert (bob.received, bob.rejected, bob.reassigned) == (4, 1, 1)
    assert_rate(bob.rejection_rate, 1, 4)
    assert_rate(bob.kept, 2, 4)
    # cat: L7 first, L3 by the trigger, L2 from bob's rejection; rejected none
    assert (cat.received, cat.rejected) == (3, 0)
    assert_rate(cat.rejection_rate, 0, 3)
    assert list(reps) == ["ann", "bob", "cat"]  # most leads lost first (2, 2, 0), then by name


def test_the_rejections_count_in_the_period_they_happen(ledger: Ledger) -> None:
    reps = acceptance(ledger, Period(T0 + timedelta(days=1), T0 + timedelta(days=2)))
    # the second day: L2 rejected by ann (-> bob) and the L5 reassignment, L3's trigger; no first routings
    assert (reps["ann"].rejected, reps["bob"].rejected) == (1, 0)
    assert reps["ann"].received == 1 and reps["ann"].rejection_rate.value == 1.0  # never more than received
    assert reps["bob"].received == 1


@pytest.mark.parametrize("period", [PERIOD, EDGES], ids=["whole days", "partial edges"])
def test_the_day_cache_gives_the_same_rejections(ledger: Ledger, period: Period) -> None:
    direct = {rep: r.to_dict() for rep, r in acceptance(ledger, period, cache=False).items()}
    assert {rep: r.to_dict() for rep, r in acceptance(ledger, period).items()} == direct  # days read and kept
    assert {rep: r.to_dict() for rep, r in acceptance(ledger, period).items()} == direct  # days from the cache
    assert direct["ann"]["rejected"] == 2


def test_moves_kept_before_rejections_were_counted_are_read_again(ledger: Ledger) -> None:
    """A ledger whose cache holds the moves as the code before this figure kept them (keys without ``via``,
    under parameters ``{}``) reports the rejections all the same: those pieces are never read as today's."""
    acceptance(ledger)  # keeps this layout's pieces
    with ledger.engine.begin() as connection:
        kept = connection.execute(select(report_pieces).where(report_pieces.c["pass"] == "moves")).mappings().all()
        assert kept and {row["params"] for row in kept} == {'{"layout":2}'}
        old = []
        for row in kept:
            piece = Piece.decode(row["header"], bytes(row["arrays"]))
            piece.tally["moves"] = {key[:5]: n for key, n in piece.tally["moves"].items()}  # as layout 1 kept them
            header, blob = piece.encode()
            old.append({**row, "params": "{}", "header": header, "arrays": blob})
        connection.execute(delete(report_pieces).where(report_pieces.c["pass"] == "moves"))
        connection.execute(insert(report_pieces), old)
    reps = acceptance(ledger)
    assert (reps["ann"].rejected, reps["bob"].rejected) == (2, 1)


def test_the_html_report_shows_the_rejection_rate(ledger: Ledger) -> None:
    page = render(build_report(ledger, PERIOD, settings=SETTINGS, now=NOW))
    assert "<h2>Acceptance</h2>" in page and "rejection rate [95% CI]" in page
    assert "<td>ann</td><td>5</td><td>0</td><td>0</td><td>0</td><td>2</td><td>60.0% [23.1-88.2]</td><td>40.0% " in page


def test_the_terminal_table_shows_rejections_within_100_columns(ledger: Ledger) -> None:
    from rich.console import Console

    from worker.reports.table import as_group

    console = Console(width=100, record=True, file=None, force_terminal=False)
    with console.capture() as screen:
        console.print(as_group(build_report(ledger, PERIOD, settings=SETTINGS, now=NOW)))
    text = screen.get()
    assert "Rejection rate per rep" in text and max(len(line) for line in text.splitlines()) <= 100
    rates = [line for line in text.splitlines() if "40.0% [11.8-76.9]" in line]
    assert len(rates) == 1 and "ann" in rates[0]  # ann: 2 of 5, first (the highest rate)
