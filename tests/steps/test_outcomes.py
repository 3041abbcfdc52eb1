"""Outcomes become ledger events: one per state a routed lead reached, carrying its routing context.

Against the sandbox CRM through the real connectors: leads are converted, given opportunities or
deals, won and lost as reps would, then read back by :func:`worker.steps.outcomes.outcome_events`.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest

from connectors.hubspot import HubSpotConnector
from connectors.salesforce import SalesforceConnector
from tests.connectors.conftest import hs_settings, sf_settings
from worker.ledger.events import LedgerEvent
from worker.steps.outcomes import RoutedLead, outcome_event_id, outcome_events

READ_AT = datetime(2031, 1, 1, 12, tzinfo=UTC)


@pytest.fixture
def salesforce(sandbox: Any, admin: Any) -> Iterator[SalesforceConnector]:
    conn = SalesforceConnector.from_env(sf_settings(), env=sandbox.env())
    yield conn
    conn.close()


@pytest.fixture
def hubspot(sandbox: Any, admin: Any) -> Iterator[HubSpotConnector]:
    conn = HubSpotConnector.from_env(hs_settings(), env=sandbox.env())
    yield conn
    conn.close()


def new_leads(admin: Any, count: int) -> list[str]:
    before = {r["Id"] for r in admin.sf_records("Lead")}
    admin.generate(salesforce={"Lead": count})
    return [r["Id"] for r in admin.sf_records("Lead") if r["Id"] not in before]


def new_contacts(admin: Any, count: int) -> list[str]:
    before = {r["id"] for r in admin.hs_records()}
    admin.generate(hubspot={"contacts": count})
    return [r["id"] for r in admin.hs_records() if r["id"] not in before]


def routed(lead_id: str, epoch: int = 0, owner: str = "sarah") -> RoutedLead:
    return RoutedLead(lead_id, epoch, owner, "enterprise-emea", "enterprise", "Web", "B", "cfg-3f9a")


def midnight(day: str) -> datetime:
    parsed = date.fromisoformat(day)
    return datetime(parsed.year, parsed.month, parsed.day, tzinfo=UTC)


def by_status(events: list[LedgerEvent], lead_id: str) -> dict[str, LedgerEvent]:
    return {e.status: e for e in events if e.lead_id == lead_id}  # type: ignore[misc]


def test_each_state_a_lead_reached_is_one_event_with_its_routing_context(salesforce: SalesforceConnector,
                                                                        admin: Any) -> None:
    won, lost, converted, still_open, deleted = new_leads(admin, 5)
    won_opp = admin.sf_convert(won, opportunity={"Amount": 12500})["opportunity_id"]
    closed = admin.sf_set_stage(won_opp, won=True, close_date="2030-06-30")
    admin.sf_set_stage(admin.sf_convert(lost, opportunity={"Amount": 800})["opportunity_id"], won=False)
    admin.sf_convert(converted, opportunity=False)
    admin.sf_delete("Lead", deleted)

    leads = [routed(i) for i in (won, lost, converted, still_open, deleted, "00Q5e0000009zzzEAA")]
    events = outcome_events(salesforce, "salesforce", "Lead", leads, now=READ_AT)

    assert [(e.lead_id, e.status) for e in events] == [
        (won, "converted"), (won, "opportunity"), (won, "won"),
        (lost, "converted"), (lost, "opportunity"), (lost, "lost"),
        (converted, "converted"),
    ]  # nothing for the open lead, the deleted one or an id the CRM never had
    assert [e.event_id for e in events[:3]] == [f"outcome/salesforce/Lead/{won}/{s}"
                                                for s in ("converted", "opportunity", "won")]
    for event in events:
        assert event.kind == "outcome" and (event.crm, event.object) == ("salesforce", "Lead")
        assert (event.epoch, event.owner, event.rule, event.pool, event.source, event.arm, event.config_version) == (
            0, "sarah", "enterprise-emea", "enterprise", "Web", "B", "cfg-3f9a")

    mine = by_status(events, won)
    converted_on = midnight(admin.sf_record("Lead", won)["ConvertedDate"])
    assert mine["converted"].at == converted_on and mine["converted"].amount is None
    assert mine["converted"].currency is None  # the money is the opportunity's
    assert mine["opportunity"].at == datetime.fromisoformat(closed["CreatedDate"].replace("+0000", "+00:00"))
    assert (mine["opportunity"].amount, mine["opportunity"].currency) == (12500.0, "USD")
    assert mine["won"].at == midnight("2030-06-30") and (mine["won"].amount, mine["won"].currency) == (12500.0, "USD")
    assert mine["won"].data["opportunity_id"] == won_opp and mine["won"].data["stage"] == "Closed Won"
    assert mine["won"].data["fields"]["IsConverted"] is True and mine["won"].data["read_at"] == READ_AT.isoformat()
    assert by_status(events, lost)["lost"].amount == 800.0


def test_reading_again_repeats_the_same_ids_and_a_new_state_adds_one_event(salesforce: SalesforceConnector,
                                                                           admin: Any) -> None:
    [lead] = new_leads(admin, 1)
    opp = admin.sf_convert(lead, opportunity={"Amount": 5000})["opportunity_id"]
    first = outcome_events(salesforce, "salesforce", "Lead", [routed(lead)], now=READ_AT)
    assert [e.status for e in first] == ["converted", "opportunity"]

    admin.sf_set_stage(opp, won=True)
    later = outcome_events(salesforce, "salesforce", "Lead", [routed(lead)], now=READ_AT + timedelta(days=30))
    assert [e.status for e in later] == ["converted", "opportunity", "won"]
    assert [e.event_id for e in later[:2]] == [e.event_id for e in first]  # the ledger stores them once
    assert {e.event_id for e in later} - {e.event_id for e in first} == {outcome_event_id("salesforce", "Lead", lead,
                                                                                          "won")}


def test_a_lead_listed_for_several_epochs_is_read_once_under_its_latest_routing(salesforce: SalesforceConnector,
                                                                               admin: Any) -> None:
    leads = new_leads(admin, 3)
    admin.sf_convert(leads[1], opportunity=False)
    salesforce.list_owners()  # log in before counting
    admin.clear_counters()
    events = outcome_events(salesforce, "salesforce", "Lead",
                            [routed(leads[1], 0, "sarah"), routed(leads[0]), routed(leads[1], 2, "mike"),
                             routed(leads[1], 1, "tom"), routed(leads[2])])
    assert [(e.lead_id, e.status, e.epoch, e.owner) for e in events] == [(leads[1], "converted", 2, "mike")]
    assert admin.counters()["endpoints"]["salesforce GET /query"]["total"] == 1  # three leads, one query
    assert outcome_events(salesforce, "salesforce", "Lead", []) == []


def test_many_leads_cost_a_few_calls_not_one_each(salesforce: SalesforceConnector, admin: Any) -> None:
    leads = new_leads(admin, 450)
    for lead in (leads[0], leads[250], leads[449]):
        admin.sf_set_stage(admin.sf_convert(lead, opportunity={"Amount": 100})["opportunity_id"], won=True)
    outcome_events(salesforce, "salesforce", "Lead", [routed(leads[0])])  # the session and the org's currency
    admin.clear_counters()
    events = outcome_events(salesforce, "salesforce", "Lead", [routed(i) for i in leads])
    assert len(events) == 9 and {e.lead_id for e in events} == {leads[0], leads[250], leads[449]}
    assert admin.counters()["total"] == 4  # 3 lead queries (200 ids each), 1 opportunity query


def test_hubspot_deals_become_events_with_their_currency(hubspot: HubSpotConnector, admin: Any) -> None:
    won, opened, lifecycle_only = new_contacts(admin, 3)
    deal = admin.hs_add_deal(won, amount="7400", deal_currency_code="EUR")["deal"]
    admin.hs_set_deal_stage(deal["id"], won=True)
    admin.hs_add_deal(opened, amount="300", deal_currency_code="EUR")
    admin.hs_convert(lifecycle_only)

    events = outcome_events(hubspot, "hubspot", "contacts", [routed(c) for c in (won, opened, lifecycle_only)],
                            now=READ_AT)
    assert [(e.lead_id, e.status) for e in events] == [
        (won, "converted"), (won, "opportunity"), (won, "won"),
        (opened, "converted"), (opened, "opportunity"), (lifecycle_only, "converted")]
    assert events[0].event_id == f"outcome/hubspot/contacts/{won}/converted"
    mine = by_status(events, won)
    contact = admin.hs_record(won)["properties"]
    assert mine["converted"].at == datetime.fromisoformat(contact["hs_lifecyclestage_opportunity_date"])
    assert (mine["won"].amount, mine["won"].currency) == (7400.0, "EUR")
    assert mine["won"].data["fields"]["lifecyclestage"] == "customer" and mine["won"].data["stage"] == "closedwon"
    assert by_status(events, opened)["opportunity"].data["is_closed"] is False
    assert by_status(events, lifecycle_only)["converted"].data["fields"]["hs_lead_status"] == "OPEN_DEAL"


def test_events_cross_the_outbox_as_json_unchanged(hubspot: HubSpotConnector, admin: Any) -> None:
    [contact] = new_contacts(admin, 1)
    admin.hs_set_deal_stage(admin.hs_add_deal(contact, amount="99.5")["deal"]["id"], won=False)
    events = outcome_events(hubspot, "hubspot", "contacts", [(contact, 3, "queue:triage", "fallback", None, "Web",
                                                                  None, "cfg-1")], now=READ_AT)
    assert [e.status for e in events] == ["converted", "opportunity", "lost"]
    for event in events:
        assert LedgerEvent.from_dict(json.loads(json.dumps(event.to_dict()))) == event
    assert (events[2].owner, events[2].rule, events[2].pool, events[2].epoch) == ("queue:triage", "fallback", None, 3)


def test_the_read_back_asks_about_routed_leads_until_they_are_won_or_lost(
    salesforce: SalesforceConnector, admin: Any, tmp_path: Any
) -> None:
    from worker.ledger import Ledger
    from worker.steps.outcomes import read_back_outcomes

    won, converted, still_open = new_leads(admin, 3)
    admin.sf_set_stage(admin.sf_convert(won, opportunity={"Amount": 900})["opportunity_id"], won=True,
                       close_date="2030-06-30")
    admin.sf_convert(converted, opportunity=False)
    ledger = Ledger.open(f"sqlite:///{tmp_path / 'ledger.sqlite3'}")
    ledger.write([LedgerEvent(event_id=f"decision/salesforce/Lead/{lead}/0", kind="decision", crm="salesforce",
                              object="Lead", lead_id=lead, epoch=0, at=READ_AT - timedelta(days=3), owner="sarah",
                              rule="smb", pool="smb") for lead in (won, converted, still_open)])
    appended: list[LedgerEvent] = []

    def to_outbox(events: list[LedgerEvent]) -> int:
        appended.extend(events)
        return len(events)

    assert read_back_outcomes(salesforce, ledger, to_outbox, "salesforce", lookback=timedelta(days=30),
                              now=READ_AT) == 4
    assert [(e.lead_id, e.status, e.rule) for e in appended] == [
        (won, "converted", "smb"), (won, "opportunity", "smb"), (won, "won", "smb"), (converted, "converted", "smb"),
    ]
    ledger.write(appended)  # as the outbox mover would
    appended.clear()
    read_back_outcomes(salesforce, ledger, to_outbox, "salesforce", lookback=timedelta(days=30), now=READ_AT)
    assert {e.lead_id for e in appended} == {converted}  # the won lead is final: never read again
    assert ledger.write(appended) == 0  # a state already in the ledger is not stored twice
    ledger.close()
