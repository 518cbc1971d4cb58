"""The interquartile mean and bootstrap interval `rltrain summary` prints per configuration."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats

from rltrain.app.summary import bootstrap_interval, interquartile_mean


def test_iqm_is_the_mean_of_the_middle_half():
    assert interquartile_mean(np.arange(1.0, 9.0)) == 4.5  # mean of 3, 4, 5, 6
    rng = np.random.default_rng(0)
    for n in (1, 3, 5, 16, 17):
        x = rng.normal(size=n)
        assert interquartile_mean(x) == pytest.approx(stats.trim_mean(x, 0.25))
    # one failed seed of sixteen does not move it
    solved = np.full(16, 500.0)
    assert interquartile_mean(np.r_[solved[:15], 9.0]) == 500.0


def test_bootstrap_interval_brackets_the_iqm_and_agrees_with_scipy():
    x = np.random.default_rng(1).normal(100.0, 20.0, size=16)
    low, high = bootstrap_interval(x, interquartile_mean)
    assert low < interquartile_mean(x) < high and x.min() <= low and high <= x.max()
    assert bootstrap_interval(x, interquartile_mean) == (low, high)  # seeded: the same again
    reference = stats.bootstrap(
        (x,), lambda a, axis: stats.trim_mean(a, 0.25, axis=axis), method="percentile",
        n_resamples=20000, random_state=0,
    ).confidence_interval  # fmt: skip
    assert low == pytest.approx(reference.low, abs=3.0)
    assert high == pytest.approx(reference.high, abs=3.0)
    assert bootstrap_interval(np.full(5, 7.0), interquartile_mean) == (7.0, 7.0)
