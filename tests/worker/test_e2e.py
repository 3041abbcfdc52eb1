"""End to end: real Celery worker and beat processes, a real Redis, the sandbox CRM over HTTPS.

Every test runs on both brokers: Redis (the state store carries the tasks too) and RabbitMQ
(``LEADROUTE_BROKER_URL``, ``$LEADROUTE_TEST_RABBITMQ_URL`` or the local server), with Redis
holding the state either way.

Leads are created in both sandbox CRMs through their APIs (the real client libraries); beat
polls, the worker routes and writes owners back, and a local HTTP endpoint receives the
signed notification webhooks. The tests then read the CRMs and the store to check that
every lead ended exactly where the config says, once.
"""

from __future__ import annotations

import json
import os
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from datetime import datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import requests
import yaml
from kombu import Connection

from tests.worker.conftest import routing_test_config
from worker.app.broker import BROKER_ENV, QUEUES
from worker.app.runtime import Runtime
from worker.config import parse_config
from worker.devtools.feeder import LeadFeeder
from worker.devtools.processes import NotReady, ProcessDied, Supervisor
from worker.devtools.synthetic import synthetic_leads
from worker.domain.leads import LeadRef
from worker.ledger.ledger import Ledger
from worker.routing.engine import Router
from worker.routing.state import InMemoryState
from worker.steps import route

ROOT = Path(__file__).resolve().parents[2]
WEBHOOK_SECRET = "e2e-webhook-secret"
RABBITMQ_URL = os.environ.get("LEADROUTE_TEST_RABBITMQ_URL", "amqp://guest:guest@127.0.0.1:5672//")


class Sink:
    """A local HTTP endpoint standing in for the generic notification webhook."""

    def __init__(self) -> None:
        self.received: list[dict[str, Any]] = []
        sink = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                sink.received.append(json.loads(body))
                self.send_response(204)
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                return

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def per_lead(self) -> Counter[str]:
        return Counter(m["lead"]["id"] for m in self.received)


class Stack:
    """The config file, environment, processes and lead feeder for one test: a thin fixture over the
    devtools supervisor and feeder."""

    def __init__(self, tmp: Path, sandbox: Any, redis_url: str, prefix: str, sink: Sink,
                 overrides: dict[str, Any] | None = None, broker_url: str | None = None) -> None:
        data, _ = routing_test_config({
            "worker": {"poll_every": "1s", "drain_every": "1s", "reconcile_orphans_every": "1h",
                       "reconcile_loads_every": "1h", "ledger_flush_every": "1s"},
            "notifications": {"channels": ["webhook"], "webhook": {"url": sink.url, "timeout": 5}},
            **(overrides or {}),
        })
        self.config_path = tmp / "routing.yaml"
        self.config_path.write_text(yaml.safe_dump(data, sort_keys=False))
        self.config = parse_config(self.config_path.read_text(), str(self.config_path))
        self.database_url = f"sqlite:///{tmp / 'ledger.sqlite3'}"  # the test's own ledger, migrated by the worker
        self.env = dict(os.environ)
        self.env.update(sandbox.env())
        self.env.update({
            "DATABASE_URL": self.database_url,
            "REDIS_URL": redis_url, "LEADROUTE_PREFIX": prefix, "LEADROUTE_CONFIG": str(self.config_path),
            "LEADROUTE_WEBHOOK_SECRET": WEBHOOK_SECRET, "LEADROUTE_VISIBILITY_TIMEOUT": "10",
            "LEADROUTE_PENDING_LEASE": "5", "LEADROUTE_RETRY_DELAY": "1", "LEADROUTE_LOG_FORMAT": "json",
            "PYTHONPATH": str(ROOT),
        })
        self.env.pop(BROKER_ENV, None)  # no broker of its own: the Redis above carries the tasks
        if broker_url:
            self.env[BROKER_ENV] = broker_url
        self.tmp = tmp
        self.processes = Supervisor(self.env, tmp, cwd=ROOT, stop_timeout=30)
        self.feeder = LeadFeeder(sandbox, self.config)

    def start(self, *names: str) -> None:
        """Start the named processes (``worker``, ``beat``, ``web``) and wait until each is ready."""
        for name in names:
            if name == "worker":
                self.processes.worker(concurrency=2, pool="prefork", nodename=f"e2e-{os.getpid()}@%h", heartbeat=False)
            elif name == "beat":
                self.processes.beat(self.tmp / "beat-schedule", loglevel="INFO")
            elif name == "web":
                self.processes.web()
            else:
                raise ValueError(name)
        try:
            self.processes.wait_ready(*names, timeout=120)
        except (ProcessDied, NotReady) as exc:
            raise AssertionError(f"{exc}\n{self.logs()}") from None

    def url(self, name: str) -> str:
        return str(self.processes[name].url)

    def kill(self, name: str) -> None:
        """kill -9 the process and every child it has, as a crash would."""
        self.processes.kill(name)

    def stop(self) -> None:
        self.processes.stop()
        self.feeder.close()

    def logs(self) -> str:
        return self.processes.logs()


