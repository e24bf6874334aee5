"""SLO mode: latency model, controller on fake latency traces, schedules, one tiny end-to-end cell."""

from __future__ import annotations

import math
import threading
import time
from itertools import pairwise

import numpy as np
import pytest

from adabench.errors import UserError
from adabench.slo import (
    LatencyModel,
    ScheduleDriver,
    SloController,
    decision_overhead_us,
    format_schedule,
    level_at,
    max_level,
    parse_schedule,
)

MODEL = LatencyModel(budgets=[0.5, 0.75, 1.0], latency_ms=[50.0, 75.0, 100.0])
GRID = [0.5, 0.625, 0.75, 0.875, 1.0]


# --- latency model ---------------------------------------------------------------------------


def test_latency_model_interpolates_and_round_trips(tmp_path):
    assert MODEL.predict(0.625) == pytest.approx(62.5)
    assert MODEL.predict(0.2) == 50.0 and MODEL.predict(1.5) == 100.0  # flat beyond the ends
    noisy = LatencyModel(budgets=[0.5, 0.75, 1.0], latency_ms=[60.0, 55.0, 100.0])
    assert noisy.predict(0.75) == 60.0  # never predicts faster at a larger budget
    again = LatencyModel.from_dict(noisy.to_dict())
    assert again.latency_ms == [60.0, 55.0, 100.0] and again.predict(0.75) == 60.0
    noisy.save(tmp_path / "lm.json")
    assert LatencyModel.load(tmp_path / "lm.json").to_dict() == noisy.to_dict()


@pytest.mark.parametrize(
    "budgets, lat",
    [([], []), ([0.5, 0.5], [1.0, 2.0]), ([0.5], [0.0]), ([1.5], [1.0]), ([0.5], [1.0, 2.0])],
)
def test_latency_model_rejects_bad_profiles(budgets, lat):
    with pytest.raises(UserError):
        LatencyModel(budgets=budgets, latency_ms=lat)


# --- controller on fake timings --------------------------------------------------------------


def test_choose_takes_largest_budget_within_target_times_margin():
    ctl = SloController(MODEL, target_ms=80.0, margin=0.1, budget_grid=GRID)  # limit 72 ms
    assert ctl.choose() == (0.625, 1.0, False)
    ctl.slowdown = 0.5
    assert ctl.choose().budget == 1.0
    assert (
        SloController(MODEL, target_ms=80.0, margin=0.0, budget_grid=GRID).choose().budget == 0.75
    )


def test_clamps_to_reachable_range_and_flags_when_min_misses():
    ctl = SloController(MODEL, target_ms=1000.0, min_budget=0.6, max_budget=0.8, budget_grid=GRID)
    assert ctl.grid == [0.6, 0.625, 0.75, 0.8]  # grid points outside [min, max] dropped, ends added
    assert ctl.choose() == (0.8, 1.0, False)
    ctl.slowdown = 100.0
    budget, slowdown, flagged = ctl.choose()
    assert (budget, slowdown, flagged) == (0.6, 100.0, True)


@pytest.mark.parametrize(
    "kwargs",
    [
        {"target_ms": 0},
        {"margin": 1.0},
        {"alpha": 0.0},
        {"min_budget": 0.0},
        {"max_budget": 0.4, "min_budget": 0.5},
    ],
)
def test_controller_rejects_bad_settings(kwargs):
    with pytest.raises(UserError):
        SloController(MODEL, **{"target_ms": 80.0, **kwargs})


def _plant(budget: float, slowdown: float, noise: float = 1.0) -> float:
    """Fake timing: the true latency is the model's prediction × the true slowdown (× noise)."""
    return MODEL.predict(budget) * slowdown * noise


def test_estimator_converges_after_step_change():
    alpha = 0.3
    ctl = SloController(MODEL, target_ms=120.0, alpha=alpha, budget_grid=GRID)
    assert ctl.time_constant_requests == pytest.approx(-1 / math.log(0.7))
    for _ in range(20):
        b, _, _ = ctl.choose()
        ctl.observe(b, _plant(b, 1.0))
    assert ctl.slowdown == pytest.approx(1.0) and ctl.choose().budget == 1.0
    budgets = []
    for _ in range(12):  # load arrives: everything is 2× slower
        b, _, _ = ctl.choose()
        budgets.append(b)
        ctl.observe(b, _plant(b, 2.0))
    # Error shrinks by (1 - alpha) per request: within 5 % of the step after 9 requests.
    assert abs(ctl.slowdown - 2.0) <= 0.05 * 1.0 + 1e-9
    assert budgets[0] == 1.0 and budgets[-1] == 0.5  # 0.5 × 2 = 100 ms ≤ 108 ms; 0.625 would miss
    assert budgets == sorted(budgets, reverse=True)
    for _ in range(30):  # load leaves again: the budget climbs back
        b, _, _ = ctl.choose()
        ctl.observe(b, _plant(b, 1.0))
    assert ctl.choose().budget == 1.0


