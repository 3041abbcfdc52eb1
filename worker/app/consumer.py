"""The worker's broker consumer: Celery's own, but quick to reconnect to a broker that went away.

Celery's consumer reconnects through kombu's ``ensure_connection`` with kombu's fixed intervals:
the first retry two seconds after the first failure, then 4, 6 ... up to 30 s. When the broker is the
Redis that restarts in a second (an upgrade, a failover, the chaos run in ``bench/chaos.py``), that
first wait alone held routing for about 2.5 s after Redis was back. This consumer tries again after a
quarter of a second, then every half second more, never waiting more than 5 s between tries: a broker
that stays away costs a few more connection attempts, one that comes back is used at once.
"""

from __future__ import annotations

from typing import Any

from celery.worker.consumer import Consumer

RECONNECT = {"interval_start": 0.25, "interval_step": 0.5, "interval_max": 5.0}


class PromptReconnectConsumer(Consumer):
    """Celery's consumer with :data:`RECONNECT` as the broker reconnection intervals (``worker_consumer``)."""

    def ensure_connected(self, conn: Any) -> Any:
        """Connect (or reconnect) to the broker, retrying at :data:`RECONNECT`'s intervals."""
        ensure = conn.ensure_connection

        def promptly(*args: Any, **kwargs: Any) -> Any:
            return ensure(*args, **{**kwargs, **RECONNECT})

        conn.ensure_connection = promptly
        return super().ensure_connected(conn)
