"""Shared state in Redis: the routing state, idempotent decisions, SLA timers and the rest.

Many Celery workers route at once; everything they share lives here, and every
read-modify-write two of them could race on is one Lua script (Redis 6.2 compatible:
EVALSHA, no FUNCTION) or one MULTI transaction.

:class:`RedisStore` implements the engine's :class:`~worker.routing.state.RoutingState`
with exactly the semantics of :func:`~worker.routing.state.choose` (one round trip per
pick), and adds:

* **Idempotent decisions** per (crm, object, lead id, epoch). :meth:`RedisStore.decide_once`
  returns the recorded decision if there is one; otherwise it takes a short lease on the
  lead, runs the engine against a *journaled* view of the state (:class:`DecisionState`),
  and records the result, first one wins. Every pick or assignment made through the view
  is written to the lead's journal in the same script that makes it, so a task that dies
  after claiming and is retried gets the same pick back and never claims twice (and a
  retry that takes another path gives the earlier claim back). A deliberate re-route
  opens a new epoch (:meth:`RedisStore.new_epoch`). For batches,
  :meth:`RedisStore.decide_many` does the same for many leads in a few round trips in all
  (leases, one claim script per round, records), and :meth:`RedisStore.claim_many` and
  :meth:`RedisStore.record_many` claim or record in one pipelined round trip each.
* Loads: +1/-1 never below zero (:meth:`~RedisStore.adjust_load`), set-all from a
  reconciliation (:meth:`~RedisStore.set_loads`).
* SLA timers in a sorted set: :meth:`~RedisStore.schedule`, :meth:`~RedisStore.cancel`,
  :meth:`~RedisStore.claim_due` (each due timer to exactly one caller; cost in proportion
  to what is due).
* Watermarks per connector and object, locks with owner tokens, first-seen de-duplication,
  the decision log (a capped stream) with readers, per-rep availability overrides.

Keys all live under a configurable prefix (``<prefix>:...``) so two configurations can
share one Redis; for Redis Cluster use a hash-tagged prefix such as ``{leadroute}`` so
each script's keys share a slot. Memory is bounded: decisions, epochs, leases, locks and
de-duplication marks expire; the log is capped; what remains is live state (loads,
rotation state per pool, open timers, overrides, watermarks), which scales with the
team and the open leads, not with history.
"""

from __future__ import annotations

import contextlib
import functools
import json
import time
import uuid
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from enum import Enum
from importlib import resources
from pathlib import Path
from typing import Any

import redis

from worker.domain.leads import DecisionKey, LeadRef
from worker.routing.state import Candidate, Pick, RoutingState, Strategy, describe
from worker.store.connection import DEFAULT_DATA_DIR, connect

DAY = 86_400.0
CLAIM_CHUNK = 1000  # claims per script call: bounds how long one call holds Redis
SCRIPT_CHUNK = 500  # leads per begin/record script call, likewise

_STRATEGY_CODE = {
    Strategy.ROUND_ROBIN: "rr",
    Strategy.WEIGHTED_ROUND_ROBIN: "wrr",
    Strategy.LEAST_LOADED: "ll",
}


class DecisionBusy(RuntimeError):
    """Another worker holds the lease on this lead and has not recorded a decision yet.

    Raised by :meth:`RedisStore.decide_once` after waiting; a Celery task should retry.
    """


class LockBusy(RuntimeError):
    """The lock is held by another owner."""






@dataclass(frozen=True, slots=True)
class Decided:
    """A recorded decision. ``fresh`` is True only for the call that recorded it."""

    key: DecisionKey
    decision: dict[str, Any]
    fresh: bool
    entry_id: str = ""

    @property
    def at(self) -> datetime | None:
        """When it was recorded (from the decision log entry id)."""
        return _stream_time(self.entry_id) if self.entry_id else None


@dataclass(frozen=True, slots=True)
class PoolClaim:
    """One lead's pick from a pool, for :meth:`RedisStore.claim_many`."""

    key: DecisionKey
    pool: str
    strategy: Strategy
    members: Sequence[str]
    candidates: Sequence[Candidate]
    index: int = 0  # the n-th claim of this lead's decision (its journal entry)


@dataclass(frozen=True, slots=True)
class DirectClaim:
    """One lead's direct assignment (named rep, account owner), for :meth:`RedisStore.claim_many`."""

    key: DecisionKey
    rep_id: str
    index: int = 0  # the n-th claim of this lead's decision (its journal entry)


@dataclass(frozen=True, slots=True)
class Claim:
    """The outcome of one claim; ``replayed`` means it was recorded earlier and not repeated."""

    key: DecisionKey
    pick: Pick
    replayed: bool


@dataclass(frozen=True, slots=True)
class Timer:
    """A due SLA timer handed to one sweeper."""

    timer_id: str
    due_at: float
    payload: dict[str, Any]


@dataclass(frozen=True, slots=True)
class LogEntry:
    """One decision-log entry: a decision (``kind == "decision"``) or another event."""

    entry_id: str
    at: datetime
    kind: str
    lead: str
    epoch: int | None
    data: dict[str, Any]


