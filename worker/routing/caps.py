"""Caps per period: at most N leads a day, week or month for a rep, beside the open-load capacity.

A rep's own ``caps:`` count every lead the engine gives them (pools, named rules, account
owners, backups); a pool's ``caps:`` count, per member, the leads that pool gives them. A rep
who has reached a cap is passed over as ``daily_cap``, ``weekly_cap`` or ``monthly_cap``
(the first reached in that order, the rep's own before the pool's) and the lead goes on as
it would for an absent rep: the next pool member, the next backup, the fallback.

Periods are calendar periods in the rep's own time zone: the local day, the ISO week
(Monday to Sunday) and the calendar month. Each is a counter named by its window
(``2026-12-01``, ``2026-W49``, ``2026-12``), so a new period starts at zero without anyone
resetting anything, and a counter may be forgotten a day after its window ends.

Pure: the engine turns the config's limits into :class:`Quota` for the routing time; the
state checks and counts them in the same atomic step that picks the rep, so concurrent
workers never give a rep one lead past a cap.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from typing import Literal
from zoneinfo import ZoneInfo

DAILY, WEEKLY, MONTHLY = "daily", "weekly", "monthly"
PERIODS: tuple[str, ...] = (DAILY, WEEKLY, MONTHLY)
Period = Literal["daily", "weekly", "monthly"]
REASONS: dict[str, str] = {DAILY: "daily_cap", WEEKLY: "weekly_cap", MONTHLY: "monthly_cap"}
KEEP_AFTER = timedelta(days=1)  # a counter outlives its window by this much (to be read back, then it expires)

Limits = tuple[tuple[str, int], ...]  # (period, limit) in PERIODS order


@dataclass(frozen=True, slots=True)
class Quota:
    """One cap as it stands at the routing time: a counter to check and, on a pick, to count.

    ``scope`` is ``""`` for the rep's own caps, else the pool whose caps these are.
    ``expires_at`` (epoch seconds) is when the counter may be dropped.
    """

    scope: str
    rep_id: str
    period: str
    window: str
    limit: int
    expires_at: float
    counter: tuple[str, str, str, str] = field(init=False, compare=False, repr=False)  # what is counted; not the limit

    def __post_init__(self) -> None:
        object.__setattr__(self, "counter", (self.scope, self.rep_id, self.period, self.window))

    @property
    def reason(self) -> str:
        """The skip reason when this cap is reached: ``daily_cap``, ``weekly_cap`` or ``monthly_cap``."""
        return REASONS[self.period]

    def describe(self) -> str:
        """``daily cap 20 (pool inbound)`` for explanations and the CLI."""
        where = f" (pool {self.scope})" if self.scope else ""
        return f"{self.period} cap {self.limit}{where}"


def window(period: str, local: datetime) -> tuple[str, datetime]:
    """The window of ``period`` that the local time ``local`` falls in: its id and its local end."""
    day = local.date()
    if period == DAILY:
        return day.isoformat(), _midnight(day + timedelta(days=1), local)
    if period == WEEKLY:
        year, week, weekday = day.isocalendar()
        return f"{year}-W{week:02d}", _midnight(day + timedelta(days=8 - weekday), local)
    if period == MONTHLY:
        following = date(day.year + day.month // 12, day.month % 12 + 1, 1)
        return f"{day.year}-{day.month:02d}", _midnight(following, local)
    raise ValueError(f"unknown cap period {period!r}; use one of {', '.join(PERIODS)}")


def _midnight(day: date, like: datetime) -> datetime:
    return datetime.combine(day, time(0), tzinfo=like.tzinfo)


@dataclass(frozen=True, slots=True)
class CapTable:
    """The caps in a config, resolved once: each rep's own and each pool's (for every member)."""

    reps: Mapping[str, Limits] = field(default_factory=dict)
    pools: Mapping[str, Limits] = field(default_factory=dict)
    # Memos, each valid over one local day of a zone: (first instant, end instant, value) in epoch seconds.
    _windows: dict[str, tuple[float, float, tuple[tuple[str, str, float], ...]]] = field(
        default_factory=dict, repr=False, compare=False)
    _quotas: dict[tuple[str, str | None], tuple[float, float, tuple[Quota, ...]]] = field(
        default_factory=dict, repr=False, compare=False)

    @property
    def any(self) -> bool:
        """Whether any cap is configured (the engine skips all of this when not)."""
        return bool(self.reps or self.pools)

    def has(self, rep_id: str, pool: str | None = None) -> bool:
        return rep_id in self.reps or (pool is not None and pool in self.pools)

    def _day(self, zone: ZoneInfo, at: datetime) -> tuple[float, float, tuple[tuple[str, str, float], ...]]:
        """(period, window id, expiry) for each period at ``at`` in ``zone``, and the span of epoch seconds over which
        they hold: the local day, when the zone's offset does not change in it (else just this instant)."""
        ts = at.timestamp()
        found = self._windows.get(zone.key)
        if found is not None and found[0] <= ts < found[1]:
            return found
        local = at.astimezone(zone)
        windows = tuple((p, w, (end + KEEP_AFTER).timestamp()) for p in PERIODS for w, end in [window(p, local)])
        day = local.date()
        first, after = _midnight(day, local), _midnight(day + timedelta(days=1), local)
        lo, hi = first.timestamp(), after.timestamp()
        # The periods depend on the local date alone: with one offset all day, every instant in [lo, hi) has this date.
        if not (lo <= ts < hi and first.utcoffset() == after.utcoffset() == local.utcoffset()
                and datetime.fromtimestamp(lo, zone).date() == day and datetime.fromtimestamp(hi, zone).date() != day):
            lo, hi = ts, ts  # a day with an offset change: nothing reused
        found = (lo, hi, windows)
        if hi > lo:
            self._windows[zone.key] = found
        return found

    def windows(self, zone: ZoneInfo, at: datetime) -> tuple[tuple[str, str, float], ...]:
        """(period, window id, expiry) for each period at ``at`` in ``zone``; memoised per zone for the local day."""
        return self._day(zone, at)[2]

    def quotas(self, rep_id: str, zone: ZoneInfo, at: datetime, pool: str | None = None) -> tuple[Quota, ...]:
        """The caps that apply to giving ``rep_id`` a lead at ``at`` (from ``pool``, if from one), in check order."""
        own = self.reps.get(rep_id, ())
        pooled = self.pools.get(pool, ()) if pool is not None else ()
        if not own and not pooled:
            return ()
        key = (rep_id, pool)  # a rep's zone is fixed per config: the local day decides
        ts = at.timestamp()
        found = self._quotas.get(key)
        if found is not None and found[0] <= ts < found[1]:
            return found[2]
        lo, hi, windows = self._day(zone, at)
        by_period = {p: (w, exp) for p, w, exp in windows}
        out = [Quota("", rep_id, p, by_period[p][0], n, by_period[p][1]) for p, n in own]
        out += [Quota(str(pool), rep_id, p, by_period[p][0], n, by_period[p][1]) for p, n in pooled]
        quotas = tuple(out)
        if hi > lo:
            self._quotas[key] = (lo, hi, quotas)
        return quotas


def limits(daily: int | None, weekly: int | None, monthly: int | None) -> Limits:
    """The configured limits of one ``caps:`` block, in check order."""
    return tuple((p, n) for p, n in ((DAILY, daily), (WEEKLY, weekly), (MONTHLY, monthly)) if n is not None)


def reached(quotas: Sequence[Quota], counts: Mapping[tuple[str, str, str, str], int]) -> str | None:
    """The reason of the first cap in ``quotas`` that ``counts`` (by :attr:`Quota.counter`) has reached, or None."""
    for q in quotas:
        if counts.get(q.counter, 0) >= q.limit:
            return q.reason
    return None
