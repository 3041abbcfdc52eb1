"""Thin Celery tasks: each takes ids, calls one pipeline function, and retries what is retriable.

Every task is a :class:`RedisRetryTask`: a Redis connection error or timeout anywhere in it (Redis
restarting, failing over, briefly unreachable) retries the task with backoff, like a retriable CRM
error, instead of failing it.
"""

from __future__ import annotations

import random
import time
from datetime import datetime, timedelta
from typing import Any

import structlog
from celery import Task
from kombu.exceptions import OperationalError as BrokerUnavailable
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from connectors.base import CrmRecord, RetriableError
from worker.app.celery_app import app
from worker.app.runtime import Runtime, get_runtime
from worker.domain.leads import DecisionKey
from worker.observability import metrics
from worker.steps import after_route, handoffs, liveness, route
from worker.steps import ledger as ledger_step
from worker.steps import outcomes as outcomes_step
from worker.steps import pipeline as pipeline_step
from worker.steps import rates as rates_step
from worker.steps import rebuild as rebuild_step

log = structlog.get_logger("leadroute.tasks")

DRAIN_BUDGET_SECONDS = 20.0
DRAIN_SLOTS = 4
DRAIN_LOCK_TTL = route.LEASE_SECONDS  # renewed with the batch's lease: a dead drain's slot frees with its batch
OUTCOMES_LOCK_TTL = 3600.0
LEDGER_LOCK = "ledger-flush"

# Redis (state or broker) unreachable: retried with backoff, whatever the task's own retry limit.
REDIS_ERRORS = (RedisConnectionError, RedisTimeoutError, BrokerUnavailable)
# A Redis restart or failover takes seconds: retry soon and keep retrying every few seconds (about 1.5 to 3
# minutes in all), so a task is back within seconds of Redis, not after a long doubled wait.
REDIS_MAX_RETRIES = 50
REDIS_BACKOFF_FIRST = 0.25  # seconds; doubled each retry, up to REDIS_BACKOFF_MAX, jittered down to half
REDIS_BACKOFF_MAX = 4.0
STATE_WAIT_SECONDS = 2.0  # a drain that finds a rebuild running tries again this much later
# Publishing the retry needs the broker, which may be the Redis that is restarting: keep trying for ~20 s.
RETRY_PUBLISH_POLICY = {"max_retries": 10, "interval_start": 0.5, "interval_step": 0.5, "interval_max": 3.0}


# A task whose CRM call gave up (after the connector's own retries) is retried after 1, 2, 4, then every 8 s:
# the connector already paused between tries, so a longer wait only delays the task after the CRM is back
# (a manual re-route once waited up to 60 s after an outage had ended). A Retry-After from the CRM wins.
TASK_RETRY_MAX = 8.0


def _retry_delay(task: Task, exc: RetriableError) -> float:
    """Seconds before a task whose CRM call gave up runs again: the CRM's hint, else 1, 2, 4, then 8."""
    hint = exc.retry_after or 0.0
    return max(hint, min(TASK_RETRY_MAX, 2.0**task.request.retries))


def redis_backoff(retries: int, jitter: float | None = None) -> float:
    """Seconds before retry number ``retries + 1`` after a Redis error: 0.25, 0.5, 1, 2, then 4,
    each scaled by a random factor in [0.5, 1] (``jitter``) so workers do not all come back at once."""
    factor = 0.5 + 0.5 * (random.random() if jitter is None else jitter)
    return min(REDIS_BACKOFF_MAX, REDIS_BACKOFF_FIRST * 2.0**retries) * factor


class RedisRetryTask(Task):
    """The base of every leadroute task: a Redis connection error or timeout retries the task with
    backoff (:func:`redis_backoff`, at most ``REDIS_MAX_RETRIES`` times) instead of failing it.

    The steps are safe to repeat, so a retry picks up where the failure left off; a drain that
    failed gave its batch back first, so the retry routes it as soon as Redis answers again.
    """

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        try:
            return super().__call__(*args, **kwargs)
        except REDIS_ERRORS as exc:
            retries = self.request.retries
            log.warning("redis_unavailable_retrying", task=self.name, retries=retries, error=str(exc)[:300])
            raise self.retry(exc=exc, countdown=redis_backoff(retries), max_retries=REDIS_MAX_RETRIES,
                             retry_policy=RETRY_PUBLISH_POLICY) from None


