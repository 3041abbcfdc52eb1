"""Pipeline load from the CRM: what a ``least_loaded`` pool with ``load:`` weights adds to each rep's open leads.

Pure data for the engine. A beat task (``worker.steps.pipeline``) counts every rep's open
opportunities (Salesforce) or deals (HubSpot) with one batched read per CRM and caches the
counts in the store with the time they were read; each routed batch hands the engine the
cached counts as a :class:`PipelineLoad` (``Router(config, state, pipeline=...)``), so routing
never waits on the CRM. A pool with ``load: {leads: 1, opportunities: 0.5}`` compares
``1 x open leads + 0.5 x open opportunities`` (over the capacity, as ``least_loaded`` always
does), and the decision shows both numbers: ``least loaded: tom 3 leads + 7 opps``.

Counts older than the configured maximum age (``worker.pipeline_max_age``) are still used, never
blocking routing, but the decision says so (``opps 2 h old, stale``).
No counts at all (before the first refresh, or the CRM unreachable since start) count as zero,
and the decision says that too.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime


@dataclass(frozen=True, slots=True)
class PipelineCounts:
    """Open opportunities (deals) per rep id as last read from one CRM, and when (epoch seconds)."""

    crm: str
    counts: Mapping[str, int]
    read_at: float


@dataclass(frozen=True)
class PipelineLoad:
    """The cached counts of every CRM the worker reads, and how old they may be before they are stale."""

    by_crm: Mapping[str, PipelineCounts] = field(default_factory=dict)
    max_age: float = 1800.0
    _totals: dict[str, int] = field(default_factory=dict, init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        for part in self.by_crm.values():
            for rep, n in part.counts.items():
                self._totals[rep] = self._totals.get(rep, 0) + int(n)

    def opportunities(self, rep_id: str) -> int:
        """The rep's open opportunities (deals), every CRM together; 0 when none were counted."""
        return self._totals.get(rep_id, 0)

    @property
    def label(self) -> str:
        """``deals`` when the counts come from HubSpot alone, else ``opps``."""
        return "deals" if self.by_crm and set(self.by_crm) == {"hubspot"} else "opps"

    def age(self, at: datetime) -> float | None:
        """Seconds since the oldest CRM's counts were read (None: never read)."""
        if not self.by_crm:
            return None
        return max(0.0, at.timestamp() - min(p.read_at for p in self.by_crm.values()))

    def stale(self, at: datetime) -> bool:
        """Whether the counts are missing or older than ``max_age`` at ``at``."""
        age = self.age(at)
        return age is None or age > self.max_age

    def note(self, at: datetime) -> str:
        """What the decision says about counts that cannot be trusted fully ("" when they are fresh)."""
        age = self.age(at)
        if age is None:
            return f"no {self.label} counts yet: counted as 0"
        if age > self.max_age:
            return f"{self.label} {_duration(age)} old, stale"
        return ""


def _duration(seconds: float) -> str:
    if seconds >= 86_400:
        return f"{seconds / 86_400:.0f} d"
    if seconds >= 3600:
        return f"{seconds / 3600:.0f} h"
    return f"{max(1.0, seconds / 60):.0f} min"