def purge_rabbitmq_queues(url: str) -> None:
    """Empty leadroute's queues on RabbitMQ, so no test sees another's task messages (the Redis
    broker's queues live in the test's own Redis, which starts empty)."""
    with Connection(url) as conn:
        conn.ensure_connection(max_retries=3)
        channel = conn.default_channel
        for queue in QUEUES:
            channel.queue_declare(queue=queue, durable=True, auto_delete=False)
            channel.queue_purge(queue)


@pytest.fixture(params=["redis", "rabbitmq"])
def stack(request: pytest.FixtureRequest, tmp_path: Path, sandbox: Any, admin: Any, redis_url: str, redis_client: Any,
          redis_prefix: str, make_runtime: Callable[..., Runtime]) -> Iterator[tuple[Stack, Runtime, Sink]]:
    """The stack on one broker: the Redis state store's own, or RabbitMQ (``LEADROUTE_BROKER_URL``)."""
    broker = RABBITMQ_URL if request.param == "rabbitmq" else None
    if broker:
        purge_rabbitmq_queues(broker)
    sink = Sink()
    s = Stack(tmp_path, sandbox, redis_url, redis_prefix, sink, broker_url=broker)
    rt = make_runtime(s.config)
    try:
        yield s, rt, sink
    finally:
        s.stop()
        sink.server.shutdown()
        if broker:
            purge_rabbitmq_queues(broker)


def wait_until(check: Callable[[], bool], timeout: float, stack: Stack, what: str) -> None:
    """Until ``check()`` holds; fails at once if one of the stack's processes died unexpectedly."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        if dead := stack.processes.died():
            raise AssertionError(f"{', '.join(dead)} died while waiting for {what}\n{stack.logs()}")
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}\n{stack.logs()}")


def decided(rt: Runtime, crm: str, ids: list[str]) -> int:
    refs = [LeadRef(crm, rt.object_name(crm), i).at(0) for i in ids]
    written = rt.store.client.mget([rt.store.key("written", k.crm, k.object, k.lead_id, 0) for k in refs])
    return sum(1 for w in written if w)


def assert_routed_as_configured(rt: Runtime, admin: Any, crm: str, ids: list[str]) -> dict[str, dict[str, Any]]:
    """Each lead's CRM owner is its decision's owner, the reason is written, and the rule is the config's."""
    records = rt.connector(crm).fetch(ids)
    stored = {r["Id"] if crm == "salesforce" else r["id"]: r for r in
              (admin.sf_records("Lead") if crm == "salesforce" else admin.hs_records())}
    reason_field = "Routing_Reason__c" if crm == "salesforce" else "leadroute_reason"
    decisions = {}
    for rid in ids:
        found = rt.store.decisions_for_lead(LeadRef(crm, rt.object_name(crm), rid))
        assert len(found) == 1, f"{rid}: {len(found)} decisions"
        decision = found[0].decision
        record = records[rid]
        assert record.owner_id == route.owner_crm_id(rt.config, crm, decision["owner"]), rid
        fields = stored[rid] if crm == "salesforce" else stored[rid]["properties"]
        assert fields.get(reason_field) == decision["reason"][:255], rid
        lead = dict(record.lead, account_owner=decision["facts"].get("account_owner"))
        expected = Router(rt.config, InMemoryState()).route(lead, at=datetime.fromisoformat(decision["routed_at"]))
        pool_was_full = "had nobody available" in decision["reason"] and expected.target.startswith("pool ")
        assert decision["rule"] == expected.rule or pool_was_full, (rid, decision["reason"], expected.reason)
        if decision["target"].startswith("pool "):
            assert decision["owner"] in rt.config.pools[decision["target"].removeprefix("pool ")].members
        elif not pool_was_full:
            assert decision["owner"] == expected.owner, rid
        decisions[rid] = decision
    return decisions


