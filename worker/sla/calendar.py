"""SLA clocks: when a window of ``wall`` or ``business_hours`` time ends, as an absolute instant.

A ``wall`` clock counts every second. A ``business_hours`` clock counts only the owner's
working time: their hours (the rep's own, else the config's default hours, else all day,
every day) in their own time zone, minus their out-of-office days and the public holidays of
their country. Working windows are laid out in *local wall time* (9:00 is 9:00 on both sides
of a DST change) and converted to instants; time inside a window is counted in real seconds,
so an hour of work is an hour whatever the clocks did overnight.

Everything here is pure: deadlines are computed once, when a lead is assigned, and stored as
instants (UTC) so the sweep never needs a calendar to know what is due.

The rep's country (for holidays) is ``rep.country`` when the config has it, else inferred
from the rep's time zone through the IANA ``zone.tab`` (``Europe/Berlin`` -> ``DE``); zones
that belong to no country (``UTC``) have no holidays.
"""

from __future__ import annotations

import functools
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from importlib import resources
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo

import holidays as holidays_lib

from worker.sla.settings import ClockKind

if TYPE_CHECKING:
    from worker.config import Hours, RoutingConfig

__all__ = [
    "HORIZON_DAYS",
    "WorkCalendar",
    "add_business",
    "calendar_for",
    "country_for_zone",
    "deadline",
    "elapsed",
    "elapsed_business",
    "is_holiday",
    "next_day_off",
]

HORIZON_DAYS = 400  # how far ahead a business clock looks for working time before giving up
_DAY_NAMES = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")


@dataclass(frozen=True, slots=True)
class WorkCalendar:
    """When one owner works: zone, hours (None = all day), days off, holidays' country, off periods.

    ``days_off`` are inclusive local date ranges (out-of-office windows from the config);
    ``off`` are absolute periods (an out-of-office override from the CLI with an end time).
    """

    zone: ZoneInfo
    hours: Hours | None = None
    days: frozenset[str] = frozenset(_DAY_NAMES)
    days_off: tuple[tuple[date, date], ...] = ()
    country: str | None = None
    off: tuple[tuple[datetime, datetime], ...] = ()

    def works_on(self, day: date) -> bool:
        """Whether ``day`` (local) is a working day: a working weekday, not a holiday, not out of office."""
        if _DAY_NAMES[day.weekday()] not in self.days:
            return False
        if any(start <= day <= end for start, end in self.days_off):
            return False
        return not is_holiday(self.country, day)

    def windows(self, start: datetime, horizon_days: int = HORIZON_DAYS) -> Iterator[tuple[datetime, datetime]]:
        """Working intervals (UTC instants) from ``start`` onwards, in order, clipped to begin at ``start``."""
        start = _aware(start).astimezone(UTC)
        day = start.astimezone(self.zone).date()
        for _ in range(horizon_days):
            if self.works_on(day):
                opens, closes = self._window(day)
                if closes > start:
                    yield from self._minus_off(max(opens, start), closes)
            day += timedelta(days=1)

    def _window(self, day: date) -> tuple[datetime, datetime]:
        if self.hours is None:
            opens = datetime.combine(day, time(0), self.zone)
            closes = datetime.combine(day + timedelta(days=1), time(0), self.zone)
        else:
            opens = datetime.combine(day, self.hours.start, self.zone)
            closes = datetime.combine(day, self.hours.end, self.zone)
        return opens.astimezone(UTC), closes.astimezone(UTC)

    def _minus_off(self, opens: datetime, closes: datetime) -> Iterator[tuple[datetime, datetime]]:
        pieces = [(opens, closes)]
        for off_start, off_end in self.off:
            cut: list[tuple[datetime, datetime]] = []
            for a, b in pieces:
                if off_end <= a or off_start >= b:
                    cut.append((a, b))
                    continue
                if a < off_start:
                    cut.append((a, off_start))
                if off_end < b:
                    cut.append((off_end, b))
            pieces = cut
        for a, b in pieces:
            if b > a:
                yield a, b


def _aware(at: datetime) -> datetime:
    if at.tzinfo is None:
        raise ValueError("naive datetime: give an aware datetime (UTC)")
    return at


@functools.lru_cache(maxsize=1)
def _zone_countries() -> dict[str, str]:
    out: dict[str, str] = {}
    try:
        text = resources.files("tzdata").joinpath("zoneinfo", "zone.tab").read_text(encoding="utf-8")
    except (ModuleNotFoundError, FileNotFoundError, OSError):  # pragma: no cover - tzdata is a dependency
        try:
            with open("/usr/share/zoneinfo/zone.tab", encoding="utf-8") as fh:
                text = fh.read()
        except OSError:
            return out
    for line in text.splitlines():
        if line.startswith("#") or not line.strip():
            continue
        parts = line.split("\t")
        if len(parts) >= 3:
            out[parts[2]] = parts[0]
    return out


_LINKS = {  # legacy names still common in configs
    "US/Eastern": "US",
    "US/Central": "US",
    "US/Mountain": "US",
    "US/Pacific": "US",
    "US/Alaska": "US",
    "US/Hawaii": "US",
    "US/Arizona": "US",
    "Canada/Eastern": "CA",
    "Canada/Pacific": "CA",
    "Canada/Central": "CA",
    "Asia/Calcutta": "IN",
    "Asia/Saigon": "VN",
    "Asia/Katmandu": "NP",
    "Europe/Kiev": "UA",
    "America/Buenos_Aires": "AR",
    "Australia/ACT": "AU",
    "Australia/NSW": "AU",
}


