"""The sync worker's steps as plain functions: poll, route a batch, re-route by hand.

Celery tasks in ``worker.app.tasks`` are one-line wrappers around these, so tests call them
directly and a task retry is just calling the same function again. Every step is safe to
repeat: decisions are idempotent per (crm, object, lead, epoch) in the store, writes set
the same owner again, and ids leave the pending set only once they are handled.
"""

from __future__ import annotations

import contextlib
import os
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import structlog
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import RedisError
from redis.exceptions import TimeoutError as RedisTimeoutError

from connectors.base import CrmRecord, OwnerUpdate, RetriableError, Watermark, WriteResult, WriteStatus
from worker.config import Assign, RoutingConfig
from worker.domain.leads import DecisionKey, LeadRef
from worker.domain.normalize import NormalizedLead, domain_of, normalize_lead
from worker.routing.engine import HELD, Decision, Router
from worker.routing.pipeline import PipelineLoad
from worker.routing.triggers import truths
from worker.steps import liveness
from worker.steps import pipeline as pipeline_step
from worker.steps import rates as rates_step
from worker.steps.handback import handed_back, route_again
from worker.steps.ledger import decision_extras, refusal_event
from worker.steps.relationships import note, relate, same_relating
from worker.steps.shadow import follow_live_loads, shadow_batch

if TYPE_CHECKING:  # the runtime is built by the Celery wiring, which imports the steps
    from worker.app.runtime import Runtime

log = structlog.get_logger("leadroute.pipeline")

# A claimed batch is leased for this long and renewed every third of it while its drain works
# (LeaseKeeper), so a dead drain's batch is claimable again within this many seconds.
LEASE_SECONDS = float(os.environ.get("LEADROUTE_PENDING_LEASE", "15"))
# A lead being decided is leased in the store, so that no other worker decides it meanwhile. A drain that dies
# mid-decision (kill -9) leaves those leases behind, and the drain that takes its batch over waits for them, asleep
# in its drain slot: they must run out before the batch can be claimed again, which is at the earliest two thirds
# of LEASE_SECONDS after the death (the heartbeat renews the batch's lease every third of it). The store's own
# default, 30 s, held a killed drain's leads 30 s after the kill and a CRM's only drain slot up to 15 s with them.
DECISION_LEASE_SECONDS = LEASE_SECONDS * 2 / 3
# Leads whose CRM call gave up (the connector retried it already, pausing up to retry.max_backoff between tries)
# are claimable again this much later: as short, so that once the CRM is back they are routed within seconds,
# not up to a long delay after it; drains then probe a CRM that is still down about as often as one call retries.
RETRY_DELAY = float(os.environ.get("LEADROUTE_RETRY_DELAY", "1"))
REDIS_ERRORS = (RedisConnectionError, RedisTimeoutError)  # Redis restarting, failing over, unreachable
WRITTEN_TTL = 7 * 86_400


class OwnerNotMapped(ValueError):
    """A rep or queue has no id in this CRM (``crm_ids`` / ``queues`` in the config)."""


def owner_crm_id(config: RoutingConfig, crm: str, owner: str) -> str:
    """The CRM user or queue id for a decision's owner (rep id or ``queue:NAME``)."""
    if owner.startswith("queue:"):
        name = owner.removeprefix("queue:")
        crm_id = config.model.queues.get(name, {}).get(crm)
        if not crm_id:
            raise OwnerNotMapped(f"queue '{name}' has no {crm} id (queues.{name}.{crm})")
        return crm_id
    rep = config.reps.get(owner)
    crm_id = rep.crm_ids.get(crm) if rep else None
    if not crm_id:
        raise OwnerNotMapped(f"rep '{owner}' has no {crm} id (crm_ids.{crm})")
    return crm_id


def reopened(rt: Runtime, crm: str, record: CrmRecord) -> dict[str, Any]:
    """The CRM fields to write with a new owner: a status that says a rep rejected the lead set back to the
    connector's ``rejection.reopen``, so the new owner is not taken to have rejected it too; else none."""
    settings = rt.config.model.connectors.enabled().get(crm)
    rejection = settings.rejection if settings is not None else None
    if rejection is None or rejection.reason(record.fields) is None:
        return {}
    return {rejection.field: rejection.reopen}


@dataclass
class Handled:
    """What happened to one record in a batch."""

    lead_id: str
    outcome: str
    epoch: int = 0
    owner: str | None = None
    reason: str = ""
    first_seen: float | None = None
    lead: NormalizedLead | None = field(default=None, repr=False, compare=False)  # as the engine read it