def after_batch(crm: str, written: list[tuple[CrmRecord, dict[str, Any], route.Handled]]) -> None:
    """What follows a batch of owner writes: SLA clocks and the notifications (own queue)."""
    after_route.after_batch(get_runtime(), crm, written)


@app.task(base=RedisRetryTask, name="leadroute.poll", bind=True, max_retries=None)
def poll(self: Task, crm: str) -> int:
    """Read the CRM's changes since the watermark into the pending set, then drain."""
    structlog.contextvars.bind_contextvars(crm=crm)
    kicked: list[bool] = []

    def kick(_added: int) -> None:  # route the first page while later ones are read
        if not kicked:
            kicked.append(True)
            drain.delay(crm)

    try:
        return route.poll(get_runtime(), crm, on_page=kick)
    except RetriableError as exc:
        raise self.retry(exc=exc, countdown=_retry_delay(self, exc)) from None


@app.task(base=RedisRetryTask, name="leadroute.drain", bind=True, max_retries=None)
def drain(self: Task, crm: str, release: list[str] | None = None, give_back: dict[str, float] | None = None) -> int:
    """Route pending leads in batches until none is due or the time budget is spent.

    Under light traffic one drain per CRM runs at a time, so leads that arrive meanwhile
    gather into the next batch instead of several small batches queueing for the same
    rate limit; under a backlog up to ``DRAIN_SLOTS`` drains share the work. ``release`` is the
    slot (name, token) this drain held when Redis went away before it could free it: the retry
    frees it first, so no drain waits out its lock (up to ``DRAIN_LOCK_TTL``) after a Redis restart;
    ``give_back`` likewise is the batch it could not give back (:class:`route.BatchNotGivenBack`).
    """
    structlog.contextvars.bind_contextvars(crm=crm)
    rt = get_runtime()
    if give_back:
        rt.pending.give_back(crm, give_back)  # only ids still under this drain's lease
    if release:
        rt.store.release_lock(release[0], release[1])  # only if still ours (the token): never another drain's
    state = rebuild_step.ensure_state(rt)  # one read; rebuilds a lost state before routing into it
    if state.status == "busy":
        raise self.retry(countdown=STATE_WAIT_SECONDS)
    if not state.ready:
        return 0  # a foreign state, or the ledger unreachable with the state gone: logged; beat's next drain asks again
    route.release_dead_holders(rt, crm, locks=_routing_locks(crm))  # a crashed process's: now, not when they run out
    backlog = rt.pending.due(crm) > rt.connector(crm).write_batch_max
    slots = DRAIN_SLOTS if backlog else 1
    slot, token = _drain_slot(rt, crm, slots)
    if token is None:
        return 0  # other drains hold the slots and loop until the pending set is empty
    if backlog and slot != _slot_name(crm, slots - 1):
        drain.delay(crm)  # fan out: the next drain takes the next slot, until all are busy
    routed = 0
    carry: dict[str, Any] = {}  # what the retry must undo first, when Redis stays away
    deadline = time.monotonic() + DRAIN_BUDGET_SECONDS
    try:
        while time.monotonic() < deadline:
            report = route.route_pending(rt, crm, on_batch=after_batch,
                                         on_beat=lambda: rt.store.extend_lock(slot, token, DRAIN_LOCK_TTL))
            if not report.handled:
                break
            routed += len(report.handled)
            if rt.store.state_marker() is None:
                break  # Redis lost its data under this drain: the next drain rebuilds before it routes again
            rt.store.extend_lock(slot, token, DRAIN_LOCK_TTL)
    except route.BatchNotGivenBack as exc:
        log.warning("drain_batch_give_back_deferred", held=len(exc.held))
        carry["give_back"] = exc.held
        raise self.retry(kwargs=carry, countdown=redis_backoff(self.request.retries), max_retries=REDIS_MAX_RETRIES,
                         retry_policy=RETRY_PUBLISH_POLICY) from None
    except RetriableError as exc:
        log.warning("drain_retry", error=str(exc))
        raise self.retry(exc=exc, countdown=_retry_delay(self, exc)) from None
    finally:
        try:
            _release_slot(rt, slot, token)
        except REDIS_ERRORS:  # Redis still away: the retry frees the slot first (see ``release``)
            log.warning("drain_slot_release_deferred", slot=slot)
            raise self.retry(kwargs={**carry, "release": [slot, token]}, countdown=redis_backoff(self.request.retries),
                             max_retries=REDIS_MAX_RETRIES, retry_policy=RETRY_PUBLISH_POLICY) from None
    metrics.set_pending_depth(crm, rt.pending.depth(crm))
    if rt.pending.due(crm):
        drain.delay(crm)
    return routed


