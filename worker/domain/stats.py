"""The few statistics the reports and `simulate` share, as plain functions with no dependency (pure, like all of domain).

Kept apart from the SQL so each can be checked against values worked out by hand:

* :func:`percentile`: the continuous percentile with linear interpolation between the two
  nearest ranks, the definition of PostgreSQL's ``percentile_cont`` (and numpy's default), so a
  figure computed in SQL on PostgreSQL and in Python for SQLite is the same number.
* :func:`wilson`: the Wilson score interval for a proportion. A conversion rate from 7 leads
  is shown with an interval wide enough not to be read as a fact; unlike the normal
  approximation it stays within [0, 1] and is sensible at 0 and n successes.
* :func:`gini`: the Gini coefficient of a distribution (0 when everyone has the same, towards
  1 when one has everything), over leads per unit of weight, so a fair weighted pool scores 0.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence

Z95 = 1.959963984540054  # the standard normal's 97.5th percentile: a two-sided 95% interval


def percentile(ordered: Sequence[float], fraction: float) -> float | None:
    """The ``fraction`` (0..1) percentile of ascending ``ordered`` values; None when there are none."""
    if not ordered:
        return None
    if not 0.0 <= fraction <= 1.0:
        raise ValueError(f"fraction {fraction} is not between 0 and 1")
    position = (len(ordered) - 1) * fraction
    low = math.floor(position)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


def percentile_of_counts(counts: Mapping[float, int], fraction: float) -> float | None:
    """:func:`percentile` of a multiset given as ``{value: how many}``, without expanding it."""
    total = sum(counts.values())
    if total == 0:
        return None
    position = (total - 1) * fraction
    low_rank = math.floor(position)
    high_rank = min(low_rank + 1, total - 1)
    low: float | None = None
    high: float | None = None
    seen = 0
    for value in sorted(counts):
        seen += counts[value]
        if low is None and seen > low_rank:
            low = value
        if seen > high_rank:
            high = value
            break
    assert low is not None and high is not None
    return low + (high - low) * (position - low_rank)


def wilson(successes: int, n: int, z: float = Z95) -> tuple[float, float] | None:
    """The Wilson score interval ``(low, high)`` for ``successes`` out of ``n``; None when ``n`` is 0."""
    if n <= 0:
        return None
    if not 0 <= successes <= n:
        raise ValueError(f"{successes} successes out of {n}")
    p = successes / n
    z2 = z * z
    centre = (p + z2 / (2 * n)) / (1 + z2 / n)
    half = z / (1 + z2 / n) * math.sqrt(p * (1 - p) / n + z2 / (4 * n * n))
    # at 0 and n successes the bound is exactly 0 or 1; the float arithmetic would land a hair off
    return (0.0 if successes == 0 else max(0.0, centre - half)), (1.0 if successes == n else min(1.0, centre + half))


def gini(values: Iterable[float]) -> float | None:
    """The Gini coefficient of non-negative ``values``: mean absolute difference over twice the mean.

    None for no values; 0 when all are equal (including all zero).
    """
    ordered = sorted(values)
    n = len(ordered)
    if n == 0:
        return None
    total = sum(ordered)
    if total == 0:
        return 0.0
    weighted = sum((i + 1) * x for i, x in enumerate(ordered))
    return (2 * weighted) / (n * total) - (n + 1) / n


def share(part: int | float, whole: int | float) -> float | None:
    """``part / whole``, or None when ``whole`` is 0 (a share of nothing is not 0%)."""
    return part / whole if whole else None