def assert_every_decision_in_the_ledger_once(rt: Runtime, stack: Stack) -> int:
    """Once the outbox is empty, the ledger holds one decision event per decision Redis recorded, no more."""
    wait_until(lambda: rt.store.outbox_stats().depth == 0, 60, stack, "the ledger outbox to empty")
    recorded = Counter(tuple(k.split(":")[-4:]) for k in rt.store.client.scan_iter(rt.store.key("dec", "*")))
    ledger = Ledger.open(stack.database_url, migrate=False)
    try:
        decisions = [e for e in ledger.between(kinds=["decision", "reroute"]) if (e.data or {}).get("via") != "refused"]
    finally:
        ledger.close()
    in_ledger = Counter((e.crm, e.object, e.lead_id, str(e.epoch)) for e in decisions)
    assert in_ledger == recorded, "a decision is missing from the ledger, or is in it twice"
    return len(decisions)


def test_a_thousand_leads_in_each_crm_end_with_their_configured_owner_notified_once(
    stack: Any, sandbox: Any, admin: Any
) -> None:
    s, rt, sink = stack
    created = s.feeder.create_through_apis(synthetic_leads(1000, seed=11))
    s.start("worker", "beat")
    every = created["salesforce"] + created["hubspot"]
    wait_until(lambda: decided(rt, "salesforce", created["salesforce"]) + decided(rt, "hubspot", created["hubspot"])
               == len(every), 240, s, "2,000 owners written")
    rep_owned = 0
    for crm, ids in created.items():
        decisions = assert_routed_as_configured(rt, admin, crm, ids)
        rep_owned += sum(1 for d in decisions.values() if d["owner_kind"] == "rep")
        for rid, decision in decisions.items():
            wanted = 1 if decision["owner_kind"] == "rep" else 0
            wait_until(lambda rid=rid, wanted=wanted: sink.per_lead()[rid] >= wanted, 60, s, f"notification {rid}")
    time.sleep(2)  # any duplicate would have arrived by now
    per_lead = sink.per_lead()
    assert all(per_lead[rid] <= 1 for rid in every), "a lead was notified twice"
    assert sum(per_lead[rid] for rid in every) == rep_owned
    assert sum(rt.store.loads(list(rt.config.reps)).values()) >= rep_owned
    assert assert_every_decision_in_the_ledger_once(rt, s) >= len(every)


