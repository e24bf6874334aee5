"""Analysis on hand-built results: Pareto frontier, adherence, realization, SLO, compare stats."""

from __future__ import annotations

import importlib.util
import math
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from adabench.analysis.adherence import budget_adherence, realization_ratio, slo_attainment
from adabench.analysis.compare import (
    bootstrap_delta,
    compare_runs,
    mann_whitney_u,
    sign_test_p,
    to_markdown,
)
from adabench.analysis.pareto import accuracy_by_family, frontier_mask, pareto
from adabench.errors import UserError
from adabench.store import Run, load_run

_spec = importlib.util.spec_from_file_location(
    "make_run", Path(__file__).parents[1] / "fixtures" / "make_run.py"
)
make_run = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(make_run)


def _cells(rows: list[tuple]) -> pd.DataFrame:
    cols = ["method", "budget", "contention", "flops", "accuracy", "flops_ratio", "latency_ratio"]
    frame = pd.DataFrame(rows, columns=cols)
    frame["suite"], frame["model"] = "shapes", "tiny"
    frame["latency_ms_mean"] = frame["latency_ratio"] * 40.0
    frame["accuracy_ci_low"], frame["accuracy_ci_high"] = (
        frame["accuracy"] - 0.1,
        frame["accuracy"] + 0.1,
    )
    return frame


CELLS = _cells([
    ("full", 1.0, 0.0, 10e9, 0.90, 1.0, 1.0),
    ("layer-drop", 0.5, 0.0, 6e9, 0.40, 0.5, 0.6),
    ("adallava-l", 0.5, 0.0, 6e9, 0.70, 0.5, 0.62),
    ("adallava-l", 0.75, 0.0, 8e9, 0.95, 0.75, 0.8),
    ("layer-drop", 0.5, 0.5, 6e9, 0.40, 0.52, 0.7),
    ("full", 1.0, 0.5, 10e9, 0.90, 1.0, 1.0),
])  # fmt: skip


def test_frontier_mask_keeps_non_dominated_points():
    cost = np.array([1.0, 2.0, 2.0, 3.0, np.nan, 4.0])
    acc = np.array([0.5, 0.4, 0.7, 0.7, 0.99, 0.9])
    assert frontier_mask(cost, acc).tolist() == [True, False, True, False, False, True]


def test_pareto_is_per_contention_and_marks_frontier():
    front = pareto(CELLS, x="flops")
    at0 = front[front["contention"] == 0.0].set_index(["method", "budget"])["on_frontier"]
    # adallava@0.75 beats full (cheaper and more accurate), layer-drop ties cost with a better one
    assert at0.to_dict() == {("adallava-l", 0.5): True, ("layer-drop", 0.5): False,
                             ("adallava-l", 0.75): True, ("full", 1.0): False}  # fmt: skip
    at5 = front[front["contention"] == 0.5]
    assert at5["on_frontier"].all()  # layer-drop is cheapest, full most accurate
    by_latency = pareto(CELLS, x="latency")
    assert by_latency["cost"].max() == pytest.approx(40.0)
    with pytest.raises(UserError, match="x axis"):
        pareto(CELLS, x="flop")


def test_realization_ratio_and_adherence():
    r = realization_ratio([0.5, 1.0, 0.75], [0.6, 1.02, 0.75])
    assert r[0] == pytest.approx(0.8) and math.isnan(r[1]) and r[2] == pytest.approx(1.0)
    adh = budget_adherence(CELLS).set_index(["method", "budget", "contention"])
    assert not adh.loc[("layer-drop", 0.5, 0.5), "within_budget"]  # flops_ratio 0.52 > 0.5
    assert adh.loc[("layer-drop", 0.5, 0.5), "flops_excess"] == pytest.approx(0.02)
    assert adh.loc[("adallava-l", 0.5, 0.0), "realization"] == pytest.approx(0.76)
    assert adh["within_budget"].sum() == len(CELLS) - 1


def test_slo_attainment_only_where_present():
    assert slo_attainment(CELLS).empty
    with_slo = CELLS.assign(slo_ms=[50.0, np.nan, 50.0, 50.0, np.nan, np.nan], slo_attainment=0.9)
    assert len(slo_attainment(with_slo)) == 3


