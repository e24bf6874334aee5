"""Findings on synthetic runs with planted effects: a known accuracy margin is found with its
test and n, an identical pair is not, and latency claims follow the A/A band."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pytest

from adabench.analysis.findings import dominated_mask, find, format_p
from adabench.store import load_run

_spec = importlib.util.spec_from_file_location(
    "make_run", Path(__file__).parents[1] / "fixtures" / "make_run.py"
)
make_run = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(make_run)

# adallava-l@0.5 is planted 0.40 above layer-drop@0.5; early-exit@0.5 answers exactly as it does
PLANTED = {
    "full": {1.0: 0.9},
    "adallava-l": {0.5: 0.8, 1.0: 0.9},
    "layer-drop": {0.5: 0.4},  # dominated at its only budget
    "early-exit": {0.5: 0.8, 1.0: 0.9},
}


@pytest.fixture(scope="module")
def planted(tmp_path_factory):
    out = tmp_path_factory.mktemp("planted")
    return load_run(make_run.make_run(out, n_samples=120, paired=True, accuracy=PLANTED))


def test_planted_margin_is_found_with_test_and_n(planted):
    result = find(planted.cells, planted.samples)
    tests = result.tests.set_index(["a", "b", "b_budget"])
    margin = tests.loc[("adallava-l", "layer-drop", 0.5)]
    # the fixture flips exactly the questions whose draw lies in the 0.4-wide gap
    draws = np.random.default_rng(1).uniform(size=120)
    offsets = np.array([make_run.FAMILY_OFFSET[make_run.FAMILIES[i % 4]] for i in range(120)])
    expected = np.mean((draws < np.clip(0.8 + offsets, 0, 1)) & ~(draws < 0.4 + offsets))
    assert -margin["delta"] == pytest.approx(expected) and 0.3 < expected < 0.5
    assert margin["q"] < 1e-6 and margin["test"] == "McNemar exact" and margin["n"] == 120
    line = next(t for t in result.lines() if t.startswith("adallava-l@0.5 is"))
    assert f"{expected:.2f} more accurate than layer-drop@0.5 on tiny" in line
    assert "McNemar exact p < 0.001" in line and "n = 120" in line and "of full's latency" in line


def test_identical_pair_is_not_distinguishable(planted):
    result = find(planted.cells, planted.samples)
    same = result.tests.set_index(["a", "b", "b_budget"]).loc[("adallava-l", "early-exit", 0.5)]
    assert same["delta"] == 0.0 and same["p"] == 1.0
    line = next(t for t in result.lines()
                if "adallava-l@0.5 is not distinguishable from early-exit@0.5" in t)  # fmt: skip
    assert "Δ = +0.00 [+0.00, +0.00]" in line and "-0.00" not in " ".join(result.lines())
    assert not any("more accurate than early-exit" in t for t in result.lines())
    assert any("Benjamini–Hochberg" in t for t in result.lines())


def test_latency_claims_follow_the_aa_band(planted):
    lines = find(planted.cells, planted.samples).lines()
    assert any(t.startswith("the A/A noise floor") and "every band holds 1.0" in t for t in lines)
    # early-exit@1 runs full's plan with full's timing; adallava-l@1 carries a
    # planted 1.5 ms decision cost, so it is the one named outside the band
    off = next(t for t in lines if t.startswith("running full's plan"))
    assert "adallava-l@1 on tiny" in off and "early-exit@1" not in off
    assert any("reduced cell(s) are faster than full beyond the A/A band" in t for t in lines)


def test_old_runs_and_random_weights(tmp_path):
    old = load_run(make_run.make_run(tmp_path))
    lines = find(old.cells, old.samples).lines()
    assert any("no latency claim is made" in t for t in lines)
    rnd = load_run(make_run.make_run(tmp_path, name="rnd", weights="random", paired=True))
    lines = find(rnd.cells, rnd.samples, random_weights=True).lines()
    assert lines[0].startswith("weights are random") and not any("accurate" in t for t in lines)


def test_pareto_members_and_dominated_methods(planted):
    lines = find(planted.cells, planted.samples).lines()
    pareto = next(t for t in lines if "Pareto frontier" in t)
    assert "adallava-l@0.5" in pareto and "dominated at every budget: " not in pareto.split(
        "is ")[1].split(";")[0]  # fmt: skip
    assert pareto.endswith("dominated at every budget: layer-drop.")
    assert dominated_mask([1, 1, 2, 2], [0.5, 0.5, 0.4, 0.9]).tolist() == [
        False, False, True, False]  # fmt: skip


def test_format_p():
    assert format_p(0.0004) == "p < 0.001" and format_p(0.0312) == "p = 0.031"
    assert format_p(0.8) == "p = 0.8" and format_p(float("nan")) == "p = nan"


def test_adaptive_pairs_are_named_when_a_baseline_leads(tmp_path):
    # early-exit@0.5 edges ahead: adallava-l vs layer-drop must still be reported
    accuracy = {**PLANTED, "early-exit": {0.5: 0.85, 1.0: 0.9}}
    run = load_run(make_run.make_run(tmp_path, n_samples=120, paired=True, accuracy=accuracy))
    lines = find(run.cells, run.samples).lines()
    assert any(t.startswith("adallava-l@0.5 is") and "than layer-drop@0.5" in t for t in lines)
    assert any(t.startswith("early-exit@0.5 is") and "than layer-drop@0.5" in t for t in lines)
    assert any(
        t.startswith("early-exit@0.5 is 0.05 more accurate than adallava-l@0.5") for t in lines
    )


def test_delta_is_subject_minus_object_and_fdr_misses_say_so():
    """A pair whose CI excludes 0 but misses the FDR threshold is not called 'not
    distinguishable'; Δ always has the sign of subject − object."""
    import pandas as pd

    from adabench.analysis.findings import _pair_findings

    cells = pd.DataFrame([
        {"suite": "s", "model": "m", "method": m, "budget": 0.5, "contention": 0.0,
         "accuracy": acc, "latency_ratio": float("nan")}
        for m, acc in (("early-exit", 0.2), ("layer-drop", 0.62))
    ]).set_index(["suite", "model", "method", "budget", "contention"])  # fmt: skip
    # a = early-exit, b = layer-drop: delta = b − a = +0.42, CI [+0.17, +0.67], q above 0.05
    pairs = pd.DataFrame([{"a": "early-exit", "b": "layer-drop", "a_budget": 0.5, "b_budget": 0.5,
                           "contention": 0.0, "delta": 0.42, "ci_low": 0.17, "ci_high": 0.67,
                           "p": 0.02, "q": 0.08, "n": 12, "test": "McNemar exact"}])  # fmt: skip
    (item,) = _pair_findings(pairs, 0.5, "on m", cells, "s", "m", set())
    assert item.text.startswith("on m, layer-drop@0.5 is ahead of early-exit@0.5")
    assert "not significant after FDR control" in item.text and "q = 0.08" in item.text
    assert "Δ = +0.42 [+0.17, +0.67]" in item.text and "not distinguishable" not in item.text
    significant = pairs.assign(q=0.001)
    (item,) = _pair_findings(significant, 0.5, "on m", cells, "s", "m", set())
    assert item.text.startswith("layer-drop@0.5 is 0.42 more accurate than early-exit@0.5")
