"""The moments the ledger commands take (``--since``, ``--until``, ``--before``), read one way everywhere."""

from __future__ import annotations

import re
from datetime import UTC, date, datetime, timedelta

import typer
from rich.console import Console

_AGE = re.compile(r"^(\d+(?:\.\d+)?)\s*([dh])$")
err = Console(stderr=True, highlight=False, soft_wrap=True)


def parse_when(value: str, option: str, now: datetime | None = None) -> datetime:
    """``30d`` / ``12h`` (that long before now), ``2026-01-01`` (midnight UTC), or ISO 8601 (no offset: UTC).

    A value that is none of these prints one line naming ``option`` and exits with status 2.
    """
    text = value.strip()
    age = _AGE.match(text)
    if age:
        amount = float(age.group(1))
        return (now or datetime.now(UTC)) - (timedelta(days=amount) if age.group(2) == "d" else timedelta(hours=amount))
    try:
        if len(text) == 10:
            day = date.fromisoformat(text)
            return datetime(day.year, day.month, day.day, tzinfo=UTC)
        when = datetime.fromisoformat(text)
    except ValueError:
        err.print(f"{option}: {value!r} is not an age (30d, 12h), a date (2026-01-01) or an ISO 8601 time")
        raise typer.Exit(2) from None
    return when if when.tzinfo else when.replace(tzinfo=UTC)
