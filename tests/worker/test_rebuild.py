"""Redis loses its data in the middle of the worker's life: the state is rebuilt from the CRM and the ledger.

Against the sandbox CRM over HTTPS, a real Redis (flushed mid-life) and a SQLite ledger per test.
Every SLA clock comes back due at the same instant with the same ladder position, round robin
continues after the rep it served last, loads match, and no lead is routed twice.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import redis
from typer.testing import CliRunner

from tests.worker.test_pipeline import INTAKE_QUEUE, drain, load_leads
from worker.app.runtime import Runtime
from worker.cli.commands import app as cli
from worker.devtools.synthetic import salesforce_lead
from worker.domain.leads import LeadRef
from worker.ledger.ledger import Ledger
from worker.sla.policy import lead_of
from worker.steps import ledger as ledger_step
from worker.steps import rebuild, route

HOT = {"first_name": "Hana", "last_name": "Ito", "email": "hana@tinyshop.io", "company": "TinyShop",
       "country": "US", "state": "FL", "postcode": "33101", "employees": "20", "lead_source": "Demo Request",
       "score": "90"}


@pytest.fixture
def ledger(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Ledger]:
    url = f"sqlite:///{tmp_path / 'ledger.sqlite3'}"
    monkeypatch.setenv("DATABASE_URL", url)
    opened = Ledger.open(url)
    yield opened
    opened.close()


def lose_redis(rt: Runtime, client: redis.Redis, owned: bool) -> None:
    """What an operator's FLUSHALL (or a restart without persistence) does; on a shared Redis, our keys only."""
    if owned:
        client.flushall()
    else:
        rt.store.clear()
    assert rt.store.state_marker() is None and rt.store.all_loads() == {}


def state(rt: Runtime) -> dict[str, Any]:
    """Everything a rebuild must give back, read from Redis."""
    store = rt.store
    timers = dict(store.client.zrange(store.key("timers"), 0, -1, withscores=True))
    payloads = store.timer_payloads(list(timers))
    clocks = {tid: (round(due, 3), payloads[tid]) for tid, due in timers.items()}
    pools = {name: store.client.hgetall(store.key("pool", name)) for name in ("smb", "mid-market")}
    return {
        "loads": store.all_loads(),
        "clocks": clocks,
        "indexes": {rep: sorted(tid for tid, _ in store.rep_timers(rep)) for rep in rt.config.reps},
        "open": {crm: store.open_leads(crm) for crm in rt.crms},
        "smb": {k: v for k, v in pools["smb"].items() if k == "last" or k.startswith("r:")},
        "mid-market": pools["mid-market"],
    }


def route_everything(rt: Runtime) -> list[route.Handled]:
    handled = []
    for crm in rt.crms:
        route.poll(rt, crm)
        handled += drain(rt, crm)
    return handled


def routed_once(ledger: Ledger, crm: str, lead_id: str) -> list[str]:
    return [e.event_id for e in ledger.for_lead(crm, lead_id) if e.kind in ("decision", "reroute")]


