"""Shadow mode: a candidate config decides every live lead again, against a state of its own, and is
never acted on. Against the sandbox CRM over HTTPS and a real Redis, the ledger a SQLite file per test.

The candidate in most tests is the demo config with raj taken out of the smb pool and the
mid-market-na rule sent to the smb pool: a known edit, so where shadow and live part is known.
"""

from __future__ import annotations

import copy
import json
import re
from collections import Counter
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
import structlog
import yaml
from prometheus_client import REGISTRY
from typer.testing import CliRunner

from tests.worker.conftest import RecordingEnqueuer, routing_test_config
from tests.worker.test_pipeline import INTAKE_QUEUE, drain, load_leads
from worker.app.runtime import Runtime
from worker.cli.commands import app as cli
from worker.config import ConfigError, RoutingConfig, parse_config
from worker.domain.leads import LeadRef
from worker.ledger.ledger import Ledger
from worker.routing.perf import RateTable
from worker.steps import ledger as ledger_step
from worker.steps import rates as rates_step
from worker.steps import route, shadow
from worker.store.pending import PendingSet
from worker.store.redis_store import RedisStore


def candidate_of(data: dict[str, Any]) -> dict[str, Any]:
    """The known edit: raj leaves the smb pool; mid-market-na leads go to the smb pool."""
    cand = copy.deepcopy(data)
    cand["pools"]["smb"]["members"] = ["tom", "kim"]
    for rule in cand["rules"]:
        if rule["name"] == "mid-market-na":
            rule["assign"] = {"pool": "smb"}
    return cand


def write_configs(tmp_path: Path, candidate: dict[str, Any] | str | None = None,
                  shadow_entry: str = "candidate.yaml") -> tuple[RoutingConfig, dict[str, Any]]:
    """The live config (naming ``shadow_entry``) and the candidate beside it, as files; the live config parsed."""
    data, _ = routing_test_config()
    live = copy.deepcopy(data)
    live["worker"] = {**live.get("worker", {}), "shadow": shadow_entry}
    path = tmp_path / "routing.yaml"
    path.write_text(yaml.safe_dump(live, sort_keys=False))
    if candidate is not None:
        text = candidate if isinstance(candidate, str) else yaml.safe_dump(candidate, sort_keys=False)
        (tmp_path / "candidate.yaml").write_text(text)
    return parse_config(path.read_text(), str(path)), data


def shadowed_runtime(make_runtime: Any, tmp_path: Path, candidate: dict[str, Any] | None = None) -> Runtime:
    config, _ = write_configs(tmp_path, candidate if candidate is not None else candidate_of(routing_test_config()[0]))
    rt = make_runtime(config)
    rt.shadow = shadow.load_shadow(config, rt.store)
    assert rt.shadow is not None
    return rt


