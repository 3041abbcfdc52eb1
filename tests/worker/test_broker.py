"""The broker: ``LEADROUTE_BROKER_URL`` (RabbitMQ, say) when set, else the Redis that holds the state."""

from __future__ import annotations

import json
import os

import pytest
from celery.utils.imports import symbol_by_name
from kombu import Connection

from worker.app.broker import BROKER_ENV, configured_broker_url, is_redis, transport_options
from worker.app.celery_app import make_app
from worker.app.consumer import PromptReconnectConsumer

RABBITMQ_URL = os.environ.get("LEADROUTE_TEST_RABBITMQ_URL", "amqp://guest:guest@127.0.0.1:5672//")


def test_leadroute_broker_url_wins_over_the_redis_that_holds_the_state() -> None:
    amqp = "amqp://guest:guest@rabbit:5672/leadroute"
    assert configured_broker_url({BROKER_ENV: amqp, "REDIS_URL": "redis://state:6379/0"}) == amqp
    assert configured_broker_url({BROKER_ENV: "unix:///run/redis.sock?db=2"}) == (
        "redis+socket:///run/redis.sock?virtual_host=2")


def test_without_it_the_broker_is_the_state_redis_or_left_to_the_embedded_one() -> None:
    assert configured_broker_url({"REDIS_URL": "rediss://:pw@state:6380/1"}) == "rediss://:pw@state:6380/1"
    assert configured_broker_url({"REDIS_URL": "unix:///run/redis.sock"}) == "redis+socket:///run/redis.sock?virtual_host=0"
    assert configured_broker_url({BROKER_ENV: "", "REDIS_URL": "redis://state:6379/0"}) == "redis://state:6379/0"
    assert configured_broker_url({}) is None


def test_the_visibility_timeout_is_an_option_of_the_redis_broker_only() -> None:
    assert is_redis("redis://h:6379/0") and is_redis("rediss://h") and is_redis("redis+socket:///s")
    assert not is_redis("amqp://guest:guest@h:5672//") and not is_redis("amqps://h")
    assert transport_options("redis://h:6379/0", 600) == {"visibility_timeout": 600}
    assert transport_options("amqp://guest:guest@h:5672//", 600) == {}


def test_the_app_sends_its_tasks_to_rabbitmq_and_keeps_redis_for_state(
    redis_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("REDIS_URL", redis_url)
    monkeypatch.setenv(BROKER_ENV, RABBITMQ_URL)
    monkeypatch.setenv("LEADROUTE_VISIBILITY_TIMEOUT", "10")
    app = make_app()
    assert app.conf.broker_url == RABBITMQ_URL
    assert "visibility_timeout" not in app.conf.broker_transport_options
    route = next(q for q in app.conf.task_queues if q.name == "route")
    with Connection(RABBITMQ_URL) as conn:
        queue = conn.SimpleQueue(route)  # declares it as the app does
        queue.clear()
        try:
            app.send_task("leadroute.drain", args=("hubspot",))
            message = queue.get(timeout=10)
            message.ack()
            assert message.headers["task"] == "leadroute.drain"
            args, kwargs, _ = json.loads(message.body)
            assert (args, kwargs) == (["hubspot"], {})
        finally:
            queue.clear()
            queue.close()
            app.close()


class RecordingConnection:
    """Stands in for kombu's Connection: records how the consumer asks it to (re)connect."""

    def __init__(self) -> None:
        self.calls: list[tuple[tuple, dict]] = []

    def ensure_connection(self, *args: object, **kwargs: object) -> RecordingConnection:
        self.calls.append((args, kwargs))
        return self


def test_the_worker_reconnects_to_a_lost_broker_within_a_quarter_second_not_kombus_two() -> None:
    app = make_app()
    assert symbol_by_name(app.conf.worker_consumer) is PromptReconnectConsumer  # what `celery worker` starts
    consumer = object.__new__(PromptReconnectConsumer)  # the method under test needs only these attributes
    consumer.app, consumer.first_connection_attempt, consumer.broker_connection_retry_attempt = app, False, 0
    conn = RecordingConnection()
    assert consumer.ensure_connected(conn) is conn
    ((args, kwargs),) = conn.calls
    assert (kwargs["interval_start"], kwargs["interval_step"], kwargs["interval_max"]) == (0.25, 0.5, 5.0)
    assert callable(args[0]) and args[1] == app.conf.broker_connection_max_retries  # Celery's own error handler and limit
    assert callable(kwargs["callback"])  # and its shutdown check between tries
