"""The statistics, against values worked out by hand."""

from __future__ import annotations

import pytest

from worker.domain.stats import gini, percentile, percentile_of_counts, share, wilson


def test_percentiles_interpolate_between_the_two_nearest_ranks() -> None:
    values = [10.0, 20.0, 30.0, 40.0, 100.0]
    assert percentile(values, 0.5) == 30.0
    assert percentile(values, 0.9) == pytest.approx(76.0)  # rank 3.6: 40 + 0.6 * (100 - 40)
    assert percentile([7.0], 0.95) == 7.0 and percentile([], 0.5) is None
    assert percentile_of_counts({10.0: 1, 20.0: 1, 30.0: 1, 40.0: 1, 100.0: 1}, 0.9) == pytest.approx(76.0)
    assert percentile_of_counts({1.0: 3, 5.0: 1}, 0.5) == 1.0


def test_wilson_intervals_match_published_values() -> None:
    assert wilson(1, 3) == (pytest.approx(0.0615, abs=1e-4), pytest.approx(0.7923, abs=1e-4))
    assert wilson(0, 10) == (0.0, pytest.approx(0.2775, abs=1e-4))
    assert wilson(10, 10) == (pytest.approx(0.7225, abs=1e-4), 1.0)
    assert wilson(0, 0) is None


def test_gini_is_zero_for_equal_shares_and_grows_with_inequality() -> None:
    assert gini([3, 3, 3]) == 0.0
    assert gini([0, 0, 3]) == pytest.approx(2 / 3)
    assert gini([1, 2, 3, 4]) == pytest.approx(0.25)
    assert gini([]) is None and gini([0, 0]) == 0.0
    assert share(1, 0) is None
