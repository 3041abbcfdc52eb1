"""SLA policy, pure: tiers, work calendars and the breach ladder as decisions.

* :mod:`worker.sla.settings`: the ``sla:`` section (models, :func:`compile_sla`).
* :mod:`worker.sla.calendar`: deadlines on wall and business-hours clocks.
* :mod:`worker.sla.policy`: what is due for a lead, in order.

The service that does the I/O (start clocks, sweep, acknowledge) is :mod:`worker.steps.sla_sweep`.
"""
