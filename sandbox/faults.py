"""Fault injection and rate limits.

Connectors must survive what real CRMs do under load — slow answers, 503s, 429s, expired
sessions, locked rows, dropped connections — so every one of these can be switched on from the
seed or the admin API, either as a rate (seeded RNG, reproducible) or as a scripted queue of
"the next N matching requests fail this way" for exact tests.
"""

from __future__ import annotations

import random
from collections import deque
from dataclasses import dataclass, field
from typing import Any

FAULT_KINDS = ("503", "429", "drop", "invalid_session", "lock_row")

DEFAULT_LIMITS: dict[str, dict[str, Any]] = {
    "salesforce": {
        "daily_api_requests": 100_000,
        "session_ttl_seconds": 7200,
        "query_batch_size": 2000,
        "collection_max": 200,
    },
    "hubspot": {
        "ten_second_limit": 190,
        "daily_limit": 625_000,
        "search_per_second": 5,
        "search_page_max": 200,
        "search_total_max": 10_000,
        "batch_max": 100,
        "association_batch_max": 1000,
        "association_page_max": 500,
    },
}


@dataclass
class ScriptedFault:
    kind: str
    api: str | None = None
    endpoint: str | None = None
    remaining: int = 1
    ids: list[str] = field(default_factory=list)

    def matches(self, api: str, endpoint: str) -> bool:
        if self.api and self.api != api:
            return False
        return not (self.endpoint and self.endpoint not in endpoint)

    def to_json(self) -> dict[str, Any]:
        return {"kind": self.kind, "api": self.api, "endpoint": self.endpoint, "remaining": self.remaining,
                "ids": self.ids}


