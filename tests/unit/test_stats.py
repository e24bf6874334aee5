"""Statistics helpers: percentiles, bootstrap CIs, outliers and spread warnings."""

from __future__ import annotations

import math

import numpy as np
import pytest

from adabench.measure.stats import bootstrap_ci, outlier_flags, spread_warning, summarize


def test_summarize_uses_linear_percentiles_and_sample_std():
    s = summarize([1, 2, 3, 4])
    assert s["count"] == 4 and s["mean"] == 2.5
    assert s["std"] == pytest.approx(np.std([1, 2, 3, 4], ddof=1))
    assert s["p50"] == 2.5  # linear: rank (n-1)·0.5 = 1.5 → between 2 and 3
    assert s["p90"] == pytest.approx(3.7)
    assert s["cv"] == pytest.approx(s["std"] / 2.5)


def test_summarize_edge_cases():
    assert summarize([7.0])["std"] == 0.0
    empty = summarize([])
    assert empty["count"] == 0 and math.isnan(empty["p99"])
    assert math.isnan(summarize([0.0, 0.0])["cv"])


def test_bootstrap_ci_brackets_the_mean_and_is_deterministic():
    rng = np.random.default_rng(1)
    values = rng.normal(100, 5, size=50)
    low, high = bootstrap_ci(values)
    assert low < values.mean() < high
    assert (low, high) == bootstrap_ci(values)  # fixed seed
    # roughly mean ± 1.96·σ/√n
    assert high - low == pytest.approx(2 * 1.96 * values.std(ddof=1) / math.sqrt(50), rel=0.25)


def test_bootstrap_ci_for_accuracy_and_custom_stat():
    scores = [1] * 30 + [0] * 10
    low, high = bootstrap_ci(scores)
    assert 0.5 < low < 0.75 < high < 0.9
    low_med, high_med = bootstrap_ci(
        [1.0, 2.0, 3.0, 4.0, 100.0], stat=lambda x: float(np.median(x))
    )
    assert 1.0 <= low_med <= high_med <= 100.0
    assert bootstrap_ci([3.0]) == (3.0, 3.0)
    assert all(math.isnan(v) for v in bootstrap_ci([]))


def test_outlier_flags_use_far_out_fences():
    values = [10.0, 10.2, 9.9, 10.1, 10.0, 25.0]
    assert outlier_flags(values) == [False] * 5 + [True]
    assert outlier_flags([1.0, 100.0]) == [False, False]  # too few to judge


def test_spread_warning():
    assert spread_warning([10.0, 10.1, 9.9, 10.0]) is None
    msg = spread_warning([10.0, 14.0, 8.0, 12.0, 9.0])
    assert msg is not None and msg.startswith("latency spread") and "--warmup" in msg
    assert "%" in msg
    first = spread_warning([10.6] + [10.0, 10.1, 9.9, 10.0, 10.05, 9.95, 10.0, 10.02])
    assert first is not None and "first run" in first
    assert spread_warning([5.0]) is None
    assert spread_warning([1.0, 2.0], what="decode")


def test_repeat_spread_warning_reads_repeats_of_one_sample_not_lengths_across_samples():
    from adabench.sweep.rows import repeat_spread_warning

    # Samples 10× apart in length, each timed steadily: no noise.
    steady = [{"latency_ms_repeats": [10.0, 10.1, 9.9]}, {"latency_ms_repeats": [100.0, 101, 99]}]
    assert repeat_spread_warning(steady) == ""
    # The same lengths with ±30 % between repeats of one sample: noise.
    noisy = [{"latency_ms_repeats": [10.0, 13.0, 7.0]}, {"latency_ms_repeats": [100.0, 101, 99]}]
    assert "spread" in repeat_spread_warning(noisy)
    assert (
        repeat_spread_warning([{"latency_ms_repeats": [10.0]}, {"latency_ms_repeats": [90.0]}])
        == ""
    )
