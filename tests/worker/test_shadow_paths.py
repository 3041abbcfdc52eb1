"""Shadow mode on each of the drain's paths, and each way it can fail: against the sandbox CRM over HTTPS and
a real Redis, as in ``test_shadow.py``.

The candidate is compared with what live did: the decision as written (the fallback's when the CRM refused
the decided owner), a lead routed again after a rejection, a lead related by the candidate's own
relationship settings; a live write that must be retried is booked before the candidate runs.
"""

from __future__ import annotations

import copy
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
import structlog
import yaml

from connectors.base import RetriableError
from tests.worker.conftest import routing_test_config
from tests.worker.test_pipeline import INTAKE_QUEUE, drain, load_leads
from tests.worker.test_shadow import candidate_of, learning_smb, metric
from worker.app.runtime import Runtime
from worker.config import parse_config
from worker.devtools.synthetic import salesforce_lead, synthetic_leads
from worker.domain.leads import LeadRef
from worker.ledger.events import LedgerEvent
from worker.steps import ledger as ledger_step
from worker.steps import route, shadow

TEAM = ["tom", "raj", "kim"]


def shadowed(make_runtime: Any, tmp_path: Path, live: dict[str, Any], candidate: dict[str, Any]) -> Runtime:
    """A runtime on ``live`` with ``candidate`` in shadow, both as files, loaded as the worker loads them."""
    data = copy.deepcopy(live)
    data["worker"] = {**data.get("worker", {}), "shadow": "candidate.yaml"}
    path = tmp_path / "routing.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    (tmp_path / "candidate.yaml").write_text(yaml.safe_dump(candidate, sort_keys=False))
    config = parse_config(path.read_text(), str(path))
    rt = make_runtime(config)
    rt.shadow = shadow.load_shadow(config, rt.store)
    assert rt.shadow is not None
    return rt


def shadow_events(rt: Runtime, rid: str, crm: str = "salesforce", obj: str = "Lead") -> list[LedgerEvent]:
    """The lead's shadow events waiting in the outbox (read, not claimed)."""
    found = (ledger_step.entry_event(e, rt.config) for e in rt.store.outbox_for_lead(crm, obj, rid))
    return [e for e in found if e is not None and e.kind == "shadow"]


def team(extra: dict[str, Any] | None = None) -> dict[str, Any]:
    """One round-robin team for every lead, and a rule that takes the account owner first."""
    return routing_test_config({
        "pools": {"team": {"members": TEAM, "strategy": "round_robin"}},
        "rules": [{"name": "named-account", "when": {"account_owner": {"exists": True}}, "assign": {"account_owner": True}},
                  {"name": "everyone", "assign": {"pool": "team"}}],
        "fallback": {"queue": "triage"},
        **(extra or {}),
    })[0]


def new_lead(admin: Any, email: str, n: int) -> str:
    (rid,) = admin.sf_load("Lead", [{"LastName": f"Shadow {n}", "Company": f"Shadowco {n}", "Email": email,
                                     "Status": "Open - Not Contacted", "OwnerId": INTAKE_QUEUE}])
    return rid


def route_all(rt: Runtime) -> dict[str, route.Handled]:
    route.poll(rt, "salesforce")
    return {h.lead_id: h for h in drain(rt, "salesforce")}


def live_decision(rt: Runtime, rid: str) -> dict[str, Any]:
    found = rt.store.decision(rt.store.current_key(LeadRef("salesforce", "Lead", rid)))
    assert found is not None
    return found.decision


# ------------------------------------------------------------------------------------------- what live did


def test_the_candidate_is_compared_with_the_owner_live_wrote_the_fallback_when_the_crm_refused(
    tmp_path: Path, make_runtime: Any, admin: Any
) -> None:
    data, _ = routing_test_config()
    kim = next(r for r in data["reps"] if r["id"] == "kim")
    kim["crm_ids"]["salesforce"] = "0055e000001FoRmAAK"  # a deactivated user: Salesforce refuses it as owner
    rt = shadowed(make_runtime, tmp_path, data, data)  # the candidate decides kim too, and writes nothing
    manhattan = {"first_name": "Sam", "last_name": "Lee", "email": "sam@bigapple.nyc", "company": "Big Apple",
                 "country": "US", "state": "NY", "postcode": "10001", "employees": "60"}
    sf_map = dict(rt.config.model.connectors.salesforce.fields)
    (rid,) = admin.sf_load("Lead", [salesforce_lead(manhattan, sf_map, INTAKE_QUEUE)])
    assert route_all(rt)[rid].outcome == "fallback_after_refusal"
    assert live_decision(rt, rid)["owner"] == "kim"  # decided kim; the CRM refused; the fallback was written
    (event,) = shadow_events(rt, rid)
    assert event.owner == "kim"
    assert (event.data["live"]["owner"], event.data["live"]["rule"]) == ("queue:triage", "fallback")
    assert "refused" in event.data["live"]["reason"]
    assert event.data["agree"] is False