def test_after_a_flushall_the_state_comes_back_and_routing_goes_on_as_if_nothing_happened(
    make_runtime: Any, admin: Any, ledger: Ledger, redis_client: redis.Redis, redis_owned: bool
) -> None:
    rt = make_runtime()
    assert rebuild.ensure_state(rt, ledger=lambda: ledger).status == "stamped"  # a new deployment: nothing to rebuild
    created = load_leads(rt, admin, 40)
    sf_map = dict(rt.config.model.connectors.salesforce.fields)
    (hot,) = admin.sf_load("Lead", [salesforce_lead(HOT, sf_map, INTAKE_QUEUE)])
    routed_at = datetime.now(UTC)
    first = route_everything(rt)
    written = {h.lead_id for h in first if h.outcome == "written"}
    assert hot in written and len(written) >= 80
    # the hot clocks climb their ladder: the reminder at one minute is done before Redis goes
    sweep = rt.sla.sweep(routed_at + timedelta(seconds=75))
    assert any(a.action == "remind" for a in sweep.actions)
    ledger_step.flush(rt.store, ledger, config=rt.config)
    before = state(rt)
    assert before["clocks"] and before["smb"]["last"] and before["mid-market"]

    lose_redis(rt, redis_client, redis_owned)
    check = rebuild.ensure_state(rt, ledger=lambda: ledger)

    assert check.status == "rebuilt" and check.ready
    after = state(rt)
    assert after["loads"] == before["loads"]
    assert after["open"] == before["open"]
    assert after["clocks"] == before["clocks"]  # same leads, owners, tiers, deadlines, ladder steps done, due instants
    assert after["indexes"] == before["indexes"]
    assert after["smb"] == before["smb"]  # round robin goes on after the rep it served last
    assert after["mid-market"] == before["mid-market"]  # and weighted round robin from the same scores
    assert rebuild.ensure_state(rt, ledger=lambda: ledger).status == "ok"  # once: the marker is back

    # the poll starts from the beginning (its watermark went too): nothing routed before is routed again
    again = route_everything(rt)
    assert {h.lead_id for h in again if h.outcome == "written"} & written == set()
    for crm in rt.crms:
        route.reconcile_orphans(rt, crm, min_age=0)
        assert {h.lead_id for h in drain(rt, crm) if h.outcome == "written"} & written == set()
    ledger_step.flush(rt.store, ledger, config=rt.config)
    for crm in rt.crms:
        for lead_id in created[crm]["ids"]:
            assert len(routed_once(ledger, crm, lead_id)) <= 1
    assert rt.store.all_loads() == before["loads"]

    # every open clock fires its next step on time, and the reminder already sent is not sent again
    notices = rt.enqueue.sla_notices
    sent = len(notices)
    rt.sla.sweep(routed_at + timedelta(seconds=125))
    about_hot = [(n["kind"], n["to"]) for n in notices[sent:] if n["lead"][2] == hot]
    assert about_hot == [("escalation", "maria")]


def smb_leads(rt: Runtime, admin: Any, names: str) -> list[str]:
    """Demo requests from small companies: the ``smb`` pool's round robin takes them."""
    sf_map = dict(rt.config.model.connectors.salesforce.fields)
    return admin.sf_load("Lead", [salesforce_lead({**HOT, "email": f"{n}@tinyshop.io"}, sf_map, INTAKE_QUEUE) for n in names])


def test_new_leads_after_a_rebuild_continue_the_rotation(
    make_runtime: Any, admin: Any, ledger: Ledger, redis_client: redis.Redis, redis_owned: bool
) -> None:
    rt = make_runtime()
    rebuild.ensure_state(rt, ledger=lambda: ledger)
    smb_leads(rt, admin, "abcd")
    route_everything(rt)
    ledger_step.flush(rt.store, ledger, config=rt.config)
    last = rt.store.client.hget(rt.store.key("pool", "smb"), "last")
    members = rt.config.model.pools["smb"].members
    assert last in members
    lose_redis(rt, redis_client, redis_owned)
    assert rebuild.ensure_state(rt, ledger=lambda: ledger).status == "rebuilt"

    later = smb_leads(rt, admin, "efg")
    handled = {h.lead_id: h.owner for h in route_everything(rt)}
    start = members.index(last) + 1
    assert [handled[rid] for rid in later] == [members[(start + k) % len(members)] for k in range(3)]


