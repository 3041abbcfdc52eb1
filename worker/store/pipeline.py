"""The cached pipeline counts behind ``least_loaded`` pools with ``load: {opportunities: ...}``.

One JSON string per CRM (``pipeline:<crm>``): open opportunities (deals) per rep id and when they
were read, replaced whole by the beat task that counts them (``worker.steps.pipeline``) and read
with one MGET per routed batch. The counts outlive their age on purpose: stale counts still route
(the decision says they are stale), and the next refresh replaces them.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence

from worker.routing.pipeline import PipelineCounts
from worker.store.base import StoreBase, dumps


class PipelineStore(StoreBase):
    """Open opportunities per rep, per CRM, with the time they were read."""

    def save_pipeline(self, crm: str, counts: Mapping[str, int], read_at: float) -> None:
        """Replace ``crm``'s counts (rep id -> open opportunities) read at ``read_at`` (epoch seconds)."""
        self.client.set(self.keys.pipeline(crm), dumps({"read_at": float(read_at),
                                                        "counts": {r: int(n) for r, n in counts.items() if n}}))

    def pipeline_counts(self, crms: Sequence[str]) -> dict[str, PipelineCounts]:
        """The cached counts of each of ``crms`` that has some, in one round trip."""
        wanted = list(dict.fromkeys(crms))
        if not wanted:
            return {}
        out: dict[str, PipelineCounts] = {}
        for crm, raw in zip(wanted, self.client.mget([self.keys.pipeline(c) for c in wanted]), strict=True):
            if raw:
                data = json.loads(raw)
                out[crm] = PipelineCounts(crm, {str(r): int(n) for r, n in data["counts"].items()}, float(data["read_at"]))
        return out
