"""The decision log: one capped stream of decisions and the events around them.

Decisions are appended by ``record.lua`` as they are recorded; every other event (SLA steps,
re-routes, acknowledgements, reconciliations) through :meth:`LogStore.log_event` or, a batch
in one round trip, :meth:`LogStore.log_events`. The stream is capped at ``log_maxlen``
entries (approximately); readers page through it. Ledger events passed with a log append go
to the outbox in the same transaction (see :mod:`worker.store.outbox`): the log forgets, the
ledger keeps.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from worker.domain.leads import LeadRef
from worker.store.base import dumps, stream_id, stream_time
from worker.store.outbox import EventLike, OutboxStore


@dataclass(frozen=True, slots=True)
class LogEntry:
    """One decision-log entry: a decision (``kind == "decision"``) or another event."""

    entry_id: str
    at: datetime
    kind: str
    lead: str
    epoch: int | None
    data: dict[str, Any]


class LogStore(OutboxStore):
    """Appending to and reading the decision log."""

    def log_event(
        self, kind: str, lead: LeadRef | str | None, data: Mapping[str, Any], epoch: int | None = None,
        *, ledger: Iterable[EventLike] = (),
    ) -> str:
        """Append a non-decision event (SLA breach, reassignment, acknowledgement...) to the log.

        ``ledger``: the ledger events it stands for, appended to the outbox in the same transaction.
        """
        return self.log_events([(kind, lead, data, epoch)], ledger=ledger)[0]

    def log_events(
        self, events: Sequence[tuple[str, LeadRef | str | None, Mapping[str, Any], int | None]],
        *, ledger: Iterable[EventLike] = (),
    ) -> list[str]:
        """Append many events ``(kind, lead, data, epoch)`` in one round trip, in order; their entry ids.

        ``ledger``: ledger events appended to the outbox in the same transaction (MULTI).
        """
        texts = [text for text in map(self.outbox_encode, ledger) if text]
        if not events and not texts:
            return []
        pipe = self.client.pipeline(transaction=bool(texts))
        for kind, lead, data, epoch in events:
            pipe.xadd(self.keys.log(), _fields(kind, lead, data, epoch), maxlen=self.log_maxlen, approximate=True)
        self._outbox_add(pipe, texts)
        return [str(entry_id) for entry_id in pipe.execute()[: len(events)]]

    def recent(self, count: int = 20, kind: str | None = None) -> list[LogEntry]:
        """The latest ``count`` log entries (of ``kind`` if given), newest first."""
        out: list[LogEntry] = []
        upper = "+"
        while len(out) < count:
            batch = self.client.xrevrange(self.keys.log(), upper, "-", count=max(count, 100) if kind else count)
            if not batch:
                break
            for entry_id, fields in batch:
                entry = _to_entry(entry_id, fields)
                if kind is None or entry.kind == kind:
                    out.append(entry)
            upper = "(" + batch[-1][0]
        return out[:count]

    def log_range(self, since: datetime | None = None, until: datetime | None = None, *, batch: int = 1000) -> Iterator[LogEntry]:
        """Log entries between two times, oldest first, read in pages (for ``report``)."""
        lower = stream_id(since, "-")
        upper = stream_id(until, "+")
        while True:
            page = self.client.xrange(self.keys.log(), lower, upper, count=batch)
            for entry_id, fields in page:
                yield _to_entry(entry_id, fields)
            if len(page) < batch:
                return
            lower = "(" + page[-1][0]

    def log_for_lead(self, lead: LeadRef | str, limit: int = 50, scan: int = 10_000) -> list[LogEntry]:
        """Log entries about one lead among the latest ``scan`` entries, newest first.

        The log has no per-lead index; this reads at most ``scan`` entries. For the lead's
        decisions themselves, :meth:`decisions_for_lead` is direct.
        """
        wanted = str(lead)
        out: list[LogEntry] = []
        upper, seen = "+", 0
        while seen < scan and len(out) < limit:
            page = self.client.xrevrange(self.keys.log(), upper, "-", count=min(1000, scan - seen))
            if not page:
                break
            seen += len(page)
            out.extend(_to_entry(i, f) for i, f in page if f.get("lead") == wanted)
            upper = "(" + page[-1][0]
        return out[:limit]

    def log_length(self) -> int:
        return int(self.client.xlen(self.keys.log()))


def _fields(kind: str, lead: LeadRef | str | None, data: Mapping[str, Any], epoch: int | None) -> dict[str, str]:
    fields: dict[str, str] = {"k": kind, "lead": str(lead or ""), "d": dumps(data)}
    if epoch is not None:
        fields["epoch"] = str(epoch)
    return fields


def _to_entry(entry_id: str, fields: Mapping[str, str]) -> LogEntry:
    epoch = fields.get("epoch")
    return LogEntry(
        entry_id,
        stream_time(entry_id),
        fields.get("k", "decision"),
        fields.get("lead", ""),
        int(epoch) if epoch not in (None, "") else None,
        json.loads(fields["d"]) if fields.get("d") else {},
    )

