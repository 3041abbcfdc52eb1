"""A routing history made the way the worker makes it, for tests and ``bench/replay.py``.

:func:`make_history` routes leads through the real engine at their routing times against a state
that, like the worker's, frees a rep's load when the lead is acknowledged, and turns each
decision into the ledger event the worker writes (:func:`worker.steps.ledger.decision_event`, with
the facts of :func:`~worker.steps.ledger.decision_extras`) and each acknowledgement into an
``ack`` event. Nothing here is used on the routing path.
"""

from __future__ import annotations

import heapq
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from worker.config import RoutingConfig
from worker.domain.leads import LeadRef
from worker.domain.normalize import normalize_lead
from worker.ledger.events import LedgerEvent
from worker.replay.run import ReplayState
from worker.routing.engine import Router
from worker.steps.ledger import decision_event, decision_extras, make_event


@dataclass(frozen=True, slots=True)
class Arrival:
    """A lead as it came in: its raw fields, when it was routed, and when (if ever) its owner acknowledged it."""

    lead: Mapping[str, Any]
    routed_at: datetime
    acked_at: datetime | None = None
    overrides: Mapping[str, str] | None = None  # reps forced away at the time (``leadroute ooo``)


def make_history(config: RoutingConfig, arrivals: Iterable[Arrival], crm: str = "salesforce", obj: str = "Lead",
                 state: ReplayState | None = None) -> Iterator[LedgerEvent]:
    """The ledger events of routing ``arrivals`` (in routing-time order) under ``config``: a ``decision`` per lead,
    an ``ack`` per acknowledged lead, oldest first by routing. A lead's ``id`` field is its lead id."""
    state = state or ReplayState()
    router = Router(config, state)
    due: list[tuple[datetime, int, str]] = []
    for n, arrival in enumerate(arrivals):
        while due and due[0][0] <= arrival.routed_at:
            _, _, owner = heapq.heappop(due)
            if not owner.startswith("queue:"):
                state.adjust_load(owner, -1)
        normalized = normalize_lead(arrival.lead)
        decision = router.route(normalized, at=arrival.routed_at, overrides=arrival.overrides)
        ref = LeadRef(crm, obj, str(normalized.fields.get("id") or f"L{n}"))
        yield decision_event(ref, 0, decision.to_dict(), arrival.routed_at, None, decision_extras(config, normalized))
        if arrival.acked_at is not None:
            heapq.heappush(due, (arrival.acked_at, n, decision.owner))
            yield make_event("ack", ref, 0, arrival.acked_at, owner=decision.owner, config_version=config.version_hash,
                             data={"acknowledged_at": arrival.acked_at})