def _release_slot(rt: Runtime, slot: str, token: str, attempts: int = 3) -> None:
    """Free the drain's slot, waiting under a second for a Redis that is restarting: a retried drain
    needs the slot at once (its batch was given back), not when the lock runs out; past that, the
    drain's retry frees it."""
    for attempt in range(attempts):
        try:
            rt.store.release_lock(slot, token)
            return
        except REDIS_ERRORS:
            if attempt == attempts - 1:
                raise
            time.sleep(0.25 * 2**attempt)  # a backoff while Redis comes back


def _slot_name(crm: str, i: int) -> str:
    return f"drain:{crm}:{i}"


def _routing_locks(crm: str) -> list[str]:
    """The locks a crashed process may leave behind on the way of a new lead: the polls' and the drain slots."""
    return [route.poll_lock(crm), handoffs.owned_lock(crm), *(_slot_name(crm, i) for i in range(DRAIN_SLOTS))]


def _drain_slot(rt: Runtime, crm: str, slots: int) -> tuple[str, str | None]:
    for i in range(slots):
        name = _slot_name(crm, i)
        token = rt.store.acquire_lock(name, ttl=DRAIN_LOCK_TTL, token=liveness.token())
        if token is not None:
            return name, token
    return "", None


@app.task(base=RedisRetryTask, name="leadroute.reroute", bind=True, max_retries=40)  # ~8 min of CRM outage
def reroute(
    self: Task,
    crm: str,
    lead_id: str,
    to_rep: str | None = None,
    pool: str | None = None,
    why: str = "",
    requested_by: str = "cli",
    epoch: int | None = None,
) -> dict[str, Any]:
    """A manual re-route; ``epoch`` pins the retries of one request to one decision."""
    rt = get_runtime()
    if not rebuild_step.ensure_state(rt).ready:
        raise self.retry(countdown=STATE_WAIT_SECONDS)  # a rebuild is running, or the state is not ours (logged)
    obj = rt.object_name(crm)
    key = DecisionKey(crm, obj, lead_id, epoch) if epoch is not None else None
    try:
        result = route.reroute(rt, crm, lead_id, to_rep=to_rep, pool=pool, why=why, requested_by=requested_by, key=key)
    except RetriableError as exc:
        raise self.retry(exc=exc, countdown=_retry_delay(self, exc)) from None
    after_route.after_reroute(rt, crm, lead_id, result)
    return {"lead_id": result.lead_id, "owner": result.owner, "epoch": result.epoch}


@app.task(base=RedisRetryTask, name="leadroute.reconcile_orphans", bind=True, max_retries=3)
def reconcile_orphans(self: Task, crm: str) -> int:
    """Queue intake records left unrouted (e.g. lost to downtime), then drain."""
    rt = get_runtime()
    try:
        added = route.reconcile_orphans(rt, crm, rt.config.model.worker.orphan_age)
    except RetriableError as exc:
        raise self.retry(exc=exc, countdown=_retry_delay(self, exc)) from None
    if added:
        drain.delay(crm)
    return added


