"""The ledger's outbox: events wait in one Redis stream until the ledger task moves them to SQL.

Routing never waits on SQL, and no event may be lost or written twice. So what each ledger
event describes is appended to the stream in the same atomic step that records it. An entry
is one of three forms:

* ``e``: a whole event, the JSON of :meth:`worker.ledger.events.LedgerEvent.to_dict`: an SLA
  step (with its log entry, :meth:`~worker.store.log.LogStore.log_events`), an acknowledgement
  (``ack.lua``), a refused owner, a notification;
* ``d``: a routing decision or manual re-route exactly as ``record.lua`` records it (the
  decision's JSON, its lead and epoch) and, in ``x``, what the ledger needs beside it (the
  lead's creation time, source and facts), appended by that script when, and only when, it
  records the decision;
* ``s``: an SLA clock started, its timer payload as
  :meth:`~worker.store.timers.TimerStore.schedule_many` stores it, in the same transaction.

The last two are the routing path's: they reuse the JSON the store writes anyway, so routing
pays one ``XADD`` per decision, not the building of an event; the mover turns them into
events (:func:`worker.steps.ledger.entry_event`), off the routing path. Either way, what
reaches SQL is one :class:`~worker.ledger.events.LedgerEvent` with an id derived from what
happened. The mover (:func:`worker.steps.ledger.move_outbox`) then, per batch:

1. **claims** it (:meth:`OutboxStore.outbox_claim`): the consumer group ``ledger`` hands each
   entry to one mover under a lease; an entry claimed longer ago than the lease (its mover was
   killed, or gave it back after a failed write) is claimable again;
2. **writes** it with :meth:`worker.ledger.Ledger.write`, idempotent on ``event_id``;
3. **acknowledges** it (:meth:`OutboxStore.outbox_ack`: ``XACK`` and ``XDEL`` in one
   transaction) only after the SQL commit.

A mover that dies between 2 and 3 leaves its batch claimed; after the lease the next mover
writes it again and the ledger keeps the copy it has, so every event ends in SQL exactly once.
The stream is never capped: while SQL is down it grows, and :meth:`OutboxStore.outbox_stats`
says by how much and since when (``/healthz``, the ``leadroute_ledger_outbox_*`` gauges).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import redis

from worker.ledger.events import LedgerEvent
from worker.store.base import StoreBase, dumps, stream_time

GROUP = "ledger"  # the consumer group of the movers
CONSUMER = "mover"  # one name for all: a claim's owner is the lease, not the name
RELEASED_IDLE_MS = 10 * 365 * 86_400_000  # a released entry looks idle for years: claimable at once
_PAGE = 1000

EventLike = LedgerEvent | Mapping[str, Any]


def encode_event(event: EventLike) -> str:
    """An event's outbox form: ``LedgerEvent.to_dict()`` as compact JSON.

    A dict is checked as :meth:`LedgerEvent.from_dict` does, so nothing the ledger would
    refuse is ever appended (an invalid event raises here, in the step that made it).
    """
    valid = event if isinstance(event, LedgerEvent) else LedgerEvent.from_dict(event)
    return dumps(valid.to_dict())


@dataclass(frozen=True, slots=True)
class OutboxEntry:
    """One outbox entry: its stream id (which says when it was appended) and its fields.

    ``kind`` tells the forms apart: ``event`` (``fields["e"]``: an event's JSON), ``decision``
    (``fields["d"]``: the decision's JSON, ``x`` what goes beside it, ``lead`` as ``crm:object:id``, ``epoch``) or
    ``clock`` (``fields["s"]``: an SLA timer's payload, ``t`` its timer id, ``cv`` the config version).
    """

    entry_id: str
    fields: Mapping[str, str]

    @property
    def kind(self) -> str:
        if "e" in self.fields:
            return "event"
        if "d" in self.fields:
            return "decision"
        if "s" in self.fields:
            return "clock"
        return "unknown"

    @property
    def at(self) -> datetime:
        """When it was appended: for a decision or a clock started, when that happened."""
        return stream_time(self.entry_id)

    def about(self, crm: str, obj: str, lead_id: str) -> bool:
        """Whether this entry is about that lead (cheaply, before any JSON is parsed)."""
        if "lead" in self.fields:
            return self.fields["lead"] == f"{crm}:{obj}:{lead_id}"
        if "t" in self.fields:
            return self.fields["t"].endswith(f":{crm}:{obj}:{lead_id}")
        text = self.fields.get("e", "")
        if f'"lead_id":{json.dumps(lead_id)}' not in text:
            return False
        event = json.loads(text)
        return bool(event.get("crm") == crm and event.get("object") == obj)


@dataclass(frozen=True, slots=True)
class OutboxStats:
    """How far behind the ledger is: events not yet in SQL (``depth``), how many of them were handed to a
    mover and not acknowledged yet (``claimed``: being written, or given back after a failed write),
    when the oldest was appended, and how many the ledger refused (``dead``)."""

    depth: int
    claimed: int
    oldest_at: datetime | None
    dead: int = 0

    def oldest_age(self, now: datetime | None = None) -> float:
        """Seconds the oldest waiting event has waited (0 when the outbox is empty)."""
        if self.oldest_at is None:
            return 0.0
        return max(0.0, ((now or datetime.now(UTC)) - self.oldest_at).total_seconds())


class OutboxStore(StoreBase):
    """Appending ledger events, and the mover's claim, acknowledge and release."""

    LUA = ("outbox_claim",)

    ledger_outbox: bool = True  # False: no event is appended (the benchmark's "ledger off")

    # ------------------------------------------------------------------ appending

    def outbox_encode(self, event: EventLike | None) -> str:
        """The JSON a script or transaction appends for ``event``; "" for none (or with the outbox off)."""
        if event is None or not self.ledger_outbox:
            return ""
        return encode_event(event)

    def outbox_append(self, events: Iterable[EventLike]) -> int:
        """Append events on their own (notifications: idempotent by id, no state to record with them)."""
        texts = [text for text in map(self.outbox_encode, events) if text]
        if texts:
            pipe = self.client.pipeline(transaction=True)
            self._outbox_add(pipe, texts)
            pipe.execute()
        return len(texts)

    def _outbox_add(self, pipe: Any, texts: Iterable[str]) -> None:
        """Queue the appends on ``pipe`` (a MULTI another concern is building): the same atomic step."""
        key = self.keys.outbox()
        for text in texts:
            if text:
                pipe.xadd(key, {"e": text})

    # ------------------------------------------------------------------ the mover

    def outbox_claim(self, limit: int, lease: float) -> list[OutboxEntry]:
        """Claim up to ``limit`` events: first those claimed more than ``lease`` seconds ago, then new ones.

        Every mover claims with the same lease, so a claimed event is hidden from the others
        until it is acknowledged or ``lease`` seconds pass (its mover died, or is too slow to
        count on): then the next claim takes it over.
        """
        raw = self._lua["outbox_claim"](
            keys=[self.keys.outbox()], args=[GROUP, CONSUMER, max(1, int(lease * 1000)), max(1, int(limit))]
        )
        return [OutboxEntry(raw[i], _pairs(raw[i + 1])) for i in range(0, len(raw), 2)]

    def outbox_ack(self, entry_ids: Sequence[str]) -> int:
        """Forget events the ledger has committed (acknowledge and delete, in one transaction); how many were there."""
        if not entry_ids:
            return 0
        key = self.keys.outbox()
        pipe = self.client.pipeline(transaction=True)
        for start in range(0, len(entry_ids), _PAGE):
            chunk = list(entry_ids[start : start + _PAGE])
            pipe.xack(key, GROUP, *chunk)
            pipe.xdel(key, *chunk)
        replies = pipe.execute()
        return sum(int(n) for n in replies[1::2])

    def outbox_release(self, entry_ids: Sequence[str]) -> None:
        """Give claimed events back at once (the write failed): the next claim takes them without waiting for the lease."""
        key = self.keys.outbox()
        pipe = self.client.pipeline(transaction=False)
        for start in range(0, len(entry_ids), _PAGE):
            pipe.xclaim(key, GROUP, CONSUMER, 0, list(entry_ids[start : start + _PAGE]), idle=RELEASED_IDLE_MS,
                        justid=True)
        pipe.execute()

    def outbox_dead_letter(self, refused: Sequence[tuple[OutboxEntry, str]]) -> None:
        """Move events the ledger refused as invalid to ``outbox:dead`` (with the reason), out of the mover's way.

        One malformed event must not stop every later one; it is kept, not dropped, for a human.
        """
        if not refused:
            return
        key = self.keys.outbox()
        pipe = self.client.pipeline(transaction=True)
        for entry, error in refused:
            pipe.xadd(self.keys.outbox_dead(), {**entry.fields, "error": error[:1000], "from": entry.entry_id})
        ids = [entry.entry_id for entry, _ in refused]
        pipe.xack(key, GROUP, *ids)
        pipe.xdel(key, *ids)
        pipe.execute()

    # ------------------------------------------------------------------ reading

    def outbox_stats(self) -> OutboxStats:
        """Depth (events not yet in SQL), how many are claimed, when the oldest was appended, refused ones."""
        key = self.keys.outbox()
        pipe = self.client.pipeline(transaction=False)
        pipe.xlen(key)
        pipe.xrange(key, "-", "+", count=1)
        pipe.xpending(key, GROUP)
        pipe.xlen(self.keys.outbox_dead())
        depth, first, pending, dead = pipe.execute(raise_on_error=False)
        claimed = int(pending.get("pending", 0)) if isinstance(pending, Mapping) else 0
        if isinstance(depth, redis.RedisError) or isinstance(first, redis.RedisError):
            raise depth if isinstance(depth, redis.RedisError) else first
        oldest = stream_time(first[0][0]) if first else None
        return OutboxStats(int(depth), claimed, oldest, int(dead) if isinstance(dead, int) else 0)

    def outbox_for_lead(self, crm: str, obj: str, lead_id: str, *, scan: int = 200_000) -> list[OutboxEntry]:
        """The entries about one lead still waiting in the outbox (``explain`` adds them to the ledger's), oldest first.

        The outbox has no index by lead: this reads at most ``scan`` entries, which covers it
        unless SQL has been down for a long time.
        """
        found: list[OutboxEntry] = []
        lower, seen = "-", 0
        while seen < scan:
            page = self.client.xrange(self.keys.outbox(), lower, "+", count=min(_PAGE, scan - seen))
            found += [entry for entry in (OutboxEntry(i, f) for i, f in page) if entry.about(crm, obj, lead_id)]
            seen += len(page)
            if len(page) < _PAGE:
                break
            lower = "(" + page[-1][0]
        return found


def _pairs(flat: Sequence[str]) -> dict[str, str]:
    return dict(zip(flat[0::2], flat[1::2], strict=True))