@dataclass
class BatchReport:
    """The outcome of one route step, for logs, metrics, the demo view and tests."""

    crm: str
    handled: list[Handled] = field(default_factory=list)
    retry: list[str] = field(default_factory=list)


POLL_BACKLOG_BATCHES = 4  # more than this many full batches due is a backlog (see poll)


def poll_lock(crm: str) -> str:
    """The lock that keeps two polls of one CRM from reading the same pages."""
    return f"poll:{crm}"


def poll(rt: Runtime, crm: str, on_page: Callable[[int], None] | None = None) -> int:
    """Move changed records that need routing into the pending set; returns how many.

    The watermark advances only after a page's ids are safely in the pending set, and
    ``on_page`` is told how many each page added (so draining starts before the last page).
    A lock keeps two overlapping polls of the same CRM from reading the same pages twice.
    While a backlog is due, a poll is put off for up to ``worker.poll_backlog_deferral``: the
    drain needs the API budget, and the poll's overlap window would only read the backlog again.
    """
    if _defer_for_backlog(rt, crm):
        return 0
    token = rt.store.acquire_lock(poll_lock(crm), ttl=300, token=liveness.token())  # freed at once if this process dies
    if token is None:
        log.info("poll_skipped_busy", crm=crm)
        return 0
    try:
        obj = rt.object_name(crm)
        since = Watermark.decode(rt.store.watermark(crm, obj))
        added = 0
        for page in rt.connector(crm).changes(since, intake_only=True):
            ids = [r.id for r in page.records if r.needs_routing]
            fresh = rt.pending.add(crm, ids, "poll")
            rt.store.set_watermark(crm, obj, page.watermark.encode())
            rt.store.extend_lock(poll_lock(crm), token, 300)
            added += fresh
            if fresh and on_page is not None:
                on_page(fresh)
        rt.store.mark_polled(crm)
        return added
    finally:
        rt.store.release_lock(poll_lock(crm), token)


def _defer_for_backlog(rt: Runtime, crm: str) -> bool:
    due = rt.pending.due(crm)
    if due <= POLL_BACKLOG_BATCHES * rt.connector(crm).write_batch_max:
        return False
    last = rt.store.last_polled(crm)
    if last is None or time.time() - last >= rt.config.model.worker.poll_backlog_deferral:
        return False
    log.info("poll_deferred_backlog", crm=crm, due=due)
    return True


def enqueue(rt: Runtime, crm: str, record_ids: list[str], source: str) -> int:
    """Queue record ids for routing (webhooks, reconciliation, the demo)."""
    return rt.pending.add(crm, record_ids, source)


def batch_limit(rt: Runtime, crm: str, due: int) -> int:
    """One at a time when traffic is light (latency); the CRM's batch size under a backlog."""
    maximum = rt.connector(crm).write_batch_max
    return 1 if due <= 1 else min(due, maximum)


def _lead_with_account(
    rt: Runtime, crm: str, record: CrmRecord, owners: dict[str, str | None] | None = None
) -> dict[str, Any]:
    """The canonical lead, with the account owner of its company domain (looked up once per batch)."""
    lead = dict(record.lead)
    if not lead.get("account_owner"):
        domain = domain_of(lead.get("email"), lead.get("website"))
        if domain:
            if owners is None or domain not in owners:
                found = rt.connector(crm).account_owner(domain)
                if owners is None:
                    owners = {}
                owners[domain] = found
            if owners[domain]:
                lead["account_owner"] = owners[domain]
    return lead


def _owner_matches(rt: Runtime, crm: str, record: CrmRecord, decision: dict[str, Any]) -> bool:
    try:
        return record.owner_id == owner_crm_id(rt.config, crm, decision["owner"])
    except OwnerNotMapped:
        return False


def _compute(
    rt: Runtime,
    key: DecisionKey,
    lead: Mapping[str, Any] | NormalizedLead,
    route: Callable[[Router], Decision] | None,
    overrides: Mapping[str, str],
    at: datetime | None = None,
    extra: Mapping[str, Any] | None = None,
    pipeline: PipelineLoad | bool | None = True,
) -> Callable[[Any], dict[str, Any]]:
    if route is None and not isinstance(lead, NormalizedLead):
        lead = normalize_lead(lead)  # once, though decide_many may run compute several times

    rates = rates_step.current(rt.store, rt.config)  # performance_weighted pools' learned rates (None: none learn)
    if pipeline is True:  # not read for the whole batch by the caller: read now
        pipeline = pipeline_step.current(rt.store, rt.config)  # cached open opportunities (None: none weighed)

    def compute(state: Any) -> dict[str, Any]:
        router = Router(rt.config, state, rates=rates, pipeline=pipeline if isinstance(pipeline, PipelineLoad) else None)
        decision = route(router) if route else router.route(lead, at=at, overrides=overrides, hold=True)
        data = decision.to_dict()
        data["crm"], data["object"], data["epoch"] = key.crm, key.object, key.epoch
        if extra:
            data.update(extra)
        return data

    return compute


