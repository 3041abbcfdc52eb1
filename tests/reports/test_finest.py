"""``Finest``, the finest groups a report pass reads: keys kept as column codes, exact through the day cache.

The day cache stores a month of day pieces with a few hundred thousand groups; their keys are
coded column by column so they decode and group in numpy. These tests hold the coded form to
what plain key tuples would give: the same groups, labels in order of first appearance, the
same counts, extremes and percentiles, through concat (pieces with different values per
column), split and an encode/decode round trip.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import numpy as np

from worker.reports.grouped import NO_TIME, Finest, summarise
from worker.reports.pieces import Piece

T = datetime(2026, 5, 4, tzinfo=UTC)


def micros(moment: datetime) -> int:
    return (moment - datetime(1970, 1, 1, tzinfo=UTC)) // timedelta(microseconds=1)


def finest(keys: list[tuple[object, ...]], sizes: list[int], waits: list[float], times: list[tuple[int, int]]) -> Finest:
    return Finest.from_keys(keys, 3, np.array(sizes, dtype=np.int64), {"wall": np.array(waits, dtype=float)},
                            {"within": np.array(sizes, dtype=np.int64) - 1}, np.array(times, dtype=np.int64))


def test_groups_keep_their_keys_values_and_extremes_through_concat_split_and_the_cache() -> None:
    day1 = finest([(1, "emea", "ann"), (1, None, "bob")], [2, 1], [5.0, 1.0, 7.5],
                  [(micros(T), micros(T + timedelta(hours=1))), (micros(T), micros(T))])
    day2 = finest([(2, "us", "cy"), (2, "emea", "ann")], [1, 2], [3.0, np.nan, 9.0],
                  [(micros(T + timedelta(days=1)), micros(T + timedelta(days=1))),
                   (int(NO_TIME), micros(T + timedelta(days=1, hours=3)))])
    both = Finest.concat([Finest.empty(("wall",), ("within",)), day1, day2])
    assert both.keys == [(1, "emea", "ann"), (1, None, "bob"), (2, "us", "cy"), (2, "emea", "ann")]
    header, blob = Piece(both).encode()
    again = Piece.decode(header, blob).finest
    assert again is not None and again.keys == both.keys
    parts = again.split(0)
    assert sorted(parts) == [1, 2] and parts[2].keys == day2.keys
    assert list(parts[2].values["wall"][~np.isnan(parts[2].values["wall"])]) == [3.0, 9.0]

    stats = summarise(again, {"pool": [1], "rep": [2], "pool_rep": [1, 2]}, percentiles_for=("rep",))
    assert list(stats.rows["pool"]) == [("emea",), (None,), ("us",)]  # first appearance, as read
    assert stats.rows["pool_rep"] == {("emea", "ann"): 4, (None, "bob"): 1, ("us", "cy"): 1}
    assert stats.sums["rep"][("ann",)] == {"within": 2}
    assert stats.extremes["rep"][("ann",)] == (None, T + timedelta(days=1, hours=3))  # a NULL time is the least
    assert stats.extremes["rep"][("bob",)] == (T, T)
    ann = stats.pct("rep", ("ann",), "wall")
    assert (ann.n, ann.p50) == (3, 5.0)  # 5.0, 1.0 and 9.0; the NaN is no wait
    assert stats.rows[""] == {(): 6}