@dataclass
class Faults:
    """The active fault configuration; :meth:`configure` accepts partial updates."""

    latency_ms: float = 0.0
    jitter_ms: float = 0.0
    error_503_rate: float = 0.0
    error_429_rate: float = 0.0
    drop_rate: float = 0.0
    lock_row_rate: float = 0.0
    lock_row_ids: set[str] = field(default_factory=set)
    apis: tuple[str, ...] = ("salesforce", "hubspot")
    endpoints: tuple[str, ...] = ()
    seed: int | None = None
    scripted: list[ScriptedFault] = field(default_factory=list)
    rng: random.Random = field(default_factory=random.Random)

    _FIELDS = ("latency_ms", "jitter_ms", "error_503_rate", "error_429_rate", "drop_rate", "lock_row_rate",
               "lock_row_ids", "apis", "endpoints", "seed")

    def reset(self) -> None:
        """Back to no faults at all."""
        self.__dict__.update(Faults().__dict__)

    def configure(self, body: dict[str, Any]) -> None:
        unknown = set(body) - set(self._FIELDS) - {"scripted"}
        if unknown:
            raise ValueError(f"unknown fault setting(s): {', '.join(sorted(unknown))}; known: "
                             f"{', '.join(self._FIELDS)}, scripted")
        for name in ("latency_ms", "jitter_ms"):
            if name in body:
                value = float(body[name])
                if value < 0:
                    raise ValueError(f"{name} must be >= 0")
                setattr(self, name, value)
        for name in ("error_503_rate", "error_429_rate", "drop_rate", "lock_row_rate"):
            if name in body:
                value = float(body[name])
                if not 0.0 <= value <= 1.0:
                    raise ValueError(f"{name} must be between 0 and 1")
                setattr(self, name, value)
        if "lock_row_ids" in body:
            self.lock_row_ids = {str(i) for i in body["lock_row_ids"]}
        if "apis" in body:
            apis = tuple(str(a) for a in body["apis"])
            bad = set(apis) - {"salesforce", "hubspot"}
            if bad:
                raise ValueError(f"apis must be 'salesforce' and/or 'hubspot', not {sorted(bad)}")
            self.apis = apis
        if "endpoints" in body:
            self.endpoints = tuple(str(e) for e in body["endpoints"] or ())
        if "seed" in body:
            self.seed = None if body["seed"] is None else int(body["seed"])
            self.rng = random.Random(self.seed)
        for item in body.get("scripted", []) or []:
            self.add_scripted(item)

    def add_scripted(self, item: dict[str, Any]) -> ScriptedFault:
        kind = str(item.get("kind", ""))
        if kind not in FAULT_KINDS:
            raise ValueError(f"fault kind must be one of {', '.join(FAULT_KINDS)}, not {kind!r}")
        count = int(item.get("count", 1))
        if count < 1:
            raise ValueError("count must be >= 1")
        api = item.get("api")
        if api not in (None, "salesforce", "hubspot"):
            raise ValueError("api must be 'salesforce' or 'hubspot'")
        fault = ScriptedFault(kind, api, item.get("endpoint"), count, [str(i) for i in item.get("ids", [])])
        self.scripted.append(fault)
        return fault

    def applies(self, api: str, endpoint: str) -> bool:
        if api not in self.apis:
            return False
        return not self.endpoints or any(e in endpoint for e in self.endpoints)

    def take_scripted(self, api: str, endpoint: str, kinds: tuple[str, ...]) -> ScriptedFault | None:
        """Consume one scripted fault of the given kinds matching this request, if queued."""
        for f in self.scripted:
            if f.kind in kinds and f.matches(api, endpoint):
                f.remaining -= 1
                if f.remaining <= 0:
                    self.scripted.remove(f)
                return f
        return None

    def take_lock(self, api: str, endpoint: str, record_id: str) -> bool:
        """Consume a scripted ``lock_row`` fault for this record (any record if it names no ids)."""
        for f in self.scripted:
            if f.kind == "lock_row" and f.matches(api, endpoint) and (not f.ids or record_id in f.ids):
                f.remaining -= 1
                if f.remaining <= 0:
                    self.scripted.remove(f)
                return True
        return False

    def roll(self, rate: float) -> bool:
        return rate > 0 and self.rng.random() < rate

    def latency_seconds(self) -> float:
        if not self.latency_ms and not self.jitter_ms:
            return 0.0
        return (self.latency_ms + self.rng.uniform(0, self.jitter_ms)) / 1000.0

    def to_json(self) -> dict[str, Any]:
        return {
            "latency_ms": self.latency_ms, "jitter_ms": self.jitter_ms,
            "error_503_rate": self.error_503_rate, "error_429_rate": self.error_429_rate,
            "drop_rate": self.drop_rate, "lock_row_rate": self.lock_row_rate,
            "lock_row_ids": sorted(self.lock_row_ids), "apis": list(self.apis),
            "endpoints": list(self.endpoints), "seed": self.seed,
            "scripted": [f.to_json() for f in self.scripted],
        }


class RollingWindow:
    """Counts events in a rolling window (HubSpot's ten-secondly and secondly policies)."""

    def __init__(self, window_ms: int) -> None:
        self.window_ms = window_ms
        self.events: deque[int] = deque()

    def _trim(self, now: int) -> None:
        cutoff = now - self.window_ms
        ev = self.events
        while ev and ev[0] <= cutoff:
            ev.popleft()

    def used(self, now: int) -> int:
        self._trim(now)
        return len(self.events)

    def try_take(self, now: int, limit: int) -> bool:
        self._trim(now)
        if len(self.events) >= limit:
            return False
        self.events.append(now)
        return True

    def retry_after_ms(self, now: int) -> int:
        self._trim(now)
        if not self.events:
            return 0
        return max(0, self.events[0] + self.window_ms - now)

    def clear(self) -> None:
        self.events.clear()


def merge_limits(overrides: dict[str, Any] | None) -> dict[str, dict[str, Any]]:
    """Defaults overlaid with seed/admin settings; unknown keys are refused, not ignored."""
    out = {api: dict(values) for api, values in DEFAULT_LIMITS.items()}
    for api, values in (overrides or {}).items():
        if api not in out:
            raise ValueError(f"unknown limits section {api!r}; use 'salesforce' or 'hubspot'")
        for key, value in values.items():
            if key not in out[api]:
                raise ValueError(f"unknown {api} limit {key!r}; known: {', '.join(out[api])}")
            if not isinstance(value, int | float) or isinstance(value, bool) or value < 0:
                raise ValueError(f"{api}.{key} must be a non-negative number")
            out[api][key] = int(value)
    return out
