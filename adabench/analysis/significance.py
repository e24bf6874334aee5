"""Paired significance tests for cells that answered the same samples: McNemar's exact test on
binary scores, a sign-flip permutation test on fractional (VQA-style) scores, a paired bootstrap
CI of the accuracy difference, and Benjamini–Hochberg q-values. Pure Python/numpy (no scipy).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

EXACT_FLIPS_MAX = 16
"""Up to this many non-zero differences the sign-flip test enumerates all 2^n assignments."""
N_FLIPS = 20_000
N_BOOT = 2_000


@dataclass(frozen=True)
class PairedTest:
    """The paired comparison of two score vectors over the same samples (b − a)."""

    n: int = field(metadata={"help": "samples scored by both (NaN pairs dropped)"})
    delta: float = field(metadata={"help": "mean(b) − mean(a): the accuracy difference"})
    ci_low: float = field(metadata={"help": "95 % paired-bootstrap CI of delta, low end"})
    ci_high: float = field(metadata={"help": "95 % paired-bootstrap CI of delta, high end"})
    p: float = field(metadata={"help": "two-sided p-value that delta is 0"})
    test: str = field(metadata={"help": "'McNemar exact' | 'sign-flip permutation' | 'none'"})
    b_better: int = field(default=0, metadata={"help": "samples where b scored higher"})
    a_better: int = field(default=0, metadata={"help": "samples where a scored higher"})


def mcnemar_exact_p(a_better: int, b_better: int) -> float:
    """Returns McNemar's exact two-sided p-value from the discordant pair counts: the binomial
    test of min(a_better, b_better) under Binomial(a_better + b_better, 1/2). 1 when none."""
    n = a_better + b_better
    if n == 0:
        return 1.0
    tail = sum(math.comb(n, k) for k in range(min(a_better, b_better) + 1))
    return min(1.0, 2 * tail / 2**n)  # exact integer arithmetic: no overflow at large n


def sign_flip_p(diffs, n_flips: int = N_FLIPS, seed: int = 0) -> float:
    """Returns the two-sided sign-flip permutation p-value of mean(diffs) = 0.

    Under the null each paired difference is as likely +d as −d. Exact enumeration up to
    EXACT_FLIPS_MAX non-zero differences; beyond, `n_flips` random flips with the (k + 1) ÷
    (n + 1) estimate, which never returns 0."""
    d = np.asarray(diffs, float)
    d = d[(d != 0) & ~np.isnan(d)]
    if len(d) == 0:
        return 1.0
    observed = abs(d.sum()) - 1e-9 * np.abs(d).sum()  # ties count as "at least as extreme"
    if len(d) <= EXACT_FLIPS_MAX:
        signs = 1 - 2 * ((np.arange(2 ** len(d))[:, None] >> np.arange(len(d))) & 1)
        return float(np.mean(np.abs(signs @ d) >= observed))
    rng = np.random.default_rng(seed)
    signs = rng.choice([-1.0, 1.0], size=(n_flips, len(d)))
    return float((np.sum(np.abs(signs @ d) >= observed) + 1) / (n_flips + 1))


def bootstrap_ci(diffs, n_boot: int = N_BOOT, seed: int = 0, level: float = 0.95):
    """Returns the percentile bootstrap CI (low, high) of mean(diffs), resampling pairs."""
    d = np.asarray(diffs, float)
    if len(d) == 0:
        return math.nan, math.nan
    rng = np.random.default_rng(seed)
    means = d[rng.integers(0, len(d), size=(n_boot, len(d)))].mean(axis=1)
    tail = (1 - level) / 2 * 100
    low, high = np.percentile(means, [tail, 100 - tail])
    return float(low), float(high)


def paired_test(a, b, seed: int = 0) -> PairedTest:
    """Tests b against a on the same samples (aligned vectors of per-sample scores in [0, 1]).

    Binary scores get McNemar's exact test, fractional ones the sign-flip permutation test; both
    get a paired-bootstrap 95 % CI of the difference."""
    a, b = np.asarray(a, float), np.asarray(b, float)
    if a.shape != b.shape:
        raise ValueError(f"paired scores need the same length, got {len(a)} and {len(b)}")
    keep = ~(np.isnan(a) | np.isnan(b))
    a, b = a[keep], b[keep]
    if len(a) == 0:
        return PairedTest(0, math.nan, math.nan, math.nan, math.nan, "none")
    d = b - a
    b_better, a_better = int((d > 0).sum()), int((d < 0).sum())
    binary = bool(np.isin(a, (0.0, 1.0)).all() and np.isin(b, (0.0, 1.0)).all())
    if binary:
        p, test = mcnemar_exact_p(a_better, b_better), "McNemar exact"
    else:
        p, test = sign_flip_p(d, seed=seed), "sign-flip permutation"
    low, high = bootstrap_ci(d, seed=seed)
    return PairedTest(len(d), float(d.mean()), low, high, p, test, b_better, a_better)


def benjamini_hochberg(pvalues) -> np.ndarray:
    """Returns Benjamini–Hochberg adjusted p-values (q-values): rejecting q < α holds the
    false-discovery rate at α over the whole family. NaN p-values stay NaN and do not count."""
    p = np.asarray(pvalues, float)
    q = np.full(p.shape, math.nan)
    valid = np.flatnonzero(~np.isnan(p))
    if len(valid) == 0:
        return q
    order = valid[np.argsort(p[valid], kind="stable")]
    m = len(order)
    scaled = p[order] * m / np.arange(1, m + 1)
    q[order] = np.minimum(1.0, np.minimum.accumulate(scaled[::-1])[::-1])
    return q


def intervals_overlap(low_a: float, high_a: float, low_b: float, high_b: float) -> bool:
    """Returns True when [low_a, high_a] and [low_b, high_b] share a point (False if any NaN)."""
    if any(math.isnan(v) for v in (low_a, high_a, low_b, high_b)):
        return False
    return low_a <= high_b and low_b <= high_a


def min_attainable_p(n_discordant: int) -> float:
    """Returns the smallest two-sided p-value an exact paired test (McNemar, or the sign-flip
    test enumerated exactly) can give with `n_discordant` non-zero differences: 2 ÷ 2^n, capped
    at 1 — a cell with no changed answer cannot show a change at any level."""
    return min(1.0, 2.0 * 0.5 ** max(0, int(n_discordant)))


def tarone_bh(pvalues, min_pvalues, alpha: float) -> np.ndarray:
    """Returns Benjamini–Hochberg q-values over the tests that can reach `alpha` at all, chosen
    by Tarone's rule for discrete tests (the smallest K with #{min p ≤ α ÷ K} ≤ K; Gilbert
    2005 pairs it with BH): a test whose smallest attainable p-value is above α ÷ K can never be
    significant and does not dilute the others. Tests left out get q = 1 (NaN p stays NaN)."""
    p, low = np.asarray(pvalues, float), np.asarray(min_pvalues, float)
    q = np.where(np.isnan(p), math.nan, 1.0)
    valid = ~np.isnan(p)
    m = int(valid.sum())
    for k in range(1, m + 1):
        family = valid & (low <= alpha / k)
        if family.sum() <= k:
            break
    else:
        family = valid
    if family.any():
        q[family] = benjamini_hochberg(p[family])
    return q