def test_killing_the_worker_mid_batch_loses_nothing_and_claims_nothing_twice(stack: Any, admin: Any) -> None:
    s, rt, _ = stack
    admin.patch_faults(latency_ms=250, apis=["salesforce"])  # slow the CRM so the kill lands mid-batch
    ids = s.feeder.load("salesforce", synthetic_leads(1000, seed=5))
    s.start("worker", "beat")
    wait_until(lambda: decided(rt, "salesforce", ids) >= 1, 120, s, "the first owners")
    s.kill("worker")
    assert decided(rt, "salesforce", ids) < len(ids), "the kill came too late to test anything"
    s.start("worker")
    wait_until(lambda: decided(rt, "salesforce", ids) == len(ids), 240, s, "every owner after the restart")
    assert_routed_as_configured(rt, admin, "salesforce", ids)
    # every decision in the store (ours, and the seed's leads and contacts in both CRMs)
    recorded = [json.loads(rt.store.client.hget(k, "d")) for k in rt.store.client.scan_iter(rt.store.key("dec", "*"))]
    claims = Counter(d["owner"] for d in recorded if d["owner_kind"] == "rep")
    loads = {rep: n for rep, n in rt.store.loads(list(rt.config.reps)).items() if n}
    assert loads == dict(claims), "a lead's claim was counted twice or lost"


def test_a_crm_outage_backs_up_leads_that_drain_once_it_ends(stack: Any, admin: Any) -> None:
    s, rt, _ = stack
    s.start("worker", "beat")
    admin.set_faults(error_503_rate=1.0, apis=["hubspot"])
    ids = s.feeder.load("hubspot", synthetic_leads(150, seed=9))
    time.sleep(6)
    assert decided(rt, "hubspot", ids) == 0
    admin.clear_faults()
    wait_until(lambda: decided(rt, "hubspot", ids) == len(ids), 180, s, "the backlog to drain")
    assert_routed_as_configured(rt, admin, "hubspot", ids)


def test_webhooks_route_leads_and_forged_stale_or_replayed_events_change_nothing(stack: Any, admin: Any) -> None:
    from worker.web.receivers import hubspot_v3_signature

    s, rt, _ = stack
    secret = "e2e-hubspot-app-secret"
    s.env["HUBSPOT_APP_SECRET"] = secret
    s.config_path.write_text(s.config_path.read_text().replace("poll_every: 1s", "poll_every: 1h"))  # webhooks only
    s.start("worker", "web")  # the web process is ready once /healthz answers
    url = f"{s.url('web')}/webhooks/hubspot"
    ids = s.feeder.load("hubspot", synthetic_leads(5, seed=4))

    def post(events: list[dict[str, Any]], *, key: str = secret, age_ms: int = 0) -> requests.Response:
        body = json.dumps(events).encode()
        ts = str(int(time.time() * 1000) - age_ms)
        return requests.post(url, data=body, timeout=10, headers={
            "Content-Type": "application/json", "X-HubSpot-Request-Timestamp": ts,
            "X-HubSpot-Signature-v3": hubspot_v3_signature(key, "POST", url, body, ts)})

    def event(n: int, object_id: str) -> dict[str, Any]:
        return {"eventId": n, "subscriptionId": 1, "portalId": 62515, "appId": 1, "occurredAt": int(time.time() * 1000),
                "subscriptionType": "contact.creation", "attemptNumber": 0, "objectId": int(object_id)}

    assert post([event(1, ids[0])], key="forged").status_code == 401
    assert post([event(2, ids[1])], age_ms=6 * 60 * 1000).status_code == 401  # older than 5 minutes
    accepted = post([event(3, ids[2]), event(4, ids[3])])
    assert accepted.status_code == 200, accepted.text
    wait_until(lambda: decided(rt, "hubspot", [ids[2], ids[3]]) == 2, 60, s, "the webhook leads to be routed")
    replay = post([event(3, ids[2])])
    assert replay.status_code == 200 and replay.json()["duplicates"] == 1
    time.sleep(3)
    assert decided(rt, "hubspot", [ids[0], ids[1], ids[4]]) == 0  # rejected events routed nothing
    for lead_id in (ids[2], ids[3]):
        assert len(rt.store.decisions_for_lead(LeadRef("hubspot", "contacts", lead_id))) == 1
    assert rt.pending.depth("hubspot") == 0

