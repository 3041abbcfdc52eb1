"""What every part of the store shares: the client, the key names, the Lua scripts, encodings."""

from __future__ import annotations

import json
import time
from datetime import UTC, date, datetime
from decimal import Decimal
from enum import Enum
from importlib import resources
from pathlib import Path
from typing import Any

import redis
from redis.commands.core import Script

from worker.store.keys import Keys

DAY = 86_400.0


def lua_source(name: str) -> str:
    """The text of ``worker/store/lua/<name>.lua``."""
    return resources.files("worker.store").joinpath("lua", f"{name}.lua").read_text()


def _json_default(value: Any) -> Any:
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, Enum):
        return value.value
    if isinstance(value, set | frozenset | tuple):
        return list(value)
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, Decimal):
        return float(value)
    raise TypeError(f"{type(value).__name__} is not JSON serialisable")


_ENCODER = json.JSONEncoder(separators=(",", ":"), default=_json_default)  # built once: a third of a small dumps


def dumps(value: Any) -> str:
    """Compact JSON, as every value the store writes is encoded."""
    return _ENCODER.encode(value)


def stream_time(entry_id: str) -> datetime:
    """When a stream entry was added, from its id."""
    return datetime.fromtimestamp(int(entry_id.split("-", 1)[0]) / 1000, UTC)


def epoch_seconds(when: float | datetime | None) -> float:
    """Epoch seconds of an aware datetime or a number; now for None."""
    if when is None:
        return time.time()
    if isinstance(when, datetime):
        if when.tzinfo is None:
            raise ValueError("naive datetime: give an aware datetime (UTC) or epoch seconds")
        return when.timestamp()
    return float(when)


def stream_id(when: datetime | None, default: str) -> str:
    """A stream id bound for XRANGE: ``default`` for None, else the time in milliseconds."""
    return default if when is None else str(int(epoch_seconds(when) * 1000))


class StoreBase:
    """The parts the store's concerns share; :class:`~worker.store.redis_store.RedisStore` combines them.

    ``client`` is the connection (``decode_responses=True``), ``keys`` names every key under
    ``prefix``, and ``_lua[name]`` runs ``lua/<name>.lua`` (EVALSHA, loaded on first use) for
    each name a concern lists in its ``LUA``.
    """

    LUA: tuple[str, ...] = ()

    client: redis.Redis
    prefix: str
    keys: Keys
    decision_ttl_ms: int
    log_maxlen: int
    lease_ms: int
    ledger_outbox: bool
    _lua: dict[str, Script]

    def __init__(self, client: redis.Redis, prefix: str) -> None:
        self.keys = Keys(prefix)
        self.client = client
        self.prefix = prefix
        names = dict.fromkeys(name for cls in reversed(type(self).__mro__) for name in vars(cls).get("LUA", ()))
        self._lua = {name: client.register_script(lua_source(name)) for name in names}

    def key(self, *parts: object) -> str:
        """A key under this store's prefix, ``<prefix>:<part>:...`` (for tests and tools).

        The worker's own keys are named in :class:`~worker.store.keys.Keys`; code outside
        the store never builds one.
        """
        return self.keys.key(*parts)

    def clear(self) -> int:
        """Delete every key under this prefix (tests, ``demo --reset``); returns how many."""
        deleted = 0
        batch: list[str] = []
        for name in self.client.scan_iter(match=self.keys.everything(), count=1000):
            batch.append(name)
            if len(batch) >= 500:
                deleted += int(self.client.unlink(*batch))
                batch.clear()
        if batch:
            deleted += int(self.client.unlink(*batch))
        return deleted
