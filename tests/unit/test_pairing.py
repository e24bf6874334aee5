"""Paired, interleaved measurement against a drifting fake clock (no wall-clock assertions).

Each simulated generation takes `cost[arm] × drift(t)` ms, where t is the time already spent:
the machine slows down (a ramp) or a foreign load starts mid-run (a step). The sequential
design (one cell after another) then gives identical arms different latencies; the interleaved
design pairs each arm with `full` in the same pass and recovers the true ratio.
"""

from __future__ import annotations

import math

import pytest

from adabench.sweep import pairing
from adabench.sweep.cell_config import CellConfig
from adabench.sweep.group import AA, Arm, arm_ratios, full_partner, worst_half_width


def _simulate(order: str, costs: list[float], drift, n_samples=60, repeats=1, seed=0, noise=0.0):
    """Returns measurement rows of a simulated group run under `drift(t_ms) -> factor`."""
    import random

    rng = random.Random(seed)
    t, rows = 0.0, []
    for step in pairing.steps(order, len(costs), range(n_samples), 0, repeats, seed, "g"):
        sample_factor = 1.0 + 0.5 * (step.sample % 7) / 7  # samples differ in length
        ms = costs[step.arm] * sample_factor * drift(t) * (1 + noise * rng.uniform(-1, 1))
        t += ms
        rows.append({"arm": str(step.arm), "sample": step.sample, "round": 0,
                     "repeat": step.repeat, "latency_ms": ms, "prefill_ms": ms / 2,
                     "decode_ms_per_token": ms / 10})  # fmt: skip
    return rows


def _ratio(rows, arm: str, ref: str = "0") -> float:  # the cell's latency_ratio
    return pairing.ratio_summary(arm_ratios(rows, arm, ref)["latency"])[0]


def ramp(t):
    return 1.0 + t / 2000.0  # the machine gets steadily slower (2× after 2 s of work)


def step(t):
    return 1.0 if t < 1500 else 3.0  # a foreign load starts mid-run


@pytest.mark.parametrize("drift", [ramp, step], ids=["ramp", "step"])
def test_interleaved_identical_arms_ratio_is_one_sequential_is_biased(drift):
    costs = [10.0, 10.0, 10.0]  # full, and two arms that run exactly its plan
    seq = _simulate("sequential", costs, drift)
    inter = _simulate("interleaved", costs, drift)
    for arm in ("1", "2"):
        assert abs(_ratio(inter, arm) - 1.0) <= 0.01, "interleaved A/A must be 1.0 ± 1 %"
    assert max(abs(_ratio(seq, a) - 1.0) for a in ("1", "2")) > 0.2, "sequential is biased here"


def test_interleaved_recovers_true_ratio_under_drift_and_noise():
    rows = _simulate("interleaved", [10.0, 6.0, 10.0], ramp, noise=0.05)
    ratio, lo, hi = pairing.ratio_summary(arm_ratios(rows, "1", "0")["latency"])
    assert lo <= 0.6 <= hi and abs(ratio - 0.6) < 0.02


def test_order_is_a_permutation_per_pass_reproducible_from_the_seed():
    first = [pairing.arm_order(7, "g", s, 0, 0, 5) for s in range(20)]
    assert all(sorted(p) == list(range(5)) for p in first)
    assert first == [pairing.arm_order(7, "g", s, 0, 0, 5) for s in range(20)]
    assert len({tuple(p) for p in first}) > 5, "orders must vary from sample to sample"
    assert first != [pairing.arm_order(8, "g", s, 0, 0, 5) for s in range(20)]


def test_steps_interleaved_run_every_arm_once_per_pass_sequential_arm_major():
    inter = list(pairing.steps("interleaved", 3, [0, 1], 0, 2, 0, "g"))
    assert len(inter) == 12
    for s in (0, 1):
        for r in (0, 1):
            arms = [x.arm for x in inter if x.sample == s and x.repeat == r]
            assert sorted(arms) == [0, 1, 2]
    assert [x.sample for x in inter] == [0] * 6 + [1] * 6  # sample-major
    seq = list(pairing.steps("sequential", 3, [0, 1], 0, 2, 0, "g"))
    assert [x.arm for x in seq] == [0] * 4 + [1] * 4 + [2] * 4


