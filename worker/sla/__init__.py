"""SLA enforcement: tiers, business-hours clocks, the breach ladder and the sweep.

* :mod:`worker.sla.settings`: the ``sla:`` section (models, :func:`compile_sla`).
* :mod:`worker.sla.clock`: deadlines on wall and business-hours clocks (pure).
* :mod:`worker.sla.policy`: what is due for a lead, in order (pure).
* :mod:`worker.sla.sweep`: :class:`SlaService` (start clocks, sweep, acknowledge, absences).
"""

from worker.sla.policy import Act, Action, Plan, Seen, SlaRecord, decide, open_record, reassigned, timer_id
from worker.sla.settings import CompiledSla, SlaCheck, SlaSettings, Tier, compile_sla, connectors_with_signals
from worker.sla.sweep import AckResult, Done, Notice, Notifier, SlaCrm, SlaService, SweepReport, sweep

__all__ = [
    "AckResult",
    "Act",
    "Action",
    "CompiledSla",
    "Done",
    "Notice",
    "Notifier",
    "Plan",
    "Seen",
    "SlaCheck",
    "SlaCrm",
    "SlaRecord",
    "SlaService",
    "SlaSettings",
    "SweepReport",
    "Tier",
    "compile_sla",
    "connectors_with_signals",
    "decide",
    "open_record",
    "reassigned",
    "sweep",
    "timer_id",
]
