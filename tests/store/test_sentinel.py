"""Redis Sentinel URLs for the state store and the Celery broker, against real servers.

A master, a replica and a sentinel (``redis-server --sentinel``) run in a temporary directory.
The store finds the master through the sentinel, keeps working across a failover
(``SENTINEL FAILOVER``), and the app's broker URL reaches the same master through kombu's
sentinel transport.
"""

from __future__ import annotations

import json
import subprocess
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import redis
from kombu import Connection
from redis.sentinel import Sentinel

from worker.app.broker import BROKER_ENV, broker_url, configured_broker_url, is_redis, sentinel_options
from worker.store.client import RedisUnavailable, client_from_url, redact_url
from worker.store.connection import describe_client, free_port, redis_server_binary
from worker.store.redis_store import RedisStore
from worker.store.sentinel import SentinelUrl, parse_sentinel_url

SERVICE = "leadroute-state"


def wait_for(check: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            if check():
                return
        except (redis.RedisError, OSError):
            pass  # not up yet
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {timeout}s: {what}")
        time.sleep(0.05)


@dataclass
class Group:
    master: int
    replica: int
    sentinel: int
    procs: dict[int, subprocess.Popen[bytes]] = field(default_factory=dict)  # by port

    @property
    def url(self) -> str:
        return f"redis+sentinel://127.0.0.1:{self.sentinel}/{SERVICE}/3"

    def ask(self) -> redis.Redis:
        return redis.Redis(port=self.sentinel, decode_responses=True, socket_timeout=2)

    def manager(self) -> Sentinel:
        return Sentinel([("127.0.0.1", self.sentinel)], socket_timeout=2)

    def master_port(self) -> int:
        return int(self.manager().discover_master(SERVICE)[1])


@pytest.fixture(scope="module")
def group(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Group]:
    """One master, one replica of it, one sentinel watching them (quorum 1)."""
    root: Path = tmp_path_factory.mktemp("sentinel")
    binary = str(redis_server_binary(prefer_path=True))
    g = Group(free_port(), free_port(), free_port())

    def start(name: str, port: int, *args: str) -> None:
        work = root / name
        work.mkdir()
        log = (root / f"{name}.log").open("wb")
        g.procs[port] = subprocess.Popen([binary, *args], cwd=work, stdout=log, stderr=subprocess.STDOUT)

    plain = ("--bind", "127.0.0.1", "--save", "", "--appendonly", "no")
    start("master", g.master, "--port", str(g.master), *plain, "--repl-diskless-sync-delay", "0")
    start("replica", g.replica, "--port", str(g.replica), *plain, "--replicaof", "127.0.0.1", str(g.master))
    conf = root / "sentinel.conf"
    conf.write_text(f"port {g.sentinel}\nbind 127.0.0.1\nsentinel monitor {SERVICE} 127.0.0.1 {g.master} 1\n"
                    f"sentinel known-replica {SERVICE} 127.0.0.1 {g.replica}\n"  # no 10 s wait to discover it
                    f"sentinel down-after-milliseconds {SERVICE} 1000\nsentinel failover-timeout {SERVICE} 5000\n")
    start("sentinel", g.sentinel, str(conf), "--sentinel")
    try:
        wait_for(lambda: g.master_port() == g.master, 10, "the sentinel knows the master")
        wait_for(lambda: redis.Redis(port=g.replica).info("replication")["master_link_status"] == "up", 10,
                 "the replica is in sync")
        wait_for(lambda: ("127.0.0.1", g.replica) in g.manager().discover_slaves(SERVICE), 15,
                 "the sentinel knows the replica")
        yield g
    finally:
        for proc in g.procs.values():
            proc.terminate()
        for proc in g.procs.values():
            proc.wait(timeout=10)


def test_a_sentinel_url_names_the_sentinels_the_service_and_the_database() -> None:
    assert parse_sentinel_url("redis+sentinel://:s3cret@10.0.0.1:26379,10.0.0.2,[::1]:26380/mymaster/2") == SentinelUrl(
        (("10.0.0.1", 26379), ("10.0.0.2", 26379), ("::1", 26380)), "mymaster", 2, None, "s3cret")
    assert parse_sentinel_url("sentinel://h:1/m?sentinel_password=x") == SentinelUrl((("h", 1),), "m", 0,
                                                                                       sentinel_password="x")
    assert parse_sentinel_url("rediss+sentinel://u:p@h/m/0").ssl
    for bad, why in (("redis+sentinel://h:1", "service"), ("redis+sentinel:///m", "sentinel host"),
                     ("redis+sentinel://h:x/m", "port"), ("redis+sentinel://h/m/zero", "service_name")):
        with pytest.raises(ValueError, match=why):
            parse_sentinel_url(bad)
    with pytest.raises(RedisUnavailable, match="service"):
        client_from_url("redis+sentinel://h:1")
    assert redact_url("redis+sentinel://:s3cret@a:1,b:2/m/0") == "redis+sentinel://:***@a:1,b:2/m/0"


def test_the_broker_gets_one_kombu_sentinel_url_per_sentinel_and_the_master_name() -> None:
    env = {"REDIS_URL": "redis+sentinel://:pw@a:26379,b:26380/mymaster/1?sentinel_password=sp"}
    assert configured_broker_url(env) == "sentinel://:pw@a:26379/1;sentinel://:pw@b:26380/1"
    assert sentinel_options(env) == {"master_name": "mymaster", "sentinel_kwargs": {"password": "sp"}}
    assert is_redis(broker_url(env["REDIS_URL"]))  # the visibility timeout applies
    assert sentinel_options({"REDIS_URL": "redis://a:6379/0"}) == {}
    assert sentinel_options({BROKER_ENV: "amqp://guest:guest@h//", "REDIS_URL": env["REDIS_URL"]}) == {}


def test_the_store_finds_the_master_through_the_sentinel_and_follows_a_failover(group: Group) -> None:
    store = RedisStore.connect(group.url, prefix="sentinel-test")
    store.clear()
    assert describe_client(store.client) == f"redis+sentinel://<sentinels>/{SERVICE}/3"
    marker = store.stamp_state("ledger")
    store.adjust_load("ann", 1)
    store.adjust_load("ann", 1)
    assert redis.Redis(port=group.master, db=3).hget("sentinel-test:loads", "ann") == b"2"  # the master holds it
    assert store.client.wait(1, 2000) == 1  # the replica has it too

    before = group.master_port()
    wait_for(lambda: group.ask().execute_command("SENTINEL", "FAILOVER", SERVICE) in (True, "OK", b"OK"), 20,
             "the sentinel accepts a failover")
    wait_for(lambda: group.master_port() != before, 20, "the replica is promoted")
    group.procs[before].kill()  # and the old master's host is gone: the client's connections to it break

    assert store.adjust_load("ann", 1) == 3  # the same client, now on the new master: nothing lost
    assert store.state_marker() == marker
    assert redis.Redis(port=group.master_port(), db=3).hget("sentinel-test:loads", "ann") == b"3"
    store.clear()


def test_the_app_sends_its_tasks_through_the_sentinel(group: Group, monkeypatch: pytest.MonkeyPatch) -> None:
    from worker.app.celery_app import make_app  # the app resolves its broker from the environment when made

    monkeypatch.setenv("REDIS_URL", group.url)
    monkeypatch.delenv(BROKER_ENV, raising=False)
    app = make_app()
    assert app.conf.broker_url == f"sentinel://127.0.0.1:{group.sentinel}/3"
    assert app.conf.broker_transport_options["master_name"] == SERVICE
    route = next(q for q in app.conf.task_queues if q.name == "route")
    with Connection(app.conf.broker_url, transport_options=app.conf.broker_transport_options) as conn:
        queue = conn.SimpleQueue(route)
        queue.clear()
        try:
            app.send_task("leadroute.drain", args=("hubspot",))
            message = queue.get(timeout=10)
            message.ack()
            assert message.headers["task"] == "leadroute.drain"
            assert json.loads(message.body)[0] == ["hubspot"]
        finally:
            queue.clear()
            queue.close()
            app.close()
    assert redis.Redis(port=group.master_port(), db=3).exists("_kombu.binding.route")  # on the master, db 3