@dataclass(frozen=True, slots=True)
class Availability:
    """A manual availability override for a rep (out of office, or forced available)."""

    rep_id: str
    available: bool
    until: datetime | None = None
    reason: str = ""
    set_by: str = ""
    set_at: datetime | None = None


def _json_default(value: Any) -> Any:
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, Enum):
        return value.value
    if isinstance(value, set | frozenset | tuple):
        return list(value)
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"{type(value).__name__} is not JSON serialisable")


def _dumps(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"), default=_json_default)


def _stream_time(entry_id: str) -> datetime:
    return datetime.fromtimestamp(int(entry_id.split("-", 1)[0]) / 1000, UTC)


def _epoch_seconds(when: float | datetime | None) -> float:
    if when is None:
        return time.time()
    if isinstance(when, datetime):
        if when.tzinfo is None:
            raise ValueError("naive datetime: give an aware datetime (UTC) or epoch seconds")
        return when.timestamp()
    return float(when)


def _stream_id(when: datetime | None, default: str) -> str:
    return default if when is None else str(int(_epoch_seconds(when) * 1000))


def _lua(name: str) -> str:
    return resources.files("worker.store").joinpath("lua", f"{name}.lua").read_text()


class RedisStore:
    """All shared state of one leadroute configuration, under one key prefix.

    ``decision_ttl``: how long a decision (and its journal) is kept for idempotent
    retries and ``explain``; ``log_maxlen``: approximate cap of the decision-log stream;
    ``lease_seconds``: how long a worker may take to decide before another may take over.
    """

    def __init__(
        self,
        client: redis.Redis,
        prefix: str = "leadroute",
        *,
        decision_ttl: float = 7 * DAY,
        log_maxlen: int = 100_000,
        lease_seconds: float = 30.0,
    ) -> None:
        if not prefix or any(ch.isspace() for ch in prefix):
            raise ValueError(f"invalid key prefix {prefix!r}")
        self.client = client
        self.prefix = prefix
        self.decision_ttl_ms = int(decision_ttl * 1000)
        self.log_maxlen = int(log_maxlen)
        self.lease_ms = int(lease_seconds * 1000)
        self._loads_key = self.key("loads")
        self._claim = client.register_script(_lua("claim"))
        self._adjust = client.register_script(_lua("adjust"))
        self._set_loads = client.register_script(_lua("set_loads"))
        self._begin = client.register_script(_lua("begin"))
        self._record = client.register_script(_lua("record"))
        self._claim_due = client.register_script(_lua("claim_due"))
        self._unlock = client.register_script(_lua("unlock"))
        self._flags = client.register_script(_lua("flags"))

    @classmethod
    def connect(
        cls,
        url: str | None = None,
        prefix: str = "leadroute",
        data_dir: Path = DEFAULT_DATA_DIR,
        **kwargs: Any,
    ) -> RedisStore:
        """A store on ``url``, else ``$REDIS_URL``, else the embedded server (see ``redis_conn.connect``)."""
        return cls(connect(url, data_dir), prefix, **kwargs)

    # ------------------------------------------------------------------ keys

    def key(self, *parts: object) -> str:
        """A key under this store's prefix (other modules may use it for their own keys)."""
        return ":".join((self.prefix, *(str(p) for p in parts)))

    def _dkey(self, key: DecisionKey) -> str:
        return f"{self.prefix}:dec:{key.crm}:{key.object}:{key.lead_id}:{key.epoch}"

    def _lease_key(self, key: DecisionKey) -> str:
        return self.key("lease", key.crm, key.object, key.lead_id, key.epoch)

    def _epoch_key(self, lead: LeadRef) -> str:
        return self.key("epoch", lead.crm, lead.object, lead.lead_id)

    # ------------------------------------------------------------------ routing state

    def loads(self, rep_ids: Sequence[str]) -> dict[str, int]:
        """Current open load per rep; missing reps count 0."""
        if not rep_ids:
            return {}
        values = self.client.hmget(self._loads_key, list(rep_ids))
        return {rep: int(v) if v else 0 for rep, v in zip(rep_ids, values, strict=True)}

    def all_loads(self) -> dict[str, int]:
        """Every rep with a non-zero load (for ``reps`` and reconciliation reports)."""
        return {rep: int(v) for rep, v in self.client.hgetall(self._loads_key).items()}

    def set_loads(self, loads: Mapping[str, int]) -> None:
        """Replace every rep's load at once (reconciliation against the CRM); never below zero."""
        args: list[object] = []
        for rep, n in loads.items():
            if int(n) > 0:
                args += [rep, int(n)]
        if args:
            self._set_loads(keys=[self._loads_key], args=args)
        else:
            self.client.delete(self._loads_key)

    def adjust_load(self, rep_id: str, delta: int) -> int:
        """Add ``delta`` (+1 assigned, -1 acknowledged/reassigned/closed), never below zero."""
        return int(self._adjust(keys=[self._loads_key], args=[rep_id, int(delta)]))

    def assign(self, rep_id: str) -> int:
        """Record a direct assignment (named rep, account owner): load +1, returns the new load."""
        return self.adjust_load(rep_id, 1)

    def pick(self, pool: str, strategy: Strategy, members: Sequence[str], candidates: Sequence[Candidate]) -> Pick:
        """Choose one of ``candidates`` and record it, in one Lua round trip (see ``choose``)."""
        batch = _ClaimBatch(self)
        batch.pick(pool, strategy, members, candidates)
        return batch.run()[0][0]

    def reset_pool(self, pool: str) -> None:
        """Forget a pool's rotation state (round-robin sequence and weighted scores)."""
        self.client.delete(self.key("pool", pool))

    # ------------------------------------------------------------------ decisions

    def epoch(self, lead: LeadRef) -> int:
        """The lead's current routing epoch (0 until it is deliberately re-routed)."""
        value = self.client.get(self._epoch_key(lead))
        return int(value) if value else 0

    def epochs(self, leads: Sequence[LeadRef]) -> list[int]:
        """Current epochs of many leads in one round trip (for batch routing)."""
        if not leads:
            return []
        return [int(v) if v else 0 for v in self.client.mget([self._epoch_key(lead) for lead in leads])]

    def current_key(self, lead: LeadRef) -> DecisionKey:
        """The decision key for the lead's current epoch."""
        return lead.at(self.epoch(lead))

    def new_epoch(self, lead: LeadRef) -> DecisionKey:
        """Open a new routing epoch for a deliberate re-route; returns its decision key.

        Enqueue the re-route task with the returned key so that its retries stay on it.
        """
        pipe = self.client.pipeline(transaction=True)
        pipe.incr(self._epoch_key(lead))
        pipe.pexpire(self._epoch_key(lead), self.decision_ttl_ms + int(DAY * 1000))
        epoch, _ = pipe.execute()
        return lead.at(int(epoch))

    def for_decision(self, key: DecisionKey) -> DecisionState:
        """A journaled view of the state for deciding ``key``: retried picks replay, never repeat."""
        return DecisionState(self, key)

    def decide_once(
        self,
        key: DecisionKey,
        compute: Callable[[RoutingState], Mapping[str, Any]],
        *,
        wait: float | None = None,
    ) -> Decided:
        """The decision for ``key``: the recorded one, or ``compute(state)`` recorded now.

        ``compute`` runs the engine against a journaled state and returns the decision as a
        JSON-serialisable dict. Only one worker computes at a time (a lease); the others wait
        up to ``wait`` seconds (default: the lease) for its result, then raise
        :class:`DecisionBusy`. If the computing worker dies, the next one replays its
        journaled picks, so a lead never claims twice.
        """
        return self._decide_one(key, compute, uuid.uuid4().hex, wait)

    def _decide_one(
        self, key: DecisionKey, compute: Callable[[RoutingState], Mapping[str, Any]], token: str, wait: float | None
    ) -> Decided:
        dkey, lease_key = self._dkey(key), self._lease_key(key)
        deadline = time.monotonic() + (self.lease_ms / 1000 if wait is None else wait)
        delay = 0.001
        while True:
            status, *rest = self._begin(keys=[dkey, lease_key], args=[token, self.lease_ms])
            if status == "done":
                return Decided(key, json.loads(rest[0]), False, rest[1])
            if status == "go":
                break
            if time.monotonic() >= deadline:
                raise DecisionBusy(f"lead {key} is being decided by another worker")
            time.sleep(delay)
            delay = min(delay * 2, 0.05)
        state = DecisionState(self, key)
        try:
            decision = compute(state)
        except BaseException:
            self._unlock(keys=[lease_key], args=[token, ""])  # let a retry start at once
            raise
        return self.record(key, decision, token=token, claims_used=state.calls)

    def decide_many(
        self, items: Sequence[tuple[DecisionKey, Callable[[RoutingState], Mapping[str, Any]]]]
    ) -> list[Decided]:
        """:meth:`decide_once` for a batch, in a few round trips for all of it instead of several per lead.

        Leases are taken and recorded decisions read in one pipeline. Then each lead's
        ``compute`` runs against a replaying state: loads come from one snapshot, and at its
        first claim not made yet the compute stops; the claims of all the stopped leads are
        made in one script call (in order, exactly as one by one, each journaled), and those
        leads run again from the start with the answers so far. Most leads need one claim,
        so most batches take one round. The decisions are recorded in one pipeline. A lead
        another worker is deciding, or whose journal shows an earlier attempt that died, is
        decided alone with :meth:`decide_once`'s semantics. ``compute`` must be deterministic
        given the state's answers (pass the routing time in, don't read the clock) and return
        a JSON-native dict (a fresh decision is returned as computed, not read back).
        """
        token = uuid.uuid4().hex
        pipe = self.client.pipeline(transaction=False)
        for start in range(0, len(items), SCRIPT_CHUNK):
            keys = [k for key, _ in items[start : start + SCRIPT_CHUNK] for k in (self._dkey(key), self._lease_key(key))]
            self._begin(keys=keys, args=[token, self.lease_ms], client=pipe)
        pipe.hgetall(self._loads_key)
        *replies, raw_loads = pipe.execute()
        flat = [value for reply in replies for value in reply]
        begun = [flat[i : i + 3] for i in range(0, len(flat), 3)]
        results: dict[int, Decided] = {}
        alone: list[int] = []
        active: dict[int, _Replay] = {}
        for i, ((key, _), (status, *rest)) in enumerate(zip(items, begun, strict=True)):
            if status == "done":
                results[i] = Decided(key, json.loads(rest[0]), False, rest[1])
            elif status == "go" and not (rest and int(rest[0])):
                active[i] = _Replay(key)
            else:  # busy elsewhere, or an earlier attempt's journal to replay
                alone.append(i)
        snapshot = {rep: int(v) for rep, v in raw_loads.items()}
        finished: dict[int, tuple[Mapping[str, Any], int]] = {}
        try:
            while active:
                needed: list[tuple[int, PoolClaim | DirectClaim]] = []
                for i, replay in list(active.items()):
                    state = replay.state(snapshot)
                    try:
                        decision = items[i][1](state)
                    except _ClaimNeeded as need:
                        needed.append((i, need.request))
                        continue
                    except _Diverged:
                        alone.append(i)
                    else:
                        finished[i] = (decision, state.calls)
                    del active[i]
                if not needed:
                    break
                pipe = self.client.pipeline(transaction=False)
                parse = self._send_claims(pipe, [request for _, request in needed])
                pipe.hgetall(self._loads_key)
                replies = pipe.execute()
                snapshot = {rep: int(v) for rep, v in replies[-1].items()}
                for (i, request), claim in zip(needed, parse(replies[:-1]), strict=True):
                    active[i].claims.append((_signature(request), claim.pick))
        except BaseException:
            self._release_leases([items[i][0] for i in (*active, *alone, *finished)], token)
            raise
        if finished:
            recorded = self._record_all([(items[i][0], decision, token, used) for i, (decision, used) in finished.items()],
                                        as_computed=True)
            results.update(zip(finished, recorded, strict=True))
        for n, i in enumerate(alone):
            try:
                results[i] = self._decide_one(items[i][0], items[i][1], token, None)
            except BaseException:
                self._release_leases([items[j][0] for j in alone[n:]], token)
                raise
        return [results[i] for i in range(len(items))]

    def _release_leases(self, keys: Sequence[DecisionKey], token: str) -> None:
        pipe = self.client.pipeline(transaction=False)
        for key in keys:
            self._unlock(keys=[self._lease_key(key)], args=[token, ""], client=pipe)
        pipe.execute()

    def record(
        self, key: DecisionKey, decision: Mapping[str, Any], *, token: str = "", claims_used: int | None = None
    ) -> Decided:
        """Record ``decision`` for ``key`` unless one is recorded already (which is returned)."""
        return self._record_all([(key, decision, token, claims_used)])[0]

    def _record_all(
        self, entries: Sequence[tuple[DecisionKey, Mapping[str, Any], str, int | None]], *, as_computed: bool = False
    ) -> list[Decided]:
        """Record decisions (key, decision, lease token, claims used) in one round trip.

        ``claims used``: how many journaled claims the recorded compute made; any beyond them
        were made by an earlier attempt that died and took another path, and are released.
        ``as_computed``: the decisions are JSON-native, so one recorded now is returned as
        given instead of read back from its JSON.
        """
        pipe = self.client.pipeline(transaction=False)
        sent = [_dumps(decision) for _, decision, _, _ in entries]
        log_key = self.key("log")
        for start in range(0, len(entries), SCRIPT_CHUNK):
            keys: list[str] = [log_key, self._loads_key]
            args: list[object] = [self.decision_ttl_ms, self.log_maxlen]
            for (key, _, token, used), text in zip(entries[start : start + SCRIPT_CHUNK], sent[start : start + SCRIPT_CHUNK],
                                                   strict=True):
                keys += [self._dkey(key), self._lease_key(key)]
                args += [text, token, str(key.lead), key.epoch, "" if used is None else int(used)]
            self._record(keys=keys, args=args, client=pipe)
        flat = [value for reply in pipe.execute() for value in reply]
        return [
            Decided(key, dict(decision) if fresh and as_computed else json.loads(text if fresh else payload), bool(fresh),
                    entry_id)
            for (key, decision, _, _), text, fresh, payload, entry_id
            in zip(entries, sent, flat[0::3], flat[1::3], flat[2::3], strict=True)
        ]

    def claim_many(self, requests: Sequence[PoolClaim | DirectClaim]) -> list[Claim]:
        """Claim for many leads in one pipelined round trip, each idempotent on its key.

        A lead whose claim was made earlier (a retried batch) gets that claim back. Use with
        :meth:`decisions` (skip leads already decided) and :meth:`record_many`.
        """
        pipe = self.client.pipeline(transaction=False)
        parse = self._send_claims(pipe, requests)
        return parse(pipe.execute())

    def _send_claims(
        self, pipe: redis.client.Pipeline, requests: Sequence[PoolClaim | DirectClaim]
    ) -> Callable[[list[Any]], list[Claim]]:
        """Queue the claim scripts on ``pipe``; the returned function reads their replies
        (the first of the pipeline's replies; any after them are the caller's)."""
        batches = []
        for start in range(0, len(requests), CLAIM_CHUNK):
            batch = _ClaimBatch(self)
            for req in requests[start : start + CLAIM_CHUNK]:
                if isinstance(req, PoolClaim):
                    batch.pick(req.pool, req.strategy, req.members, req.candidates, req.key, f"c:{req.index}")
                else:
                    batch.direct(req.rep_id, req.key, f"c:{req.index}")
            batch.send(pipe)
            batches.append(batch)

        def parse(replies: list[Any]) -> list[Claim]:
            outcomes = [o for batch, raw in zip(batches, replies, strict=False) for o in batch.parse(raw)]
            return [Claim(req.key, pick, replayed) for req, (pick, replayed) in zip(requests, outcomes, strict=True)]

        return parse

    def record_many(self, decisions: Sequence[tuple[DecisionKey, Mapping[str, Any]]]) -> list[Decided]:
        """Record many decisions in one pipelined round trip; the first recorded per key wins."""
        return self._record_all([(key, decision, "", None) for key, decision in decisions])

    def decision(self, key: DecisionKey) -> Decided | None:
        """The recorded decision for ``key``, if any (and not expired)."""
        payload, entry_id = self.client.hmget(self._dkey(key), ["d", "id"])
        return Decided(key, json.loads(payload), False, entry_id or "") if payload else None

    def decisions(self, keys: Sequence[DecisionKey]) -> list[Decided | None]:
        """Recorded decisions for many keys in one round trip (None where undecided)."""
        pipe = self.client.pipeline(transaction=False)
        for key in keys:
            pipe.hmget(self._dkey(key), ["d", "id"])
        return [
            Decided(key, json.loads(payload), False, entry_id or "") if payload else None
            for key, (payload, entry_id) in zip(keys, pipe.execute(), strict=True)
        ]

    def decisions_for_lead(self, lead: LeadRef) -> list[Decided]:
        """Every retained decision for a lead, newest epoch first (for ``explain``)."""
        current = self.epoch(lead)
        found = self.decisions([lead.at(e) for e in range(current, -1, -1)])
        return [d for d in found if d is not None]

    # ------------------------------------------------------------------ decision log

    def log_event(self, kind: str, lead: LeadRef | str | None, data: Mapping[str, Any], epoch: int | None = None) -> str:
        """Append a non-decision event (SLA breach, reassignment, acknowledgement...) to the log."""
        fields: dict[str, str] = {"k": kind, "lead": str(lead or ""), "d": _dumps(data)}
        if epoch is not None:
            fields["epoch"] = str(epoch)
        return str(self.client.xadd(self.key("log"), fields, maxlen=self.log_maxlen, approximate=True))

    def recent(self, count: int = 20, kind: str | None = None) -> list[LogEntry]:
        """The latest ``count`` log entries (of ``kind`` if given), newest first."""
        out: list[LogEntry] = []
        upper = "+"
        while len(out) < count:
            batch = self.client.xrevrange(self.key("log"), upper, "-", count=max(count, 100) if kind else count)
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
        lower = _stream_id(since, "-")
        upper = _stream_id(until, "+")
        while True:
            page = self.client.xrange(self.key("log"), lower, upper, count=batch)
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
            page = self.client.xrevrange(self.key("log"), upper, "-", count=min(1000, scan - seen))
            if not page:
                break
            seen += len(page)
            out.extend(_to_entry(i, f) for i, f in page if f.get("lead") == wanted)
            upper = "(" + page[-1][0]
        return out[:limit]

    def log_length(self) -> int:
        return int(self.client.xlen(self.key("log")))

    # ------------------------------------------------------------------ SLA timers

    def schedule(self, timer_id: str, due_at: float | datetime, payload: Mapping[str, Any] | None = None) -> None:
        """Set (or move) a timer; one timer per id, so re-scheduling replaces it."""
        pipe = self.client.pipeline(transaction=True)
        pipe.zadd(self.key("timers"), {timer_id: _epoch_seconds(due_at)})
        pipe.hset(self.key("timers", "payload"), timer_id, _dumps(payload or {}))
        pipe.execute()

    def schedule_many(self, timers: Sequence[tuple[str, float | datetime, Mapping[str, Any] | None]]) -> None:
        """Set many timers in one transaction."""
        if not timers:
            return
        pipe = self.client.pipeline(transaction=True)
        pipe.zadd(self.key("timers"), {tid: _epoch_seconds(due) for tid, due, _ in timers})
        pipe.hset(self.key("timers", "payload"), mapping={tid: _dumps(p or {}) for tid, _, p in timers})
        pipe.execute()

    def cancel(self, timer_id: str) -> bool:
        """Remove a timer (the lead was acknowledged); True if it was open."""
        pipe = self.client.pipeline(transaction=True)
        pipe.zrem(self.key("timers"), timer_id)
        pipe.hdel(self.key("timers", "payload"), timer_id)
        removed, _ = pipe.execute()
        return bool(removed)

    def claim_due(self, now: float | datetime | None = None, limit: int = 1000, *, lease: float | None = None) -> list[Timer]:
        """Hand the timers due by ``now`` (earliest first, at most ``limit``) to this caller only.

        Without ``lease`` a claimed timer is removed. With ``lease`` (seconds) it is re-armed
        at ``now + lease``, so if this sweeper dies the timer fires again; the caller then
        cancels or reschedules it when done.
        """
        raw = self._claim_due(
            keys=[self.key("timers"), self.key("timers", "payload")],
            args=[repr(_epoch_seconds(now)), int(limit), "" if lease is None else repr(float(lease))],
        )
        return [Timer(raw[i], float(raw[i + 1]), json.loads(raw[i + 2]) if raw[i + 2] else {}) for i in range(0, len(raw), 3)]

    def timer(self, timer_id: str) -> Timer | None:
        """One open timer, or None."""
        pipe = self.client.pipeline(transaction=False)
        pipe.zscore(self.key("timers"), timer_id)
        pipe.hget(self.key("timers", "payload"), timer_id)
        due, payload = pipe.execute()
        return None if due is None else Timer(timer_id, float(due), json.loads(payload) if payload else {})

    def open_timers(self) -> int:
        return int(self.client.zcard(self.key("timers")))

    def next_due(self) -> float | None:
        """When the earliest open timer is due (for sleeping until the next sweep)."""
        first = self.client.zrange(self.key("timers"), 0, 0, withscores=True)
        return float(first[0][1]) if first else None

    # ------------------------------------------------------------------ watermarks

    def watermark(self, connector: str, obj: str) -> str | None:
        """The last processed change marker for a connector's object (None before the first poll)."""
        return self.client.hget(self.key("watermarks"), f"{connector}:{obj}")

    def set_watermark(self, connector: str, obj: str, value: str) -> None:
        self.client.hset(self.key("watermarks"), f"{connector}:{obj}", value)

    # ------------------------------------------------------------------ locks

    def acquire_lock(self, name: str, ttl: float, token: str | None = None) -> str | None:
        """Take a short-lived lock; returns the owner token, or None if another owner has it."""
        token = token or uuid.uuid4().hex
        ok = self.client.set(self.key("lock", name), token, nx=True, px=max(1, int(ttl * 1000)))
        return token if ok else None

    def release_lock(self, name: str, token: str) -> bool:
        """Release a lock; only its owner can (True if released)."""
        return bool(self._unlock(keys=[self.key("lock", name)], args=[token, ""]))

    def extend_lock(self, name: str, token: str, ttl: float) -> bool:
        """Reset a held lock's time to live to ``ttl``; only its owner can."""
        return bool(self._unlock(keys=[self.key("lock", name)], args=[token, max(1, int(ttl * 1000))]))

    @contextlib.contextmanager
    def lock(self, name: str, ttl: float, wait: float = 0.0) -> Iterator[str]:
        """``with store.lock("poll:salesforce", 60):`` ... raises :class:`LockBusy` if taken."""
        deadline = time.monotonic() + wait
        while (token := self.acquire_lock(name, ttl)) is None:
            if time.monotonic() >= deadline:
                raise LockBusy(f"lock {name!r} is held by another owner")
            time.sleep(0.01)
        try:
            yield token
        finally:
            self.release_lock(name, token)

    # ------------------------------------------------------------------ de-duplication

    def set_flags(self, keys: Sequence[str], ttl: float, pipe: redis.client.Pipeline | None = None) -> None:
        """Set many flag keys (full key names) to "1" for ``ttl`` seconds, in one script call per 1,000."""
        for start in range(0, len(keys), 1000):
            self._flags(keys=list(keys[start : start + 1000]), args=[max(1, int(ttl))], client=pipe or self.client)

    def first_seen(self, namespace: str, item_id: str, ttl: float) -> bool:
        """True the first time ``item_id`` is seen in ``namespace`` within ``ttl`` seconds."""
        return bool(self.client.set(self.key("seen", namespace, item_id), "1", nx=True, px=max(1, int(ttl * 1000))))

    # ------------------------------------------------------------------ availability overrides

    def set_availability(
        self,
        rep_id: str,
        available: bool,
        *,
        until: datetime | None = None,
        reason: str = "",
        set_by: str = "",
    ) -> Availability:
        """Override a rep's availability (e.g. out of office until a time) from the CLI."""
        override = Availability(rep_id, available, until, reason, set_by, datetime.now(UTC))
        record = {
            "available": available,
            "until": until.isoformat() if until else None,
            "reason": reason,
            "set_by": set_by,
            "set_at": override.set_at.isoformat() if override.set_at else None,
        }
        self.client.hset(self.key("availability"), rep_id, _dumps(record))
        return override

    def clear_availability(self, rep_id: str) -> bool:
        """Drop a rep's override (back to their configured hours and OOO windows)."""
        return bool(self.client.hdel(self.key("availability"), rep_id))

    def availability(self, rep_ids: Sequence[str] | None = None, now: datetime | None = None) -> dict[str, Availability]:
        """Overrides in force at ``now`` (all reps, or those given); expired ones are dropped."""
        now = now or datetime.now(UTC)
        name = self.key("availability")
        if rep_ids is None:
            raw = self.client.hgetall(name)
        else:
            values = self.client.hmget(name, list(rep_ids)) if rep_ids else []
            raw = {rep: v for rep, v in zip(rep_ids, values, strict=True) if v}
        out: dict[str, Availability] = {}
        expired: list[str] = []
        for rep, value in raw.items():
            data = json.loads(value)
            until = datetime.fromisoformat(data["until"]) if data.get("until") else None
            if until is not None and until <= now:
                expired.append(rep)
                continue
            set_at = datetime.fromisoformat(data["set_at"]) if data.get("set_at") else None
            out[rep] = Availability(rep, bool(data["available"]), until, data.get("reason", ""), data.get("set_by", ""), set_at)
        if expired and now <= datetime.now(UTC):  # expired in real time too, not just at a future ``now``
            self.client.hdel(name, *expired)
        return out

    def unavailable(self, rep_ids: Sequence[str] | None = None, now: datetime | None = None) -> dict[str, str]:
        """Reps forced unavailable right now, as the engine's ``overrides`` (rep id -> reason)."""
        return {rep: o.reason or "ooo" for rep, o in self.availability(rep_ids, now).items() if not o.available}

    # ------------------------------------------------------------------ housekeeping

    def clear(self) -> int:
        """Delete every key under this prefix (tests, ``demo --reset``); returns how many."""
        deleted = 0
        batch: list[str] = []
        for name in self.client.scan_iter(match=_glob_escape(self.prefix) + ":*", count=1000):
            batch.append(name)
            if len(batch) >= 500:
                deleted += int(self.client.unlink(*batch))
                batch.clear()
        if batch:
            deleted += int(self.client.unlink(*batch))
        return deleted


@dataclass
class DecisionState:
    """The routing state as seen while deciding one lead: picks and assignments are journaled.

    The n-th pick or assignment made through this view is recorded under the lead's
    decision key in the same script that makes it; a retry of the same decision (same key)
    gets the recorded outcome back instead of claiming again.
    """

    store: RedisStore
    key: DecisionKey
    _calls: int = field(default=0, repr=False)

    def loads(self, rep_ids: Sequence[str]) -> dict[str, int]:
        """Loads as this decision's first attempt saw them: its own journaled claims left out.

        So a retry makes the same eligibility calls (capacity) and replays the same claims.
        """
        if not rep_ids:
            return {}
        pipe = self.store.client.pipeline(transaction=False)
        pipe.hmget(self.store._loads_key, list(rep_ids))
        pipe.hgetall(self.store._dkey(self.key))
        values, record = pipe.execute()
        loads = {rep: int(v) if v else 0 for rep, v in zip(rep_ids, values, strict=True)}
        for name, entry in record.items():
            if name.startswith("c:"):
                rep = json.loads(entry)["o"][0]
                if rep in loads:
                    loads[rep] = max(0, loads[rep] - 1)
        return loads

    @property
    def calls(self) -> int:
        """How many claims (picks and assignments) this compute made so far."""
        return self._calls

    def _journal(self) -> str:
        self._calls += 1
        return f"c:{self._calls - 1}"

    def pick(self, pool: str, strategy: Strategy, members: Sequence[str], candidates: Sequence[Candidate]) -> Pick:
        batch = _ClaimBatch(self.store)
        batch.pick(pool, strategy, members, candidates, self.key, self._journal())
        return batch.run()[0][0]

    def assign(self, rep_id: str) -> int:
        batch = _ClaimBatch(self.store)
        batch.direct(rep_id, self.key, self._journal())
        return batch.run()[0][0].load


class _ClaimNeeded(Exception):
    """A replaying compute reached a claim not made yet; :meth:`RedisStore.decide_many` makes it."""

    def __init__(self, request: PoolClaim | DirectClaim) -> None:
        super().__init__(f"claim {request.index} of {request.key} not made yet")
        self.request = request


class _Diverged(Exception):
    """A replaying compute asked for another claim than the one made for it: decide it alone."""


def _signature(request: PoolClaim | DirectClaim) -> tuple[object, ...]:
    if isinstance(request, PoolClaim):
        return ("p", request.pool, request.strategy, tuple(request.members), tuple(request.candidates))
    return ("d", request.rep_id)


@dataclass
class _Replay:
    """One lead of a :meth:`RedisStore.decide_many` batch: the answers its compute got so far."""

    key: DecisionKey
    loads_seen: list[dict[str, int]] = field(default_factory=list)
    claims: list[tuple[tuple[object, ...], Pick]] = field(default_factory=list)

    def state(self, snapshot: Mapping[str, int]) -> _ReplayState:
        return _ReplayState(self, snapshot)


class _ReplayState:
    """The routing state for one run of a replayed compute (see :class:`_Replay`)."""

    def __init__(self, replay: _Replay, snapshot: Mapping[str, int]) -> None:
        self.replay, self.snapshot = replay, snapshot
        self._loads_calls = 0
        self.calls = 0

    def loads(self, rep_ids: Sequence[str]) -> dict[str, int]:
        seen = self.replay.loads_seen
        if self._loads_calls == len(seen):
            seen.append({rep: self.snapshot.get(rep, 0) for rep in rep_ids})
        self._loads_calls += 1
        return dict(seen[self._loads_calls - 1])

    def _claim(self, request: PoolClaim | DirectClaim) -> Pick:
        self.calls += 1
        made = self.replay.claims
        if request.index == len(made):
            raise _ClaimNeeded(request)
        signature, pick = made[request.index]
        if signature != _signature(request):
            raise _Diverged(str(request.key))
        return pick

    def pick(self, pool: str, strategy: Strategy, members: Sequence[str], candidates: Sequence[Candidate]) -> Pick:
        return self._claim(PoolClaim(self.replay.key, pool, strategy, tuple(members), tuple(candidates), self.calls))

    def assign(self, rep_id: str) -> int:
        return self._claim(DirectClaim(self.replay.key, rep_id, self.calls)).load


class _ClaimBatch:
    """Arguments for one call of ``claim.lua``: picks and direct claims, in order."""

    def __init__(self, store: RedisStore) -> None:
        self.store = store
        self.keys: list[str] = [store._loads_key]
        self._key_index: dict[str, int] = {}
        self._sets: dict[tuple[str, ...], int] = {}
        self._set_args: list[object] = []
        self._requests: list[object] = []
        self._parsers: list[tuple[Strategy | None, Sequence[Candidate], str]] = []

    def _key(self, name: str) -> int:
        index = self._key_index.get(name)
        if index is None:
            self.keys.append(name)
            index = self._key_index[name] = len(self.keys)  # Lua's KEYS is 1-based
        return index

    def _journal(self, key: DecisionKey | None) -> int:
        return 0 if key is None else self._key(self.store._dkey(key))

    def pick(
        self,
        pool: str,
        strategy: Strategy,
        members: Sequence[str],
        candidates: Sequence[Candidate],
        key: DecisionKey | None = None,
        journal: str = "",
    ) -> None:
        set_index = 0  # only round robin needs the pool's member order
        if strategy == Strategy.ROUND_ROBIN:
            members = tuple(members)
            set_index = self._sets.get(members, 0)
            if not set_index:
                set_index = self._sets[members] = len(self._sets) + 1
                self._set_args += [len(members), *members]
        self._requests += [
            "p",
            self._journal(key),
            journal,
            self._key(f"{self.store.prefix}:pool:{pool}"),
            _STRATEGY_CODE[strategy],
            set_index,
            len(candidates),
            *_candidates_args(tuple(candidates)),
        ]
        self._parsers.append((strategy, candidates, ""))

    def direct(self, rep_id: str, key: DecisionKey | None = None, journal: str = "") -> None:
        self._requests += ["d", self._journal(key), journal, rep_id]
        self._parsers.append((None, (), rep_id))

    def _args(self) -> list[object]:
        return [self.store.decision_ttl_ms, len(self._sets), *self._set_args, len(self._parsers), *self._requests]

    def send(self, pipe: redis.client.Pipeline) -> None:
        self.store._claim(keys=self.keys, args=self._args(), client=pipe)

    def run(self) -> list[tuple[Pick, bool]]:
        return self.parse(self.store._claim(keys=self.keys, args=self._args()))

    def parse(self, raw: list[Any]) -> list[tuple[Pick, bool]]:
        out, i = [], 0
        for strategy, candidates, direct in self._parsers:
            rep, load, replayed, skipped = raw[i], int(raw[i + 1]), bool(raw[i + 2]), int(raw[i + 3])
            at_capacity = tuple(raw[i + 4 : i + 4 + skipped])
            i += 4 + skipped
            if not rep:
                out.append((Pick(None, at_capacity=at_capacity), replayed))
            elif strategy is None:
                out.append((Pick(rep, load, (), f"direct: {direct} {load}"), replayed))
            else:
                capacity = next((c.capacity for c in candidates if c.rep_id == rep), None)
                out.append((Pick(rep, load, at_capacity, describe(strategy, rep, load, capacity)), replayed))
        return out


@functools.lru_cache(maxsize=4096)
def _candidates_args(candidates: tuple[Candidate, ...]) -> tuple[object, ...]:
    """Candidates as script arguments: rep, weight, capacity ("-" for none), repeated."""
    args: list[object] = []
    for c in candidates:
        args += [c.rep_id, int(c.weight), "-" if c.capacity is None else int(c.capacity)]
    return tuple(args)


def _to_entry(entry_id: str, fields: Mapping[str, str]) -> LogEntry:
    epoch = fields.get("epoch")
    return LogEntry(
        entry_id,
        _stream_time(entry_id),
        fields.get("k", "decision"),
        fields.get("lead", ""),
        int(epoch) if epoch not in (None, "") else None,
        json.loads(fields["d"]) if fields.get("d") else {},
    )


def _glob_escape(text: str) -> str:
    return "".join("\\" + ch if ch in "*?[]\\" else ch for ch in text)