@app.task(base=RedisRetryTask, name="leadroute.poll_owned", bind=True, max_retries=None)
def poll_owned(self: Task, crm: str) -> int:
    """Hand-off triggers and rejections by CRM status on owned records changed since the owned watermark."""
    structlog.contextvars.bind_contextvars(crm=crm)
    try:
        return len(handoffs.poll_owned(get_runtime(), crm).handed_off)
    except RetriableError as exc:
        raise self.retry(exc=exc, countdown=_retry_delay(self, exc)) from None


@app.task(base=RedisRetryTask, name="leadroute.reconcile_loads", bind=True, max_retries=3)
def reconcile_loads(self: Task) -> dict[str, int]:
    """Replace every rep's load with the CRM's count of their open, unacknowledged leads."""
    rt = get_runtime()
    lock = rt.store.acquire_lock("reconcile-loads", ttl=600)
    if lock is None:
        return {}
    try:
        return route.reconcile_loads(rt)
    except RetriableError as exc:
        raise self.retry(exc=exc, countdown=_retry_delay(self, exc)) from None
    finally:
        rt.store.release_lock("reconcile-loads", lock)


@app.task(base=RedisRetryTask, name="leadroute.notify", bind=True, max_retries=8)
def notify(
    self: Task,
    crm: str,
    obj: str,
    lead_id: str,
    epoch: int,
    lead: dict[str, Any] | None = None,
    sla_deadline: str | None = None,
) -> bool:
    """Tell the owner about a new lead; a failing channel is retried, never blocking routing."""
    rt = get_runtime()
    deadline = datetime.fromisoformat(sla_deadline) if sla_deadline else None
    report = after_route.notify_assigned(rt, DecisionKey(crm, obj, lead_id, epoch), lead, deadline)
    if report is not None and report.retry:
        raise self.retry(countdown=max(report.retry_after or 0.0, min(300.0, 2.0 ** self.request.retries)))
    return report is not None and report.ok


@app.task(base=RedisRetryTask, name="leadroute.sla_notify", bind=True, max_retries=8)
def sla_notify(self: Task, notice: dict[str, Any]) -> bool:
    """Send one SLA notice (reminder, escalation, reassignment, park alert), once per channel."""
    report = after_route.send_sla_notice(get_runtime(), notice)
    if report is not None and report.retry:
        raise self.retry(countdown=max(report.retry_after or 0.0, min(300.0, 2.0 ** self.request.retries)))
    return report is not None and report.ok


@app.task(base=RedisRetryTask, name="leadroute.sla_sweep", bind=True, max_retries=0)
def sla_sweep(self: Task) -> dict[str, Any]:
    """Claim the SLA timers that are due and climb each lead's ladder; costs what is due, not what is open."""
    rt = get_runtime()
    if rt.sla is None:
        return {}
    report = rt.sla.sweep()
    for line in report.lines():
        log.info("sla", action=line)
    return report.to_dict()


@app.task(base=RedisRetryTask, name="leadroute.notify_many", bind=True, max_retries=8)
def notify_many(self: Task, crm: str, obj: str, items: list[dict[str, Any]]) -> int:
    """Tell the owners of a batch about their new leads; a retry re-sends only what did not go out."""
    rt = get_runtime()
    retry_after: list[float] = []
    sent = 0
    for item in items:
        deadline = datetime.fromisoformat(item["sla_deadline"]) if item.get("sla_deadline") else None
        report = after_route.notify_assigned(rt, DecisionKey(crm, obj, item["lead_id"], item["epoch"]), item.get("lead"),
                                       deadline)
        if report is not None and report.retry:
            retry_after.append(report.retry_after or 0.0)
        elif report is not None and report.ok:
            sent += 1
    if retry_after:  # send_once skips the channels that already delivered
        raise self.retry(countdown=max(max(retry_after), min(300.0, 2.0 ** self.request.retries)))
    return sent


