"""Paired tests against hand-computed cases (and scipy where it is installed)."""

from __future__ import annotations

import importlib.util
import math

import numpy as np
import pytest

from adabench.analysis.significance import (
    benjamini_hochberg,
    bootstrap_ci,
    intervals_overlap,
    mcnemar_exact_p,
    paired_test,
    sign_flip_p,
)


def test_mcnemar_exact_by_hand():
    assert mcnemar_exact_p(0, 0) == 1.0
    assert mcnemar_exact_p(0, 5) == pytest.approx(2 / 32)  # 2 · C(5,0) / 2^5
    assert mcnemar_exact_p(9, 1) == pytest.approx(2 * (1 + 10) / 1024)
    assert mcnemar_exact_p(1, 9) == mcnemar_exact_p(9, 1)
    assert mcnemar_exact_p(5, 5) == 1.0
    assert mcnemar_exact_p(30, 0) == pytest.approx(2 / 2**30)
    assert mcnemar_exact_p(2000, 1000) < 1e-20  # big n does not overflow


@pytest.mark.skipif(importlib.util.find_spec("scipy") is None, reason="scipy not installed")
def test_mcnemar_matches_scipy_binomtest():
    from scipy.stats import binomtest

    for a, b in [(3, 11), (7, 7), (0, 12), (25, 40)]:
        expected = binomtest(min(a, b), a + b, 0.5).pvalue
        assert mcnemar_exact_p(a, b) == pytest.approx(expected, rel=1e-9)


def test_sign_flip_exact_by_hand():
    # 3 equal differences: only all-plus and all-minus reach |sum| = 1.5 → 2 of 8
    assert sign_flip_p([0.5, 0.5, 0.5]) == pytest.approx(0.25)
    # sums ±1 ± 0.5: every one of the 4 reaches |0.5|
    assert sign_flip_p([1.0, -0.5]) == 1.0
    # ±1 ±1 ±1 ±1 ± 0.5 ≥ 3.5 only with the four ones aligned: 4 of 32
    assert sign_flip_p([1, 1, 1, 1, -0.5]) == pytest.approx(4 / 32)
    assert sign_flip_p([0.0, 0.0, 0.5, 0.5, 0.5]) == pytest.approx(0.25)  # zeros carry no sign
    assert sign_flip_p([]) == 1.0 and sign_flip_p([0.0, 0.0]) == 1.0


def test_sign_flip_monte_carlo_beyond_exact_range():
    p = sign_flip_p([0.5] * 40)  # exact: 2 / 2^40; the estimate never reaches 0
    assert 0 < p <= 1 / 20_001 * 1.0001
    assert sign_flip_p([0.5, -0.5] * 20) == 1.0


def test_bootstrap_ci_and_paired_test():
    assert bootstrap_ci([1.0] * 10) == (1.0, 1.0)
    low, high = bootstrap_ci(np.r_[np.ones(30), np.zeros(70)])
    assert 0.18 < low < 0.3 < high < 0.42
    a = np.array([1, 1, 0, 0, 1, 0, 1, 1, 0, 1], float)
    b = np.array([1, 1, 1, 1, 1, 1, 1, 1, 0, 1], float)  # 3 discordant, all for b
    t = paired_test(a, b)
    assert (t.n, t.b_better, t.a_better, t.test) == (10, 3, 0, "McNemar exact")
    assert t.delta == pytest.approx(0.3) and t.p == pytest.approx(2 / 8)
    frac = paired_test([0.0, 0.3, 0.6], [0.3, 0.6, 0.9])
    assert frac.test == "sign-flip permutation" and frac.p == pytest.approx(0.25)
    with_nan = paired_test([1.0, math.nan, 0.0], [1.0, 1.0, 1.0])
    assert with_nan.n == 2 and with_nan.delta == pytest.approx(0.5)
    assert paired_test([], []).test == "none"
    with pytest.raises(ValueError, match="same length"):
        paired_test([1.0], [1.0, 0.0])


def test_benjamini_hochberg_by_hand():
    # sorted 0.005, 0.01, 0.03, 0.04 → ×4/rank: 0.02, 0.02, 0.04, 0.04 (then running minimum)
    q = benjamini_hochberg([0.01, 0.04, 0.03, 0.005])
    assert q == pytest.approx([0.02, 0.04, 0.04, 0.02])
    q = benjamini_hochberg([0.5, math.nan, 0.01])  # NaN neither counts nor gets a q
    assert q[0] == pytest.approx(0.5) and math.isnan(q[1]) and q[2] == pytest.approx(0.02)
    assert benjamini_hochberg([0.9, 0.8]) == pytest.approx([0.9, 0.9])


def test_intervals_overlap():
    assert intervals_overlap(0.9, 1.0, 1.0, 1.1) and not intervals_overlap(0.5, 0.6, 0.98, 1.02)
    assert not intervals_overlap(math.nan, 1.0, 0.9, 1.1)