def test_a_lead_decided_but_not_yet_written_gets_its_decision_back_and_the_same_owner(
    make_runtime: Any, admin: Any, ledger: Ledger, redis_client: redis.Redis, redis_owned: bool,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(route, "RETRY_DELAY", 0.0)
    rt = make_runtime()
    rebuild.ensure_state(rt, ledger=lambda: ledger)
    ids = load_leads(rt, admin, 10, seed=5)["hubspot"]["ids"]
    route.poll(rt, "hubspot")
    admin.script_fault("503", api="hubspot", endpoint="POST /crm/v3/objects/contacts/batch/update", count=50)
    with pytest.raises(route.RetriableError):
        route.route_pending(rt, "hubspot", limit=100)
    admin.clear_faults()
    decided = {rid: d.decision["owner"] for rid, d in
               zip(ids, rt.store.decisions([LeadRef("hubspot", "contacts", rid).at(0) for rid in ids]), strict=True)}
    loads = rt.store.all_loads()
    ledger_step.flush(rt.store, ledger, config=rt.config)

    lose_redis(rt, redis_client, redis_owned)
    report = rebuild.ensure_state(rt, ledger=lambda: ledger).report
    assert report is not None and len(report.decisions) >= len(ids)
    assert rt.store.all_loads() == loads  # decided leads count for their owners, as before

    route.poll(rt, "hubspot")
    handled = {h.lead_id: h for h in drain(rt, "hubspot")}
    assert {rid: handled[rid].owner for rid in ids} == decided  # replayed, not decided again
    assert rt.store.all_loads() == loads
    ledger_step.flush(rt.store, ledger, config=rt.config)
    assert all(routed_once(ledger, "hubspot", rid) == [f"decision/hubspot/contacts/{rid}/0"] for rid in ids)


def test_an_acknowledged_or_reassigned_by_hand_lead_counts_for_nobody_and_has_no_clock(
    make_runtime: Any, admin: Any, ledger: Ledger, redis_client: redis.Redis, redis_owned: bool
) -> None:
    rt = make_runtime()
    rebuild.ensure_state(rt, ledger=lambda: ledger)
    sf_map = dict(rt.config.model.connectors.salesforce.fields)
    acked, moved = admin.sf_load("Lead", [salesforce_lead({**HOT, "email": f"{n}@tinyshop.io"}, sf_map, INTAKE_QUEUE)
                                          for n in ("a", "b")])
    route_everything(rt)
    ledger_step.flush(rt.store, ledger, config=rt.config)
    admin.sf_set_status(acked, "Working - Contacted")
    owner = rt.store.open_leads("salesforce")[moved]
    other = next(rep for rep in rt.config.reps if rep != owner and "salesforce" in rt.config.reps[rep].crm_ids)
    admin.sf_change_owner(moved, rt.config.reps[other].crm_ids["salesforce"])
    lose_redis(rt, redis_client, redis_owned)

    report = rebuild.ensure_state(rt, ledger=lambda: ledger).report

    assert report is not None
    assert report.left_out["acknowledged"] >= 1 and report.left_out["owner changed in the CRM"] >= 1
    assert acked not in rt.store.open_leads("salesforce") and moved not in rt.store.open_leads("salesforce")
    open_clocks = {str(lead_of(r.timer_id)) for r, _ in report.clocks}
    assert f"salesforce:Lead:{acked}" not in open_clocks and f"salesforce:Lead:{moved}" not in open_clocks


def test_a_state_marked_for_another_deployment_is_not_routed_into_nor_rebuilt_without_force(
    make_runtime: Any, admin: Any, ledger: Ledger, monkeypatch: pytest.MonkeyPatch, sandbox: Any
) -> None:
    rt = make_runtime()
    rebuild.ensure_state(rt, ledger=lambda: ledger)
    rt.store.stamp_state("0123456789abcdef")  # the marker of a state built with another ledger
    check = rebuild.ensure_state(rt, ledger=lambda: ledger)
    assert (check.status, check.ready) == ("foreign", False)
    monkeypatch.setenv("LEADROUTE_PREFIX", rt.store.prefix)
    monkeypatch.setenv("REDIS_URL", _url(rt))
    runner = CliRunner()
    refused = runner.invoke(cli, ["rebuild"])
    assert refused.exit_code == 1 and "--force" in refused.output
    dry = runner.invoke(cli, ["rebuild", "--dry-run", "--json"])
    assert dry.exit_code == 0, dry.output
    assert json.loads(dry.stdout)["state"] == "foreign" and json.loads(dry.stdout)["dry_run"] is True
    forced = runner.invoke(cli, ["rebuild", "--force"])
    assert forced.exit_code == 0, forced.output
    assert "restored: loads" in forced.output
    assert rebuild.ensure_state(rt, ledger=lambda: ledger).status == "ok"


def test_never_two_rebuilds_at_once(make_runtime: Any, admin: Any, ledger: Ledger) -> None:
    rt = make_runtime()
    token = rt.store.acquire_lock(rebuild.REBUILD_LOCK, 30)
    assert token is not None
    with pytest.raises(rebuild.RebuildBusy):
        rebuild.rebuild(rt, ledger)
    assert rebuild.ensure_state(rt, ledger=lambda: ledger).status == "busy"  # the drain waits and tries again
    rt.store.release_lock(rebuild.REBUILD_LOCK, token)
    assert rebuild.ensure_state(rt, ledger=lambda: ledger).status == "stamped"


def _url(rt: Runtime) -> str:
    kwargs = rt.store.client.connection_pool.connection_kwargs
    return f"redis://{kwargs['host']}:{kwargs['port']}/{kwargs.get('db', 0)}"


def test_counts_of_what_was_restored_are_reported(make_runtime: Any, admin: Any, ledger: Ledger) -> None:
    rt = make_runtime()
    load_leads(rt, admin, 6, seed=9)
    route_everything(rt)
    ledger_step.flush(rt.store, ledger, config=rt.config)
    report = rebuild.rebuild(rt, ledger, dry_run=True)
    figures = report.to_dict()
    assert figures["dry_run"] is True and figures["generation"] is None
    assert sum(figures["loads"].values()) == sum(rt.store.all_loads().values())
    assert Counter(report.left_out).total() + figures["open_leads"] + figures["decisions_restored"] <= figures["leads"]


def test_leads_routed_after_the_ledgers_newest_event_are_found_in_the_crm_with_their_load_and_clock(
    make_runtime: Any, admin: Any, ledger: Ledger, redis_client: redis.Redis, redis_owned: bool
) -> None:
    """The last seconds' events were still in the Redis outbox when it was lost: the CRM still knows those leads."""
    rt = make_runtime()
    rebuild.ensure_state(rt, ledger=lambda: ledger)
    smb_leads(rt, admin, "ab")
    route_everything(rt)
    ledger_step.flush(rt.store, ledger, config=rt.config)
    late = smb_leads(rt, admin, "cde")  # routed, but their events never reach the ledger
    route_everything(rt)
    before = state(rt)
    late_clocks = {f"sla:salesforce:Lead:{rid}" for rid in late}
    assert late_clocks <= set(before["clocks"])
    lose_redis(rt, redis_client, redis_owned)

    report = rebuild.ensure_state(rt, ledger=lambda: ledger).report

    assert report is not None and report.unrecorded == len(late)
    after = state(rt)
    assert after["loads"] == before["loads"] and after["open"] == before["open"]
    for tid in late_clocks:  # started again at the owner write, as the sweep started them: within the write's second
        (due, payload), (due_before, payload_before) = after["clocks"][tid], before["clocks"][tid]
        assert payload["o"] == payload_before["o"] and payload["t"] == payload_before["t"]
        assert abs(due - due_before) < 5
    moved = ledger_step.flush(rt.store, ledger, config=rt.config)
    assert moved.refused == 0
    starts = [e for rid in late for e in ledger.for_lead("salesforce", rid) if e.kind == "sla.start"]
    assert len(starts) == len(late)  # the ledger hears of the restarted clocks


def test_a_lead_written_by_a_batch_in_flight_during_the_rebuild_is_counted_once(
    make_runtime: Any, admin: Any, ledger: Ledger, redis_client: redis.Redis, redis_owned: bool
) -> None:
    rt = make_runtime()
    rebuild.ensure_state(rt, ledger=lambda: ledger)
    smb_leads(rt, admin, "ab")
    route_everything(rt)
    ledger_step.flush(rt.store, ledger, config=rt.config)
    in_flight, later = smb_leads(rt, admin, "c"), smb_leads(rt, admin, "d")
    began = datetime.now(UTC)
    lose_redis(rt, redis_client, redis_owned)

    report = rebuild.plan(rt, ledger, dry_run=False)
    tom = rt.config.reps["tom"].crm_ids["salesforce"]
    admin.sf_change_owner(in_flight[0], tom)  # a batch that claimed before the loss writes while the rebuild reads
    rebuild.apply(rt, report)
    loads = rt.store.all_loads()
    route_everything(rt)  # a batch after the rebuild: its claim counts its own lead
    routed_after = rt.store.open_leads("salesforce")[later[0]]

    assert rebuild.catch_up(rt, report, began - timedelta(minutes=2)) == 1
    assert rt.store.open_leads("salesforce")[in_flight[0]] == "tom"
    expected = Counter(loads) + Counter({"tom": 1, routed_after: 1})
    assert rt.store.all_loads() == dict(expected)
