"""Coordination between workers: short-lived locks with owner tokens, first-seen de-duplication."""

from __future__ import annotations

import contextlib
import time
import uuid
from collections.abc import Iterator, Sequence

from worker.store.base import StoreBase


class LockBusy(RuntimeError):
    """The lock is held by another owner."""


class LockStore(StoreBase):
    """Locks (``unlock.lua`` releases or extends one for its owner only) and first-seen marks."""

    LUA = ("unlock",)

    def acquire_lock(self, name: str, ttl: float, token: str | None = None) -> str | None:
        """Take a short-lived lock; returns the owner token, or None if another owner has it."""
        token = token or uuid.uuid4().hex
        ok = self.client.set(self.keys.lock(name), token, nx=True, px=max(1, int(ttl * 1000)))
        return token if ok else None

    def lock_owners(self, names: Sequence[str]) -> dict[str, str]:
        """The token that holds each of the locks ``names`` now (free ones are left out), in one round trip."""
        if not names:
            return {}
        owners = self.client.mget([self.keys.lock(name) for name in names])
        return {name: str(owner) for name, owner in zip(names, owners, strict=True) if owner is not None}

    def release_lock(self, name: str, token: str) -> bool:
        """Release a lock; only its owner can (True if released)."""
        return bool(self._lua["unlock"](keys=[self.keys.lock(name)], args=[token, ""]))

    def extend_lock(self, name: str, token: str, ttl: float) -> bool:
        """Reset a held lock's time to live to ``ttl``; only its owner can."""
        return bool(self._lua["unlock"](keys=[self.keys.lock(name)], args=[token, max(1, int(ttl * 1000))]))

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

    def first_seen(self, namespace: str, item_id: str, ttl: float) -> bool:
        """True the first time ``item_id`` is seen in ``namespace`` within ``ttl`` seconds."""
        return bool(self.client.set(self.keys.seen(namespace, item_id), "1", nx=True, px=max(1, int(ttl * 1000))))

    def forget_seen(self, namespace: str, item_id: str) -> bool:
        """Forget that ``item_id`` was seen (its handling failed: a redelivery must be taken); True if it was."""
        return bool(self.client.delete(self.keys.seen(namespace, item_id)))