def metric(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


TIMES = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?([+-]\d\d:\d\d|Z)?|\b\d{10,}(\.\d+)?\b")
STREAM_ID = re.compile(r"<t>-\d+")


def _masked(value: Any, prefix: str) -> str:
    """A stored value with its clock readings and key prefix masked (each run has its own of both)."""
    text = value.decode() if isinstance(value, bytes) else str(value)
    return STREAM_ID.sub("<t>", TIMES.sub("<t>", text.replace(prefix, "<prefix>")))  # an outbox entry id is a time


def live_key_space(client: Any, prefix: str) -> dict[str, Any]:
    """Every key under ``prefix`` but the shadow's, by name relative to the prefix, with its type and contents
    (clock readings masked; sorted-set scores, which are times, left out; the outbox without shadow events,
    which shadow mode appends there by design). Read here, in a test: only the worker must go through the store."""
    out: dict[str, Any] = {}
    for raw in client.scan_iter(match=f"{prefix}:*", count=1000):
        key = raw.decode() if isinstance(raw, bytes) else raw
        name = key.removeprefix(prefix)
        if name.startswith(":shadow:"):
            continue
        kind = client.type(key)
        kind = kind.decode() if isinstance(kind, bytes) else kind
        if kind == "string":
            body: Any = _masked(client.get(key), prefix)
        elif kind == "hash":
            body = {_masked(f, prefix): _masked(v, prefix) for f, v in client.hgetall(key).items()}
        elif kind == "zset":
            body = sorted(_masked(m, prefix) for m in client.zrange(key, 0, -1))
        elif kind == "set":
            body = sorted(_masked(m, prefix) for m in client.smembers(key))
        elif kind == "list":
            body = [_masked(v, prefix) for v in client.lrange(key, 0, -1)]
        elif kind == "stream":
            entries = [{_masked(f, prefix): _masked(v, prefix) for f, v in fields.items()} for _, fields in client.xrange(key)]
            body = sorted(json.dumps(e, sort_keys=True) for e in entries
                          if json.loads(e.get("e", "{}")).get("kind") != "shadow")
        else:
            body = kind
        out[name] = (kind, body)
    return out


def moved_to_ledger(rt: Runtime, tmp_path: Path) -> Ledger:
    ledger = Ledger.open(f"sqlite:///{tmp_path / 'ledger.sqlite3'}")
    ledger_step.flush(rt.store, ledger, config=rt.config)
    return ledger


# ------------------------------------------------------------------------------------------- the setting


def test_the_shadow_entry_names_a_file_beside_the_config_and_is_not_part_of_the_config_version(tmp_path: Path) -> None:
    config, data = write_configs(tmp_path)
    plain = parse_config(yaml.safe_dump(data, sort_keys=False), "plain.yaml")
    assert config.model.worker.shadow == "candidate.yaml"
    assert shadow.candidate_path(config) == tmp_path / "candidate.yaml"
    assert shadow.candidate_path(plain) is None
    assert config.version_hash == plain.version_hash  # turning shadow on changes no live decision's version
    absolute, _ = write_configs(tmp_path, shadow_entry=str(tmp_path / "elsewhere.yaml"))
    assert shadow.candidate_path(absolute) == tmp_path / "elsewhere.yaml"
    with pytest.raises(ConfigError, match=r"worker\.shadow"):
        write_configs(tmp_path, shadow_entry="")


@pytest.mark.parametrize("candidate", [None, "reps: [oops", "reps: []\nfallback: {queue: triage}\n"],
                         ids=["missing", "unparseable", "invalid"])
def test_an_unusable_candidate_is_one_clear_error_at_load_and_live_routing_goes_on(
    candidate: str | None, tmp_path: Path, make_runtime: Any, admin: Any, redis_client: Any, redis_prefix: str
) -> None:
    config, _ = write_configs(tmp_path, candidate)
    with structlog.testing.capture_logs() as logs:
        rt = Runtime.build(config, RedisStore(redis_client, prefix=redis_prefix), shadow=True)  # as the worker does
    try:
        assert rt.shadow is None
        (error,) = [e for e in logs if e["event"] == "shadow_disabled"]
        assert error["log_level"] == "error"
        assert error["candidate"] == str(tmp_path / "candidate.yaml")
        assert error["problems"] and all(str(tmp_path / "candidate.yaml") in p for p in error["problems"])
        assert "live routing is unaffected" in error["message"]
        assert metric("leadroute_shadow_enabled") == 0
        rt.enqueue = RecordingEnqueuer()
        ids = load_leads(rt, admin, 3)["salesforce"]["ids"]
        rt.pending.add("salesforce", ids, "test")
        assert Counter(h.outcome for h in drain(rt, "salesforce")) == {"written": 3}
        assert rt.store.outbox_stats().depth >= 3  # the live decisions' events, and no shadow ones
    finally:
        rt.close()


def test_cli_commands_leave_the_candidate_alone_so_json_output_stays_one_object(
    tmp_path: Path, redis_url: str, redis_prefix: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    config, _ = write_configs(tmp_path, "reps: []\n")  # a candidate that would log an error if loaded
    monkeypatch.setenv("REDIS_URL", redis_url)
    monkeypatch.setenv("LEADROUTE_PREFIX", redis_prefix)
    done = CliRunner().invoke(cli, ["reps", "--json", "--config", config.file])
    assert done.exit_code == 0, done.output
    assert json.loads(done.stdout)["config_version"] == config.version_hash  # stdout is exactly one JSON object
    assert Runtime.build(config).shadow is None  # only the worker's own runtime (get_runtime) loads the candidate


def test_a_usable_candidate_is_loaded_with_a_state_of_its_own(tmp_path: Path, make_runtime: Any) -> None:
    rt = shadowed_runtime(make_runtime, tmp_path)
    assert rt.shadow is not None and metric("leadroute_shadow_enabled") == 1
    assert rt.shadow.version != rt.config.version_hash
    assert rt.shadow.store.prefix == f"{rt.store.prefix}:shadow:{rt.shadow.version}"
    assert rt.shadow.config.pools["smb"].members == ("tom", "kim")


# ------------------------------------------------------------------------------------------- the step


def test_every_live_decision_is_decided_again_by_the_candidate_and_recorded_as_a_shadow_event(
    tmp_path: Path, make_runtime: Any, admin: Any
) -> None:
    rt = shadowed_runtime(make_runtime, tmp_path)
    assert rt.shadow is not None
    ids = load_leads(rt, admin, 60, seed=5)["salesforce"]["ids"]
    rt.pending.add("salesforce", ids, "test")
    handled = drain(rt, "salesforce")
    assert Counter(h.outcome for h in handled) == {"written": 60}
    keys = [LeadRef("salesforce", "Lead", rid).at(0) for rid in ids]
    live = {k.lead_id: d.decision for k, d in zip(keys, rt.store.decisions(keys), strict=True) if d}
    shadowed = {k.lead_id: d.decision for k, d in zip(keys, rt.shadow.store.decisions(keys), strict=True) if d}
    assert set(live) == set(shadowed) == set(ids)
    assert all(d["config_version"] == rt.shadow.version for d in shadowed.values())
    assert "raj" not in {d["owner"] for d in shadowed.values() if d["target"] == "pool smb"}
    for rid in ids:  # the known edit, and nothing else, parts them
        was, now = live[rid], shadowed[rid]
        assert now["rule"] == was["rule"], rid
        if was["rule"] == "mid-market-na":
            assert now["target"] == "pool smb", rid
        elif was["target"] in ("pool smb", "pool mid-market"):  # their rotations part with the edit
            assert now["target"] == was["target"], rid
        else:
            assert (now["owner"], now["target"]) == (was["owner"], was["target"]), rid

    ledger = moved_to_ledger(rt, tmp_path)
    try:
        events = {e.lead_id: e for e in ledger.between(kinds=["shadow"])}
        decisions = {e.lead_id: e for e in ledger.between(kinds=["decision"])}
    finally:
        ledger.close()
    assert set(events) == set(ids) and set(ids) <= set(decisions)
    for rid, event in events.items():
        decided = shadowed[rid]
        assert event.event_id == f"shadow/salesforce/Lead/{rid}/0/{rt.shadow.version}"
        assert event.config_version == rt.shadow.version
        assert (event.owner, event.rule) == (decided["owner"], decided["rule"])
        assert event.pool == (decided["target"].removeprefix("pool ") if decided["target"].startswith("pool ") else None)
        assert event.data["considered"] == decided["considered"] and event.data["skipped"] == decided["skipped"]
        assert event.data["live"]["owner"] == live[rid]["owner"] == decisions[rid].owner
        assert event.data["live"]["rule"] == decisions[rid].rule and event.data["live"]["pool"] == decisions[rid].pool
        assert event.data["agree"] == (decided["owner"] == live[rid]["owner"])
        assert event.at == datetime.fromisoformat(live[rid]["routed_at"])  # decided as of the live routing time


def test_shadow_acts_on_nothing_no_crm_write_no_notification_no_clock(
    tmp_path: Path, make_runtime: Any, admin: Any
) -> None:
    rt = shadowed_runtime(make_runtime, tmp_path)
    ids = load_leads(rt, admin, 30, seed=9)["salesforce"]["ids"]
    rt.pending.add("salesforce", ids, "test")
    drain(rt, "salesforce")
    records = rt.connector("salesforce").fetch(ids)
    for rid in ids:
        live = rt.store.decision(LeadRef("salesforce", "Lead", rid).at(0))
        assert live is not None
        assert records[rid].owner_id == route.owner_crm_id(rt.config, "salesforce", live.decision["owner"])
    rep_owned = {rid for rid in ids if not rt.store.decision(LeadRef("salesforce", "Lead", rid).at(0)).decision[
        "owner"].startswith("queue:")}
    assert set(rt.enqueue.assigned_items()) == rep_owned  # one notification per live owner, none for shadow
    assert rt.shadow is not None and rt.shadow.store.client.zcard(rt.shadow.store.keys.timers()) == 0


Run = tuple[dict[str, Any], dict[str, Any], dict[str, int]]


def route_once(admin: Any, redis_client: Any, config: RoutingConfig, ids: list[str], prefix: str,
               candidate: RoutingConfig | None, between: Callable[[int, Runtime], None] | None = None) -> Run:
    """Route ``ids`` from intake in batches of 25 in a fresh state under ``prefix``, with ``candidate`` in shadow
    (or none); ``between(i, runtime)`` runs before batch ``i``. Returns the live decisions, state and CRM calls."""
    for rid in ids:  # back in intake, as they were
        admin.sf_change_owner(rid, INTAKE_QUEUE)
    store = RedisStore(redis_client, prefix=prefix)
    rt = Runtime(config, store, PendingSet(redis_client, prefix), enqueue=RecordingEnqueuer())
    if candidate is not None:
        rt.shadow = shadow.Shadow(candidate, store.shadow("cand"), Path(candidate.file))
    try:
        rt.pending.add("salesforce", ids, "test", now=1_700_000_000.0)
        admin.clear_counters()
        for i in range(20):
            if between is not None:
                between(i, rt)
            if not route.route_pending(rt, "salesforce", limit=25).handled:
                break
        calls = admin.counters()["endpoints"]
        keys = [LeadRef("salesforce", "Lead", rid).at(0) for rid in ids]
        decisions = {k.lead_id: {n: v for n, v in d.decision.items() if n != "routed_at"}
                     for k, d in zip(keys, store.decisions(keys), strict=True) if d}
        state = {
            "loads": store.all_loads(),
            "pools": {p: store.client.hgetall(store.keys.pool(p)) for p in config.pools},
            "open": store.open_leads("salesforce"),
            "written": store.written(keys),
            "owners": {rid: r.owner_id for rid, r in rt.connector("salesforce").fetch(ids).items()},
            "notified": sorted(rt.enqueue.assigned_items()),
            "keys": live_key_space(redis_client, prefix),
        }
        return decisions, state, calls
    finally:
        rt.close()


def assert_same_live(off: Run, on: Run, leads: int) -> None:
    assert len(off[0]) == leads
    assert on[0] == off[0]  # every live decision, field for field
    differing = {k: (off[1]["keys"].get(k), on[1]["keys"].get(k)) for k in set(off[1]["keys"]) | set(on[1]["keys"])
                 if off[1]["keys"].get(k) != on[1]["keys"].get(k)}
    assert differing == {}  # every live key: the same names, types and contents
    assert on[1] == off[1]  # loads, rotations, open leads, written markers, CRM owners, notifications
    assert len(off[1]["keys"]) > 2 * leads  # (the key space read is the whole of it: decisions, markers, ...)
    assert on[2] == off[2]  # not one CRM call more: shadow reuses the fetched records and account owners


def as_file(tmp_path: Path, name: str, data: dict[str, Any]) -> RoutingConfig:
    path = tmp_path / name
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return parse_config(path.read_text(), str(path))


def test_turning_shadow_on_or_off_changes_no_live_decision_no_live_state_and_no_crm_call(
    tmp_path: Path, make_runtime: Any, admin: Any, redis_client: Any, redis_prefix: str
) -> None:
    """The same leads, the same order, the same starting state: once without shadow, once with it."""
    data, _ = routing_test_config()
    config = as_file(tmp_path, "live.yaml", data)
    ids = load_leads(make_runtime(config), admin, 80, seed=23)["salesforce"]["ids"]
    off = route_once(admin, redis_client, config, ids, redis_prefix + "-off", None)
    on = route_once(admin, redis_client, config, ids, redis_prefix + "-on", as_file(tmp_path, "cand.yaml", candidate_of(data)))
    assert_same_live(off, on, len(ids))
    shadow_keys = list(redis_client.scan_iter(match=f"{redis_prefix}-on:shadow:cand:dec:*"))
    assert len(shadow_keys) == len(ids)  # and it did decide every lead, in its own keys


def learning_smb(data: dict[str, Any]) -> dict[str, Any]:
    """``data`` with the smb pool performance_weighted, learning by segment and leaning hard on the rates."""
    out = copy.deepcopy(data)
    out["pools"]["smb"] = {**out["pools"]["smb"], "strategy": "performance_weighted",
                           "performance": {"by": ["segment"], "window": "30d", "warmup": 0, "prior_strength": 1, "tilt": 10}}
    return out


def table(best: str) -> RateTable:
    """A learned table in which ``best`` converts nine leads in ten of segment smb and the others none."""
    rows = [(rep, ("smb",), rep == best and i < 45) for rep in ("tom", "raj", "kim") for i in range(50)]
    return RateTable.build(("segment",), rows, f"best {best}", 30.0)


def test_the_candidate_reads_the_rate_table_through_a_cache_of_its_own_so_live_sees_a_new_table_as_without_it(
    tmp_path: Path, make_runtime: Any, admin: Any, redis_client: Any, redis_prefix: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A performance_weighted pool, and the table's version changes mid-run. The worker keeps a table for
    CHECK_EVERY seconds before asking the store for a newer one. Here each batch's CRM write takes 40 seconds
    (on the cache's clock), so the live step asks at every batch; the candidate, asking after the write, must
    not reset the live timer, or live would go on with the old table for a batch more than without shadow."""
    data, _ = routing_test_config()
    live_data = learning_smb(data)
    config = as_file(tmp_path, "live.yaml", live_data)
    candidate = as_file(tmp_path, "cand.yaml", learning_smb(candidate_of(data)))
    ids = load_leads(make_runtime(config), admin, 100, seed=29)["salesforce"]["ids"]

    now = [0.0]

    def between(batch: int, rt: Runtime) -> None:
        if batch == 0:
            rt.store.save_rates(table("tom"))
            crm = rt.connector("salesforce")
            write = crm.write_owners

            def slow_write(updates: Any) -> Any:
                now[0] += 40.0
                return write(updates)

            monkeypatch.setattr(crm, "write_owners", slow_write)
        if batch == 2:
            rt.store.save_rates(table("raj"))  # a refresh learned something new

    def run(prefix: str, cand: RoutingConfig | None) -> Run:
        now[0] = 0.0
        monkeypatch.setattr(rates_step, "_cache", rates_step.RateCache(clock=lambda: now[0]))
        return route_once(admin, redis_client, config, ids, prefix, cand, between)

    off = run(redis_prefix + "-off", None)
    on = run(redis_prefix + "-on", candidate)
    reasons = [d["reason"] for d in off[0].values() if d["target"] == "pool smb"]
    assert any(table("tom").version in r for r in reasons) and any(table("raj").version in r for r in reasons)
    assert_same_live(off, on, len(ids))


def test_the_live_config_as_its_own_candidate_agrees_on_every_lead(tmp_path: Path, make_runtime: Any, admin: Any) -> None:
    data, _ = routing_test_config()
    rt = shadowed_runtime(make_runtime, tmp_path, candidate=data)
    assert rt.shadow is not None and rt.shadow.version == rt.config.version_hash
    before = metric("leadroute_shadow_decisions_total", result="agree")
    ids = load_leads(rt, admin, 40, seed=31)["hubspot"]["ids"]
    rt.pending.add("hubspot", ids, "test")
    drain(rt, "hubspot")
    keys = [LeadRef("hubspot", "contacts", rid).at(0) for rid in ids]
    live = [d.decision["owner"] for d in rt.store.decisions(keys)]
    shadowed = [d.decision["owner"] for d in rt.shadow.store.decisions(keys)]
    assert shadowed == live  # its own state evolves exactly as the live one did
    assert metric("leadroute_shadow_decisions_total", result="agree") - before == len(ids)
    assert rt.shadow.store.all_loads() == rt.store.all_loads()


def test_a_failing_candidate_never_fails_or_changes_the_live_batch_and_is_counted(
    tmp_path: Path, make_runtime: Any, admin: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    rt = shadowed_runtime(make_runtime, tmp_path)

    class Broken:
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            pass

        def route(self, *args: Any, **kwargs: Any) -> Any:
            raise RuntimeError("the candidate's engine fell over")

    monkeypatch.setattr(shadow, "Router", Broken)
    before = metric("leadroute_shadow_failures_total", stage="decide")
    ids = load_leads(rt, admin, 12, seed=3)["salesforce"]["ids"]
    rt.pending.add("salesforce", ids, "test")
    with structlog.testing.capture_logs() as logs:
        handled = drain(rt, "salesforce")
    assert Counter(h.outcome for h in handled) == {"written": 12}
    assert metric("leadroute_shadow_failures_total", stage="decide") - before == 12
    assert any(e["event"] == "shadow_failed" and "fell over" in e["error"] for e in logs)
    assert rt.shadow is not None
    assert rt.shadow.store.decisions([LeadRef("salesforce", "Lead", rid).at(0) for rid in ids]) == [None] * 12
    assert rt.shadow.store.all_loads() == {}  # the failed computes' leases released, nothing claimed
    kinds = Counter(e.kind for e in (ledger_step.entry_event(x, rt.config) for x in rt.store.outbox_claim(1000, 60)))
    assert kinds["shadow"] == 0 and kinds["decision"] == 12


def test_one_lead_the_candidate_cannot_route_costs_only_its_own_shadow_row(
    tmp_path: Path, make_runtime: Any, admin: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    rt = shadowed_runtime(make_runtime, tmp_path)
    ids = load_leads(rt, admin, 8, seed=13)["salesforce"]["ids"]
    real = shadow.Router

    class Picky(real):  # type: ignore[misc, valid-type]
        def route(self, lead: Any, *args: Any, **kwargs: Any) -> Any:
            if lead.fields.get("id") == ids[3]:
                raise ValueError("this one lead")
            return super().route(lead, *args, **kwargs)

    monkeypatch.setattr(shadow, "Router", Picky)
    rt.pending.add("salesforce", ids, "test")
    drain(rt, "salesforce")
    assert rt.shadow is not None
    found = rt.shadow.store.decisions([LeadRef("salesforce", "Lead", rid).at(0) for rid in ids])
    assert [rid for rid, d in zip(ids, found, strict=True) if d is None] == [ids[3]]


def test_shadow_loads_follow_the_live_recount(tmp_path: Path, make_runtime: Any, admin: Any) -> None:
    data, _ = routing_test_config()
    rt = shadowed_runtime(make_runtime, tmp_path, candidate=data)
    assert rt.shadow is not None
    ids = load_leads(rt, admin, 30, seed=17)["salesforce"]["ids"]
    rt.pending.add("salesforce", ids, "test")
    drain(rt, "salesforce")
    assert rt.shadow.store.all_loads() == rt.store.all_loads()
    held = rt.store.open_leads("salesforce")
    acked = sorted(held)[:5]
    for rid in acked:  # the reps got to these in the CRM
        admin.sf_set_status(rid, "Working - Contacted")
    loads = route.reconcile_loads(rt)
    assert sum(loads.values()) == len(held) - 5
    assert rt.shadow.store.all_loads() == rt.store.all_loads() == loads
    assert set(rt.shadow.store.open_leads("salesforce")) == set(held) - set(acked)
