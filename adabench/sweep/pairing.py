"""Paired, randomly interleaved measurement: the order of arms and the ratios it makes possible.

A *group* is the cells that share (contention level, model, suite). Its *arms* (one per cell,
plus the hidden A/A `full` arm) run sample by sample; a *pass* is one run of every arm on one
sample, in an order shuffled per (sample, round, repeat) from the run's seed. The latency of
an arm on a sample is then divided by its `full` partner's from the same pass, so machine drift
slower than one pass cancels (docs/measurement.md, "Pairing").

Everything here is pure (no torch, no clock), so the design is testable with fake clocks.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import numpy as np

from adabench.measure.stats import bootstrap_ci


@dataclass(frozen=True)
class Step:
    """One timed generation: arm `arm` on sample `sample`, round `round_`, repeat `repeat`."""

    arm: int
    sample: int
    round_: int
    repeat: int


def arm_order(
    seed: int, group_id: str, sample: int, round_: int, repeat: int, n_arms: int
) -> list[int]:
    """Returns a permutation of range(n_arms) for one pass, reproducible from its coordinates
    (so a resumed run shuffles exactly as the interrupted one would have)."""
    digest = hashlib.sha256(f"{seed}/{group_id}/{sample}/{round_}/{repeat}".encode()).digest()
    rng = np.random.default_rng(int.from_bytes(digest[:8], "little"))
    return [int(i) for i in rng.permutation(n_arms)]


def steps(
    order: str,
    n_arms: int,
    samples: Sequence[int],
    round_: int,
    repeats: int,
    seed: int,
    group_id: str,
) -> Iterator[Step]:
    """Yields the steps of one round over `samples`.

    interleaved: sample-major; for each sample and repeat, every arm once in a seeded random
    order. sequential: arm-major (one cell's samples after another's), as per-cell blocks."""
    if order == "sequential":
        for arm in range(n_arms):
            for s in samples:
                for r in range(repeats):
                    yield Step(arm, s, round_, r)
        return
    for s in samples:
        for r in range(repeats):
            for arm in arm_order(seed, group_id, s, round_, r, n_arms):
                yield Step(arm, s, round_, r)


def per_sample_ratio(values: Sequence[float], partners: Sequence[float]) -> float:
    """Returns the geometric mean of values[i] ÷ partners[i] over the passes of one sample
    (pairs with a non-positive or NaN member are dropped); NaN when no pair is left."""
    logs = [
        math.log(v / p)
        for v, p in zip(values, partners, strict=True)
        if v > 0 and p > 0 and math.isfinite(v) and math.isfinite(p)
    ]
    return math.exp(sum(logs) / len(logs)) if logs else math.nan


def _median_axis(x: np.ndarray, axis: int = -1) -> np.ndarray:
    return np.median(x, axis=axis)


def ratio_summary(ratios: Sequence[float], seed: int = 0) -> tuple[float, float, float]:
    """Returns (ratio, ci_low, ci_high): the median of per-sample ratios, taken on the log
    scale, and its 95 % percentile-bootstrap CI over samples. NaNs when none is finite.

    The median, not a mean: one pass hit by a GC pause or by a load that starts mid-pass makes
    one sample's ratio 3× off, which moves a mean of 60 samples by ~2 % and the median not at
    all. On the log scale, so that A÷B and B÷A are exactly reciprocal (docs/measurement.md)."""
    logs = [math.log(r) for r in ratios if r > 0 and math.isfinite(r)]
    if not logs:
        return math.nan, math.nan, math.nan
    lo, hi = bootstrap_ci(logs, stat=_median_axis, seed=seed)
    return math.exp(float(np.median(logs))), math.exp(lo), math.exp(hi)


def half_width(ci_low: float, ci_high: float) -> float:
    """Returns the CI half-width (ci_high − ci_low) / 2; inf when either end is NaN."""
    if not (math.isfinite(ci_low) and math.isfinite(ci_high)):
        return math.inf
    return (ci_high - ci_low) / 2
