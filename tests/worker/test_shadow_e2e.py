"""Shadow mode end to end: real Celery worker and beat processes, a real Redis, the sandbox CRM over HTTPS.

The worker's config names a candidate (``worker.shadow``) with a known edit. Leads created in
both CRMs must end with the owners the live config dictates, each notified once by the live
decision alone, and the ledger must hold one ``shadow`` row per lead, tagged with the candidate's
version, which ``leadroute report --shadow`` then compares.
"""

from __future__ import annotations

import json
import time
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from typer.testing import CliRunner

from tests.worker.conftest import routing_test_config
from tests.worker.test_e2e import Sink, Stack, assert_routed_as_configured, decided, wait_until
from tests.worker.test_shadow import candidate_of
from worker.app.runtime import Runtime
from worker.cli.commands import app as cli
from worker.config import parse_config
from worker.devtools.synthetic import synthetic_leads
from worker.domain.leads import LeadRef
from worker.ledger.ledger import Ledger

WORKER = {"poll_every": "1s", "drain_every": "1s", "reconcile_orphans_every": "1h", "reconcile_loads_every": "1h",
          "ledger_flush_every": "1s", "shadow": "candidate.yaml"}


@pytest.fixture
def shadow_stack(tmp_path: Path, sandbox: Any, admin: Any, redis_url: str, redis_client: Any, redis_prefix: str,
                 make_runtime: Callable[..., Runtime]) -> Iterator[tuple[Stack, Runtime, Sink, str]]:
    """The stack on the Redis broker, its config naming a candidate written beside it; the candidate's version."""
    candidate = tmp_path / "candidate.yaml"
    candidate.write_text(yaml.safe_dump(candidate_of(routing_test_config()[0]), sort_keys=False))
    version = parse_config(candidate.read_text(), str(candidate)).version_hash
    sink = Sink()
    s = Stack(tmp_path, sandbox, redis_url, redis_prefix, sink, overrides={"worker": WORKER})
    rt = make_runtime(s.config)
    try:
        yield s, rt, sink, version
    finally:
        s.stop()
        sink.server.shutdown()


def test_a_worker_in_shadow_mode_routes_live_as_configured_and_records_a_shadow_row_per_lead(
    shadow_stack: Any, admin: Any
) -> None:
    s, rt, sink, version = shadow_stack
    assert s.config.model.worker.shadow == "candidate.yaml"
    created = s.feeder.create_through_apis(synthetic_leads(60, seed=19))
    s.start("worker", "beat")
    every = created["salesforce"] + created["hubspot"]
    wait_until(lambda: sum(decided(rt, crm, ids) for crm, ids in created.items()) == len(every), 180, s,
               "120 owners written")

    rep_owned = 0
    live: dict[tuple[str, str], dict[str, Any]] = {}
    for crm, ids in created.items():
        for rid, decision in assert_routed_as_configured(rt, admin, crm, ids).items():  # live owners as configured
            live[(crm, rid)] = decision
            rep_owned += decision["owner_kind"] == "rep"
    wait_until(lambda: sum(sink.per_lead()[rid] for rid in every) >= rep_owned, 60, s, "the live notifications")
    time.sleep(1)  # a duplicate, or a shadow notification, would have arrived by now
    assert all(n <= 1 for n in sink.per_lead().values()) and sum(sink.per_lead()[r] for r in every) == rep_owned

    def shadow_rows() -> list[Any]:
        ledger = Ledger.open(s.database_url, migrate=False)
        try:
            return list(ledger.between(kinds=["shadow"]))
        finally:
            ledger.close()

    wait_until(lambda: rt.store.outbox_stats().depth == 0 and len(shadow_rows()) >= len(every), 60, s,
               "a shadow row per lead in the ledger")
    rows = shadow_rows()  # ours, and the sandbox seed's leads waiting in intake
    per_lead = Counter((e.crm, e.lead_id) for e in rows)
    assert set(per_lead) >= set(live) and set(per_lead.values()) == {1}  # one each, no more
    shadow_store = rt.store.shadow(version)
    for event in (e for e in rows if (e.crm, e.lead_id) in live):
        was = live[(event.crm, event.lead_id)]
        assert event.config_version == version
        assert event.data["live"]["owner"] == was["owner"] and event.data["live"]["config_version"] == was["config_version"]
        obj = rt.object_name(event.crm)
        recorded = shadow_store.decision(LeadRef(event.crm, obj, event.lead_id).at(0))
        assert recorded is not None and recorded.decision["owner"] == event.owner  # its own state, in Redis
        assert event.rule == was["rule"]  # the edit moves targets, never which rule matches
        if was["rule"] == "mid-market-na":
            assert event.pool == "smb"
    assert "shadow_enabled" in (s.tmp / "worker.log").read_text()  # each worker child loaded the candidate

    done = CliRunner().invoke(cli, ["report", "--shadow", "--since", "1d", "--format", "json",
                                    "--database-url", s.database_url])
    assert done.exit_code == 0, done.output
    figures = json.loads(done.stdout)
    (candidate,) = figures["candidates"]
    assert candidate["candidate_version"] == version and candidate["compared"] == len(rows)
    assert figures["coverage"] == {"live_decisions": len(rows), "shadowed": len(rows)}  # every live decision shadowed
    assert candidate["owner"]["agree"] == sum(1 for e in rows if e.data["agree"])
    assert candidate["differing_owners"] == len(rows) - candidate["owner"]["agree"]
