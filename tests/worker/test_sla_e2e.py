"""SLA end to end: a real worker and beat sweep real clocks while the test acts as the reps.

The tier's windows are seconds long so the whole ladder runs in under a minute: leads that
reps acknowledge stop their clock, leads a human reassigns in the CRM are left alone, converted
leads close, and the untouched ones are reminded, escalated, reassigned once and then parked
in the fallback queue with an alert, each step exactly once.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from typing import Any

import pytest

from tests.worker.test_e2e import RABBITMQ_URL, Sink, Stack, decided, purge_rabbitmq_queues, wait_until
from worker.app.runtime import Runtime
from worker.devtools.synthetic import synthetic_leads

SLA = {
    "sweep_every": "1s",
    "tiers": [{
        "name": "hot",
        "when": {"lead_source": "Demo Request"},
        "acknowledge_within": "12s",
        "clock": "wall",
        "ladder": [{"after": "8s", "action": "remind"}, {"after": "12s", "action": "escalate"},
                   {"after": "16s", "action": "reassign"}],
        "max_reassignments": 1,
    }],
    "acknowledged_when": {"salesforce": {"field": "Status", "not_in": ["Open - Not Contacted"]}},
}
MARIA = "0055e000001MaRiAAK"  # in no pool, so always a change of owner
TRIAGE = "00G5e000000TrIaEAK"


@pytest.fixture(params=["redis", "rabbitmq"])
def sla_stack(request: pytest.FixtureRequest, tmp_path: Any, sandbox: Any, admin: Any, redis_url: str, redis_client: Any,
              redis_prefix: str, make_runtime: Any) -> Any:
    """The SLA stack on one broker: the Redis state store's own, or RabbitMQ (as the e2e suite's ``stack``)."""
    broker = RABBITMQ_URL if request.param == "rabbitmq" else None
    if broker:
        purge_rabbitmq_queues(broker)
    sink = Sink()
    stack = Stack(tmp_path, sandbox, redis_url, redis_prefix, sink, {"sla": SLA}, broker_url=broker)
    rt = make_runtime(stack.config)
    try:
        yield stack, rt, sink
    finally:
        stack.stop()
        sink.server.shutdown()
        if broker:
            purge_rabbitmq_queues(broker)


def sla_events(rt: Runtime, ids: list[str]) -> dict[str, Counter[str]]:
    wanted = {f"salesforce:Lead:{i}": i for i in ids}
    out: dict[str, Counter[str]] = defaultdict(Counter)
    for entry in rt.store.log_range():
        if entry.kind.startswith("sla.") and entry.lead in wanted:
            out[wanted[entry.lead]][entry.kind] += 1
    return out


def test_every_lead_ends_as_its_ladder_dictates_each_step_once(sla_stack: Any, admin: Any) -> None:
    s, rt, sink = sla_stack
    # all through one path (rule demo-requests-smb, round robin over tom, raj, kim): no named
    # accounts, no other rule, so a reassignment always has another rep to go to
    leads = [dict(lead, lead_source="Demo Request", employees="20", country="US", state="FL", industry="Retail",
                  email=f"buyer{i}@shop{i}.example", website="")
             for i, lead in enumerate(synthetic_leads(200, seed=21))]
    ids = s.feeder.load("salesforce", leads)
    s.start("worker", "beat")
    wait_until(lambda: decided(rt, "salesforce", ids) == len(ids), 60, s, "200 owners written")
    acked, taken, converted, ignored = ids[:50], ids[50:100], ids[100:150], ids[150:]
    for lead_id in acked:
        admin.sf_set_status(lead_id, "Working - Contacted")
    for lead_id in taken:
        admin.sf_change_owner(lead_id, MARIA)
    for lead_id in converted:
        admin.sf_convert(lead_id)

    def parked() -> bool:
        return all(events.get("sla.park") for events in (sla_events(rt, ignored).get(i, {}) for i in ignored))

    wait_until(parked, 120, s, "every ignored lead to be parked")
    wait_until(lambda: len(sink.received) >= 50 * 6, 30, s, "the notifications")  # each ignored lead: see below
    events = sla_events(rt, ids)
    for lead_id in acked:
        assert events[lead_id] == Counter({"sla.stop": 1}), lead_id
    for lead_id in taken:
        trail = [(e.kind, e.data) for e in rt.store.log_range() if e.lead.endswith(lead_id)]
        assert events[lead_id] == Counter({"sla.manual_override": 1}), trail
        assert admin.sf_record("Lead", lead_id)["OwnerId"] == MARIA
    for lead_id in converted:
        assert events[lead_id] == Counter({"sla.close": 1}), lead_id
    for lead_id in ignored:
        # first owner: remind, breach, escalate, reassign; second owner: the same up to park
        assert events[lead_id] == Counter({"sla.remind": 2, "sla.breach": 2, "sla.escalate": 2, "sla.reassign": 1,
                                           "sla.park": 1}), (lead_id, events[lead_id])
        assert admin.sf_record("Lead", lead_id)["OwnerId"] == TRIAGE
    per_lead: dict[str, Counter[str]] = defaultdict(Counter)
    for message in sink.received:
        if message["kind"] != "assigned" or message["decision_id"].startswith("sla"):
            per_lead[message["lead"]["id"]][message["kind"]] += 1
    for lead_id in acked + taken + converted:
        assert sum(v for k, v in per_lead[lead_id].items() if k != "assigned") == 0, lead_id
    for lead_id in ignored:
        kinds = per_lead[lead_id]
        assert kinds["reminder"] == 2 and kinds["escalation"] == 2 and kinds["reassigned_from"] >= 1, kinds
        assert kinds["parked"] >= 1, kinds
