"""Reports on the routing ledger: speed to lead, SLA compliance, fairness, acceptance, outcomes and
rule coverage over a period, as plain dataclasses (``to_dict()`` for JSON).

The library API behind ``leadroute report`` and the dashboard. Figures are computed from the
ledger's ``events`` table in SQLAlchemy Core, grouped and counted in SQL; the percentiles of
each group's waits are picked by numpy (see :mod:`.grouped`).

* :func:`build_report`: every figure, each pass over the ledger made once; whole days come from
  the day cache while it is current (:mod:`.pieces`).
* :mod:`.figures`: each figure on its own (``speed_to_lead``, ``sla_compliance``, ``fairness``,
  ``acceptance``, ``outcomes``, ``coverage``).
* :mod:`.model`: the inputs (:class:`Period`, :class:`ReportSettings`) and the result types.
* :mod:`.table` and :mod:`.html`: the terminal tables and the self-contained HTML file.

See ``docs/reports.md`` for every figure's definition.
"""

from __future__ import annotations

from worker.reports.model import DIMENSIONS, Period, Report, ReportSettings, TierWindow
from worker.reports.report import build_report
from worker.reports.settings import settings_from_config

__all__ = ["DIMENSIONS", "Period", "Report", "ReportSettings", "TierWindow", "build_report", "settings_from_config"]