def country_for_zone(zone: str | ZoneInfo) -> str | None:
    """The ISO country of an IANA time zone (``America/Chicago`` -> ``US``), or None (``UTC``)."""
    key = zone.key if isinstance(zone, ZoneInfo) else str(zone)
    return _zone_countries().get(key) or _LINKS.get(key)


@functools.lru_cache(maxsize=64)
def _holidays(country: str) -> Any:
    try:
        return holidays_lib.country_holidays(country)
    except NotImplementedError:
        return None


def is_holiday(country: str | None, day: date) -> bool:
    """Whether ``day`` is a public holiday in ``country`` (the ``holidays`` package; unknown countries have none)."""
    if not country:
        return False
    calendar = _holidays(country.upper())
    return calendar is not None and day in calendar


def calendar_for(
    rep_id: str,
    config: RoutingConfig,
    *,
    off: Sequence[tuple[datetime, datetime]] = (),
) -> WorkCalendar:
    """The working calendar of a configured rep (unknown ids get the config's defaults in its time zone).

    ``off`` adds absolute away periods, e.g. an out-of-office override set from the CLI.
    """
    rep = config.reps.get(rep_id)
    zone = config.zones.get(rep_id) or ZoneInfo(config.model.timezone)
    hours = (rep.hours if rep is not None else None) or config.model.hours
    country = getattr(rep, "country", None) or country_for_zone(zone)
    return WorkCalendar(
        zone=zone,
        hours=hours,
        days=frozenset(hours.days) if hours is not None else frozenset(_DAY_NAMES),
        days_off=tuple((w.start, w.end) for w in rep.out_of_office) if rep is not None else (),
        country=country,
        off=tuple(sorted((_aware(a).astimezone(UTC), _aware(b).astimezone(UTC)) for a, b in off)),
    )


def add_business(start: datetime, duration: timedelta, calendar: WorkCalendar) -> datetime:
    """The instant when ``duration`` of the calendar's working time has passed since ``start``.

    If the calendar has no working time within :data:`HORIZON_DAYS` (a rep out of office for
    a year), the wall clock is used instead, so no lead waits for ever.
    """
    remaining = duration.total_seconds()
    start = _aware(start).astimezone(UTC)
    if remaining <= 0:
        return start
    for opens, closes in calendar.windows(start):
        span = (closes - opens).total_seconds()
        if remaining <= span:
            return opens + timedelta(seconds=remaining)
        remaining -= span
    return start + duration


def add_business_many(start: datetime, durations: Sequence[timedelta], calendar: WorkCalendar) -> list[datetime]:
    """:func:`add_business` for several durations from one start, walking the calendar once
    (the same arithmetic, so the same instants)."""
    start = _aware(start).astimezone(UTC)
    out: list[datetime] = [start] * len(durations)
    remaining = {i: d.total_seconds() for i, d in enumerate(durations) if d.total_seconds() > 0}
    if not remaining:
        return out
    for opens, closes in calendar.windows(start):
        span = (closes - opens).total_seconds()
        for i, left in list(remaining.items()):
            if left <= span:
                out[i] = opens + timedelta(seconds=left)
                del remaining[i]
            else:
                remaining[i] = left - span
        if not remaining:
            return out
    for i in remaining:
        out[i] = start + durations[i]
    return out


def elapsed_business(start: datetime, end: datetime, calendar: WorkCalendar) -> timedelta:
    """Working time between two instants (for time-to-acknowledge in business hours)."""
    start, end = _aware(start).astimezone(UTC), _aware(end).astimezone(UTC)
    total = 0.0
    if end <= start:
        return timedelta(0)
    days = (end - start).days + 2
    for opens, closes in calendar.windows(start, horizon_days=days):
        if opens >= end:
            break
        total += (min(closes, end) - opens).total_seconds()
    return timedelta(seconds=total)


def deadline(start: datetime, duration: timedelta, clock: ClockKind | str, calendar: WorkCalendar | None) -> datetime:
    """When ``duration`` on ``clock`` has passed since ``start``, as a UTC instant."""
    start = _aware(start).astimezone(UTC)
    if ClockKind(clock) is ClockKind.WALL or calendar is None:
        return start + duration
    return add_business(start, duration, calendar)


def deadlines(
    start: datetime, durations: Sequence[timedelta], clock: ClockKind | str, calendar: WorkCalendar | None
) -> list[datetime]:
    """:func:`deadline` for several durations from one start (a clock's deadline and its ladder)."""
    start = _aware(start).astimezone(UTC)
    if ClockKind(clock) is ClockKind.WALL or calendar is None:
        return [start + d for d in durations]
    return add_business_many(start, durations, calendar)


def elapsed(start: datetime, end: datetime, clock: ClockKind | str, calendar: WorkCalendar | None) -> timedelta:
    """Time between two instants on ``clock`` (never negative)."""
    if ClockKind(clock) is ClockKind.WALL or calendar is None:
        return max(timedelta(0), _aware(end) - _aware(start))
    return elapsed_business(start, end, calendar)


def next_day_off(calendar: WorkCalendar, after: datetime, before: datetime) -> datetime | None:
    """The start (local midnight, as a UTC instant) of the first out-of-office day in ``(after, before]``.

    The sweep looks at a lead then, so a rep who leaves for a planned absence does not sit
    on unacknowledged leads while away.
    """
    after, before = _aware(after).astimezone(UTC), _aware(before).astimezone(UTC)
    best: datetime | None = None
    starts = [datetime.combine(first, time(0), calendar.zone).astimezone(UTC) for first, _ in calendar.days_off]
    starts += [off_start for off_start, _ in calendar.off]
    for begins in starts:
        if after < begins <= before and (best is None or begins < best):
            best = begins
    return best
