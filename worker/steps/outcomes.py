"""Outcomes read back from the CRM, as ledger events: what became of the leads leadroute routed.

:func:`outcome_events` asks the connector what became of a batch of routed leads
(:meth:`connectors.base.Connector.read_outcomes`: a few CRM calls per batch, none per lead) and
turns every state each lead has reached into one ``outcome`` event: ``converted``,
``opportunity``, then ``won`` or ``lost``. Each event carries the routing context it is given
(epoch, owner, rule, pool, source, experiment arm, config version), so conversion reports group by
rule, pool or rep without a join, and the opportunity's amount and currency.

Event ids are ``outcome/{crm}/{object}/{lead}/{state}`` (the ledger's ``kind/crm/object/lead/...``
form): one per lead and state, whatever the epoch and however often the lead is read, so the
ledger (idempotent on ``event_id``) stores each state once, with the details of the first read
that saw it. A later state adds its own event. A HubSpot contact whose deal was lost and who later
wins another has both a ``lost`` and a ``won`` event; reports take the furthest.

The step reads and builds; it writes nothing. Whoever calls it (a periodic task) chooses which
leads to read and when, and hands the events to the ledger through the outbox.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable, Iterator
from datetime import UTC, datetime, timedelta
from itertools import groupby
from typing import Any, NamedTuple, Protocol

from connectors.base import Connector, Outcome, OutcomeState
from worker.ledger.events import MAX_EVENT_ID, LedgerEvent
from worker.steps.ledger import plain

__all__ = ["RoutedLead", "outcome_event_id", "outcome_events", "read_back_outcomes"]

KIND = "outcome"


class RoutedLead(NamedTuple):
    """A lead leadroute routed, with the routing context its outcome events carry (a plain tuple will do)."""

    lead_id: str
    epoch: int | None = None
    owner: str | None = None
    rule: str | None = None
    pool: str | None = None
    source: str | None = None
    arm: str | None = None
    config_version: str | None = None


def outcome_event_id(crm: str, obj: str, lead_id: str, state: str) -> str:
    """``outcome/{crm}/{obj}/{lead}/{state}``; an id past the ledger's limit keeps its head and ends in a digest."""
    text = f"{KIND}/{crm}/{obj}/{lead_id}/{state}"
    if len(text) <= MAX_EVENT_ID:
        return text
    return f"{text[: MAX_EVENT_ID - 33]}~{hashlib.sha256(text.encode()).hexdigest()[:32]}"


def outcome_events(
    connector: Connector,
    crm: str,
    obj: str,
    leads: Iterable[RoutedLead | tuple[Any, ...]],
    *,
    now: datetime | None = None,
) -> list[LedgerEvent]:
    """One ``outcome`` event per state each lead has reached, in the leads' order, states in order.

    ``leads`` are ``(lead_id, epoch, owner, rule, pool, source, arm, config_version)``; a lead listed
    more than once is read once, with the context of its latest epoch. Leads still open, and leads
    the CRM no longer has, yield nothing. An event happens when the CRM says it did (conversion
    date, opportunity creation, close date); ``now`` (default: the current time) stands in where the
    CRM has no date. Connector errors propagate (a ``RetriableError`` means: read this batch later).
    """
    latest: dict[str, RoutedLead] = {}
    for item in leads:
        lead = RoutedLead(*item)
        held = latest.get(lead.lead_id)
        if held is None or (lead.epoch or 0) >= (held.epoch or 0):
            latest[lead.lead_id] = lead
    if not latest:
        return []
    outcomes = connector.read_outcomes(list(latest))
    read_at = now or datetime.now(UTC)
    events: list[LedgerEvent] = []
    for lead_id, lead in latest.items():
        outcome = outcomes.get(lead_id)
        if outcome is None:
            continue
        events.extend(_event(crm, obj, lead, outcome, state, read_at) for state in outcome.reached)
    return events


class AwaitingOutcome(Protocol):
    """What the read-back needs from the ledger: routed leads with no final outcome yet."""

    def routed_awaiting_outcome(self, crm: str, since: datetime) -> Iterator[tuple[Any, ...]]: ...


def read_back_outcomes(
    connector: Connector,
    ledger: AwaitingOutcome,
    append: Callable[[list[LedgerEvent]], int],
    crm: str,
    *,
    lookback: timedelta,
    chunk: int = 2000,
    now: datetime | None = None,
) -> int:
    """Read what became of every lead routed in ``crm`` within ``lookback`` that has no final outcome
    yet, ``chunk`` leads per CRM read, and ``append`` the events (to the outbox); how many.

    A lead reaches won or lost once, and then drops out of the next read-back; until then it is read
    again each time, and the ledger keeps each state it reached once (ids are per lead and state).
    """
    at = now or datetime.now(UTC)
    rows = ledger.routed_awaiting_outcome(crm, at - lookback)
    appended = 0
    for obj, of_object in groupby(rows, key=lambda row: row[0]):
        batch: list[RoutedLead] = []
        for row in of_object:
            if batch and len(batch) >= chunk and batch[-1].lead_id != row[1]:
                appended += append(outcome_events(connector, crm, obj, batch, now=at))
                batch = []
            batch.append(RoutedLead(*row[1:]))
        if batch:
            appended += append(outcome_events(connector, crm, obj, batch, now=at))
    return appended


def _when(outcome: Outcome, state: OutcomeState, read_at: datetime) -> datetime:
    if state is OutcomeState.CONVERTED:
        return outcome.converted_at or outcome.opportunity_created_at or read_at
    if state is OutcomeState.OPPORTUNITY:
        return outcome.opportunity_created_at or outcome.converted_at or read_at
    return outcome.closed_at or read_at


def _event(crm: str, obj: str, lead: RoutedLead, outcome: Outcome, state: OutcomeState, read_at: datetime) -> LedgerEvent:
    with_money = state is not OutcomeState.CONVERTED
    data: dict[str, Any] = {
        "converted_at": outcome.converted_at,
        "opportunity_id": outcome.opportunity_id,
        "opportunity_created_at": outcome.opportunity_created_at,
        "stage": outcome.stage,
        "is_won": outcome.is_won,
        "is_closed": outcome.is_closed,
        "closed_at": outcome.closed_at,
        "opportunities": outcome.opportunities,
        "fields": outcome.fields,
        "read_at": read_at,
    }
    return LedgerEvent(
        event_id=outcome_event_id(crm, obj, lead.lead_id, state.value),
        kind=KIND,
        crm=crm,
        object=obj,
        lead_id=lead.lead_id,
        at=_when(outcome, state, read_at),
        epoch=lead.epoch,
        config_version=lead.config_version,
        owner=lead.owner,
        rule=lead.rule,
        pool=lead.pool,
        source=lead.source,
        arm=lead.arm,
        status=state.value,
        amount=outcome.amount if with_money else None,
        currency=outcome.currency if with_money and outcome.amount is not None else None,
        data=plain(data),
    )
