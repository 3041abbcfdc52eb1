"""Time helpers shared by both emulators.

Both CRMs expose "modified since" watermarks, so the sandbox keeps a millisecond clock that never
goes backwards (even if the wall clock does).  Like the real CRMs it lets writes in the same
millisecond share a timestamp — watermark code must cope with ties — while every write to one
record still moves that record's stamp forward (see :func:`advance`).
"""

from __future__ import annotations

import functools
import re
import threading
import time
from datetime import UTC, date, datetime, timedelta

_lock = threading.Lock()
_last_ms = 0


def now_ms() -> int:
    """Current epoch milliseconds, never less than any value returned before."""
    global _last_ms
    with _lock:
        value = max(int(time.time() * 1000), _last_ms)
        _last_ms = value
        return value


def advance(previous: int | None) -> int:
    """A write stamp for a record last stamped ``previous``: now, but strictly after ``previous``."""
    global _last_ms
    now = now_ms()
    if previous is not None and now <= previous:
        with _lock:
            now = previous + 1
            _last_ms = max(_last_ms, now)
    return now


def wall_ms() -> int:
    """Current epoch milliseconds without the uniqueness guarantee (for rate windows)."""
    return int(time.time() * 1000)


def ms_to_dt(ms: int) -> datetime:
    return datetime.fromtimestamp(ms / 1000, tz=UTC)


@functools.lru_cache(maxsize=65_536)  # query pages render the same stamps over and over
def sf_datetime(ms: int) -> str:
    """Salesforce's REST datetime format: 2024-05-01T12:34:56.000+0000."""
    dt = ms_to_dt(ms)
    return dt.strftime("%Y-%m-%dT%H:%M:%S.") + f"{ms % 1000:03d}+0000"


def hs_datetime(ms: int) -> str:
    """HubSpot's ISO format: 2024-05-01T12:34:56.789Z."""
    dt = ms_to_dt(ms)
    return dt.strftime("%Y-%m-%dT%H:%M:%S.") + f"{ms % 1000:03d}Z"


def today_str(ms: int | None = None) -> str:
    return ms_to_dt(ms if ms is not None else wall_ms()).date().isoformat()


_DT_RE = re.compile(
    r"^(\d{4})-(\d{2})-(\d{2})[T ](\d{2}):(\d{2})(?::(\d{2})(?:\.(\d{1,9}))?)?"
    r"(Z|[+-]\d{2}:?\d{2})?$"
)
_DATE_RE = re.compile(r"^(\d{4})-(\d{2})-(\d{2})$")


def parse_datetime_ms(text: str, *, require_zone: bool = False) -> int | None:
    """Parse an ISO-8601 datetime (Z, +00:00 or +0000 offsets) to epoch ms; None if invalid."""
    m = _DT_RE.match(text.strip())
    if not m:
        return None
    year, month, day, hour, minute = (int(m.group(i)) for i in range(1, 6))
    second = int(m.group(6) or 0)
    frac = (m.group(7) or "0")[:3].ljust(3, "0")
    zone = m.group(8)
    if zone is None and require_zone:
        return None
    try:
        dt = datetime(year, month, day, hour, minute, second, int(frac) * 1000, tzinfo=UTC)
    except ValueError:
        return None
    if zone and zone != "Z":
        sign = 1 if zone[0] == "+" else -1
        digits = zone[1:].replace(":", "")
        dt -= sign * timedelta(hours=int(digits[:2]), minutes=int(digits[2:]))
    return int(dt.timestamp() * 1000)


def parse_date(text: str) -> date | None:
    """Parse YYYY-MM-DD; None if invalid."""
    m = _DATE_RE.match(text.strip())
    if not m:
        return None
    try:
        return date(int(m.group(1)), int(m.group(2)), int(m.group(3)))
    except ValueError:
        return None


def day_start_ms(d: date) -> int:
    return int(datetime(d.year, d.month, d.day, tzinfo=UTC).timestamp() * 1000)
