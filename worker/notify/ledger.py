"""Send once per channel: a retried task skips the channels that already delivered."""

from __future__ import annotations

from typing import Protocol

from worker.notify.channels import ChannelResult, Notifier, Outcome, SendReport
from worker.notify.messages import Message
from worker.notify.settings import DAY
from worker.observability import metrics


class SendLedger(Protocol):
    """What :func:`send_once` needs from the store (``worker.store.redis_store.RedisStore`` has it)."""

    def acquire_lock(self, name: str, ttl: float, token: str | None = None) -> str | None: ...

    def release_lock(self, name: str, token: str) -> bool: ...

    def extend_lock(self, name: str, token: str, ttl: float) -> bool: ...


def send_once(
    store: SendLedger,
    decision_id: str,
    notifier: Notifier,
    message: Message,
    *,
    claim_ttl: float = 120.0,
    done_ttl: float = 7 * DAY,
) -> SendReport:
    """Send ``message`` on each channel that has not already delivered it for ``decision_id``.

    A retried task (Celery redelivery, a retry after one channel failed) calls this again
    with the same ``decision_id``; channels that succeeded before report ``duplicate`` and
    are not sent twice, while failed ones are tried again. ``decision_id`` must be unique per
    message the caller means to send once (the decision key; add a suffix such as
    ``:reminder-2`` for a repeated ladder step); the kind is part of the key already.

    Per channel, two store keys: a short *in-flight* claim, so two workers never send at
    once (a worker that dies mid-send lets it lapse after ``claim_ttl``), and a *done* marker
    kept for ``done_ttl`` after success. Only a crash between a channel accepting the message
    and the marker being written can cause a repeat (at-least-once, never at-most-once).
    """
    results: dict[str, ChannelResult] = {}
    for name in notifier.names:
        base = f"notify:{decision_id}:{message.kind.value}:{name}"
        claim = store.acquire_lock(base + ":inflight", claim_ttl)
        if claim is None:
            results[name] = ChannelResult(name, Outcome.RETRIABLE, "being sent by another worker", claim_ttl)
            metrics.record_notification(name, message.kind.value, Outcome.RETRIABLE.value)
            continue
        try:
            done = store.acquire_lock(base + ":done", claim_ttl)
            if done is None:  # we hold the in-flight claim, so only a finished send can hold this
                results[name] = ChannelResult(name, Outcome.DUPLICATE, "already sent")
                metrics.record_notification(name, message.kind.value, Outcome.DUPLICATE.value)
                continue
            result = notifier.send_one(name, message)
            if result.outcome is Outcome.SENT:
                store.extend_lock(base + ":done", done, done_ttl)
            else:
                store.release_lock(base + ":done", done)
            results[name] = result
        finally:
            store.release_lock(base + ":inflight", claim)
    return SendReport(message.event_id, results)
