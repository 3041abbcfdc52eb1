"""Per-rep availability overrides set by hand (``leadroute ooo``): out of office, or forced available."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from worker.store.base import StoreBase, dumps


@dataclass(frozen=True, slots=True)
class Availability:
    """A manual availability override for a rep (out of office, or forced available)."""

    rep_id: str
    available: bool
    until: datetime | None = None
    reason: str = ""
    set_by: str = ""
    set_at: datetime | None = None


class AvailabilityStore(StoreBase):
    """One hash of overrides, rep id -> JSON; an override past its ``until`` is dropped when read."""

    def set_availability(
        self,
        rep_id: str,
        available: bool,
        *,
        until: datetime | None = None,
        reason: str = "",
        set_by: str = "",
    ) -> Availability:
        """Override a rep's availability (e.g. out of office until a time) from the CLI."""
        override = Availability(rep_id, available, until, reason, set_by, datetime.now(UTC))
        record = {
            "available": available,
            "until": until.isoformat() if until else None,
            "reason": reason,
            "set_by": set_by,
            "set_at": override.set_at.isoformat() if override.set_at else None,
        }
        self.client.hset(self.keys.availability(), rep_id, dumps(record))
        return override

    def clear_availability(self, rep_id: str) -> bool:
        """Drop a rep's override (back to their configured hours and OOO windows)."""
        return bool(self.client.hdel(self.keys.availability(), rep_id))

    def availability(self, rep_ids: Sequence[str] | None = None, now: datetime | None = None) -> dict[str, Availability]:
        """Overrides in force at ``now`` (all reps, or those given); expired ones are dropped."""
        now = now or datetime.now(UTC)
        name = self.keys.availability()
        if rep_ids is None:
            raw = self.client.hgetall(name)
        else:
            values = self.client.hmget(name, list(rep_ids)) if rep_ids else []
            raw = {rep: v for rep, v in zip(rep_ids, values, strict=True) if v}
        out: dict[str, Availability] = {}
        expired: list[str] = []
        for rep, value in raw.items():
            data = json.loads(value)
            until = datetime.fromisoformat(data["until"]) if data.get("until") else None
            if until is not None and until <= now:
                expired.append(rep)
                continue
            set_at = datetime.fromisoformat(data["set_at"]) if data.get("set_at") else None
            out[rep] = Availability(rep, bool(data["available"]), until, data.get("reason", ""), data.get("set_by", ""), set_at)
        if expired and now <= datetime.now(UTC):  # expired in real time too, not just at a future ``now``
            self.client.hdel(name, *expired)
        return out

    def unavailable(self, rep_ids: Sequence[str] | None = None, now: datetime | None = None) -> dict[str, str]:
        """Reps forced unavailable right now, as the engine's ``overrides`` (rep id -> reason)."""
        return {rep: o.reason or "ooo" for rep, o in self.availability(rep_ids, now).items() if not o.available}

