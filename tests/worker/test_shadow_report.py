"""``leadroute report --shadow`` on a known ledger: live and shadow decisions built by the worker's own
event builders, written to a SQLite ledger, and every figure checked by hand."""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from worker.cli.commands import app as cli
from worker.domain.leads import LeadRef
from worker.domain.stats import wilson
from worker.ledger.ledger import Ledger
from worker.reports.model import Period
from worker.reports.shadow import shadow_report
from worker.steps.ledger import decision_event
from worker.steps.shadow import shadow_event

runner = CliRunner()
T0 = datetime(2025, 3, 2, 9, 0, tzinfo=UTC)
LIVE, CAND, OLD = "live00000001", "cand00000001", "cand00000000"


def decided(owner: str, rule: str, pool: str | None, at: datetime, version: str, why: str) -> dict[str, Any]:
    target = f"pool {pool}" if pool else (owner if owner.startswith("queue:") else f"rep {owner}")
    return {"owner": owner, "rule": rule, "target": target, "reason": why, "routed_at": at.isoformat(),
            "config_version": version, "owner_kind": "queue" if owner.startswith("queue:") else "rep",
            "considered": [owner], "skipped": {}}


# lead: (live owner, rule, pool), (shadow owner, rule, pool)
KNOWN = {
    "L1": (("tom", "demo-requests-smb", "smb"), ("tom", "demo-requests-smb", "smb")),
    "L2": (("raj", "demo-requests-smb", "smb"), ("kim", "demo-requests-smb", "smb")),
    "L3": (("ana", "mid-market-na", "mid-market"), ("tom", "mid-market-na", "smb")),
    "L4": (("lee", "healthcare", "mid-market"), ("lee", "healthcare", "mid-market")),
    "L5": (("queue:triage", "fallback", None), ("queue:triage", "fallback", None)),
    "L6": (("sarah", "enterprise-emea", "enterprise"), ("mike", "enterprise-emea", "enterprise")),
}


@pytest.fixture
def ledger_url(tmp_path: Path) -> str:
    url = f"sqlite:///{tmp_path / 'ledger.sqlite3'}"
    ledger = Ledger.open(url)
    out = []
    for i, (lead, (live, shadow)) in enumerate(KNOWN.items()):
        at = T0 + timedelta(minutes=i + 1)
        key = LeadRef("salesforce", "Lead", lead).at(0)
        was = decided(*live, at, LIVE, f"live reason {lead}")
        out.append(decision_event(key.lead, 0, was, at + timedelta(milliseconds=5)))
        out.append(shadow_event(key, was, decided(*shadow, at, CAND, f"shadow reason {lead}"), CAND))
    at = T0 + timedelta(minutes=7)  # L7: routed live, never shadowed
    out.append(decision_event(LeadRef("hubspot", "contacts", "L7"), 0, decided("tom", "x", None, at, LIVE, "r"), at))
    at = T0 + timedelta(minutes=8)  # L9: shadowed, its live decision not in the ledger yet
    key = LeadRef("hubspot", "contacts", "L9").at(0)
    out.append(shadow_event(key, decided("kim", "manhattan", None, at, LIVE, "live L9"),
                            decided("kim", "manhattan", None, at, CAND, "shadow L9"), CAND))
    at = T0 + timedelta(minutes=1)  # an older candidate, shadowing L1 only
    out.append(shadow_event(LeadRef("salesforce", "Lead", "L1").at(0), decided("tom", "demo-requests-smb", "smb", at, LIVE, ""),
                            decided("raj", "demo-requests-smb", "smb", at, OLD, "old"), OLD))
    before = T0 - timedelta(days=2)  # outside the period
    key = LeadRef("salesforce", "Lead", "L0").at(0)
    was = decided("tom", "a", None, before, LIVE, "")
    out += [decision_event(key.lead, 0, was, before), shadow_event(key, was, decided("kim", "b", None, before, CAND, ""), CAND)]
    assert ledger.write(out) == len(out)
    ledger.close()
    return url


