"""The pending set: CRM record ids waiting to be routed, fed by polls and webhooks.

Ids live in one sorted set per CRM, scored by when they are due for (re)processing. A
drain claims a batch with a lease (the ids are re-armed at ``now + lease`` in the same
Lua step), and removes them only once they are routed and written back. A worker killed
mid-batch therefore loses nothing: when its lease runs out, the next drain takes the
ids again, and the idempotent decisions make the second pass a replay, not a re-route.

A drain keeps its batch by renewing the lease while it works (:meth:`PendingSet.renew`, a
heartbeat), so the lease can be short: a dead drain's batch is taken up again seconds after
its last renewal. The due time a claim sets is the lease itself: an id whose score is still
the one this drain set is still its own, so renewing (or giving back) never touches an id
that was routed, put back for a retry, or taken over by another drain meanwhile.

A drain also says which process holds its batch (:meth:`PendingSet.record_holder`), so that a worker
restarted on the same host can tell a dead predecessor's batch from a live drain's and take it
up at once (:meth:`PendingSet.release_holder`) instead of waiting for its lease to run out.
"""

from __future__ import annotations

import json
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import redis

from worker.store.base import lua_source
from worker.store.keys import Keys

ADD_CHUNK = 2000  # ids per script call: bounds how long one call holds Redis


@dataclass(frozen=True, slots=True)
class PendingItem:
    """One claimed record id, with where it came from and when it was first seen."""

    record_id: str
    source: str
    first_seen: float
    held_until: float = 0.0  # the lease this claim set (its score in the pending set)


