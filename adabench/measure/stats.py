"""Summary statistics for measured values: spread, percentiles, bootstrap CIs, outliers, warnings.

Percentiles use numpy's "linear" method (type 7 of Hyndman & Fan, numpy's default): the value at
rank (n − 1)·q interpolated linearly between the two closest order statistics.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np

PERCENTILES = (50, 90, 95, 99)
PERCENTILE_METHOD = "linear"
CV_WARN = 0.10  # our own threshold: above 10 % relative spread a 1.1× difference is noise
OUTLIER_IQR_FACTOR = 3.0


def _array(values: Sequence[float]) -> np.ndarray:
    return np.asarray(list(values), dtype=float)


def summarize(values: Sequence[float]) -> dict[str, float]:
    """Returns count, mean, std (ddof=1; 0 for one value), min, max, p50/p90/p95/p99 ("linear"
    percentiles) and cv (std ÷ mean) of `values`, in their unit. Empty input → count 0, NaNs."""
    x = _array(values)
    nan = float("nan")
    if x.size == 0:
        return {"count": 0, "mean": nan, "std": nan, "min": nan, "max": nan, "cv": nan} | {
            f"p{q}": nan for q in PERCENTILES
        }
    mean = float(x.mean())
    std = float(x.std(ddof=1)) if x.size > 1 else 0.0
    result = {
        "count": int(x.size),
        "mean": mean,
        "std": std,
        "min": float(x.min()),
        "max": float(x.max()),
    }
    for q, value in zip(
        PERCENTILES, np.percentile(x, PERCENTILES, method=PERCENTILE_METHOD), strict=True
    ):
        result[f"p{q}"] = float(value)
    result["cv"] = std / abs(mean) if mean else nan
    return result


def bootstrap_ci(
    values: Sequence[float],
    stat: Callable[..., float] = np.mean,
    n_boot: int = 2000,
    alpha: float = 0.05,
    seed: int = 0,
) -> tuple[float, float]:
    """Returns the (low, high) percentile-bootstrap confidence interval of `stat` at level
    1 − alpha (95 % by default), resampling `values` with replacement `n_boot` times with a
    fixed `seed` (deterministic). One value → (v, v); none → (NaN, NaN).

    Works for accuracy too: pass the per-sample scores (0/1) and the CI is that of the mean."""
    x = _array(values)
    if x.size == 0:
        return float("nan"), float("nan")
    if x.size == 1:
        return float(x[0]), float(x[0])
    rng = np.random.default_rng(seed)
    resamples = x[rng.integers(0, x.size, size=(n_boot, x.size))]
    try:
        stats = np.asarray(stat(resamples, axis=1), dtype=float)
    except TypeError:  # a statistic without an axis argument
        stats = np.array([stat(row) for row in resamples], dtype=float)
    low, high = np.percentile(stats, [100 * alpha / 2, 100 * (1 - alpha / 2)])
    return float(low), float(high)


def outlier_flags(values: Sequence[float], factor: float = OUTLIER_IQR_FACTOR) -> list[bool]:
    """Returns one flag per value: True outside Tukey's far-out fences
    [Q1 − factor·IQR, Q3 + factor·IQR] (factor 3). Fewer than 4 values → no flags."""
    x = _array(values)
    if x.size < 4:
        return [False] * int(x.size)
    q1, q3 = np.percentile(x, [25, 75], method=PERCENTILE_METHOD)
    iqr = q3 - q1
    return [bool(v < q1 - factor * iqr or v > q3 + factor * iqr) for v in x]


def spread_warning(values: Sequence[float], what: str = "latency") -> str | None:
    """Returns a warning with a remedy when the values are too noisy to trust (CV > 10 %, a slow
    first run, or values beyond the quartiles ± 3·IQR), else None. The wording follows
    hyperfine's warnings (a slow first run, statistical outliers); the CV threshold is ours."""
    x = _array(values)
    if x.size < 2:
        return None
    summary = summarize(x)
    flags = outlier_flags(x)
    if summary["cv"] > CV_WARN:
        return (
            f"{what} spread {100 * summary['cv']:.0f} %: the machine is busy; "
            "add --warmup or close other programs"
        )
    if flags[0] and sum(flags) == 1:
        return (
            f"{what}: the first run was an outlier (a cold start or cache effect); "
            "add --warmup to discard it"
        )
    if any(flags):
        return (
            f"{what}: {sum(flags)} of {x.size} values are outliers (beyond the quartiles ± 3·IQR); "
            "another program may have interfered; rerun on a quiet system"
        )
    return None