def test_accuracy_by_family():
    samples = pd.DataFrame({"suite": "s", "model": "m", "method": "full", "budget": 1.0,
                            "contention": 0.0, "family": ["a", "a", "b", "b"],
                            "score": [1.0, 0.0, 1.0, 1.0]})  # fmt: skip
    fam = accuracy_by_family(samples).set_index("family")
    assert fam.loc["a", "accuracy"] == 0.5 and fam.loc["b", "accuracy"] == 1.0
    assert fam.loc["a", "accuracy_ci_low"] == 0.0 and fam.loc["b", "n"] == 2
    assert accuracy_by_family(samples.drop(columns="family")).empty


def test_sign_test_matches_exact_binomial():
    assert sign_test_p(0, 0) == 1.0
    assert sign_test_p(8, 0) == pytest.approx(2 / 256)
    assert sign_test_p(4, 0) == pytest.approx(0.125)
    assert sign_test_p(3, 5) == pytest.approx(2 * (1 + 8 + 28 + 56) / 256)
    assert sign_test_p(2000, 1000) < 1e-20  # big n does not overflow


def test_mann_whitney_normal_approximation():
    u, p = mann_whitney_u([1, 2, 3], [4, 5, 6])
    assert u == 0.0
    assert p == pytest.approx(math.erfc((4.5 - 0.5) / math.sqrt(9 / 12 * 7) / math.sqrt(2)))
    assert mann_whitney_u([1, 1, 1], [1, 1, 1]) == (4.5, 1.0)  # all ties
    assert mann_whitney_u([], [1.0])[1] == 1.0
    rng = np.random.default_rng(0)
    _, p_shift = mann_whitney_u(rng.normal(2, 1, 60), rng.normal(0, 1, 60))
    assert p_shift < 1e-6


def test_bootstrap_delta():
    delta, p = bootstrap_delta([1.0] * 30, [0.0] * 30)
    assert delta == -1.0 and p == 0.0
    assert bootstrap_delta([1.0, 0.0] * 10, [0.0, 1.0] * 10)[1] > 0.5


@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> tuple[Run, Run]:
    base = make_run.make_run(tmp_path_factory.mktemp("base"))
    worse = make_run.make_run(tmp_path_factory.mktemp("worse"), acc_shift=-0.2, latency_scale=2.0)
    return load_run(base), load_run(worse)


def test_compare_identical_runs_has_no_regression(runs):
    base, _ = runs
    result = compare_runs(base, base)
    assert not result.regressed and result.regressions == []
    assert set(result.cells["mark"]) == {"~"} and set(result.cells["acc_test"]) == {"McNemar exact"}


def test_compare_degraded_run_names_regressed_cells(runs):
    base, worse = runs
    result = compare_runs(base, worse)  # c0.5 latency (runs without paired ratios): not gated
    assert result.regressed and len(result.regressions) == len(base.cells) // 2
    assert len(compare_runs(base, worse, gate_contended=True).regressions) == len(base.cells)
    assert "shapes/tiny/adallava-l@0.5/c0" in result.regressions
    assert (result.cells["lat_ratio"].round(6) == 2.0).all()
    assert result.pooled["mark"] == "+" and result.pooled["acc_delta"] < -0.15
    assert "**regression**" in to_markdown(result)
    better = compare_runs(worse, base)
    quiet = better.cells["contention"] == 0
    assert not better.regressed and set(better.cells.loc[quiet, "lat_mark"]) == {"-"}
    assert set(better.cells.loc[~quiet, "lat_mark"]) == {"~"}  # reported, not gated


def test_compare_unpaired_samples_use_bootstrap(runs):
    base, worse = runs
    renamed = worse.samples.assign(sample_id=worse.samples["sample_id"] + "-x")
    other = Run(worse.path, worse.meta, worse.config, worse.cells, renamed)
    result = compare_runs(base, other)
    assert set(result.cells["acc_test"]) == {"bootstrap"} and result.pooled["n"] == 0


def test_compare_without_common_cells_is_a_user_error(runs):
    base, worse = runs
    other = Run(
        worse.path, worse.meta, worse.config, worse.cells.assign(suite="other"), worse.samples
    )
    with pytest.raises(UserError, match="share no cell"):
        compare_runs(base, other)


def test_analysis_plots_report_do_not_import_torch():
    code = ("import adabench.analysis.pareto, adabench.analysis.adherence, adabench.analysis.compare, "
            "adabench.plots, adabench.report, adabench.commands.analysis, sys; "
            "assert 'torch' not in sys.modules, 'torch imported'")  # fmt: skip
    subprocess.run([sys.executable, "-c", code], check=True)


