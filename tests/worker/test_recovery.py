"""Fast recovery: a drain keeps its batch while it works, loses it within seconds when it dies, and
a Redis connection error retries the task (with backoff) instead of leaving the batch to its lease.

Against the sandbox CRM and a real Redis. Leases are shortened to fractions of a second; where a test
must see a lease run out it waits for exactly that, never for a fixed time.
"""

from __future__ import annotations

import os
import subprocess
import threading
import time
from collections import Counter
from collections.abc import Callable
from types import SimpleNamespace
from typing import Any

import pytest
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from connectors.base import RetriableError
from tests.worker.conftest import routing_test_config
from tests.worker.test_e2e import (  # the e2e suite's process stack, as is
    RABBITMQ_URL,
    Sink,
    Stack,
    decided,
    purge_rabbitmq_queues,
    wait_until,
)
from tests.worker.test_pipeline import drain, load_leads
from worker.app import tasks
from worker.app.runtime import Runtime
from worker.devtools.synthetic import synthetic_leads
from worker.domain.leads import LeadRef
from worker.routing.state import Candidate, RoutingState, Strategy
from worker.steps import handoffs, liveness, route
from worker.store.decisions import DecisionBusy

LEASE = 0.6  # seconds: the heartbeat renews it every 0.2 s


def wait_for(check: Callable[[], bool], timeout: float, what: str) -> float:
    """Poll ``check`` until it holds; returns the seconds it took."""
    start = time.monotonic()
    while not check():
        if time.monotonic() - start > timeout:
            raise AssertionError(f"not within {timeout}s: {what}")
        time.sleep(0.01)
    return time.monotonic() - start


@pytest.fixture
def short_lease(monkeypatch: pytest.MonkeyPatch) -> float:
    monkeypatch.setattr(route, "LEASE_SECONDS", LEASE)
    return LEASE


def test_the_default_pending_lease_is_short() -> None:
    if "LEADROUTE_PENDING_LEASE" not in os.environ:
        assert route.LEASE_SECONDS == 15.0
    assert tasks.DRAIN_LOCK_TTL == route.LEASE_SECONDS  # the slot frees with the batch


class Killed(BaseException):
    """A drain killed (-9) while deciding: nothing after this point of it runs."""


