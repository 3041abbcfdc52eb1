"""The synthetic lead feeder against the sandbox CRM: a batch, a stream at a rate, and the CRM APIs.

Records are the canonical synthetic leads through the config's field maps: Salesforce leads
owned by the intake queue, HubSpot contacts unowned, so the worker takes them all as new.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from worker.config import RoutingConfig, load_config
from worker.devtools.feeder import SANDBOX_INTAKE_QUEUE, LeadFeeder
from worker.devtools.processes import ROOT
from worker.devtools.synthetic import synthetic_leads


@pytest.fixture(scope="module")
def config() -> RoutingConfig:
    return load_config(ROOT / "config" / "routing.yaml")


@pytest.fixture
def feeder(sandbox: Any, admin: Any, config: RoutingConfig) -> Iterator[LeadFeeder]:
    with LeadFeeder(sandbox, config) as f:
        yield f


def test_a_batch_is_created_in_one_go_with_the_configured_fields(feeder: LeadFeeder, admin: Any) -> None:
    leads = list(synthetic_leads(5, seed=3))
    sf_ids = feeder.load("salesforce", leads)
    hs_ids = feeder.load("hubspot", leads)
    assert len(sf_ids) == len(set(sf_ids)) == 5 and len(hs_ids) == len(set(hs_ids)) == 5
    for lead, sf_id, hs_id in zip(leads, sf_ids, hs_ids, strict=True):
        record = admin.sf_record("Lead", sf_id)
        assert (record["Email"], record["OwnerId"], record["Status"]) == (lead["email"], SANDBOX_INTAKE_QUEUE,
                                                                          "Open - Not Contacted")
        contact = admin.hs_record(hs_id)["properties"]
        assert contact["email"] == lead["email"] and not contact.get("hubspot_owner_id")


def test_a_stream_takes_turns_over_the_crms_at_the_rate_asked(feeder: LeadFeeder, admin: Any) -> None:
    seen: list[tuple[str, str]] = []
    stream = feeder.stream(synthetic_leads(100, seed=4), rate=40, count=5, on_created=lambda crm, i: seen.append((crm, i)))
    assert stream.run() is stream
    assert [crm for crm, _ in stream.created] == ["salesforce", "hubspot", "salesforce", "hubspot", "salesforce"]
    assert seen == stream.created and stream.count == 5
    assert stream.elapsed >= 4 / 40  # lead i is due i / rate seconds after the start, not before
    assert {r["Id"] for r in admin.sf_records("Lead")} >= {i for crm, i in seen if crm == "salesforce"}


def test_a_stream_goes_on_after_an_error_only_when_told_to(feeder: LeadFeeder) -> None:
    def fail_second(crm: str, lead_id: str) -> None:
        if len(calls) == 2:
            raise RuntimeError("rep tool down")

    calls: list[str] = []
    errors: list[Exception] = []
    stream = feeder.stream(synthetic_leads(4, seed=5), rate=1000, crms=["hubspot"],
                           on_created=lambda crm, i: (calls.append(i), fail_second(crm, i)), on_error=errors.append)
    stream.run()
    assert stream.count == 4 and stream.errors == 1 and [str(e) for e in errors] == ["rep tool down"]
    calls.clear()
    with pytest.raises(RuntimeError, match="rep tool down"):
        feeder.stream(synthetic_leads(4, seed=6), rate=1000, crms=["hubspot"],
                      on_created=lambda crm, i: (calls.append(i), fail_second(crm, i))).run()
    assert len(calls) == 2


def test_a_stream_in_its_own_thread_ends_when_stopped(feeder: LeadFeeder) -> None:
    def stop_at_three(crm: str, lead_id: str) -> None:
        if stream.count == 3:
            stream.stop()

    stream = feeder.stream(synthetic_leads(10**6, seed=7), rate=1000, on_created=stop_at_three)
    stream.start("test-feeder")
    assert stream.join(30)
    assert stream.count == 3
    stream.stop()  # again, from outside: nothing left to do


def test_leads_created_through_the_crm_apis_are_the_same_records(feeder: LeadFeeder, admin: Any) -> None:
    leads = list(synthetic_leads(3, seed=8))
    created = feeder.create_through_apis(leads)
    assert set(created) == {"salesforce", "hubspot"}
    for lead, sf_id, hs_id in zip(leads, created["salesforce"], created["hubspot"], strict=True):
        assert admin.sf_record("Lead", sf_id)["OwnerId"] == SANDBOX_INTAKE_QUEUE
        assert admin.sf_record("Lead", sf_id)["Email"] == lead["email"]
        assert admin.hs_record(hs_id)["properties"]["email"] == lead["email"]
    assert feeder.create_through_apis(synthetic_leads(1, seed=9), crms=["hubspot"]).keys() == {"hubspot"}