def test_per_sample_ratio_is_geometric_mean_of_paired_passes():
    assert pairing.per_sample_ratio([2.0, 8.0], [4.0, 4.0]) == pytest.approx(1.0)
    assert pairing.per_sample_ratio([6.0], [3.0]) == pytest.approx(2.0)
    assert math.isnan(pairing.per_sample_ratio([1.0], [math.nan]))


def test_ratio_summary_is_reciprocal_and_ci_contains_it():
    up = [1.2, 1.5, 1.1, 1.3, 1.4]
    r, lo, hi = pairing.ratio_summary(up)
    r_inv, lo_inv, hi_inv = pairing.ratio_summary([1 / x for x in up])
    assert r * r_inv == pytest.approx(1.0)
    assert lo <= r <= hi and lo_inv <= r_inv <= hi_inv


def test_partner_is_the_full_arm_and_aa_is_never_the_partner():
    cell = CellConfig(model="tiny")
    arms = [
        Arm("x", CellConfig(model="tiny", method="layer-drop", budget=0.5)),
        Arm(AA, cell, hidden=True),
        Arm("f", cell),
    ]
    assert full_partner(arms) == "f"
    assert full_partner(arms[:2]) is None


def test_worst_half_width_shrinks_with_more_samples():
    cell = CellConfig(model="tiny")
    arms = [Arm("0", cell), Arm("1", CellConfig(model="tiny", method="layer-drop"))]
    few = _simulate("interleaved", [10.0, 6.0], ramp, n_samples=8, noise=0.3)
    many = _simulate("interleaved", [10.0, 6.0], ramp, n_samples=200, noise=0.3)
    assert worst_half_width(many, arms, 0) < worst_half_width(few, arms, 0)


def _passes(arms: dict[str, float], drift, samples=3, rounds=2, repeats=2) -> list[dict]:
    """Fake measurements: arm latency = its cost × the drift of (sample, round, repeat), the
    same for every arm in one pass, so only a pass-by-pass pairing recovers the cost ratio."""
    out = []
    for s in range(samples):
        for r in range(rounds):
            for k in range(repeats):
                d = drift(s, r, k)
                out += [
                    {"arm": arm, "sample": s, "round": r, "repeat": k, "latency_ms": cost * d,
                     "prefill_ms": cost * d / 2, "decode_ms_per_token": cost * d / 10}
                    for arm, cost in arms.items()
                ]  # fmt: skip
    return out


def test_arm_ratios_pair_each_pass_with_the_full_run_of_the_same_pass():
    measurements = _passes({"full": 100.0, "drop": 40.0}, lambda s, r, k: 1 + s + 3 * r + 7 * k)
    ratios = arm_ratios(measurements, "drop", "full")
    assert ratios["latency"] == pytest.approx([0.4] * 3)  # sample order
    assert ratios["prefill"] == pytest.approx([0.4] * 3)
    assert ratios["decode"] == pytest.approx([0.4] * 3)
    # The full runs relabelled one sample on (paired by position, not by sample): wrong ratios.
    shifted = [{**m, "sample": (m["sample"] + 1) % 3} if m["arm"] == "full" else m
               for m in measurements]  # fmt: skip
    assert arm_ratios(shifted, "drop", "full")["latency"] != pytest.approx([0.4] * 3)
    # Sample 0's full runs of round 0 lost (a resumed group): the remaining passes still pair
    # pass by pass, so a pairing by position within the sample would misreport sample 0.
    partial = [m for m in measurements if not (m["arm"] == "full" and m["sample"] == 0
                                               and m["round"] == 0)]  # fmt: skip
    assert arm_ratios(partial, "drop", "full")["latency"] == pytest.approx([0.4] * 3)


def test_arm_ratios_of_a_missing_partner_are_nan():
    measurements = _passes({"drop": 40.0}, lambda s, r, k: 1.0)
    assert all(math.isnan(x) for x in arm_ratios(measurements, "drop", "full")["latency"])


def test_aa_band_rule_width_and_offset():
    from adabench.analysis.findings import aa_is_weak

    assert not aa_is_weak(0.98, 1.03)  # holds 1.0, ±2.5 %
    assert not aa_is_weak(1.004, 1.02)  # misses 1.0 by a hair: chance, not bias
    assert aa_is_weak(1.02, 1.05)  # misses 1.0 by 2 %
    assert aa_is_weak(0.90, 1.12)  # wider than ±5 %