class PendingSet:
    """Per-CRM pending ids under the store's key prefix (``RedisStore.pending_set()`` builds one)."""

    def __init__(self, client: redis.Redis, prefix: str) -> None:
        self.client = client
        self.prefix = prefix
        self.keys = Keys(prefix)
        self._claim = client.register_script(lua_source("claim_due"))
        self._add = client.register_script(lua_source("pending_add"))
        self._renew = client.register_script(lua_source("pending_renew"))

    def _keys(self, crm: str) -> list[str]:
        return [self.keys.pending(crm), self.keys.pending_meta(crm)]

    def add(self, crm: str, record_ids: Sequence[str], source: str, now: float | None = None) -> int:
        """Queue ids for routing; an id already pending keeps its place. Returns how many were new."""
        if not record_ids:
            return 0
        at = time.time() if now is None else now
        meta = json.dumps({"s": source, "t": at})
        pipe = self.client.pipeline(transaction=False)
        for start in range(0, len(record_ids), ADD_CHUNK):
            self._add(keys=self._keys(crm), args=[repr(at), meta, *record_ids[start : start + ADD_CHUNK]], client=pipe)
        return sum(int(n) for n in pipe.execute())

    def claim(self, crm: str, limit: int, lease: float, now: float | None = None) -> list[PendingItem]:
        """Take up to ``limit`` due ids (oldest first), leased for ``lease`` seconds."""
        at = time.time() if now is None else now
        raw = self._claim(keys=self._keys(crm), args=[repr(at), int(limit), repr(float(lease))])
        until = at + float(lease)  # what the script set, to the bit: the same doubles, added the same way
        items = []
        for i in range(0, len(raw), 3):
            meta = json.loads(raw[i + 2]) if raw[i + 2] else {}
            items.append(PendingItem(raw[i], meta.get("s", ""), float(meta.get("t", raw[i + 1])), until))
        return items

    def renew(self, crm: str, held: Mapping[str, float], lease: float, now: float | None = None) -> dict[str, float]:
        """Extend the lease of claimed ids this caller still holds to ``now + lease``, atomically.

        ``held`` maps each id to the lease it holds (``PendingItem.held_until``, or what the last
        renewal returned). Returns the ids still held, with their new lease; an id missing from
        the answer was routed, put back, or taken over by another drain after its lease ran out.
        """
        at = time.time() if now is None else now
        return dict.fromkeys(self._move_held(crm, held, at + float(lease)), at + float(lease))

    def give_back(self, crm: str, held: Mapping[str, float], delay: float = 0.0, now: float | None = None) -> list[str]:
        """Let go of claimed ids this caller still holds: claimable again after ``delay`` seconds,
        without waiting for the lease (a drain that cannot finish its batch). Returns those let go."""
        at = time.time() if now is None else now
        return self._move_held(crm, held, at + float(delay))

    def _move_held(self, crm: str, held: Mapping[str, float], due: float) -> list[str]:
        items = list(held.items())
        if not items:
            return []
        pipe = self.client.pipeline(transaction=False)
        for start in range(0, len(items), ADD_CHUNK):
            args = [repr(due)] + [v for rid, until in items[start : start + ADD_CHUNK] for v in (rid, repr(float(until)))]
            self._renew(keys=[self.keys.pending(crm)], args=args, client=pipe)
        return [rid for part in pipe.execute() for rid in part]

    def record_holder(self, crm: str, holder: str, held: Mapping[str, float], now: float | None = None) -> None:
        """Record that ``holder`` (a process, see :mod:`worker.steps.liveness`) holds ``held`` (id -> lease);
        nothing held forgets the holder. The records expire twice the lease after the last one written
        (every record is rewritten at each renewal), so those of a CRM no longer drained do not stay."""
        if held:
            key = self.keys.pending_holders(crm)
            ttl_ms = max(1000, int(2000 * (max(held.values()) - (time.time() if now is None else now))))
            pipe = self.client.pipeline(transaction=True)
            pipe.hset(key, holder, json.dumps(dict(held)))
            pipe.pexpire(key, ttl_ms)
            pipe.execute()
        else:
            self.forget_holder(crm, holder)

    def forget_holder(self, crm: str, holder: str) -> None:
        """Forget ``holder``: it finished, gave its batch back, or its leases ran out."""
        self.client.hdel(self.keys.pending_holders(crm), holder)

    def holders(self, crm: str) -> dict[str, dict[str, float]]:
        """Every recorded holder and what it held (id -> lease) at its last renewal."""
        raw = self.client.hgetall(self.keys.pending_holders(crm))
        out: dict[str, dict[str, float]] = {}
        for holder, text in raw.items():
            try:
                out[holder] = {str(rid): float(until) for rid, until in json.loads(text).items()}
            except (ValueError, TypeError, AttributeError):
                out[holder] = {}  # unreadable: nothing to release, only to forget
        return out

    def release_holder(self, crm: str, holder: str, held: Mapping[str, float], now: float | None = None) -> list[str]:
        """A dead holder's batch, due at once: only the ids still under the leases it held (none routed,
        put back or taken over since); then the holder is forgotten. Returns the ids released."""
        released = self.give_back(crm, held, now=now)
        self.forget_holder(crm, holder)
        return released

    def done(self, crm: str, record_ids: Sequence[str]) -> None:
        """Forget ids that were routed (or found not to need routing)."""
        if not record_ids:
            return
        zkey, meta = self._keys(crm)
        pipe = self.client.pipeline(transaction=True)
        pipe.zrem(zkey, *record_ids)
        pipe.hdel(meta, *record_ids)
        pipe.execute()

    def retry_later(self, crm: str, record_ids: Sequence[str], delay: float, now: float | None = None) -> None:
        """Push ids back to be claimed again after ``delay`` seconds (a retriable CRM failure)."""
        if not record_ids:
            return
        at = (time.time() if now is None else now) + delay
        self.client.zadd(self.keys.pending(crm), {rid: at for rid in record_ids}, xx=True)

    def depth(self, crm: str) -> int:
        """How many ids are pending or in flight for a CRM."""
        return int(self.client.zcard(self.keys.pending(crm)))

    def due(self, crm: str, now: float | None = None) -> int:
        """How many ids are ready to be claimed now (not leased, not backing off)."""
        at = time.time() if now is None else now
        return int(self.client.zcount(self.keys.pending(crm), "-inf", at))

    def not_due(self, crm: str, now: float | None = None) -> list[str]:
        """The ids that cannot be claimed now: leased to a drain, or backing off after a failure. Right
        after a worker died these are the batches it held, which wait for their leases to run out."""
        at = time.time() if now is None else now
        return list(self.client.zrangebyscore(self.keys.pending(crm), f"({at!r}", "+inf"))
