"""Idempotent decisions: one decision per (crm, object, lead id, epoch), recorded once.

:meth:`DecisionStore.decide_once` returns the recorded decision if there is one; otherwise it
takes a short lease on the lead, runs the engine against a *journaled* view of the state
(:class:`DecisionState`), and records the result, first one wins. Every pick or assignment
made through the view is written to the lead's journal in the same script that makes it, so
a task that dies after claiming and is retried gets the same pick back and never claims
twice (and a retry that takes another path gives the earlier claim back). A deliberate
re-route opens a new epoch (:meth:`DecisionStore.new_epoch`). For batches,
:meth:`DecisionStore.decide_many` does the same for many leads in a few round trips in all
(leases, one claim script per round, records), and :meth:`~DecisionStore.record_many` records
in one pipelined round trip. A recorded decision also goes to the decision log and, for the
ledger, to the outbox (:mod:`.outbox`) with what the caller gives for the ledger alone
(``ledger``: what its event needs beside the decision), in the same script.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from worker.domain.leads import DecisionKey, LeadRef
from worker.routing.caps import Quota
from worker.routing.fairness import Fairness
from worker.routing.state import Candidate, Pick, RoutingState, Strategy
from worker.store.base import DAY, dumps, stream_time
from worker.store.outbox import OutboxStore
from worker.store.routing_state import ClaimBatch, DirectClaim, PoolClaim, RoutingStateStore, caps_by_rep

SCRIPT_CHUNK = 500  # leads per begin/record script call: bounds how long one call holds Redis
DEAD_LEASE_AGE = 1.0  # seconds: a lease whose process is gone is freed only once it is this old
DEAD_LEASE_CHECK_EVERY = 0.25  # seconds between looks at who holds a busy lease


class DecisionBusy(RuntimeError):
    """Another worker holds the lease on this lead and has not recorded a decision yet.

    Raised by :meth:`DecisionStore.decide_once` after waiting; a Celery task should retry.
    """


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
        return stream_time(self.entry_id) if self.entry_id else None


class DecisionStore(RoutingStateStore, OutboxStore):
    """Routing epochs, leases and recorded decisions (claims come from :class:`RoutingStateStore`)."""

    LUA = ("begin", "let_go", "record", "unlock")
    _lease_token: Callable[[], str] | None = None
    _lease_gone: Callable[[str], bool | None] | None = None

    def name_leases(self, token: Callable[[], str], gone: Callable[[str], bool | None]) -> None:
        """Name decision leases after the process that takes them (``token()``), and free at once, instead of
        waiting for it to run out, a lease whose process is ``gone`` (a drain killed mid-decision on this host:
        see :mod:`worker.steps.liveness`). Without this, leases are random tokens that only time frees."""
        self._lease_token, self._lease_gone = token, gone

    def _new_token(self) -> str:
        return self._lease_token() if self._lease_token is not None else uuid.uuid4().hex

    def _free_dead_lease(self, lease_key: str) -> bool:
        """Free the lease at ``lease_key`` if the process that holds it is gone and it was taken at least
        :data:`DEAD_LEASE_AGE` ago (a dead process's last commands may still be on their way to Redis);
        True if it was freed."""
        if self._lease_gone is None:
            return False
        pipe = self.client.pipeline(transaction=False)
        pipe.get(lease_key)
        pipe.pttl(lease_key)
        owner, left_ms = pipe.execute()
        if owner is None or left_ms is None or self.lease_ms - int(left_ms) < DEAD_LEASE_AGE * 1000:
            return False
        if not self._lease_gone(str(owner)):
            return False
        return bool(self._lua["unlock"](keys=[lease_key], args=[str(owner), ""]))

    def epoch(self, lead: LeadRef) -> int:
        """The lead's current routing epoch (0 until it is deliberately re-routed)."""
        value = self.client.get(self.keys.epoch(lead))
        return int(value) if value else 0

    def epochs(self, leads: Sequence[LeadRef]) -> list[int]:
        """Current epochs of many leads in one round trip (for batch routing)."""
        if not leads:
            return []
        return [int(v) if v else 0 for v in self.client.mget([self.keys.epoch(lead) for lead in leads])]

    def current_key(self, lead: LeadRef) -> DecisionKey:
        """The decision key for the lead's current epoch."""
        return lead.at(self.epoch(lead))

    def new_epoch(self, lead: LeadRef) -> DecisionKey:
        """Open a new routing epoch for a deliberate re-route; returns its decision key.

        Enqueue the re-route task with the returned key so that its retries stay on it.
        """
        pipe = self.client.pipeline(transaction=True)
        pipe.incr(self.keys.epoch(lead))
        pipe.pexpire(self.keys.epoch(lead), self.decision_ttl_ms + int(DAY * 1000))
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
        ledger: Mapping[str, Any] | None = None,
    ) -> Decided:
        """The decision for ``key``: the recorded one, or ``compute(state)`` recorded now.

        ``compute`` runs the engine against a journaled state and returns the decision as a
        JSON-serialisable dict. Only one worker computes at a time (a lease); the others wait
        up to ``wait`` seconds (default: the lease) for its result, then raise
        :class:`DecisionBusy`. If the computing worker dies, the next one replays its
        journaled picks, so a lead never claims twice. ``ledger`` (JSON-native) goes to the
        outbox with the decision, and only there.
        """
        return self._decide_one(key, compute, self._new_token(), wait, ledger)

    def _decide_one(
        self, key: DecisionKey, compute: Callable[[RoutingState], Mapping[str, Any]], token: str, wait: float | None,
        ledger: Mapping[str, Any] | None = None,
    ) -> Decided:
        dkey, lease_key = self.keys.decision(key), self.keys.lease(key)
        deadline = time.monotonic() + (self.lease_ms / 1000 if wait is None else wait)
        delay = 0.001
        look_at = 0.0
        while True:
            status, *rest = self._lua["begin"](keys=[dkey, lease_key], args=[token, self.lease_ms])
            if status == "done":
                return Decided(key, json.loads(rest[0]), False, rest[1])
            if status == "go":
                break
            if time.monotonic() >= look_at:  # busy: a lease whose process died is freed (its journal is replayed)
                look_at = time.monotonic() + DEAD_LEASE_CHECK_EVERY
                if self._free_dead_lease(lease_key):
                    continue
            if time.monotonic() >= deadline:
                raise DecisionBusy(f"lead {key} is being decided by another worker")
            time.sleep(delay)
            delay = min(delay * 2, 0.05)
        state = DecisionState(self, key)
        try:
            decision = compute(state)
        except BaseException:
            self._lua["unlock"](keys=[lease_key], args=[token, ""])  # let a retry start at once
            raise
        if _held(decision):
            self._let_go([key], token)
            return Decided(key, dict(decision), False)
        return self.record(key, decision, token=token, claims_used=state.calls, ledger=ledger)

    def decide_many(
        self, items: Sequence[tuple[DecisionKey, Callable[[RoutingState], Mapping[str, Any]]]],
        *, ledger: Mapping[DecisionKey, Mapping[str, Any]] | None = None,
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
        ``ledger`` maps keys to what goes to the outbox with their decisions (see :meth:`decide_once`).
        """
        token = self._new_token()
        pipe = self.client.pipeline(transaction=False)
        for start in range(0, len(items), SCRIPT_CHUNK):
            keys = [k for key, _ in items[start : start + SCRIPT_CHUNK] for k in (self.keys.decision(key), self.keys.lease(key))]
            self._lua["begin"](keys=keys, args=[token, self.lease_ms], client=pipe)
        pipe.hgetall(self.keys.loads())
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
                pipe.hgetall(self.keys.loads())
                replies = pipe.execute()
                snapshot = {rep: int(v) for rep, v in replies[-1].items()}
                for (i, request), claim in zip(needed, parse(replies[:-1]), strict=True):
                    active[i].claims.append((_signature(request), claim.pick))
        except BaseException:
            self._release_leases([items[i][0] for i in (*active, *alone, *finished)], token)
            raise
        held = [i for i, (decision, _) in finished.items() if _held(decision)]
        if held:
            self._let_go([items[i][0] for i in held], token)
            results.update((i, Decided(items[i][0], dict(finished.pop(i)[0]), False)) for i in held)
        if finished:
            recorded = self._record_all([(items[i][0], decision, token, used) for i, (decision, used) in finished.items()],
                                        as_computed=True, ledger=ledger)
            results.update(zip(finished, recorded, strict=True))
        for n, i in enumerate(alone):
            try:
                results[i] = self._decide_one(items[i][0], items[i][1], token, None, (ledger or {}).get(items[i][0]))
            except BaseException:
                self._release_leases([items[j][0] for j in alone[n:]], token)
                raise
        return [results[i] for i in range(len(items))]

    def _let_go(self, keys: Sequence[DecisionKey], token: str) -> None:
        """Nothing is recorded for leads their pool holds: the lease goes, and the journal of the claims that found
        nobody with room, so the next attempt asks again instead of replaying those answers."""
        pipe = self.client.pipeline(transaction=False)
        for key in keys:
            self._lua["let_go"](keys=[self.keys.decision(key), self.keys.lease(key)], args=[token], client=pipe)
        pipe.execute()

    def _release_leases(self, keys: Sequence[DecisionKey], token: str) -> None:
        pipe = self.client.pipeline(transaction=False)
        for key in keys:
            self._lua["unlock"](keys=[self.keys.lease(key)], args=[token, ""], client=pipe)
        pipe.execute()

    def record(
        self, key: DecisionKey, decision: Mapping[str, Any], *, token: str = "", claims_used: int | None = None,
        ledger: Mapping[str, Any] | None = None,
    ) -> Decided:
        """Record ``decision`` for ``key`` unless one is recorded already (which is returned)."""
        return self._record_all([(key, decision, token, claims_used)], ledger={key: ledger} if ledger else None)[0]

    def _record_all(
        self, entries: Sequence[tuple[DecisionKey, Mapping[str, Any], str, int | None]], *, as_computed: bool = False,
        ledger: Mapping[DecisionKey, Mapping[str, Any]] | None = None,
    ) -> list[Decided]:
        """Record decisions (key, decision, lease token, claims used) in one round trip.

        ``claims used``: how many journaled claims the recorded compute made; any beyond them
        were made by an earlier attempt that died and took another path, and are released.
        ``as_computed``: the decisions are JSON-native, so one recorded now is returned as
        given instead of read back from its JSON. A decision the script records also goes to
        the ledger's outbox, as recorded, with ``ledger[key]`` beside it (unless the store's
        ``ledger_outbox`` is off).
        """
        pipe = self.client.pipeline(transaction=False)
        sent = [dumps(decision) for _, decision, _, _ in entries]
        extra = ledger or {}
        outbox = [dumps(extra[key]) if key in extra else "{}" for key, _, _, _ in entries] if self.ledger_outbox \
            else [""] * len(entries)
        log_key, outbox_key = self.keys.log(), self.keys.outbox()
        for start in range(0, len(entries), SCRIPT_CHUNK):
            keys: list[str] = [log_key, self.keys.loads(), outbox_key]
            args: list[object] = [self.decision_ttl_ms, self.log_maxlen]
            for (key, _, token, used), text, beside in zip(entries[start : start + SCRIPT_CHUNK],
                                                           sent[start : start + SCRIPT_CHUNK],
                                                           outbox[start : start + SCRIPT_CHUNK], strict=True):
                keys += [self.keys.decision(key), self.keys.lease(key)]
                args += [text, token, str(key.lead), key.epoch, "" if used is None else int(used), beside]
            self._lua["record"](keys=keys, args=args, client=pipe)
        flat = [value for reply in pipe.execute() for value in reply]
        return [
            Decided(key, dict(decision) if fresh and as_computed else json.loads(text if fresh else payload), bool(fresh),
                    entry_id)
            for (key, decision, _, _), text, fresh, payload, entry_id
            in zip(entries, sent, flat[0::3], flat[1::3], flat[2::3], strict=True)
        ]

    def record_many(self, decisions: Sequence[tuple[DecisionKey, Mapping[str, Any]]]) -> list[Decided]:
        """Record many decisions in one pipelined round trip; the first recorded per key wins."""
        return self._record_all([(key, decision, "", None) for key, decision in decisions])

    def decision(self, key: DecisionKey) -> Decided | None:
        """The recorded decision for ``key``, if any (and not expired)."""
        payload, entry_id = self.client.hmget(self.keys.decision(key), ["d", "id"])
        return Decided(key, json.loads(payload), False, entry_id or "") if payload else None

    def decisions(self, keys: Sequence[DecisionKey]) -> list[Decided | None]:
        """Recorded decisions for many keys in one round trip (None where undecided)."""
        pipe = self.client.pipeline(transaction=False)
        for key in keys:
            pipe.hmget(self.keys.decision(key), ["d", "id"])
        return [
            Decided(key, json.loads(payload), False, entry_id or "") if payload else None
            for key, (payload, entry_id) in zip(keys, pipe.execute(), strict=True)
        ]

    def decisions_for_lead(self, lead: LeadRef) -> list[Decided]:
        """Every retained decision for a lead, newest epoch first (for ``explain``)."""
        current = self.epoch(lead)
        found = self.decisions([lead.at(e) for e in range(current, -1, -1)])
        return [d for d in found if d is not None]


@dataclass
class DecisionState:
    """The routing state as seen while deciding one lead: picks and assignments are journaled.

    The n-th pick or assignment made through this view is recorded under the lead's
    decision key in the same script that makes it; a retry of the same decision (same key)
    gets the recorded outcome back instead of claiming again.
    """

    store: DecisionStore
    key: DecisionKey
    _calls: int = field(default=0, repr=False)

    def loads(self, rep_ids: Sequence[str]) -> dict[str, int]:
        """Loads as this decision's first attempt saw them: its own journaled claims left out.

        So a retry makes the same eligibility calls (capacity) and replays the same claims.
        """
        if not rep_ids:
            return {}
        pipe = self.store.client.pipeline(transaction=False)
        pipe.hmget(self.store.keys.loads(), list(rep_ids))
        pipe.hgetall(self.store.keys.decision(self.key))
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

    def pick(self, pool: str, strategy: Strategy, members: Sequence[str], candidates: Sequence[Candidate],
             caps: Mapping[str, Sequence[Quota]] | None = None) -> Pick:
        batch = ClaimBatch(self.store)
        batch.pick(pool, strategy, members, candidates, self.key, self._journal(), caps_by_rep(caps))
        return batch.run()[0][0]

    def assign(self, rep_id: str) -> int:
        batch = ClaimBatch(self.store)
        batch.direct(rep_id, self.key, self._journal())
        return batch.run()[0][0].load

    def pick_fair(self, pool: str, members: Sequence[str], candidates: Sequence[Candidate], fairness: Fairness,
                  caps: Mapping[str, Sequence[Quota]] | None = None) -> Pick:
        """A performance-weighted pick, journaled like the others (``fair_claim.lua``)."""
        return self.store.fair_claim(pool, candidates, fairness, self.key, self._journal(), caps)  # type: ignore[attr-defined]

    def claim_rep(self, rep_id: str, quotas: Sequence[Quota]) -> Pick:
        batch = ClaimBatch(self.store)
        batch.direct(rep_id, self.key, self._journal(), tuple(quotas))
        return batch.run()[0][0]


class _ClaimNeeded(Exception):
    """A replaying compute reached a claim not made yet; :meth:`DecisionStore.decide_many` makes it."""

    def __init__(self, request: PoolClaim | DirectClaim) -> None:
        super().__init__(f"claim {request.index} of {request.key} not made yet")
        self.request = request


class _Diverged(Exception):
    """A replaying compute asked for another claim than the one made for it: decide it alone."""


def _signature(request: PoolClaim | DirectClaim) -> tuple[object, ...]:
    if isinstance(request, PoolClaim):
        return ("p", request.pool, request.strategy, tuple(request.members), tuple(request.candidates), request.caps)
    return ("d", request.rep_id, request.caps)


@dataclass
class _Replay:
    """One lead of a :meth:`DecisionStore.decide_many` batch: the answers its compute got so far."""

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

    def pick_fair(self, pool: str, members: Sequence[str], candidates: Sequence[Candidate], fairness: Fairness,
                  caps: Mapping[str, Sequence[Quota]] | None = None) -> Pick:
        """Performance-weighted picks are not batched: the lead is decided alone (journaled, ``fair_claim.lua``)."""
        raise _Diverged(str(self.replay.key))

    def _claim(self, request: PoolClaim | DirectClaim) -> Pick:
        self.calls += 1
        made = self.replay.claims
        if request.index == len(made):
            raise _ClaimNeeded(request)
        signature, pick = made[request.index]
        if signature != _signature(request):
            raise _Diverged(str(request.key))
        return pick

    def pick(self, pool: str, strategy: Strategy, members: Sequence[str], candidates: Sequence[Candidate],
             caps: Mapping[str, Sequence[Quota]] | None = None) -> Pick:
        return self._claim(PoolClaim(self.replay.key, pool, strategy, tuple(members), tuple(candidates), self.calls,
                                     caps_by_rep(caps)))

    def assign(self, rep_id: str) -> int:
        return self._claim(DirectClaim(self.replay.key, rep_id, self.calls)).load

    def claim_rep(self, rep_id: str, quotas: Sequence[Quota]) -> Pick:
        return self._claim(DirectClaim(self.replay.key, rep_id, self.calls, tuple(quotas)))


def _held(decision: Mapping[str, Any]) -> bool:
    """A decision that gave the lead to nobody yet: its pool holds it (``hold``), to be routed again later."""
    return decision.get("owner_kind") == "held"