@app.task(base=RedisRetryTask, name="leadroute.ledger_flush", bind=True, max_retries=0)
def ledger_flush(self: Task) -> int:
    """Move the ledger outbox to SQL in batches until it is empty; one mover at a time.

    A SQL outage fails the move, not the task: the events stay in the outbox (which grows,
    and ``/healthz`` and the outbox gauges say so) and the next run, a few seconds later by
    beat, tries again.
    """
    rt = get_runtime()
    token = rt.store.acquire_lock(LEDGER_LOCK, ttl=ledger_step.LEASE_SECONDS)
    if token is None:
        return 0  # another mover is at it, and loops until the outbox is empty
    try:
        moved = ledger_step.flush(rt.store, rt.ledger,
                                  on_batch=lambda _: rt.store.extend_lock(LEDGER_LOCK, token, ledger_step.LEASE_SECONDS))
    except Exception as exc:  # SQL unreachable or refusing: the outbox keeps every event for the next run
        log.warning("ledger_flush_failed", error=str(exc)[:500])
        return 0
    finally:
        rt.store.release_lock(LEDGER_LOCK, token)
        try:
            ledger_step.ledger_health(rt.store, ledger_step.ledger_max_age(rt.config))  # the outbox gauges
        except Exception as exc:  # Redis itself: the next run measures again
            log.warning("ledger_outbox_unmeasured", error=str(exc)[:300])
    if moved.written or moved.refused:
        log.info("ledger_flushed", written=moved.written, duplicates=moved.duplicates, refused=moved.refused,
                 batches=moved.batches)
    return moved.written


@app.task(base=RedisRetryTask, name="leadroute.outcomes", bind=True, max_retries=3)
def read_outcomes(self: Task, crm: str) -> int:
    """Read back what became of recently routed leads (converted, opportunity, won, lost) into the
    ledger outbox; one reader per CRM, a few CRM calls per 2,000 leads, none per lead."""
    rt = get_runtime()
    lock = f"outcomes:{crm}"
    token = rt.store.acquire_lock(lock, ttl=OUTCOMES_LOCK_TTL)
    if token is None:
        return 0  # another reader is at it
    try:
        appended = outcomes_step.read_back_outcomes(
            rt.connector(crm), rt.ledger, rt.store.outbox_append, crm,
            lookback=timedelta(seconds=rt.config.model.worker.outcomes_lookback),
        )
    except RetriableError as exc:
        raise self.retry(exc=exc, countdown=_retry_delay(self, exc)) from None
    finally:
        rt.store.release_lock(lock, token)
    log.info("outcomes_read", crm=crm, events=appended)
    return appended


@app.task(base=RedisRetryTask, name="leadroute.rates_refresh", bind=True, max_retries=0)
def rates_refresh(self: Task) -> str | None:
    """Rebuild the performance_weighted pools' rate table from the ledger; its version (None: no pool learns)."""
    rt = get_runtime()
    table = rates_step.refresh(rt.store, rt.ledger, rt.config)
    if table is not None:
        log.info("rates_refreshed", version=table.version, keys=len(table.counts))
    return table.version if table is not None else None


@app.task(base=RedisRetryTask, name="leadroute.pipeline_refresh", bind=True, max_retries=0)
def pipeline_refresh(self: Task) -> dict[str, int]:
    """Count open opportunities per rep in each CRM for least_loaded pools that weigh them; reps counted per CRM."""
    done = pipeline_step.refresh(get_runtime())
    if done:
        log.info("pipeline_refreshed", reps=done)
    return done


@app.task(base=RedisRetryTask, name="leadroute.ledger_prune", bind=True, max_retries=0)
def ledger_prune(self: Task) -> int:
    """Apply the ledger's retention (``worker.ledger_retention``) once a day; with none set, keep everything."""
    rt = get_runtime()
    deleted = ledger_step.apply_retention(rt.ledger, rt.config.model.worker.ledger_retention)
    if deleted:
        log.info("ledger_pruned", deleted=deleted)
    return deleted
