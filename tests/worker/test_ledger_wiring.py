"""The ledger as the worker writes it: what each step leaves in the outbox, moved to SQL, read by
``leadroute explain`` a year later, exported for a warehouse, and watched by ``/healthz``.

Against the sandbox CRM over HTTPS and a real Redis, the ledger a SQLite file per test.
"""

from __future__ import annotations

import csv
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
import pytest
import requests
from sqlalchemy.exc import OperationalError
from typer.testing import CliRunner

from tests.web.conftest import serve  # noqa: F401  (the uvicorn fixture)
from tests.worker.test_pipeline import drain, load_leads
from tests.worker.test_sla_wiring import route_hot_lead
from worker.app.runtime import Runtime
from worker.cli import export as export_module
from worker.cli.commands import app as cli
from worker.domain.leads import LeadRef
from worker.ledger.events import LedgerEvent
from worker.ledger.ledger import Ledger
from worker.steps import ledger as ledger_step
from worker.steps import route
from worker.web.receivers import create_app
from worker.web.server import with_ledger_health

runner = CliRunner()
T0 = datetime(2025, 3, 2, 9, 0, tzinfo=UTC)


@pytest.fixture
def ledger(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Ledger:
    url = f"sqlite:///{tmp_path / 'ledger.sqlite3'}"
    monkeypatch.setenv("DATABASE_URL", url)
    opened = Ledger.open(url)
    yield opened
    opened.close()


def waiting(rt: Runtime) -> dict[str, dict[str, Any]]:
    """Every event in the outbox, by id, as the mover will write it (claimed, and given back)."""
    claimed = rt.store.outbox_claim(100_000, 60)
    rt.store.outbox_release([e.entry_id for e in claimed])
    return {event.event_id: event.to_dict() for event in (ledger_step.entry_event(e, rt.config) for e in claimed)}


def about(rt: Runtime, lead_id: str, crm: str = "salesforce", obj: str = "Lead") -> list[dict[str, Any]]:
    """The events about one lead still in the outbox, oldest first, as the mover will write them."""
    return [ledger_step.entry_event(e, rt.config).to_dict() for e in rt.store.outbox_for_lead(crm, obj, lead_id)]


def test_each_routed_lead_leaves_one_decision_event_that_explains_it_without_redis(
    make_runtime: Any, admin: Any, ledger: Ledger
) -> None:
    rt = make_runtime()
    created = load_leads(rt, admin, 12)
    for crm in ("salesforce", "hubspot"):
        route.poll(rt, crm)
        drain(rt, crm)
    assert rt.enqueue.ledger_flushes >= 1  # a routed batch asks for the move at once
    moved = ledger_step.flush(rt.store, ledger, config=rt.config)
    assert moved.refused == 0 and rt.store.outbox_stats().depth == 0
    for crm, obj in (("salesforce", "Lead"), ("hubspot", "contacts")):
        for lead_id in created[crm]["ids"]:
            events = ledger.for_lead(crm, lead_id)
            decisions = [e for e in events if e.kind == "decision"]
            assert [e.event_id for e in decisions] == [f"decision/{crm}/{obj}/{lead_id}/0"]
            event, recorded = decisions[0], rt.store.decision(LeadRef(crm, obj, lead_id).at(0)).decision
            assert (event.owner, event.rule, event.config_version, event.epoch) == (
                recorded["owner"], recorded["rule"], rt.config.version_hash, 0)
            assert event.data["reason"] == recorded["reason"]
            assert event.data["considered"] == recorded["considered"] and event.data["skipped"] == recorded["skipped"]
            assert event.data["target"] == recorded["target"] and "strategy_state" in event.data
            assert event.data["facts"].get("country") and "unreadable" in event.data
            assert event.pool == (recorded["target"].removeprefix("pool ") if recorded["target"].startswith("pool ")
                                  else None)
            assert event.lead_created_at is not None and event.lead_created_at <= event.at
            assert event.wait_seconds == pytest.approx((event.at - event.lead_created_at).total_seconds(), abs=0.01)
            assert event.wait_business_seconds is None or event.wait_business_seconds <= event.wait_seconds + 0.01
            assert event.source  # the synthetic leads all have a lead source
            assert recorded["facts"].items() <= event.data["facts"].items()  # the engine's, and the fields the rules read
            assert "lead_source" in event.data["facts"] and "lead_facts" not in recorded  # (kept out of Redis)


def test_replayed_decisions_produce_the_same_event_ids_and_no_second_event(
    make_runtime: Any, admin: Any, redis_client: Any, redis_prefix: str
) -> None:
    rt = make_runtime()
    ids = load_leads(rt, admin, 6)["hubspot"]["ids"]
    route.poll(rt, "hubspot")
    handled = {h.lead_id: h for h in drain(rt, "hubspot")}
    first = waiting(rt)
    assert {f"decision/hubspot/contacts/{i}/0" for i in ids} <= set(first)

    for lead_id in ids:  # a retried task decides again: the recorded decision, and nothing new in the outbox
        route.decide(rt, LeadRef("hubspot", "contacts", lead_id).at(0), handled[lead_id].lead)
    assert waiting(rt).keys() == first.keys()

    from worker.store.redis_store import RedisStore  # a second store: the same decisions made from scratch

    replay = Runtime(rt.config, RedisStore(redis_client, prefix=redis_prefix + "-replay"), rt.pending, rt.enqueue)
    for lead_id in ids:
        route.decide(replay, LeadRef("hubspot", "contacts", lead_id).at(0), handled[lead_id].lead)
    again = waiting(replay)
    assert set(again) == {f"decision/hubspot/contacts/{i}/0" for i in ids}
    assert all(again[i]["owner"] == first[i]["owner"] or again[i]["pool"] for i in again)


def test_a_manual_reroute_leaves_a_reroute_event_with_who_asked_and_why(make_runtime: Any, admin: Any) -> None:
    rt = make_runtime()
    lead_id = load_leads(rt, admin, 1)["salesforce"]["ids"][0]
    route.poll(rt, "salesforce")
    drain(rt, "salesforce")
    first = rt.store.decision(LeadRef("salesforce", "Lead", lead_id).at(0)).decision
    route.reroute(rt, "salesforce", lead_id, to_rep="lee", why="customer asked", requested_by="ops")
    route.reroute(rt, "salesforce", lead_id, to_rep="lee", why="customer asked", requested_by="ops",
                  key=LeadRef("salesforce", "Lead", lead_id).at(1))  # the task's retry: the same decision
    events = [e for e in about(rt, lead_id) if e["kind"] in ("decision", "reroute")]
    assert [e["kind"] for e in events] == ["decision", "reroute"]
    reroute = events[1]
    assert reroute["event_id"] == f"reroute/salesforce/Lead/{lead_id}/1"
    assert (reroute["owner"], reroute["previous_owner"], reroute["actor"], reroute["epoch"]) == (
        "lee", first["owner"], "ops", 1)
    assert reroute["data"]["why"] == "customer asked" and reroute["data"]["via"] == "manual"
    assert "wait_seconds" not in reroute  # speed to lead is the first routing's


def test_an_owner_the_crm_refuses_leaves_a_reroute_to_the_fallback(make_runtime: Any, admin: Any) -> None:
    import yaml

    from tests.worker.conftest import routing_test_config
    from worker.config import parse_config
    from worker.devtools.synthetic import salesforce_lead

    data, _ = routing_test_config()
    kim = next(r for r in data["reps"] if r["id"] == "kim")
    kim["crm_ids"]["salesforce"] = "0055e000001FoRmAAK"  # a deactivated user: Salesforce refuses it as owner
    rt = make_runtime(parse_config(yaml.safe_dump(data, sort_keys=False)))
    manhattan = {"first_name": "Sam", "last_name": "Lee", "email": "sam@bigapple.nyc", "company": "Big Apple",
                 "country": "US", "state": "NY", "postcode": "10001", "employees": "60"}
    (lead_id,) = admin.sf_load("Lead", [salesforce_lead(manhattan, dict(rt.config.model.connectors.salesforce.fields),
                                                        "00G5e000000InTkEAK")])
    route.poll(rt, "salesforce")
    drain(rt, "salesforce")
    events = {e["kind"]: e for e in about(rt, lead_id)}
    assert events["decision"]["owner"] == "kim"  # what the rules decided
    refused = events["reroute"]
    assert refused["event_id"] == f"reroute/salesforce/Lead/{lead_id}/0/refused"
    assert (refused["owner"], refused["data"]["refused_owner"], refused["epoch"]) == ("queue:triage", "kim", 0)
    assert refused["data"]["via"] == "refused" and "INACTIVE_OWNER_OR_USER" in refused["data"]["why"]
    assert "actor" not in refused and "previous_owner" not in refused  # no person asked; kim never held it


def test_the_sla_clock_its_ladder_and_the_acknowledgement_leave_events(make_runtime: Any, admin: Any) -> None:
    rt = make_runtime()
    lead_id, decision, routed = route_hot_lead(rt, admin)
    rt.sla.sweep(routed + timedelta(seconds=61))  # the reminder step
    rt.sla.sweep(routed + timedelta(seconds=61))  # nothing new
    assert rt.sla.acknowledge(LeadRef("salesforce", "Lead", lead_id), routed + timedelta(seconds=90), by="kim (cli)")
    assert rt.sla.acknowledge(LeadRef("salesforce", "Lead", lead_id), by="kim (cli)") is None
    events = {e["kind"]: e for e in about(rt, lead_id)}
    assert Counter(e["kind"] for e in about(rt, lead_id)) == {
        "decision": 1, "sla.start": 1, "sla.remind": 1, "sla.stop": 1, "ack": 1}
    owner = decision["owner"]
    start = events["sla.start"]
    assert (start["owner"], start["tier"], start["event_id"]) == (owner, "hot", f"sla.start/salesforce/Lead/{lead_id}/0")
    assert start["data"]["deadline"] and start["data"]["ladder"]
    remind = events["sla.remind"]
    assert remind["event_id"] == f"sla.remind/salesforce/Lead/{lead_id}/0/0"
    assert remind["data"]["ladder_step"] == 1 and remind["wait_seconds"] == pytest.approx(61, abs=1)
    ack = events["ack"]
    assert (ack["owner"], ack["actor"], ack["tier"]) == (owner, "kim (cli)", "hot")
    assert ack["wait_seconds"] == pytest.approx(90, abs=1) and ack["data"]["within_sla"] is True
    assert events["sla.stop"]["actor"] == "kim (cli)"


def test_explain_reads_the_ledger_so_a_lead_redis_forgot_still_explains_itself(
    make_runtime: Any, admin: Any, ledger: Ledger, redis_url: str, redis_prefix: str, tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import yaml

    from tests.worker.conftest import routing_test_config

    data, config = routing_test_config()
    path = tmp_path / "routing.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    monkeypatch.setenv("REDIS_URL", redis_url)
    monkeypatch.setenv("LEADROUTE_PREFIX", redis_prefix)
    monkeypatch.setenv("LEADROUTE_CONFIG", str(path))
    rt = make_runtime(config)
    lead_id = load_leads(rt, admin, 1)["salesforce"]["ids"][0]
    route.poll(rt, "salesforce")
    drain(rt, "salesforce")
    route.reroute(rt, "salesforce", lead_id, to_rep="lee", why="customer asked", requested_by="ops")
    waiting_only = runner.invoke(cli, ["explain", lead_id, "--crm", "salesforce"], env={"COLUMNS": "200"})
    assert waiting_only.exit_code == 0, waiting_only.output  # not moved yet: the outbox answers
    assert "reroute by ops: customer asked" in waiting_only.output

    ledger_step.flush(rt.store, ledger)
    rt.store.clear()  # a year later: Redis has forgotten the lead altogether
    result = runner.invoke(cli, ["explain", lead_id, "--crm", "salesforce"], env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    first = ledger.for_lead("salesforce", lead_id)[0]
    assert "epoch 1" in result.output and "epoch 0" in result.output
    assert result.output.index("epoch 1") < result.output.index("epoch 0")  # newest first
    assert f"owner:  {first.owner}" in result.output and "owner:  lee" in result.output
    assert first.data["reason"][:40] in result.output.replace("\n", " ")
    assert "sla.start" in result.output or first.owner.startswith("queue:")


# ------------------------------------------------------------------------------- export


def history() -> list[LedgerEvent]:
    out = []
    for n in range(30):
        lead = LeadRef("salesforce", "Lead", f"00Q{n:03}")
        at = T0 + timedelta(hours=n)
        out.append(ledger_step.make_event(
            "decision", lead, 0, at, owner="mike", rule="emea", pool="emea", config_version="abc123",
            lead_created_at=at - timedelta(seconds=30), wait_seconds=30.0, source="web",
            data={"reason": "emea: DE -> pool emea", "target": "pool emea", "via": "rules", "considered": ["mike", "ann"],
                  "skipped": {"ann": "ooo"}, "unreadable": [], "facts": {"country": "DE"}}))
        out.append(ledger_step.make_event(
            "sla.remind", lead, 0, at + timedelta(minutes=5), 0, owner="mike", tier="hot", wait_seconds=300.0,
            data={"ladder_step": 1, "due_at": at + timedelta(minutes=5), "late_s": 1.5, "note": "remind"}))
    return out


@pytest.mark.parametrize("fmt", ["csv", "parquet"])
def test_export_writes_one_row_per_event_with_the_documented_columns(
    fmt: str, ledger: Ledger, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    ledger.write(history())
    monkeypatch.setattr(export_module, "ROWS_PER_GROUP", 7)  # several row groups: the rows are streamed through
    out = tmp_path / f"decisions.{fmt}"
    result = runner.invoke(cli, ["export", "decisions", "--format", fmt, "--out", str(out),
                                 "--since", "2025-03-02T12:00:00", "--until", "2025-03-03"])
    assert result.exit_code == 0, result.output
    assert "12 decisions event(s)" in result.output and not out.with_name(out.name + ".partial").exists()
    names = [c.name for c in export_module.columns("decisions")]
    assert names[:7] == ["event_id", "kind", "crm", "object", "lead_id", "epoch", "at"] and names[-1] == "data"
    if fmt == "csv":
        with out.open(newline="") as fh:
            rows = list(csv.DictReader(fh))
        assert list(rows[0]) == names
        first = rows[0]
        assert first["at"] == "2025-03-02T12:00:00+00:00" and first["epoch"] == "0"
        assert (first["wait_seconds"], first["previous_owner"], first["pool"]) == ("30.0", "", "emea")
        assert first["skipped"] == '{"ann":"ooo"}' and first["considered"] == '["mike","ann"]'
    else:
        table = pq.read_table(out)
        assert table.column_names == names
        assert pq.ParquetFile(out).num_row_groups == 2  # 12 rows, 7 at a time
        rows = table.to_pylist()
        first = rows[0]
        assert first["at"] == datetime(2025, 3, 2, 12, 0, tzinfo=UTC) and first["epoch"] == 0
        assert first["wait_seconds"] == 30.0 and first["previous_owner"] is None and first["via"] == "rules"
        assert str(table.schema.field("at").type) == "timestamp[us, tz=UTC]"
    assert [r["lead_id"] for r in rows] == [f"00Q{n:03}" for n in range(3, 15)]
    assert {r["kind"] for r in rows} == {"decision"}


def test_export_of_sla_events_and_of_an_empty_period(ledger: Ledger, tmp_path: Path) -> None:
    ledger.write(history())
    out = tmp_path / "sla.parquet"
    assert runner.invoke(cli, ["export", "sla", "--format", "parquet", "--out", str(out)]).exit_code == 0
    rows = pq.read_table(out).to_pylist()
    assert len(rows) == 30 and rows[0]["ladder_step"] == 1 and rows[0]["late_s"] == 1.5 and rows[0]["tier"] == "hot"
    empty = tmp_path / "outcomes.csv"
    result = runner.invoke(cli, ["export", "outcomes", "--format", "csv", "--out", str(empty)])
    assert result.exit_code == 0 and "0 outcomes event(s)" in result.output
    assert empty.read_text().splitlines() == [",".join(c.name for c in export_module.columns("outcomes"))]
    bad = runner.invoke(cli, ["export", "leads", "--out", str(empty)])
    assert bad.exit_code == 2 and "not one of decisions, sla, outcomes" in bad.output


# ------------------------------------------------------------------------------- health and metrics


def test_healthz_says_when_the_ledger_falls_behind_and_metrics_show_the_outbox(
    make_runtime: Any, serve: Any, ledger: Ledger  # noqa: F811
) -> None:
    rt = make_runtime()
    rt.store.outbox_append(history()[:5])
    limit = {"max_age": 3600.0}
    app = with_ledger_health(
        create_app(enqueue=lambda *a: None, first_seen=lambda *a: True, health_checks={"redis": rt.store.ping}),
        lambda: ledger_step.ledger_health(rt.store, limit["max_age"]),
    )
    base = serve(app)
    fine = requests.get(base + "/healthz", timeout=10)
    assert fine.status_code == 200 and fine.json()["status"] == "ok"
    assert fine.json()["ledger"]["outbox_depth"] == 5
    limit["max_age"] = 0.0  # SQL down for longer than the limit
    behind = requests.get(base + "/healthz", timeout=10)
    assert behind.status_code == 200  # webhooks still go in; nothing is lost, the outbox holds the events
    assert behind.json()["status"] == "degraded" and behind.json()["ledger"]["status"] == "degraded"
    metrics = requests.get(base + "/metrics", timeout=10).text
    assert "leadroute_ledger_outbox_depth 5.0" in metrics and "leadroute_ledger_outbox_oldest_seconds" in metrics
    ledger_step.flush(rt.store, ledger)
    assert requests.get(base + "/healthz", timeout=10).json()["ledger"]["outbox_depth"] == 0


def test_the_runtime_opens_and_migrates_the_ledger_named_by_database_url(make_runtime: Any, tmp_path: Path,
                                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    unreachable = "postgresql+psycopg://nobody@127.0.0.1:9/none?connect_timeout=2"
    monkeypatch.setenv("DATABASE_URL", unreachable)
    rt = make_runtime()
    rt.store.outbox_append(history()[:3])
    with pytest.raises(OperationalError):
        ledger_step.flush(rt.store, rt.ledger)  # SQL down: nothing moves, nothing is lost
    assert rt.store.outbox_stats().depth == 3
    monkeypatch.setenv("DATABASE_URL", f"sqlite:///{tmp_path / 'later.sqlite3'}")  # back, elsewhere
    assert ledger_step.flush(rt.store, rt.ledger).written == 3
    assert rt.ledger.count() == 3 and rt.store.outbox_stats().depth == 0


def test_a_decision_event_keeps_the_backup_walk_and_the_tie_breaker_that_decided() -> None:
    decision = {"owner": "ben", "rule": "named", "target": "rep ava", "owner_kind": "rep", "reason": "r",
                "chain": ["ava", "ben"], "tie_breaks": ["seniority"], "config_version": "cfg1"}
    event = ledger_step.decision_event(LeadRef("salesforce", "Lead", "00Q1"), 0, decision,
                                       datetime(2026, 3, 2, 9, tzinfo=UTC))
    assert (event.data["chain"], event.data["tie_breaks"]) == (["ava", "ben"], ["seniority"])


def test_retention_prunes_what_is_older_than_the_configured_age_and_nothing_by_default(ledger: Ledger) -> None:
    now = datetime(2026, 3, 2, 9, tzinfo=UTC)
    ledger.write([
        LedgerEvent(event_id=f"decision/salesforce/Lead/00Q{n}/0", kind="decision", crm="salesforce", object="Lead",
                    lead_id=f"00Q{n}", epoch=0, at=now - timedelta(days=days))
        for n, days in enumerate((1, 29, 31, 400))
    ])
    assert ledger_step.apply_retention(ledger, None, now=now) == 0
    assert ledger.count() == 4
    assert ledger_step.apply_retention(ledger, 30 * 86_400.0, now=now) == 2
    assert sorted(e.lead_id for e in ledger.between()) == ["00Q0", "00Q1"]


def test_a_long_export_reports_progress_on_stderr_and_keeps_stdout_for_its_summary(
    ledger: Ledger, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    ledger.write(history())
    monkeypatch.setenv("LEADROUTE_PROGRESS_EVERY", "0")  # not a terminal: a plain line per tick
    out = tmp_path / "decisions.csv"
    result = runner.invoke(cli, ["export", "decisions", "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert "export decisions: 100% 30 events" in result.stderr  # every decision of the history
    assert "export decisions" not in result.stdout