def test_closed_loop_meets_slo_under_noisy_load_where_full_misses():
    rng = np.random.default_rng(0)
    ctl = SloController(MODEL, target_ms=120.0, budget_grid=GRID)
    met_ctl, met_full = [], []
    for i in range(400):
        slowdown = 1.0 if (i // 100) % 2 == 0 else 1.8  # load toggles every 100 requests
        noise = float(rng.lognormal(0.0, 0.03))
        b, _, _ = ctl.choose()
        latency = _plant(b, slowdown, noise)
        ctl.observe(b, latency)
        met_ctl.append(latency <= 120.0)
        met_full.append(_plant(1.0, slowdown, noise) <= 120.0)
    assert np.mean(met_ctl) >= 0.95
    assert np.mean(met_ctl) - np.mean(met_full) >= 0.3


def test_deviation_term_buys_headroom_under_jitter():
    """Bursty load (slowdown 1.6, ×1.4 for the 30 % of requests that lose a time slice): the
    mean-only estimate (1.79) picks 0.75, whose bursts miss; mean + 2 deviations picks 0.5."""
    attained = {}
    for k in (0.0, 2.0):
        rng = np.random.default_rng(1)
        ctl = SloController(MODEL, target_ms=150.0, budget_grid=GRID, k_dev=k)
        met = []
        for _ in range(600):
            slowdown = 1.6 * (1.4 if rng.random() < 0.3 else 1.0)
            b, s_used, _ = ctl.choose()
            latency = _plant(b, slowdown)
            ctl.observe(b, latency)
            met.append(latency <= 150.0)
        attained[k] = float(np.mean(met))
        if k:
            assert ctl.deviation > 0 and s_used > ctl.slowdown
    assert attained[2.0] >= 0.95 and attained[2.0] - attained[0.0] >= 0.1, attained
    with pytest.raises(UserError, match="k_dev"):
        SloController(MODEL, target_ms=80.0, k_dev=-1.0)


def test_observe_ignores_bad_timings_and_overhead_is_small():
    ctl = SloController(MODEL, target_ms=80.0)
    for bad in (math.nan, math.inf, 0.0, -1.0):
        assert ctl.observe(1.0, bad) == 1.0
    us = decision_overhead_us(n=2000)
    assert 0 < us < 10_000  # reported, not a performance assertion: just a sane number


# --- contention schedule ---------------------------------------------------------------------


def test_parse_schedule_and_cycling():
    steps = parse_schedule("0:30s, 1.0:30s,0.5:500ms,0.25:1m,1:2")
    assert steps == [(0.0, 30.0), (1.0, 30.0), (0.5, 0.5), (0.25, 60.0), (1.0, 2.0)]
    assert max_level(steps) == 1.0
    assert parse_schedule(format_schedule(steps)) == steps
    sched = parse_schedule("0:30s,1.0:30s,0.5:30s")
    assert level_at(sched, 0) == (0.0, 30.0)
    assert level_at(sched, 45) == (1.0, 15.0)
    assert level_at(sched, 60) == (0.5, 30.0)
    assert level_at(sched, 95)[0] == 0.0  # cycles after 90 s
    assert level_at(sched, 90 * 7 + 31)[0] == 1.0


@pytest.mark.parametrize("text, match", [
    ("", "empty"), ("0:30s,,1:30s", "empty"), ("0.5", "no ':'"), ("x:30s", "not a number"),
    ("1.5:30s", r"\[0, 1\]"), ("-0.1:30s", r"\[0, 1\]"), ("nan:30s", r"\[0, 1\]"), ("0.5:abc", "bad duration"),
    ("0.5:-3s", "bad duration"), ("0.5:0s", "> 0"), ("0.5:10h", "bad duration"),
])  # fmt: skip
def test_parse_schedule_errors(text, match):
    with pytest.raises(UserError, match=match):
        parse_schedule(text)


class FakeContention:
    """Stands in for `Contention`: records set_level calls; `fail_after` makes the n-th call raise."""

    def __init__(
        self, kind: str = "compute", pids: list[int] | None = None, fail_after: int | None = None
    ):
        self.kind, self.pids, self.fail_after = kind, [123] if pids is None else pids, fail_after
        self.levels: list[float] = []
        self.lock = threading.Lock()

    def set_level(self, level: float) -> None:
        with self.lock:
            if self.fail_after is not None and len(self.levels) >= self.fail_after:
                raise RuntimeError("worker gone")
            self.levels.append(level)


def test_schedule_driver_follows_and_restarts():
    stress = FakeContention()
    with ScheduleDriver(stress, [(0.5, 0.1), (1.0, 0.1)], max_sleep_s=0.01) as driver:
        assert driver.current_level() == 0.5
        deadline = time.monotonic() + 5.0
        while len(stress.levels) < 4 and time.monotonic() < deadline:
            time.sleep(0.01)
        driver.restart()
        assert driver.current_level() == 0.5  # the cycle starts again from its first step
    levels = stress.levels
    assert len(levels) >= 4
    assert all(a != b for a, b in pairwise(levels))  # only changes are sent
    assert levels[:4] == [0.5, 1.0, 0.5, 1.0]
    assert [lv for _, lv in driver.changes] == levels


def test_schedule_driver_errors():
    with pytest.raises(UserError, match="'sm'"):
        ScheduleDriver(FakeContention(kind="sm"), [(1.0, 1.0)]).__enter__()
    with pytest.raises(UserError, match="highest level"):
        ScheduleDriver(FakeContention(pids=[]), [(0.0, 1.0), (0.5, 1.0)]).__enter__()
    driver = ScheduleDriver(
        FakeContention(fail_after=1), [(0.5, 0.01), (1.0, 0.01)], max_sleep_s=0.005
    )
    with pytest.raises(RuntimeError, match="worker gone"), driver:
        time.sleep(0.2)


# --- end to end on the tiny random AdaLLaVA-L --------------------------------------------------


@pytest.fixture(scope="module")
def tiny_l(random_adallava_dirs):
    import torch

    from adabench.data.suites import get_spec, load_suite
    from adabench.models.loading import load_model
    from adabench.sweep.cell import prepare_samples

    torch.set_num_threads(1)
    loaded = load_model(str(random_adallava_dirs["L"]), device="cpu")
    spec = get_spec("shapes")
    samples = load_suite("shapes", limit=6)
    return loaded, spec, samples, prepare_samples(loaded, spec, samples)


def test_budget_grid_and_profile(tiny_l):
    from adabench.sweep.latency_profile import budget_grid, profile_latency

    loaded, spec, samples, prepared = tiny_l
    assert budget_grid(loaded, "adallava-l") == GRID  # 8 blocks, prefix 4
    lm = profile_latency(
        loaded,
        "adallava-l",
        spec,
        samples[:2],
        prepared[:2],
        budgets=[0.5, 1.0],
        repeats=1,
        max_new_tokens=2,
    )
    assert lm.budgets == [0.5, 1.0] and lm.runs == [2, 2] and all(x > 0 for x in lm.latency_ms)
    assert lm.method == "adallava-l" and lm.max_new_tokens == 2


def test_slo_cell_drops_budget_when_slower_than_predicted(tiny_l, tmp_path):
    from adabench import store
    from adabench.sweep.cell import CellConfig
    from adabench.sweep.slo_cell import run_slo_cell

    loaded, spec, samples, prepared = tiny_l
    # Predicts ~0.01 ms, far below any real run: at slowdown 1 the full budget fits the 0.0115 ms
    # target; after the first measured sample the estimate jumps and the controller falls to 0.5.
    optimistic = LatencyModel(budgets=[0.5, 1.0], latency_ms=[0.005, 0.01])
    cfg = CellConfig(
        model="tiny-l", method="adallava-l", warmup=0, max_new_tokens=2, contention=0.0
    )
    cell, rows = run_slo_cell(
        loaded, spec, samples, prepared, cfg, slo_ms=0.0115, latency_model=optimistic
    )
    chosen = [r["chosen_budget"] for r in rows]
    est = [r["estimated_slowdown"] for r in rows]
    assert len(rows) == 6 and chosen[0] == 1.0 and chosen[-1] == 0.5
    assert est[0] == 1.0 and all(e > 1 for e in est[1:])
    assert [r["flagged"] for r in rows] == [False] + [True] * 5
    assert all(r["flops_ratio"] <= r["chosen_budget"] + 1e-9 for r in rows)
    assert not any(r["slo_met"] for r in rows) and cell["slo_attainment"] == 0.0
    assert cell["slo_mode"] is True and cell["budget"] == 1.0 and cell["slo_ms"] == 0.0115
    assert cell["chosen_budget_mean"] == pytest.approx(np.mean(chosen))
    assert cell["cell_id"] != cfg.cell_id()  # never collides with the fixed-budget cell
    assert [r["contention_now"] for r in rows] == [0.0] * 6
    assert all(b > a for a, b in pairwise([r["t_s"] for r in rows]))

    full_cfg = CellConfig(model="tiny-l", method="full", warmup=0, max_new_tokens=2)
    full, full_rows = run_slo_cell(
        loaded, spec, samples, prepared, full_cfg, slo_ms=1e6, latency_model=None
    )
    assert full["slo_attainment"] == 1.0 and {r["chosen_budget"] for r in full_rows} == {1.0}
    assert all(math.isnan(r["estimated_slowdown"]) for r in full_rows)

    # Both write to a results folder beside a plain cell (without SLO columns) and read back.
    plain = {
        k: v
        for k, v in full.items()
        if not k.startswith(("slo_", "chosen_", "flagged", "contention_s"))
    }
    plain["cell_id"] = "plain"
    for row, srows in ((cell, rows), (full, full_rows), (plain, full_rows)):
        store.write_cell(tmp_path, row, srows)
    store.consolidate(tmp_path)
    run = store.load_run(tmp_path)
    assert len(run.cells) == 3 and len(run.samples) == 18
    assert set(run.samples.columns) >= {
        "chosen_budget",
        "estimated_slowdown",
        "slo_met",
        "flagged",
        "contention_now",
        "t_s",
    }
