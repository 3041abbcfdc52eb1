"""Timers in a sorted set, and the index of each rep's open SLA clocks.

A timer is an id, a due time (epoch seconds, the score) and a JSON payload (a hash beside).
:meth:`TimerStore.claim_due` hands each due timer to exactly one caller, at a cost in
proportion to what is due, not to what is open (``claim_due.lua``); a leased claim re-arms
the timer so a sweeper that dies loses nothing, and :meth:`TimerStore.rearm` moves claimed
timers on unless someone closed them meanwhile (``rearm.lua``).

The SLA sweep keeps two more things here: which open clocks each rep holds
(:meth:`TimerStore.rep_timers`, for ``leadroute reps`` and an absence), and marks that an
action on a clock was carried out (:meth:`TimerStore.mark_once`), so a sweep that dies half
way and runs again never repeats a side effect. Clocks started and acknowledged carry their
ledger events into the outbox in the same step (:mod:`worker.store.outbox`).
"""

from __future__ import annotations

import json
from collections.abc import Container, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from worker.domain.leads import LeadRef
from worker.store.base import dumps, epoch_seconds
from worker.store.outbox import EventLike, OutboxStore


@dataclass(frozen=True, slots=True)
class Timer:
    """A due SLA timer handed to one sweeper."""

    timer_id: str
    due_at: float
    payload: dict[str, Any]


