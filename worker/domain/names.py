"""Did-you-mean hints for names a person typed: every "unknown X" error offers the nearest valid one."""

from __future__ import annotations

import difflib
from collections.abc import Iterable


def suggest(name: str, options: Iterable[str]) -> str:
    """`` (did you mean 'x'?)`` for the nearest valid name, or nothing."""
    close = difflib.get_close_matches(str(name), sorted(options), n=1, cutoff=0.6)
    return f" (did you mean '{close[0]}'?)" if close else ""
