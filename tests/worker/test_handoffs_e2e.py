"""Hand-offs end to end: real Celery worker and beat processes, a real Redis, the sandbox CRM over HTTPS.

Beat polls owned records every second (``worker.owned_poll_every``). An MQL hand-off fires once: a
HubSpot contact an SDR owns moves to the AE pool when it qualifies, and no later poll moves it again
while it stays qualified. A Salesforce lead its rep rejects by status goes to another rep, never back,
its status reopened, and the report over the worker's own ledger counts it as that rep's rejection (and the
hand-off as nobody's). The tests wait on conditions (owners written, the owned watermark past a
modification), never on time, and use no working hours (``routing_test_config``).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from connectors.base import Watermark
from tests.worker.conftest import routing_test_config
from tests.worker.test_e2e import Sink, Stack, wait_until
from tests.worker.test_handoffs import AES, REJECTED, SDRS
from tests.worker.test_pipeline import INTAKE_QUEUE
from worker.app.runtime import Runtime
from worker.domain.leads import LeadRef
from worker.ledger.ledger import Ledger
from worker.reports import Period, build_report
from worker.steps import route

pytestmark = pytest.mark.timeout(300)

WORKER = {"poll_every": "1s", "drain_every": "1s", "owned_poll_every": "1s", "reconcile_orphans_every": "1h",
          "reconcile_loads_every": "1h", "ledger_flush_every": "1s"}


def overrides() -> dict[str, Any]:
    data, _ = routing_test_config()
    connectors = data["connectors"]
    connectors["hubspot"]["fields"] = {**connectors["hubspot"]["fields"], "lifecyclestage": "lifecycle_stage"}
    connectors["salesforce"]["rejection"] = {"field": "Status", "values": [REJECTED], "reopen": "Open - Not Contacted"}
    return {
        "worker": WORKER, "fields": [*data["fields"], "lifecycle_stage"], "connectors": connectors,
        "pools": {"sdr": {"members": SDRS, "strategy": "round_robin"}, "ae": {"members": AES, "strategy": "round_robin"}},
        "rules": [{"name": "sdr", "assign": {"pool": "sdr"}}],
        "fallback": {"queue": "triage"},
        "triggers": [{"name": "mql", "when": {"score": {"gte": 80}, "lifecycle_stage": "marketingqualifiedlead"},
                      "rules": [{"name": "ae", "assign": {"pool": "ae"}}]}],
    }


@pytest.fixture
def handoff_stack(tmp_path: Path, sandbox: Any, admin: Any, redis_url: str, redis_client: Any, redis_prefix: str,
                  make_runtime: Callable[..., Runtime]) -> Iterator[tuple[Stack, Runtime, Sink]]:
    """The e2e stack on the Redis broker, with a trigger and a rejection status configured."""
    sink = Sink()
    s = Stack(tmp_path, sandbox, redis_url, redis_prefix, sink, overrides=overrides())
    rt = make_runtime(s.config)
    try:
        yield s, rt, sink
    finally:
        s.stop()
        sink.server.shutdown()


def current(rt: Runtime, crm: str, rid: str) -> dict[str, Any] | None:
    found = rt.store.decision(rt.store.current_key(LeadRef(crm, rt.object_name(crm), rid)))
    return found.decision if found is not None else None


def written(rt: Runtime, crm: str, rid: str, epoch: int) -> bool:
    return rt.store.written([LeadRef(crm, rt.object_name(crm), rid).at(epoch)]) == [True]


def owned_poll_past(rt: Runtime, crm: str, rid: str) -> Callable[[], bool]:
    """Whether an owned poll has read the record as it is now (its watermark reached its modification)."""
    stamp = rt.connector(crm).fetch([rid])[rid].modstamp

    def check() -> bool:
        mark = Watermark.decode(rt.store.watermark(crm, f"{rt.object_name(crm)}:owned"))
        return mark is not None and mark.at >= stamp
    return check


def rejections_reported(s: Stack) -> dict[str, int]:
    """Each rep's rejections in the report over the worker's own ledger, once the ledger holds both hand-offs."""
    def flushed() -> bool:
        ledger = Ledger.open(s.database_url, migrate=False)
        try:
            return sum(1 for e in ledger.between(kinds=["decision"]) if e.epoch == 1) >= 2
        finally:
            ledger.close()
    wait_until(flushed, 60, s, "both hand-offs' decisions in the ledger")
    ledger = Ledger.open(s.database_url, migrate=False)
    try:
        report = build_report(ledger, Period.last(1, datetime.now(UTC) + timedelta(minutes=1)))
    finally:
        ledger.close()
    return {r.rep: r.rejected for r in report.acceptance.reps if r.rejected}


def test_an_mql_hand_off_fires_once_and_a_rejection_by_status_leaves_the_rep_who_rejected_it(
    handoff_stack: Any, admin: Any
) -> None:
    s, rt, sink = handoff_stack
    s.start("worker", "beat")
    (contact,) = admin.hs_load([{"properties": {"email": "cto@handoff-e2e.example", "company": "Handoff E2E",
                                                "hubspotscore": "10", "lifecyclestage": "lead"}}])
    (lead,) = admin.sf_load("Lead", [{"LastName": "E2E", "Company": "Rejectco E2E", "Email": "a@reject-e2e.example",
                                      "Status": "Open - Not Contacted", "OwnerId": INTAKE_QUEUE}])
    wait_until(lambda: written(rt, "hubspot", contact, 0) and written(rt, "salesforce", lead, 0), 120, s, "first owners")
    sdr = current(rt, "hubspot", contact)["owner"]  # type: ignore[index]
    first = current(rt, "salesforce", lead)["owner"]  # type: ignore[index]
    assert sdr in SDRS and first in SDRS

    admin.hs_edit(contact, {"hubspotscore": "85", "lifecyclestage": "marketingqualifiedlead"})
    admin.sf_edit("Lead", lead, {"Status": REJECTED})
    wait_until(lambda: written(rt, "hubspot", contact, 1) and written(rt, "salesforce", lead, 1), 120, s, "hand-offs")

    mql = current(rt, "hubspot", contact)
    assert mql is not None and (mql["via"], mql["trigger"], mql["previous_owner"], mql["rule"]) == ("trigger", "mql", sdr, "ae")
    assert mql["owner"] in AES
    assert admin.hs_record(contact)["properties"]["hubspot_owner_id"] == route.owner_crm_id(rt.config, "hubspot", mql["owner"])
    back = current(rt, "salesforce", lead)
    assert back is not None and (back["via"], back["previous_owner"], back["why"]) == ("rejection", first, f"status {REJECTED}")
    assert back["owner"] != first and back["owner"] in SDRS
    record = admin.sf_record("Lead", lead)
    assert record["OwnerId"] == route.owner_crm_id(rt.config, "salesforce", back["owner"])
    assert record["Status"] == "Open - Not Contacted"
    wait_until(lambda: sink.per_lead()[contact] >= 2 and sink.per_lead()[lead] >= 2, 60, s, "the new owners notified")
    assert rejections_reported(s) == {first: 1}  # the report counts the rejection, and not the MQL hand-off

    admin.hs_edit(contact, {"hubspotscore": "92"})  # still qualified: no new crossing
    for crm, rid in (("hubspot", contact), ("salesforce", lead)):  # later polls read both as they are now
        wait_until(owned_poll_past(rt, crm, rid), 60, s, f"an owned poll past {crm} {rid}")
    assert current(rt, "hubspot", contact)["epoch"] == 1  # type: ignore[index]
    assert current(rt, "salesforce", lead)["epoch"] == 1  # type: ignore[index]
    assert rt.store.handoffs("hubspot") == {} and rt.store.handoffs("salesforce") == {}