def _two_devices(run: Run) -> Run:
    """The run as if a Ray sweep had put contention 0 on one GPU model and 0.5 on another."""
    device = np.where(run.cells["contention"] == 0, "GPU-A", "GPU-B")
    cells = run.cells.assign(device_name=device, hostname=np.where(device == "GPU-A", "n1", "n2"))
    return Run(run.path, run.meta, run.config, cells, run.samples)


def test_compare_and_report_group_by_device_when_a_run_spans_several(runs, tmp_path):
    from adabench.report import _sections

    base, worse = runs
    spread = _two_devices(base)
    result = compare_runs(spread, _two_devices(worse))
    assert all(label.endswith(("/GPU-A", "/GPU-B")) for label in result.cells["cell"])
    assert len(result.cells) == len(base.cells) and result.regressed
    moved = Run(worse.path, worse.meta, worse.config, _two_devices(worse).cells.assign(
        device_name="GPU-C"), worse.samples)  # fmt: skip
    with pytest.raises(UserError, match="device_name"):
        compare_runs(spread, moved)  # same coordinates, other device: nothing to match
    sections = _sections(spread)
    assert [r["device"] for r in sections["Devices"]] == ["GPU-A", "GPU-B"]
    assert sections["Cells"][0]["device"] == "GPU-A"
    assert "Devices" not in _sections(base)


@pytest.fixture(scope="module")
def paired_runs(tmp_path_factory) -> tuple[Run, Run]:
    base = make_run.make_run(tmp_path_factory.mktemp("pbase"), paired=True)
    slow = make_run.make_run(tmp_path_factory.mktemp("pslow"), paired=True, latency_scale=2.0)
    return load_run(base), load_run(slow)


def test_compare_paired_run_with_itself_finds_nothing(paired_runs):
    base, _ = paired_runs
    result = compare_runs(base, base)
    assert not result.regressed and set(result.cells["mark"]) == {"~"}
    tests = result.cells.set_index("method")["lat_test"]
    assert set(tests.drop("full")) == {"paired ratio CIs + A/A"}
    assert set(tests.loc[["full"]]) == {"per-sample ratio ÷ machine speed, sign-flip"}
    assert (result.cells["acc_q"] == 1.0).all()


def test_compare_uniform_slowdown_moves_only_full(paired_runs):
    base, slow = paired_runs  # a 2× slower machine: ratios to full do not change
    result = compare_runs(base, slow)  # no probe in these runs: not normalised
    assert result.regressions == ["shapes/tiny/full@1/c0"]  # under stress: reported, not gated
    gated = compare_runs(base, slow, gate_contended=True)
    assert sorted(gated.regressions) == ["shapes/tiny/full@1/c0", "shapes/tiny/full@1/c0.5"]


def _shifted(run: Run, factor: float, aa: tuple[float, float] | None = None) -> Run:
    cells = run.cells.copy()
    at = (cells["method"] == "layer-drop") & (cells["budget"] == 0.5)  # a tight CI
    for col in ["latency_ratio", "latency_ratio_ci_low", "latency_ratio_ci_high"]:
        cells.loc[at, col] *= factor
    if aa is not None:
        cells["aa_ratio_ci_low"], cells["aa_ratio_ci_high"] = aa
    return Run(run.path, run.meta, run.config, cells, run.samples)


def test_compare_ratio_change_counts_only_outside_cis_and_aa_band(paired_runs):
    base, _ = paired_runs
    slower = compare_runs(base, _shifted(base, 1.3))
    assert sorted(slower.regressions) == ["shapes/tiny/layer-drop@0.5/c0",
                                          "shapes/tiny/layer-drop@0.5/c0.5"]  # fmt: skip
    assert not compare_runs(base, _shifted(base, 1 / 1.3)).regressed
    # a 6 % change with CIs apart: below the default threshold (×1.10); past a ×1.05 threshold a
    # regression on a quiet machine, noise under a ±10 % A/A band
    assert not compare_runs(base, _shifted(base, 1.06)).regressed
    assert compare_runs(base, _shifted(base, 1.06), threshold=1.05).regressed
    noisy = _shifted(base, 1.0, aa=(0.9, 1.1))
    assert not compare_runs(noisy, _shifted(noisy, 1.06), threshold=1.05).regressed
