"""Which routed leads the outcome read-back asks the CRM about: routed in the window, no final outcome yet."""

from __future__ import annotations

from datetime import timedelta

from worker.ledger import Ledger

from .conftest import T0, EventFactory


def test_leads_routed_in_the_window_without_a_won_or_lost_outcome_are_awaiting(
    ledger: Ledger, event: EventFactory
) -> None:
    ledger.write([
        event(1),  # routed, nothing since: awaiting
        event(2), event(2, event_id="outcome/salesforce/Lead/00Q000000000002/converted", kind="outcome",
                        status="converted"),  # converted only: still awaiting its close
        event(3), event(3, event_id="outcome/salesforce/Lead/00Q000000000003/won", kind="outcome", status="won"),
        event(4), event(4, event_id="outcome/salesforce/Lead/00Q000000000004/lost", kind="outcome", status="lost"),
        event(5, event_id="reroute/salesforce/Lead/00Q000000000005/1", kind="reroute", epoch=1, owner="ana"),
        event(5),  # epoch 0 and the re-route under epoch 1
        event(6, at=T0 - timedelta(days=400)),  # routed before the window
        event(7, crm="hubspot", object="contacts", event_id="decision/hubspot/contacts/7/0"),  # another CRM
    ])
    rows = list(ledger.routed_awaiting_outcome("salesforce", T0 - timedelta(days=180)))
    assert [(r.lead_id, r.epoch, r.owner) for r in rows] == [
        ("00Q000000000001", 0, "mike"),
        ("00Q000000000002", 0, "mike"),
        ("00Q000000000005", 0, "mike"),
        ("00Q000000000005", 1, "ana"),
    ]
    assert {(r.object, r.rule, r.pool, r.config_version) for r in rows} == {("Lead", "emea-enterprise", "emea",
                                                                            "3f9a1c2b7d4e")}