def test_the_comparison_of_a_known_ledger(ledger_url: str) -> None:
    ledger = Ledger.open(ledger_url, migrate=False)
    try:
        report = shadow_report(ledger.engine, Period(T0, T0 + timedelta(days=1)))
    finally:
        ledger.close()
    assert (report.live_decisions, report.shadowed) == (7, 6)  # L1-L7 routed; L1-L6 shadowed
    newest, old = report.candidates
    assert (newest.candidate_version, old.candidate_version) == (CAND, OLD)
    assert newest.live_versions == (LIVE,)
    assert newest.compared == 7 and newest.live_from_shadow_event == 1  # L9's live side from its copy
    assert (newest.owner.agree, newest.rule.agree, newest.pool.agree) == (4, 7, 6)  # L1, L4, L5, L9 keep their owner
    assert (newest.owner.low, newest.owner.high) == wilson(4, 7)
    assert newest.owner.rate == pytest.approx(4 / 7)
    assert newest.rule_changes == ()
    assert [(c.live, c.shadow, c.leads) for c in newest.pool_changes] == [("mid-market", "smb", 1)]
    assert newest.differing_owners == 3
    assert [(d.lead_id, d.live_owner, d.shadow_owner, d.live_reason, d.shadow_reason) for d in newest.sample] == [
        ("L2", "raj", "kim", "live reason L2", "shadow reason L2"),
        ("L3", "ana", "tom", "live reason L3", "shadow reason L3"),
        ("L6", "sarah", "mike", "live reason L6", "shadow reason L6"),
    ]
    volume = {x.owner: (x.live, x.shadow, x.change) for x in newest.volume}
    assert volume == {"tom": (1, 2, 1), "kim": (1, 2, 1), "mike": (0, 1, 1), "raj": (1, 0, -1), "ana": (1, 0, -1),
                     "sarah": (1, 0, -1), "lee": (1, 1, 0), "queue:triage": (1, 1, 0)}
    assert [x.owner for x in newest.volume][-2:] == ["lee", "queue:triage"]  # the largest changes first
    assert (old.compared, old.owner.agree) == (1, 0)


def test_report_shadow_on_the_command_line_as_json_table_and_html(ledger_url: str, tmp_path: Path) -> None:
    span = ["--since", T0.isoformat(), "--until", (T0 + timedelta(days=1)).isoformat(), "--database-url", ledger_url]
    done = runner.invoke(cli, ["report", "--shadow", *span, "--format", "json"])
    assert done.exit_code == 0, done.output
    figures = json.loads(done.stdout)
    assert figures["coverage"] == {"live_decisions": 7, "shadowed": 6}
    first = figures["candidates"][0]
    assert (first["candidate_version"], first["compared"], first["owner"]["agree"]) == (CAND, 7, 4)
    assert {x["owner"]: x["change"] for x in first["volume"]}["tom"] == 1

    table = runner.invoke(cli, ["report", "--shadow", *span])
    assert table.exit_code == 0, table.output
    assert "shadowed 6 of 7 first routings" in table.stdout
    assert "same owner  57.1%" in table.stdout
    assert "mid-market -> smb: 1" in table.stdout
    assert "volume (compared leads per owner, not open loads" in table.stdout and "would-be" not in table.stdout
    assert "salesforce L3: ana (mid-market-na) -> tom (mid-market-na)" in table.stdout

    page = tmp_path / "shadow.html"
    written = runner.invoke(cli, ["report", "--shadow", *span, "--format", "html", "--out", str(page)])
    assert written.exit_code == 0, written.output
    text = page.read_text()
    assert "Candidate cand00000001" in text and "shadow reason L6" in text
    assert "<script" not in text and "http" not in text  # self-contained, nothing loaded from elsewhere


def test_report_shadow_on_a_period_without_shadow_says_so(ledger_url: str) -> None:
    done = runner.invoke(cli, ["report", "--shadow", "--since", "2020-01-01", "--until", "2020-02-01",
                               "--database-url", ledger_url])
    assert done.exit_code == 0, done.output
    assert "no shadow decisions in the period" in done.stdout


def test_events_without_an_epoch_pair_and_count_as_shadowed_alike(tmp_path: Path) -> None:
    """Events written before epochs were recorded have a NULL epoch: coverage matches them as the pairing does."""
    ledger = Ledger.open(f"sqlite:///{tmp_path / 'old.sqlite3'}")
    try:
        key = LeadRef("salesforce", "Lead", "OLD1").at(0)
        at = T0 + timedelta(minutes=3)
        was = decided("tom", "demo-requests-smb", "smb", at, LIVE, "live")
        live = replace(decision_event(key.lead, 0, was, at), epoch=None)
        shadowed = replace(shadow_event(key, was, decided("kim", "demo-requests-smb", "smb", at, CAND, "shadow"), CAND),
                           epoch=None)
        assert ledger.write([live, shadowed]) == 2
        report = shadow_report(ledger.engine, Period(T0, T0 + timedelta(days=1)))
    finally:
        ledger.close()
    assert (report.live_decisions, report.shadowed) == (1, 1)
    (candidate,) = report.candidates
    assert candidate.compared == 1 and candidate.live_from_shadow_event == 0  # paired with the live event itself