def test_a_dead_drains_decision_leases_run_out_before_its_batch_can_be_claimed_again(
    redis_url: str, redis_prefix: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A drain killed mid-decision leaves its leads' decision leases behind; the drain that takes the batch over
    # after its pending lease waits for them, asleep in its slot. With the store's default (30 s) that held the
    # killed drain's leads 30 s after the kill, and a CRM's only drain slot 10-15 s after a CRM outage ended
    monkeypatch.setenv("REDIS_URL", redis_url)
    monkeypatch.setenv("LEADROUTE_PREFIX", redis_prefix)
    rt = Runtime.build(routing_test_config()[1])  # the store as a worker process builds it
    monkeypatch.setattr(type(rt.store), "_release_leases", lambda *_: None)  # the kill: no cleanup runs

    def dies(_: Any) -> dict[str, Any]:
        raise Killed

    keys = [LeadRef("hubspot", "contacts", str(n)).at(0) for n in range(3)]
    with pytest.raises(Killed):
        rt.store.decide_many([(key, dies) for key in keys])
    left = [rt.store.client.pttl(rt.store.keys.lease(key)) / 1000 for key in keys]
    assert all(ttl > 0 for ttl in left)  # the leases are there, as a dead drain leaves them ...
    # ... and run out before the batch is claimable again: its lease, renewed every third of it, runs out at the
    # earliest two thirds of it after the death
    assert max(left) <= route.LEASE_SECONDS * 2 / 3
    rt.close()


def test_the_decision_leases_of_a_drain_that_died_on_this_host_are_freed_at_once_and_its_picks_replayed(
    redis_url: str, redis_prefix: str, monkeypatch: pytest.MonkeyPatch, other_process: subprocess.Popen[bytes]
) -> None:
    # ... while a drain that died here (its batch released at once by the restarted worker) leaves no such wait:
    # the next decider sees the lease's process is gone, frees the lease and replays the dead drain's journal
    monkeypatch.setenv("REDIS_URL", redis_url)
    monkeypatch.setenv("LEADROUTE_PREFIX", redis_prefix)
    rt = Runtime.build(routing_test_config()[1])
    team = [Candidate("ann"), Candidate("bob")]

    def picks(then_dies: bool) -> Callable[[RoutingState], dict[str, Any]]:
        def compute(state: RoutingState) -> dict[str, Any]:
            rep = state.pick("inbound", Strategy.ROUND_ROBIN, ["ann", "bob"], team).rep_id
            if then_dies:
                raise Killed  # after its claim was made and journaled
            return {"owner": rep}

        return compute

    try:
        dead_token = f"{liveness.process_name(other_process.pid)}#decide"
        real_release = type(rt.store)._release_leases
        monkeypatch.setattr(rt.store, "_lease_token", lambda: dead_token)
        monkeypatch.setattr(type(rt.store), "_release_leases", lambda *_: None)  # the kill: no cleanup runs
        key = LeadRef("hubspot", "contacts", "1").at(0)
        with pytest.raises(Killed):
            rt.store.decide_many([(key, picks(then_dies=True))])
        claimed = rt.store.all_loads()
        assert sum(claimed.values()) == 1  # one rep claimed, and the drain died before recording it
        monkeypatch.setattr(rt.store, "_lease_token", liveness.token)
        monkeypatch.setattr(type(rt.store), "_release_leases", real_release)

        with pytest.raises(DecisionBusy):  # its process still runs: the lease is its own
            rt.store.decide_once(key, picks(then_dies=False), wait=1.5)
        other_process.kill()
        other_process.wait()
        decided = rt.store.decide_once(key, picks(then_dies=False), wait=3.0)  # not the lease's 10 s
        assert decided.fresh and claimed == {decided.decision["owner"]: 1}  # the journaled pick, not a new claim
        assert rt.store.all_loads() == claimed
    finally:
        rt.close()


def test_a_drain_that_keeps_renewing_keeps_its_batch_past_the_lease(
    make_runtime: Callable[..., Runtime], admin: Any, short_lease: float, monkeypatch: pytest.MonkeyPatch
) -> None:
    rt = make_runtime()
    ids = load_leads(rt, admin, 3)["hubspot"]["ids"]
    route.poll(rt, "hubspot")
    conn = rt.connector("hubspot")
    fetch, entered, release = conn.fetch, threading.Event(), threading.Event()

    def slow_fetch(record_ids: list[str]) -> Any:  # a CRM call far longer than the lease
        entered.set()
        release.wait(30)
        return fetch(record_ids)

    monkeypatch.setattr(conn, "fetch", slow_fetch)
    beats: list[float] = []
    enough = threading.Event()

    def on_beat() -> None:
        beats.append(time.monotonic())
        if len(beats) >= 9:  # three leases' worth of renewals
            enough.set()

    result: dict[str, Any] = {}
    worker = threading.Thread(target=lambda: result.setdefault("report", route.route_pending(
        rt, "hubspot", limit=100, on_beat=on_beat)))
    worker.start()
    try:
        assert entered.wait(10)
        claimed_at = time.monotonic()
        assert enough.wait(10), "the drain stopped renewing its lease"
        assert time.monotonic() - claimed_at > 2 * short_lease
        assert rt.pending.due("hubspot") == 0  # still held, two leases later
        assert not route.route_pending(rt, "hubspot", limit=100).handled  # a second drain finds nothing to take
    finally:
        release.set()
        worker.join(30)
    handled = result["report"].handled
    assert set(ids) <= {h.lead_id for h in handled}
    assert Counter(h.outcome for h in handled) == {"written": len(handled)}
    assert rt.pending.depth("hubspot") == 0


def test_a_claimed_batch_whose_drain_died_is_routed_by_the_next_drain_after_the_short_lease(
    make_runtime: Callable[..., Runtime], admin: Any, short_lease: float
) -> None:
    rt = make_runtime()
    ids = load_leads(rt, admin, 3)["hubspot"]["ids"]
    route.poll(rt, "hubspot")
    dead = rt.pending.claim("hubspot", 100, short_lease)  # claimed, then the worker was killed: no heartbeat
    assert set(ids) <= {i.record_id for i in dead}
    assert not route.route_pending(rt, "hubspot", limit=100).handled  # leased: not yet
    waited = wait_for(lambda: rt.pending.due("hubspot") > 0, 10, "the dead drain's lease to run out")
    assert waited < short_lease + 0.5
    handled = drain(rt, "hubspot")
    assert set(ids) <= {h.lead_id for h in handled}
    assert Counter(h.outcome for h in handled) == {"written": len(handled)}


def polled(make_runtime: Callable[..., Runtime], admin: Any) -> tuple[Runtime, list[str]]:
    """A runtime whose pending set holds three HubSpot leads just polled, and their ids."""
    rt = make_runtime()
    ids = load_leads(rt, admin, 3)["hubspot"]["ids"]
    route.poll(rt, "hubspot")
    return rt, ids


def test_a_drain_whose_process_died_on_this_host_has_its_batch_and_slot_released_at_once(
    make_runtime: Callable[..., Runtime], admin: Any, monkeypatch: pytest.MonkeyPatch,
    other_process: subprocess.Popen[bytes],
) -> None:
    # kill -9 of a worker: its drain's batch and slot stay leased for LEADROUTE_PENDING_LEASE (15 s) unless the
    # restarted worker, on the same host, sees that the process holding them is gone and frees them at once
    rt, ids = polled(make_runtime, admin)
    proc = other_process  # the drain's
    holder = f"{liveness.process_name(proc.pid)}#batch"
    claimed = {i.record_id: i.held_until for i in rt.pending.claim("hubspot", 100, 60.0)}
    keeper = route.LeaseKeeper(rt, "hubspot", claimed, lease=60.0, interval=3600, holder=holder)
    try:
        keeper.__enter__()  # the drain at work: its batch recorded under its process ...
        keeper.beat(now=time.time() + 1)  # ... and recorded again as each heartbeat renews it
        for lock in ("drain:hubspot:0", route.poll_lock("hubspot"), handoffs.owned_lock("hubspot")):
            assert rt.store.acquire_lock(lock, ttl=60, token=holder)
        other_host = "elsewhere/boot/pid:[1]/1/1#batch"  # a drain on another host: only its lease can tell
        rt.pending.record_holder("hubspot", other_host, {"elsewhere-id": time.time() + 60})
        assert route.release_dead_holders(rt, "hubspot", locks=["drain:hubspot:0"]) == []  # alive: left alone
        assert rt.pending.due("hubspot") == 0
        assert rt.store.lock_owners(["drain:hubspot:0"]) == {"drain:hubspot:0": holder}
        keeper.stop()
        proc.kill()  # the drain dies: nothing of it runs any more
        proc.wait()
        monkeypatch.setattr(tasks, "get_runtime", lambda: rt)
        routed = tasks.drain.apply(args=("hubspot",)).get()  # the next drain, in the restarted worker
        assert routed >= len(ids) and rt.pending.depth("hubspot") == 0  # now, not in 60 s
        assert rt.store.lock_owners(["drain:hubspot:0", route.poll_lock("hubspot"), handoffs.owned_lock("hubspot")]) == {}
        assert set(rt.pending.holders("hubspot")) == {other_host}
    finally:
        keeper.stop()


def test_a_batch_record_whose_leases_ran_out_is_dropped(make_runtime: Callable[..., Runtime]) -> None:
    rt = make_runtime()
    rt.pending.record_holder("hubspot", "elsewhere/boot/pid:[1]/1/1#old", {"a": time.time() - 1})
    assert route.release_dead_holders(rt, "hubspot") == []
    assert rt.pending.holders("hubspot") == {}


def test_a_working_drain_records_its_batch_under_its_process_and_forgets_it_when_done(
    make_runtime: Callable[..., Runtime], admin: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    rt, ids = polled(make_runtime, admin)
    seen: list[dict[str, dict[str, float]]] = []
    real_run = route._Batch.run

    def run(batch: Any) -> Any:
        seen.append(rt.pending.holders("hubspot"))  # while the batch is worked on
        return real_run(batch)

    monkeypatch.setattr(route._Batch, "run", run)
    assert set(ids) <= {h.lead_id for h in route.route_pending(rt, "hubspot", limit=100).handled}
    ((holder, held),) = seen[0].items()
    assert holder.partition("#")[0] == liveness.this_process() and set(ids) <= set(held)
    assert rt.pending.holders("hubspot") == {}


@pytest.mark.parametrize("error", [RedisConnectionError("Connection refused"), RedisTimeoutError("Timeout reading")])
def test_a_batch_that_fails_on_a_redis_error_is_given_back_at_once(
    make_runtime: Callable[..., Runtime], admin: Any, monkeypatch: pytest.MonkeyPatch, error: Exception
) -> None:
    rt = make_runtime()
    load_leads(rt, admin, 3)
    route.poll(rt, "hubspot")
    due = rt.pending.due("hubspot")

    def redis_went_away(*_: Any, **__: Any) -> Any:
        raise error

    monkeypatch.setattr(rt.store, "written", redis_went_away)
    with pytest.raises(type(error)):
        route.route_pending(rt, "hubspot", limit=100)
    assert rt.pending.due("hubspot") == due  # not leased for LEASE_SECONDS: claimable now


def test_redis_errors_back_off_exponentially_with_jitter_up_to_a_cap() -> None:
    low = [tasks.redis_backoff(n, jitter=0.0) for n in range(9)]
    high = [tasks.redis_backoff(n, jitter=1.0) for n in range(9)]
    assert high == [0.25, 0.5, 1.0, 2.0, 4.0, 4.0, 4.0, 4.0, 4.0]
    assert low == [h / 2 for h in high]
    assert all(low[n] <= tasks.redis_backoff(n) <= high[n] for n in range(9))


def test_a_task_whose_crm_call_gave_up_is_retried_within_seconds_of_the_crm_coming_back() -> None:
    # A manual re-route during a CRM outage: the connector already paused between its own tries, so the task's
    # retries wait 1, 2, 4, then at most 8 s (they once doubled to 60 s, long after the CRM was back) ...
    def delay(retries: int, retry_after: float | None = None) -> float:
        task = SimpleNamespace(request=SimpleNamespace(retries=retries))
        return tasks._retry_delay(task, RetriableError("503", crm="salesforce", retry_after=retry_after))

    assert [delay(n) for n in range(8)] == [1.0, 2.0, 4.0, 8.0, 8.0, 8.0, 8.0, 8.0]
    assert delay(9, retry_after=30.0) == 30.0  # ... unless the CRM says how long to wait


def test_every_task_retries_redis_connection_errors() -> None:
    ours = [t for name, t in tasks.app.tasks.items() if name.startswith("leadroute.")]
    assert ours and all(isinstance(t, tasks.RedisRetryTask) for t in ours)


def test_a_task_that_never_retries_still_retries_a_redis_restart(monkeypatch: pytest.MonkeyPatch) -> None:
    """The SLA sweep has no retries of its own (beat runs it again); a Redis error is retried all the same."""
    calls: list[int] = []
    delays: list[float] = []

    class Report:
        def lines(self) -> list[str]:
            return []

        def to_dict(self) -> dict[str, Any]:
            return {"swept": len(calls)}

    class Sla:
        def sweep(self) -> Report:
            calls.append(1)
            if len(calls) < 3:
                raise RedisConnectionError("Error 111 connecting to redis:6379. Connection refused.")
            return Report()

    class Rt:
        sla = Sla()

    real_backoff = tasks.redis_backoff
    monkeypatch.setattr(tasks, "get_runtime", lambda: Rt())
    monkeypatch.setattr(tasks, "redis_backoff", lambda n: delays.append(real_backoff(n, jitter=1.0)) or delays[-1])
    assert tasks.sla_sweep.apply().get() == {"swept": 3}
    assert delays == [0.25, 0.5]


def test_redis_errors_are_retried_only_so_often(monkeypatch: pytest.MonkeyPatch) -> None:
    class Sla:
        def sweep(self) -> Any:
            raise RedisConnectionError("Connection refused")

    class Rt:
        sla = Sla()

    monkeypatch.setattr(tasks, "get_runtime", lambda: Rt())
    monkeypatch.setattr(tasks, "redis_backoff", lambda n: 0.0)
    result = tasks.sla_sweep.apply()
    assert isinstance(result.result, RedisConnectionError)
    assert result.failed()


def test_a_drain_that_fails_during_a_redis_restart_is_retried_and_routes_its_batch(
    make_runtime: Callable[..., Runtime], admin: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    rt = make_runtime()
    ids = load_leads(rt, admin, 3)["hubspot"]["ids"]
    route.poll(rt, "hubspot")
    written, failures = rt.store.written, [RedisConnectionError("Connection reset by peer")]

    def flaky_written(*args: Any, **kwargs: Any) -> Any:  # Redis restarts under the first attempt
        if failures:
            raise failures.pop()
        return written(*args, **kwargs)

    monkeypatch.setattr(rt.store, "written", flaky_written)
    monkeypatch.setattr(tasks, "get_runtime", lambda: rt)
    monkeypatch.setattr(tasks, "redis_backoff", lambda n: 0.0)
    routed = tasks.drain.apply(args=("hubspot",)).get()
    assert routed >= len(ids) and not failures
    assert rt.pending.depth("hubspot") == 0
    assert rt.store.acquire_lock("drain:hubspot:0", ttl=1) is not None  # the slot was freed, not left to expire


def redis_away_for(down: dict[str, int], target: Any, name: str, only: Callable[..., bool] = lambda *a: True) -> None:
    """Make ``target.name`` raise a Redis connection error for its next ``down[name]`` calls that ``only``
    accepts (Redis away), counting them down in ``down``, then behave as before."""
    real = getattr(target, name)

    def call(*args: Any, **kwargs: Any) -> Any:
        if down[name] and only(*args):
            down[name] -= 1
            raise RedisConnectionError("Connection refused")
        return real(*args, **kwargs)

    setattr(target, name, call)


def test_a_drain_whose_slot_cannot_be_freed_while_redis_is_away_frees_it_on_its_retry(
    make_runtime: Callable[..., Runtime], admin: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Redis goes away mid-batch and stays away through the drain's attempts to free its slot: without the
    # retry freeing it, every drain would wait out the slot's lock (15 s) once Redis is back
    rt = make_runtime()
    ids = load_leads(rt, admin, 3)["hubspot"]["ids"]
    route.poll(rt, "hubspot")
    down = {"written": 1, "release_lock": 4}  # the drain slot's: more than _release_slot tries
    redis_away_for(down, rt.store, "written")
    redis_away_for(down, rt.store, "release_lock", only=lambda name, *rest: str(name).startswith("drain:"))
    monkeypatch.setattr(tasks, "get_runtime", lambda: rt)
    monkeypatch.setattr(tasks, "redis_backoff", lambda n: 0.0)
    routed = tasks.drain.apply(args=("hubspot",)).get()
    assert routed >= len(ids) and down == {"written": 0, "release_lock": 0}
    assert rt.pending.depth("hubspot") == 0
    assert rt.store.acquire_lock("drain:hubspot:0", ttl=1) is not None  # freed by the retry, not left to expire


def test_a_batch_that_cannot_be_given_back_while_redis_is_away_is_given_back_by_the_retry(
    make_runtime: Callable[..., Runtime], admin: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    # the batch's lease (15 s) would otherwise hold its leads after Redis is back
    rt = make_runtime()
    ids = load_leads(rt, admin, 3)["hubspot"]["ids"]
    route.poll(rt, "hubspot")
    down = {"written": 1, "give_back": 5}  # more than the lease keeper's four tries
    redis_away_for(down, rt.store, "written")
    redis_away_for(down, rt.pending, "give_back")
    monkeypatch.setattr(route.time, "sleep", lambda seconds: None)  # the keeper's waits between tries
    monkeypatch.setattr(tasks, "get_runtime", lambda: rt)
    monkeypatch.setattr(tasks, "redis_backoff", lambda n: 0.0)
    routed = tasks.drain.apply(args=("hubspot",)).get()
    assert routed >= len(ids) and down == {"written": 0, "give_back": 0}
    assert rt.pending.depth("hubspot") == 0  # routed now, not after the lease


# ------------------------------------------------------------------------------ real processes

KILL_LEASE = 60.0  # LEADROUTE_PENDING_LEASE for the worker: long, so a batch taken up early was released, not lapsed


@pytest.mark.parametrize("broker", ["redis", "rabbitmq"])
def test_a_killed_workers_batch_is_routed_by_the_restarted_worker_at_once_not_when_its_lease_runs_out(
    broker: str, tmp_path: Any, sandbox: Any, admin: Any, redis_url: str, redis_client: Any, redis_prefix: str,
    make_runtime: Callable[..., Runtime],
) -> None:
    """kill -9 a real worker while its drain holds a batch (the CRM is slowed so the kill lands mid-batch);
    the worker restarted on the same host sees the batch's process is gone and routes the batch at once,
    long before its lease would have run out, and only once; on either broker."""
    sink = Sink()
    rabbitmq = RABBITMQ_URL if broker == "rabbitmq" else None
    if rabbitmq:
        purge_rabbitmq_queues(rabbitmq)
    s = Stack(tmp_path, sandbox, redis_url, redis_prefix, sink, broker_url=rabbitmq)
    s.env["LEADROUTE_PENDING_LEASE"] = str(KILL_LEASE)
    rt = make_runtime(s.config)
    pending = rt.store.key("pending", "salesforce")
    try:
        admin.patch_faults(latency_ms=400, apis=["salesforce"])  # each CRM call takes 0.4 s
        ids = s.feeder.load("salesforce", synthetic_leads(300, seed=21))
        s.start("worker", "beat")
        leased: list[str] = []

        def a_batch_is_leased() -> bool:
            held = rt.store.client.zrangebyscore(pending, time.time() + 0.5, "+inf")
            leased[:] = [i for i in held if i in set(ids)]
            return len(leased) > 1  # a batch, not a lone first lead

        wait_until(a_batch_is_leased, 120, s, "a drain to claim a batch")
        s.kill("worker")
        killed = time.monotonic()
        assert decided(rt, "salesforce", leased) < len(leased), "the kill came too late to test anything"
        s.start("worker")
        wait_until(lambda: decided(rt, "salesforce", leased) == len(leased), KILL_LEASE / 2, s, "the dead drain's batch")
        taken_up = time.monotonic() - killed
        wait_until(lambda: decided(rt, "salesforce", ids) == len(ids), 120, s, "every owner")
        print(f"\nkill -9 -> the dead drain's {len(leased)} leads routed: {taken_up:.1f} s (lease {KILL_LEASE:.0f} s)")
        assert taken_up < KILL_LEASE / 2  # a worker start and one slowed batch, not the lease
        for rid in ids:  # routed once: one decision per lead
            assert len(rt.store.decisions_for_lead(LeadRef("salesforce", rt.object_name("salesforce"), rid))) == 1
    finally:
        s.stop()
        sink.server.shutdown()
        if rabbitmq:
            purge_rabbitmq_queues(rabbitmq)