def test_a_failed_crm_write_is_booked_for_retry_before_the_candidate_runs_and_shadowed_once_written(
    tmp_path: Path, make_runtime: Any, admin: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(route, "RETRY_DELAY", 0.0)  # failed ids are due again at once
    data, _ = routing_test_config()
    rt = shadowed(make_runtime, tmp_path, data, candidate_of(data))
    ids = load_leads(rt, admin, 10, seed=19)["hubspot"]["ids"]
    rt.pending.add("hubspot", ids, "test")
    steps: list[Any] = []
    retry_later, shadow_batch = rt.pending.retry_later, route.shadow_batch

    def booked(*args: Any, **kwargs: Any) -> Any:
        steps.append("retry booked")
        return retry_later(*args, **kwargs)

    def shadowing(rt_: Runtime, crm: str, work: Any, overrides: Any) -> int:
        steps.append(("shadow", len(work)))
        return shadow_batch(rt_, crm, work, overrides)

    monkeypatch.setattr(rt.pending, "retry_later", booked)
    monkeypatch.setattr(route, "shadow_batch", shadowing)
    admin.script_fault("503", api="hubspot", endpoint="POST /crm/v3/objects/contacts/batch/update", count=50)
    with pytest.raises(RetriableError):
        route.route_pending(rt, "hubspot", limit=100)
    assert steps == ["retry booked", ("shadow", 0)]  # booked first; a lead whose live write waits is not shadowed yet
    keys = [LeadRef("hubspot", "contacts", rid).at(0) for rid in ids]
    assert rt.shadow is not None and rt.shadow.store.decisions(keys) == [None] * len(ids)

    admin.clear_faults()
    steps.clear()
    assert Counter(h.outcome for h in drain(rt, "hubspot")) == {"written": len(ids)}
    assert steps == [("shadow", len(ids))]  # written now, and shadowed beside the written decisions
    assert all(d is not None for d in rt.shadow.store.decisions(keys))


def test_a_lead_routed_again_after_a_rejection_is_shadowed_away_from_the_reps_who_rejected_it(
    tmp_path: Path, make_runtime: Any, admin: Any
) -> None:
    data = team()
    rt = shadowed(make_runtime, tmp_path, data, data)
    route_all(rt)  # the seed's waiting leads
    sf_map = dict(rt.config.model.connectors.salesforce.fields)
    (rid,) = admin.sf_load("Lead", [salesforce_lead(lead, sf_map, INTAKE_QUEUE) for lead in synthetic_leads(1, seed=3)])
    route_all(rt)
    first = live_decision(rt, rid)["owner"]
    admin.sf_change_owner(rid, INTAKE_QUEUE)  # the rep hands it back
    assert route_all(rt)[rid].epoch == 1
    again = live_decision(rt, rid)
    assert rt.shadow is not None
    found = rt.shadow.store.decision(LeadRef("salesforce", "Lead", rid).at(1))
    assert found is not None
    cand = found.decision
    assert cand["owner"] in TEAM and cand["owner"] != first
    assert cand["skipped"] == {first: "rejected"} and cand["excluded"] == [first] and cand["via"] == "rejection"
    events = {e.epoch: e for e in shadow_events(rt, rid)}
    assert set(events) == {0, 1}
    assert events[1].event_id == f"shadow/salesforce/Lead/{rid}/1/{rt.shadow.version}"
    assert events[1].data["live"]["owner"] == again["owner"] and events[1].data["excluded"] == [first]


def test_the_candidate_relates_leads_with_its_own_relationship_settings_from_the_same_read(
    tmp_path: Path, make_runtime: Any, admin: Any
) -> None:
    live = team({"relationships": [{"match": "recent_decision", "lookback": "30d"}]})
    rt = shadowed(make_runtime, tmp_path, live, team({"relationships": []}))
    route_all(rt)
    first = new_lead(admin, "a@shadow-rel.com", 1)
    route_all(rt)
    owner = live_decision(rt, first)["owner"]
    second = new_lead(admin, "b@shadow-rel.com", 2)
    reads: list[list[str]] = []
    last_owners = rt.store.last_owners

    def counted(domains: list[str]) -> Any:
        reads.append(list(domains))
        return last_owners(domains)

    rt.store.last_owners = counted  # type: ignore[method-assign]
    route_all(rt)
    assert len(reads) == 1  # one read for live and candidate
    assert (live_decision(rt, second)["owner"], live_decision(rt, second)["rule"]) == (owner, "named-account")
    (event,) = shadow_events(rt, second)
    assert event.rule == "everyone"  # the candidate has no relationships: the lead is related for live only
    assert "relationship" not in event.data["facts"] and "account_owner" not in event.data["facts"]


# ------------------------------------------------------------------------------------------- failures


def test_a_failed_ledger_append_is_caught_counted_and_the_live_batch_is_untouched(
    tmp_path: Path, make_runtime: Any, admin: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    data, _ = routing_test_config()
    rt = shadowed(make_runtime, tmp_path, data, candidate_of(data))
    append = rt.store.outbox_append

    def refusing(events: Any) -> int:
        events = list(events)
        if any(getattr(e, "kind", None) == "shadow" for e in events):
            raise ConnectionError("outbox append failed")
        return append(events)

    monkeypatch.setattr(rt.store, "outbox_append", refusing)
    ids = load_leads(rt, admin, 9, seed=37)["salesforce"]["ids"]
    rt.pending.add("salesforce", ids, "test")
    before = metric("leadroute_shadow_failures_total", stage="record")
    with structlog.testing.capture_logs() as logs:
        handled = drain(rt, "salesforce")
    assert Counter(h.outcome for h in handled) == {"written": 9}
    assert metric("leadroute_shadow_failures_total", stage="record") - before == 9
    assert any(e["event"] == "shadow_failed" and e["stage"] == "record" and "append failed" in e["error"] for e in logs)
    assert all(shadow_events(rt, rid) == [] for rid in ids)


def test_a_failed_shadow_load_recount_is_caught_counted_and_the_live_recount_stands(
    tmp_path: Path, make_runtime: Any, admin: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    data, _ = routing_test_config()
    rt = shadowed(make_runtime, tmp_path, data, data)
    ids = load_leads(rt, admin, 12, seed=41)["salesforce"]["ids"]
    rt.pending.add("salesforce", ids, "test")
    drain(rt, "salesforce")
    assert rt.shadow is not None
    shadow_loads = rt.shadow.store.all_loads()

    def broken(counts: Any) -> None:
        raise ConnectionError("shadow store gone")

    monkeypatch.setattr(rt.shadow.store, "set_loads", broken)
    acked = sorted(rt.store.open_leads("salesforce"))[:3]
    for rid in acked:
        admin.sf_set_status(rid, "Working - Contacted")
    before = metric("leadroute_shadow_failures_total", stage="loads")
    with structlog.testing.capture_logs() as logs:
        loads = route.reconcile_loads(rt)
    assert rt.store.all_loads() == loads and sum(loads.values()) == sum(shadow_loads.values()) - 3
    assert metric("leadroute_shadow_failures_total", stage="loads") - before == 1
    assert any(e["event"] == "shadow_failed" and e["stage"] == "loads" for e in logs)
    assert rt.shadow.store.all_loads() == shadow_loads  # left as it was, for the next recount


def test_an_unreadable_rate_table_is_caught_counted_and_the_candidate_routes_on_its_priors(
    tmp_path: Path, make_runtime: Any, admin: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    data, _ = routing_test_config()
    with structlog.testing.capture_logs() as logs:
        rt = shadowed(make_runtime, tmp_path, data, learning_smb(candidate_of(data)))
    (warning,) = [e for e in logs if e["event"] == "shadow_rates_differ"]  # said once, at load
    assert (warning["live"], warning["shadow"]) == ("no performance_weighted pool", "by segment, window 30d")

    def unreadable() -> str:
        raise ConnectionError("rates unreadable")

    monkeypatch.setattr(rt.store, "rates_version", unreadable)  # only the candidate learns: live never reads it
    ids = load_leads(rt, admin, 10, seed=43)["salesforce"]["ids"]
    rt.pending.add("salesforce", ids, "test")
    before = metric("leadroute_shadow_failures_total", stage="rates")
    with structlog.testing.capture_logs() as logs:
        handled = drain(rt, "salesforce")
    assert Counter(h.outcome for h in handled) == {"written": 10}
    batches = sum(1 for e in logs if e["event"] == "shadow_decided")
    assert batches >= 1 and metric("leadroute_shadow_failures_total", stage="rates") - before == batches
    assert sum(1 for e in logs if e["event"] == "shadow_rates_unread") == batches
    assert rt.shadow is not None
    assert all(d is not None for d in rt.shadow.store.decisions([LeadRef("salesforce", "Lead", r).at(0) for r in ids]))
