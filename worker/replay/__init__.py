"""Replay: what a candidate routing config would have done to the leads already routed.

``leadroute replay`` reads the ledger (or an export of it), re-routes every lead first routed in
a window through the real engine twice, under the config in force (the baseline) and under the
candidate, from the same starting state, and compares (``docs/replay.md``).

* :mod:`.history`: ledger events -> the leads to route again, and when each one's load ended;
* :mod:`.run`: the two runs side by side over in-memory states;
* :mod:`.compare`: the counts, samples, volumes, fairness, exposure and fidelity, as one JSON shape;
* :mod:`.sources`: events from ``leadroute export`` CSV files;
* :mod:`.render`: the result as terminal tables or one self-contained HTML page.

No Redis and no database here: the CLI reads the ledger and hands the events in.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime

from worker.config import RoutingConfig
from worker.ledger.events import LedgerEvent
from worker.replay.compare import Comparison
from worker.replay.history import History, read_history
from worker.replay.run import StartState, replay, start_state

__all__ = ["Comparison", "History", "StartState", "read_history", "replay", "replay_events", "start_state"]


def replay_events(events: Iterable[LedgerEvent], since: datetime | None, until: datetime | None, baseline: RoutingConfig,
                  candidate: RoutingConfig, samples: int = 5) -> tuple[Comparison, History, StartState]:
    """Read ``events`` (ledger events, from before ``since`` for the starting state up to ``until``), replay the leads
    first routed in ``[since, until)`` under both configs, and return the comparison."""
    history = read_history(events, since, until)
    start = start_state(history.earlier, since, baseline)
    comparison = Comparison(baseline, candidate, samples)
    replay(history.leads, baseline, candidate, start, comparison.add)
    return comparison, history, start