class TimerStore(OutboxStore):
    """Timers (SLA clocks), their per-rep index and the sweep's once-marks."""

    LUA = ("claim_due", "rearm", "ack")

    def schedule(self, timer_id: str, due_at: float | datetime, payload: Mapping[str, Any] | None = None) -> None:
        """Set (or move) a timer; one timer per id, so re-scheduling replaces it."""
        pipe = self.client.pipeline(transaction=True)
        pipe.zadd(self.keys.timers(), {timer_id: epoch_seconds(due_at)})
        pipe.hset(self.keys.timer_payloads(), timer_id, dumps(payload or {}))
        pipe.execute()

    def schedule_many(
        self, timers: Sequence[tuple[str, float | datetime, Mapping[str, Any] | None]],
        *, started: Container[str] = (), config_version: str | None = None,
    ) -> None:
        """Set many timers in one transaction.

        The timers in ``started`` are clocks just started: each goes to the ledger's outbox in
        the same transaction, as its payload and the config version it started under.
        """
        if not timers:
            return
        payloads = {tid: dumps(p or {}) for tid, _, p in timers}
        pipe = self.client.pipeline(transaction=True)
        pipe.zadd(self.keys.timers(), {tid: epoch_seconds(due) for tid, due, _ in timers})
        pipe.hset(self.keys.timer_payloads(), mapping=payloads)
        if self.ledger_outbox:
            for tid, text in payloads.items():
                if tid in started:
                    pipe.xadd(self.keys.outbox(), {"t": tid, "s": text, "cv": config_version or ""})
        pipe.execute()

    def cancel(self, timer_id: str) -> bool:
        """Remove a timer (the lead was acknowledged); True if it was open."""
        pipe = self.client.pipeline(transaction=True)
        pipe.zrem(self.keys.timers(), timer_id)
        pipe.hdel(self.keys.timer_payloads(), timer_id)
        removed, _ = pipe.execute()
        return bool(removed)

    def claim_due(self, now: float | datetime | None = None, limit: int = 1000, *, lease: float | None = None) -> list[Timer]:
        """Hand the timers due by ``now`` (earliest first, at most ``limit``) to this caller only.

        Without ``lease`` a claimed timer is removed. With ``lease`` (seconds) it is re-armed
        at ``now + lease``, so if this sweeper dies the timer fires again; the caller then
        cancels or reschedules it when done.
        """
        raw = self._lua["claim_due"](
            keys=[self.keys.timers(), self.keys.timer_payloads()],
            args=[repr(epoch_seconds(now)), int(limit), "" if lease is None else repr(float(lease))],
        )
        return [Timer(raw[i], float(raw[i + 1]), json.loads(raw[i + 2]) if raw[i + 2] else {}) for i in range(0, len(raw), 3)]

    def timer(self, timer_id: str) -> Timer | None:
        """One open timer, or None."""
        pipe = self.client.pipeline(transaction=False)
        pipe.zscore(self.keys.timers(), timer_id)
        pipe.hget(self.keys.timer_payloads(), timer_id)
        due, payload = pipe.execute()
        return None if due is None else Timer(timer_id, float(due), json.loads(payload) if payload else {})

    def open_timers(self) -> int:
        return int(self.client.zcard(self.keys.timers()))

    def next_due(self) -> float | None:
        """When the earliest open timer is due (for sleeping until the next sweep)."""
        first = self.client.zrange(self.keys.timers(), 0, 0, withscores=True)
        return float(first[0][1]) if first else None

    def peek_due(self, now: float | datetime | None = None, limit: int = 1000, *, skip: Container[str] = ()) -> list[Timer]:
        """The timers due by ``now`` (earliest first, at most ``limit``, less those in ``skip``), not claimed (a dry run)."""
        due = self.client.zrangebyscore(self.keys.timers(), "-inf", epoch_seconds(now), start=0, num=limit, withscores=True)
        due = [(tid, at) for tid, at in due if tid not in skip]
        if not due:
            return []
        payloads = self.client.hmget(self.keys.timer_payloads(), [tid for tid, _ in due])
        return [Timer(tid, float(at), json.loads(p) if p else {}) for (tid, at), p in zip(due, payloads, strict=True)]

    def timer_payloads(self, timer_ids: Sequence[str]) -> dict[str, dict[str, Any]]:
        """The payloads of the open timers among ``timer_ids``, in one round trip."""
        if not timer_ids:
            return {}
        payloads = self.client.hmget(self.keys.timer_payloads(), list(timer_ids))
        return {tid: json.loads(p) for tid, p in zip(timer_ids, payloads, strict=True) if p}

    def rearm(
        self,
        timers: Sequence[tuple[str, float, Mapping[str, Any] | None]],
        moves: Sequence[tuple[str, str, str]] = (),
    ) -> int:
        """Move claimed timers ``(id, due, payload or None to keep it)`` on, unless closed meanwhile (an ack).

        ``moves`` (timer id, old owner, new owner) move clocks between reps' indexes in the same
        round trip. Returns how many timers were still open and moved.
        """
        args: list[Any] = []
        for timer_id, due, payload in timers:
            args += [timer_id, repr(float(due)), "" if payload is None else dumps(payload)]
        pipe = self.client.pipeline(transaction=False)
        self._lua["rearm"](keys=[self.keys.timers(), self.keys.timer_payloads()], args=args, client=pipe)
        for timer_id, old, new in moves:
            pipe.srem(self.keys.rep_timers(old), timer_id)
            pipe.sadd(self.keys.rep_timers(new), timer_id)
        return int(pipe.execute()[0])

    def close_timers(self, timers: Sequence[tuple[str, str | None]]) -> int:
        """Remove timers ``(id, owner or None)`` and their owners' index entries in one transaction.

        Returns how many were open.
        """
        if not timers:
            return 0
        pipe = self.client.pipeline(transaction=True)
        for timer_id, _ in timers:
            pipe.zrem(self.keys.timers(), timer_id)
        pipe.hdel(self.keys.timer_payloads(), *[timer_id for timer_id, _ in timers])
        for timer_id, owner in timers:
            if owner:
                pipe.srem(self.keys.rep_timers(owner), timer_id)
        result = pipe.execute()
        return sum(int(x) for x in result[: len(timers)])

    def acknowledge_clock(
        self, timer_id: str, owner: str, lead: LeadRef, epoch: int, log: tuple[str, Mapping[str, Any]],
        ledger: Iterable[EventLike] = (),
    ) -> bool:
        """Close an acknowledged clock, once, in one step (``ack.lua``): the timer and its index entry go,
        the owner's load drops by one, the log entry ``(kind, data)`` and the ``ledger`` events are
        appended. False, and nothing done, when the clock was closed already (a sweep got there first).
        """
        kind, data = log
        keys = [self.keys.timers(), self.keys.timer_payloads(), self.keys.rep_timers(owner), self.keys.loads(),
                self.keys.log(), self.keys.outbox()]
        args = [timer_id, owner, self.log_maxlen, kind, str(lead), epoch, dumps(data),
                *(text for text in map(self.outbox_encode, ledger) if text)]
        return bool(self._lua["ack"](keys=keys, args=args))

    def index_timers(self, removed: Sequence[tuple[str, str]] = (), added: Sequence[tuple[str, str]] = ()) -> None:
        """Take timers ``(rep, timer id)`` out of reps' indexes, then put others in, in one round trip."""
        pipe = self.client.pipeline(transaction=False)
        for rep, timer_id in removed:
            pipe.srem(self.keys.rep_timers(rep), timer_id)
        for rep, timer_id in added:
            pipe.sadd(self.keys.rep_timers(rep), timer_id)
        pipe.execute()

    def rep_timers(self, rep: str) -> list[tuple[str, dict[str, Any]]]:
        """The open timers in a rep's index, ``(id, payload)`` by id; any closed meanwhile are left out."""
        ids = sorted(self.client.smembers(self.keys.rep_timers(rep)))
        if not ids:
            return []
        payloads = self.client.hmget(self.keys.timer_payloads(), ids)
        return [(tid, json.loads(p)) for tid, p in zip(ids, payloads, strict=True) if p]

    def mark_once(self, marks: Sequence[tuple[str, int, str]], ttl: float) -> list[bool]:
        """Set each mark ``(timer id, epoch, action tag)`` for ``ttl`` seconds unless it is set already.

        True where this call set it (the action is this caller's to carry out), in one round trip.
        """
        if not marks:
            return []
        pipe = self.client.pipeline(transaction=False)
        for timer_id, epoch, tag in marks:
            pipe.set(self.keys.done_mark(timer_id, epoch, tag), "1", nx=True, px=max(1, int(ttl * 1000)))
        return [bool(done) for done in pipe.execute()]
