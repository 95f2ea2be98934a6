"""Latency statistics: percentiles match numpy's linear interpolation; summary values on known samples."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from edgeseg.bench.stats import HIGH_CV, is_noisy, percentile, summarize


def test_percentile_on_one_to_ten_matches_hand_computation() -> None:
    data = list(range(1, 11))
    # rank = q/100 * (n-1): p50 -> 4.5 -> 5.5; p90 -> 8.1 -> 9.1; p99 -> 8.91 -> 9.91
    assert percentile(data, 50) == pytest.approx(5.5)
    assert percentile(data, 90) == pytest.approx(9.1)
    assert percentile(data, 99) == pytest.approx(9.91)
    assert percentile(data, 0) == 1 and percentile(data, 100) == 10


def test_percentile_ignores_input_order() -> None:
    assert percentile([9, 1, 5, 3, 7], 25) == percentile([1, 3, 5, 7, 9], 25) == 3


@settings(max_examples=200, deadline=None)
@given(st.lists(st.floats(0.001, 1e4, allow_nan=False), min_size=1, max_size=60), st.floats(0, 100))
def test_percentile_equals_numpy_linear(samples: list[float], q: float) -> None:
    assert percentile(samples, q) == pytest.approx(
        float(np.percentile(samples, q, method="linear")), rel=1e-9
    )


def test_summarize_known_sample() -> None:
    s = summarize([10.0, 20.0, 30.0, 40.0])
    assert s.n == 4 and s.mean == 25.0 and s.median == 25.0
    assert s.min == 10.0 and s.max == 40.0
    assert s.p90 == pytest.approx(37.0) and s.p99 == pytest.approx(39.7)
    # sample standard deviation (n - 1): sqrt(500/3)
    assert s.std == pytest.approx(math.sqrt(500 / 3)) and s.std == pytest.approx(
        np.std([10, 20, 30, 40], ddof=1)
    )
    assert s.cv == pytest.approx(s.std / 25.0)
    assert s.fps(batch=1) == pytest.approx(40.0) and s.fps(batch=2) == pytest.approx(80.0)
    assert set(s.to_dict()) == {"n", "mean", "median", "p90", "p99", "min", "max", "std", "cv"}


def test_summarize_constant_sample_has_zero_spread() -> None:
    s = summarize([5.0] * 7)
    assert s.std == 0.0 and s.cv == 0.0 and not is_noisy(s)


def test_noisy_threshold() -> None:
    assert is_noisy(summarize([1.0, 2.0, 3.0]))  # CV 0.5
    assert not is_noisy(summarize([100.0, 101.0, 99.0]))
    assert HIGH_CV == 0.10


def test_summarize_needs_two_samples() -> None:
    with pytest.raises(ValueError, match="at least 2"):
        summarize([1.0])
    with pytest.raises(ValueError):
        percentile([], 50)