def decide(
    rt: Runtime,
    key: DecisionKey,
    lead: Mapping[str, Any] | NormalizedLead,
    route: Callable[[Router], Decision] | None = None,
    overrides: Mapping[str, str] | None = None,
    extra: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """The decision for ``key``: recorded once, replayed on every retry (and to the ledger with it).

    ``overrides`` (reps forced unavailable) is read from the store unless the caller already
    has it for the whole batch. ``extra`` goes into the decision as is (a manual re-route's
    who and why).
    """
    if overrides is None:
        overrides = rt.store.unavailable()
    normalized = lead if isinstance(lead, NormalizedLead) else normalize_lead(lead)
    beside = decision_extras(rt.config, normalized) if rt.store.ledger_outbox else None
    return rt.store.decide_once(key, _compute(rt, key, normalized, route, overrides, extra=extra), ledger=beside).decision


def _decide_all(
    rt: Runtime, work: list[tuple[DecisionKey, NormalizedLead]], overrides: Mapping[str, str]
) -> list[dict[str, Any]]:
    """Decide a batch in a few Redis round trips for all of it (each lead still idempotent)."""
    if len(work) <= 1:
        return [decide(rt, key, lead, overrides=overrides) for key, lead in work]
    at = datetime.now(UTC)  # one routing time for the batch, so that a replayed compute repeats itself
    beside = {key: decision_extras(rt.config, lead) for key, lead in work} if rt.store.ledger_outbox else None
    pipeline = pipeline_step.current(rt.store, rt.config)  # one read of the cached counts for the batch
    return [d.decision for d in rt.store.decide_many([(key, _compute(rt, key, lead, None, overrides, at, pipeline=pipeline))
                                                      for key, lead in work], ledger=beside)]


Written = tuple[CrmRecord, dict[str, Any], "Handled"]
OnBatch = Callable[[str, list[Written]], None]
Pending = tuple[CrmRecord, DecisionKey, dict[str, Any]]


class LeaseKeeper:
    """A heartbeat for a claimed batch: renews its lease every third of the lease while the batch is
    worked on, so the lease can be short and a dead drain's batch is taken up again within seconds.

    Used as a context manager around the work (a daemon thread beats meanwhile); :meth:`beat` is one
    renewal, for callers that drive it themselves. ``on_beat`` runs after each renewal (the drain
    extends its slot lock there). A renewal that fails (Redis restarting) is tried again at the next
    beat; ids another drain took over meanwhile are dropped, and never renewed again.

    The batch is recorded under ``holder`` (this process's name, :func:`liveness.this_process`, and
    the batch's own token) from the start of the work to its end, so that a worker restarted after
    this process died takes it up at once (:func:`release_dead_holders`). Recording is best effort:
    without it the lease still runs out.
    """

    def __init__(self, rt: Runtime, crm: str, held: Mapping[str, float], lease: float = LEASE_SECONDS,
                 on_beat: Callable[[], object] | None = None, interval: float | None = None,
                 holder: str | None = None) -> None:
        self.rt, self.crm, self.lease, self.on_beat = rt, crm, lease, on_beat
        self.held: dict[str, float] = dict(held)
        self.interval = interval if interval is not None else max(0.05, lease / 3)
        self.holder = holder or liveness.token()
        self.beats = 0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def beat(self, now: float | None = None) -> None:
        """Renew the lease of what this drain still holds, then call ``on_beat``."""
        before = self.held
        self.held = self.rt.pending.renew(self.crm, before, self.lease, now=now)
        if lost := len(before) - len(self.held):
            log.info("lease_lost", crm=self.crm, lost=lost)  # routed, put back, or taken over: not ours now
        self._record(now)
        self.beats += 1
        if self.on_beat is not None:
            self.on_beat()

    def _record(self, now: float | None = None) -> None:
        try:
            self.rt.pending.record_holder(self.crm, self.holder, self.held, now=now)
        except RedisError as exc:  # best effort (a failover's read-only replica too): the lease still runs out
            log.warning("lease_holder_not_recorded", crm=self.crm, error=str(exc)[:300])

    def _forget(self) -> None:
        with contextlib.suppress(RedisError):  # left stale: dropped once its leases ran out (release_dead_holders)
            self.rt.pending.forget_holder(self.crm, self.holder)

    def give_back(self, delay: float = 0.0, attempts: int = 4) -> list[str]:
        """Make the ids this drain still holds claimable after ``delay`` seconds instead of at the end
        of the lease; tries a few times over about two seconds, for a Redis that is coming back."""
        self.stop()
        for attempt in range(attempts):
            try:
                given = self.rt.pending.give_back(self.crm, self.held, delay)
            except REDIS_ERRORS:
                if attempt == attempts - 1:
                    return []  # the lease runs out on its own
                time.sleep(0.25 * 2**attempt)  # a backoff while Redis comes back
                continue
            self.held = {}
            self._forget()
            return given
        return []

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            try:
                self.beat()
            except Exception as exc:  # Redis restarting: the next beat tries again, well within the lease
                log.warning("lease_renewal_failed", crm=self.crm, error=str(exc)[:300])

    def __enter__(self) -> LeaseKeeper:
        self._record()
        self._thread = threading.Thread(target=self._run, name=f"lease-{self.crm}", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join()
        self._thread = None

    def __exit__(self, *exc: object) -> None:
        self.stop()
        self._forget()


def release_dead_holders(rt: Runtime, crm: str, locks: Sequence[str] = (), now: float | None = None) -> list[str]:
    """Free what processes that died on this host held for ``crm``: their batches (claimable now) and the
    ``locks`` named (a drain slot, the poll lock), instead of when their leases and locks run out. A
    worker killed and restarted: its first drain takes up the dead one's batch within a second. What
    only another host can judge is left to its lease; batch records whose leases all ran out are
    dropped. Returns the ids released."""
    at = time.time() if now is None else now
    for name, owner in rt.store.lock_owners(locks).items():
        if liveness.holder_gone(owner) and rt.store.release_lock(name, owner):
            log.info("dead_holder_lock_released", lock=name, holder=owner)
    released: list[str] = []
    for holder, held in rt.pending.holders(crm).items():
        if not held or max(held.values()) <= at:
            rt.pending.forget_holder(crm, holder)  # its leases are over: claimable already, nothing to release
        elif liveness.holder_gone(holder):
            ids = rt.pending.release_holder(crm, holder, held, now=at)
            log.info("dead_holder_batch_released", crm=crm, holder=holder, held=len(held), released=len(ids))
            released += ids
    return released


def route_pending(
    rt: Runtime,
    crm: str,
    limit: int | None = None,
    on_batch: OnBatch | None = None,
    on_beat: Callable[[], object] | None = None,
) -> BatchReport:
    """Claim a batch from the pending set, decide, write owners back, and report.

    ``on_batch`` is called once per batch with every lead whose owner was written (start SLA
    clocks and queue notifications in one go). Retriable CRM
    failures put the ids back with a delay (``LEADROUTE_RETRY_DELAY``), whichever call failed, and
    raise :class:`RetriableError` after the rest of the batch is handled, so the task retries.

    The batch's lease (``LEADROUTE_PENDING_LEASE``) is renewed while it is worked on
    (:class:`LeaseKeeper`; ``on_beat`` runs after each renewal). A batch that fails on a Redis
    connection error is given back at once, so the retried drain takes it up as soon as Redis is
    back instead of waiting out the lease.
    """
    due = rt.pending.due(crm)
    if due == 0:
        return BatchReport(crm)
    items = rt.pending.claim(crm, limit or batch_limit(rt, crm, due), LEASE_SECONDS)
    if not items:
        return BatchReport(crm)
    keeper = LeaseKeeper(rt, crm, {i.record_id: i.held_until for i in items}, LEASE_SECONDS, on_beat)
    with keeper:
        try:
            return _Batch(rt, crm, {i.record_id: i.first_seen for i in items}, on_batch).run()
        except REDIS_ERRORS as exc:
            keeper.give_back()
            if keeper.held:  # Redis still away: the drain's retry gives the batch back instead of its lease running out
                raise BatchNotGivenBack(crm, keeper.held) from exc
            raise
        except RetriableError:
            # a CRM call the batch does not answer for id by id (an account or relationship lookup) gave up: what it
            # neither finished nor put back is claimable after the retry delay, like a failed fetch, not at the end
            # of its lease (ids done or put back already are no longer under this lease, and stay as they are)
            keeper.give_back(RETRY_DELAY)
            raise


class BatchNotGivenBack(RedisConnectionError):
    """A Redis error hit a batch and Redis stayed away while the drain tried to give it back: ``held``
    (record id -> this drain's lease, its score in the pending set) for the retried drain to give back
    first (:meth:`PendingSet.give_back` moves only ids still under that lease)."""

    def __init__(self, crm: str, held: Mapping[str, float]) -> None:
        super().__init__(f"{len(held)} {crm} ids still leased to a drain that lost Redis")
        self.crm, self.held = crm, dict(held)


class _Batch:
    """One claimed batch: what is done, what must be retried, and the report, in one place."""

    def __init__(
        self, rt: Runtime, crm: str, first_seen: dict[str, float], on_batch: OnBatch | None = None
    ) -> None:
        self.rt, self.crm, self.first_seen, self.on_batch = rt, crm, first_seen, on_batch
        self.report = BatchReport(crm)
        self.done: list[str] = []
        self.retry: list[str] = []
        self.written: list[tuple[CrmRecord, DecisionKey, dict[str, Any], Handled]] = []
        self.leads: dict[str, NormalizedLead] = {}
        self.shadowed: dict[str, tuple[DecisionKey, NormalizedLead, dict[str, Any]]] = {}  # the candidate's leads

    def run(self) -> BatchReport:
        rt, crm, ids = self.rt, self.crm, list(self.first_seen)
        if not ids:
            return self.report
        try:
            records = rt.connector(crm).fetch(ids)
        except RetriableError:
            rt.pending.retry_later(crm, ids, RETRY_DELAY)
            raise
        obj = rt.object_name(crm)
        for rid in ids:
            if rid not in records:
                self.report.handled.append(Handled(rid, "deleted"))
                rt.store.log_event("skipped", LeadRef(crm, obj, rid), {"why": "record deleted or not found"})
                self.done.append(rid)
        routable = [records[rid] for rid in ids if rid in records]
        refs = [LeadRef(crm, obj, r.id) for r in routable]
        keys = [ref.at(epoch) for ref, epoch in zip(refs, rt.store.epochs(refs), strict=True)]
        written = rt.store.written(keys)
        to_write: list[Pending] = []
        overrides = rt.store.unavailable()  # once per batch
        domains = [d for r in routable if not r.lead.get("account_owner")
                   if (d := domain_of(r.lead.get("email"), r.lead.get("website")))]
        owners = rt.connector(crm).account_owners(domains) if domains else {}  # one lookup per batch
        raw: list[tuple[CrmRecord, DecisionKey, dict[str, Any]]] = []
        back = handed_back(rt, crm, [(r, k) for r, k, a in zip(routable, keys, written, strict=True) if a])
        for record, key, already in zip(routable, keys, written, strict=True):
            if record.id in back:  # its rep put it back in the intake: route it again, away from them
                lead = normalize_lead(_lead_with_account(rt, crm, record, owners))
                to_write.append((record, *route_again(rt, crm, lead, back[record.id], decide, overrides)))
                self.leads[record.id] = lead
                self.shadowed[record.id] = (to_write[-1][1], lead, to_write[-1][2])
            elif already:
                self.report.handled.append(Handled(record.id, "already_routed", key.epoch))
                self.done.append(record.id)
            elif not record.needs_routing and key.epoch == 0:
                self._no_longer_intake(record, key)
            else:
                raw.append((record, key, _lead_with_account(rt, crm, record, owners)))
        # the candidate relates its own copies of the leads when it relates differently (same store read)
        apart = rt.shadow is not None and not same_relating(rt.config, rt.shadow.config)
        theirs = [dict(lead) for _, _, lead in raw] if apart else []
        relate(rt, [lead for _, _, lead in raw], datetime.now(UTC),  # relationships beyond accounts, one read
               also=(rt.shadow.config, theirs) if apart and rt.shadow is not None else None, crm=crm)
        to_decide = [(record, key, normalize_lead(lead)) for record, key, lead in raw]
        decisions = _decide_all(rt, [(key, lead) for _, key, lead in to_decide], overrides)
        note(rt, decisions)
        if rt.config.triggers:  # each trigger's baseline: a lead that arrives qualified has not crossed
            # from the lead as the CRM holds it, the shape the owned poll evaluates (worker.steps.handoffs),
            # not the one routed with the account owner and relationship filled in
            rt.store.seed_crossings([(key.lead, name, now) for record, key, _ in to_decide
                                     for name, now in truths(rt.config, normalize_lead(record.lead)).items()])
        waiting = [d.get("owner_kind") == HELD for d in decisions]
        if any(waiting):  # their pool waits for a member in hours with room: back in the pending set until then
            self._hold([(record, key, d) for (record, key, _), d, w in zip(to_decide, decisions, waiting, strict=True) if w])
            to_decide = [item for item, w in zip(to_decide, waiting, strict=True) if not w]
            decisions = [d for d, w in zip(decisions, waiting, strict=True) if not w]
            theirs = [lead for lead, w in zip(theirs, waiting, strict=True) if not w] if apart else theirs
        to_write.extend((record, key, d) for (record, key, _), d in zip(to_decide, decisions, strict=True))
        self.leads.update({record.id: lead for record, _, lead in to_decide})
        if rt.shadow is not None:
            for i, ((record, key, lead), d) in enumerate(zip(to_decide, decisions, strict=True)):
                self.shadowed[record.id] = (key, normalize_lead(theirs[i]) if apart else lead, d)
        self._write_back(to_write)
        self._after_writes()
        rt.pending.done(crm, self.done)
        if self.retry:  # the live retry is booked before the candidate runs, so shadow mode never delays it
            rt.pending.retry_later(crm, self.retry, RETRY_DELAY)
            self.report.retry = self.retry
        if rt.shadow is not None:  # once the live work is done: the candidate never changes it, and never raises
            self._shadow(overrides)
        if self.retry:
            raise RetriableError(f"{len(self.retry)} record(s) could not be written yet; retrying", crm=crm)
        return self.report

    def _shadow(self, overrides: Mapping[str, str]) -> None:
        """Hand the candidate each lead whose live outcome is settled, beside the decision as written (the
        fallback's, when the CRM refused the decided owner). A lead waiting for a retried write is shadowed
        when that write is done."""
        written = {record.id: decision for record, _, decision, _ in self.written}
        waiting = set(self.retry)
        work = [(key, lead, written.get(rid, decision)) for rid, (key, lead, decision) in self.shadowed.items()
                if rid not in waiting]
        shadow_batch(self.rt, self.crm, work, overrides)

    def _no_longer_intake(self, record: CrmRecord, key: DecisionKey) -> None:
        """Someone got there first: a human, or our own write whose worker died before noting it."""
        rt = self.rt
        recorded = rt.store.decision(key)
        if recorded is not None and _owner_matches(rt, self.crm, record, recorded.decision):
            self._mark_written(record, key, recorded.decision)  # finish the job, don't redo it
            return
        self.report.handled.append(Handled(record.id, "not_intake", key.epoch, record.owner_id))
        if (
            recorded is not None
            and recorded.decision.get("owner_kind") == "rep"
            and rt.store.first_seen("released", str(key), WRITTEN_TTL)
        ):
            rt.store.adjust_load(recorded.decision["owner"], -1)  # decided, never written: release
        rt.store.log_event("skipped", key.lead, {"why": "no longer matches the intake condition", "owner": record.owner_id})
        self.done.append(record.id)

    def _hold(self, held: list[Pending]) -> None:
        """Leads their pool holds (``hold``) go back to the pending set, due again at the decision's ``retry_at``;
        the owner stays the intake's, and the decision log says why and until when."""
        rt, crm = self.rt, self.crm
        now = time.time()
        by_delay: dict[float, list[str]] = {}
        for record, _, decision in held:
            until = datetime.fromisoformat(str(decision["retry_at"])).timestamp()
            by_delay.setdefault(max(0.0, until - now), []).append(record.id)
            self.report.handled.append(Handled(record.id, HELD))
        for delay, ids in by_delay.items():
            rt.pending.retry_later(crm, ids, delay)
        obj = rt.object_name(crm)
        rt.store.log_events([("held", LeadRef(crm, obj, record.id),
                              {"until": decision["retry_at"], "reason": decision["reason"]}, key.epoch)
                             for record, key, decision in held])

    def _write_back(self, to_write: list[Pending]) -> None:
        rt, crm = self.rt, self.crm
        updates: list[OwnerUpdate] = []
        pending: list[Pending] = []
        for record, key, decision in to_write:
            try:
                owner_id = owner_crm_id(rt.config, crm, decision["owner"])
            except OwnerNotMapped as exc:
                decision = _to_fallback(rt, crm, key, decision, f"config: {exc}")
                owner_id = owner_crm_id(rt.config, crm, decision["owner"])
            updates.append(OwnerUpdate(record.id, owner_id, decision["reason"], reopened(rt, crm, record)))
            pending.append((record, key, decision))
        if not updates:
            return
        fatal: list[tuple[CrmRecord, DecisionKey, dict[str, Any], WriteResult]] = []
        for (record, key, decision), result in zip(pending, rt.connector(crm).write_owners(updates), strict=True):
            if result.status is WriteStatus.OK:
                self._mark_written(record, key, decision)
            elif result.status is WriteStatus.RETRIABLE:
                self.retry.append(record.id)
            else:
                fatal.append((record, key, decision, result))
        if fatal:
            self._fallback_after_refusal(fatal)

    def _fallback_after_refusal(self, fatal: list[tuple[CrmRecord, DecisionKey, dict[str, Any], WriteResult]]) -> None:
        rt, crm = self.rt, self.crm
        replaced = [
            (record, key, _to_fallback(rt, crm, key, decision, f"{result.code or 'error'}: {result.message or ''}".strip()))
            for record, key, decision, result in fatal
        ]
        updates = [OwnerUpdate(r.id, owner_crm_id(rt.config, crm, d["owner"]), d["reason"], reopened(rt, crm, r))
                   for r, _, d in replaced]
        for (record, key, decision), result in zip(replaced, rt.connector(crm).write_owners(updates), strict=True):
            if result.ok:
                self._mark_written(record, key, decision, outcome="fallback_after_refusal")
            elif result.status is WriteStatus.RETRIABLE:
                self.retry.append(record.id)
            else:
                self.report.handled.append(Handled(record.id, "refused", key.epoch, None, result.message or ""))
                rt.store.log_event("refused", key.lead, {"code": result.code, "message": result.message}, key.epoch)
                log.error("write_refused", crm=crm, lead_id=record.id, code=result.code, message=result.message)
                self.done.append(record.id)

    def _mark_written(
        self, record: CrmRecord, key: DecisionKey, decision: dict[str, Any], outcome: str = "written"
    ) -> Handled:
        handled = Handled(record.id, outcome, key.epoch, decision["owner"], decision["reason"],
                          self.first_seen.get(record.id), self.leads.get(record.id))
        self.report.handled.append(handled)
        self.done.append(record.id)
        self.written.append((record, key, decision, handled))
        return handled

    def _after_writes(self) -> None:
        """Note every written owner in one round trip, then hand them to ``on_batch``."""
        if not self.written:
            return
        rt, crm = self.rt, self.crm
        owned = {record.id: d["owner"] for record, _, d, _ in self.written if not d["owner"].startswith("queue:")}
        queued = [record.id for record, _, d, _ in self.written if d["owner"].startswith("queue:")]
        rt.store.note_written(crm, [key for _, key, _, _ in self.written], WRITTEN_TTL, held=owned, released=queued)
        if self.on_batch is not None:
            self.on_batch(crm, [(record, decision, handled) for record, _, decision, handled in self.written])


def _to_fallback(rt: Runtime, crm: str, key: DecisionKey, decision: dict[str, Any], why: str) -> dict[str, Any]:
    """Replace a decision the CRM cannot take with the fallback owner, keeping the trail."""
    owner = decision["owner"]
    if not owner.startswith("queue:"):
        rt.store.adjust_load(owner, -1)
    fb = rt.config.fallback
    new_owner = f"queue:{fb.queue}" if fb.queue else str(fb.rep)
    if not fb.queue:
        rt.store.adjust_load(new_owner, 1)
    replaced = dict(decision)
    replaced.update(
        owner=new_owner,
        owner_kind="queue" if fb.queue else "rep",
        rule="fallback",
        target=f"fallback {'queue ' + str(fb.queue) if fb.queue else 'rep ' + str(fb.rep)}",
        reason=f"{decision['reason']} -> refused ({why}) -> fallback {new_owner}",
        replaced_owner=owner,
    )
    rt.store.log_event("fallback_after_refusal", key.lead, {"from": owner, "to": new_owner, "why": why}, key.epoch,
                       ledger=[refusal_event(key, decision, replaced, why)])
    log.warning("routed_to_fallback", crm=crm, lead_id=key.lead_id, owner=owner, why=why)
    return replaced


@dataclass
class Rerouted:
    """The outcome of a manual re-route."""

    lead_id: str
    epoch: int
    previous_owner: str | None
    owner: str
    reason: str
    written: bool


def reroute(
    rt: Runtime,
    crm: str,
    lead_id: str,
    *,
    to_rep: str | None = None,
    pool: str | None = None,
    why: str = "",
    requested_by: str = "cli",
    key: DecisionKey | None = None,
) -> Rerouted:
    """Re-route one lead by hand: a new epoch, load moved from the old owner, the reason recorded.

    ``key`` is given when a task retries a re-route that already opened its epoch.
    """
    if to_rep and to_rep not in rt.config.reps:
        raise ValueError(f"unknown rep '{to_rep}'")
    if pool and pool not in rt.config.pools:
        raise ValueError(f"unknown pool '{pool}'")
    conn = rt.connector(crm)
    record = conn.fetch([lead_id]).get(lead_id)
    if record is None:
        raise LookupError(f"{crm} record {lead_id} not found")
    obj = rt.object_name(crm)
    ref = LeadRef(crm, obj, lead_id)
    previous = rt.store.decision(rt.store.current_key(ref))
    previous_owner = previous.decision["owner"] if previous else None
    key = key or rt.store.new_epoch(ref)
    label = f"manual ({requested_by}{': ' + why if why else ''})"
    lead = _lead_with_account(rt, crm, record)
    overrides = rt.store.unavailable()
    exclude = frozenset({previous_owner}) if previous_owner and not (to_rep or pool) else frozenset()

    def route(router: Router) -> Decision:
        if to_rep:
            return router.route_to(lead, Assign(rep=to_rep), label, overrides=overrides)
        if pool:
            return router.route_to(lead, Assign(pool=pool), label, overrides=overrides)
        decision = router.route(lead, overrides=overrides, exclude=exclude)
        decision.reason = f"{label}: {decision.reason}"
        return decision

    first = rt.store.decision(key) is None
    manual = {"via": "manual", "requested_by": requested_by, "why": why, "previous_owner": previous_owner}
    decision = decide(rt, key, lead, route, extra=manual)
    if first and previous_owner and not previous_owner.startswith("queue:") and previous_owner != decision["owner"]:
        rt.store.adjust_load(previous_owner, -1)
    if first:
        rt.store.log_event(
            "reroute", ref, {"from": previous_owner, "to": decision["owner"], "by": requested_by, "why": why}, key.epoch
        )
    owner_id = owner_crm_id(rt.config, crm, decision["owner"])
    (result,) = conn.write_owners([OwnerUpdate(lead_id, owner_id, decision["reason"], reopened(rt, crm, record))])
    if result.status is WriteStatus.RETRIABLE:
        raise RetriableError(result.message or "owner write failed; retry", crm=crm, code=result.code)
    if result.ok:
        rt.store.note_written(crm, [key], WRITTEN_TTL)
        track_open(rt, crm, lead_id, decision["owner"])
    return Rerouted(lead_id, key.epoch, previous_owner, decision["owner"], decision["reason"], result.ok)


def track_open(rt: Runtime, crm: str, lead_id: str, owner: str) -> None:
    """Remember who holds an open lead, so loads can be reconciled against the CRM later."""
    if owner.startswith("queue:"):
        rt.store.release_open(crm, [lead_id])
    else:
        rt.store.hold_open(crm, lead_id, owner)


def close_open(rt: Runtime, crm: str, lead_id: str) -> None:
    """The lead was acknowledged, closed or deleted: it no longer counts towards a load."""
    rt.store.release_open(crm, [lead_id])


def reconcile_loads(rt: Runtime, chunk: int = 200) -> dict[str, int]:
    """Recount every rep's open, unacknowledged leads from the CRM and replace the loads.

    Costs one acknowledgement read per ``chunk`` open leads per CRM; run hourly.
    """
    counts: dict[str, int] = {}
    for crm in rt.crms:
        held = rt.store.open_leads(crm)
        ids = list(held)
        conn = rt.connector(crm)
        for start in range(0, len(ids), chunk):
            part = ids[start : start + chunk]
            acks = conn.read_acks(part)
            gone = []
            for lead_id in part:
                ack = acks.get(lead_id)
                rep = held[lead_id]
                expected = rt.config.reps[rep].crm_ids.get(crm) if rep in rt.config.reps else None
                if ack is None or ack.acknowledged or ack.closed or (expected and ack.owner_id != expected):
                    gone.append(lead_id)
                else:
                    counts[rep] = counts.get(rep, 0) + 1
            if gone:
                rt.store.release_open(crm, gone)
    rt.store.set_loads(counts)
    rt.store.log_event("loads_reconciled", None, {"loads": counts})
    follow_live_loads(rt)  # shadow mode's loads follow the recount (a no-op without a candidate; never raises)
    return counts


def reconcile_orphans(rt: Runtime, crm: str, min_age: float, now: datetime | None = None) -> int:
    """Queue records still waiting for an owner after ``min_age`` seconds (lost to downtime)."""
    cutoff = (now or datetime.now(UTC)).timestamp() - min_age
    orphans: list[str] = []
    for page in rt.connector(crm).changes(None, intake_only=True):
        orphans.extend(r.id for r in page.records if r.needs_routing and r.modstamp.timestamp() <= cutoff)
    added = rt.pending.add(crm, orphans, "reconcile")
    if added:
        rt.store.log_event("orphans_found", None, {"crm": crm, "count": added})
    return added


def latency_since(first_seen: float | None) -> float | None:
    """Seconds from first sight (webhook or poll) to owner written."""
    return None if first_seen is None else max(0.0, time.time() - first_seen)
