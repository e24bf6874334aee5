"""The plan atlas counts what samples.parquet holds: blocks run per family, distinct plans,
kept visual tokens; and `adabench plot` draws it as plans_<suite>."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pandas as pd
import pytest

from adabench.analysis.plans import (
    ALL,
    distinct_plans,
    kept_tokens,
    parse_plan,
    plan_atlas,
    unit_fractions,
)
from adabench.plots import make_plots

_spec = importlib.util.spec_from_file_location(
    "make_run", Path(__file__).parents[1] / "fixtures" / "make_run.py"
)
make_run = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(make_run)

METHODS = ("full", "layer-drop", "adallava-l", "adallava-h", "prumerge")


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory) -> Path:
    return make_run.make_run(tmp_path_factory.mktemp("atlas"), n_samples=40, methods=METHODS)


def test_parse_plan_reads_describe_texts():
    p = parse_plan("blocks=1101 +fastv@2-30")
    assert (p.kind, p.heads, p.tokens_removed) == ("blocks", (1, 1, 0, 1), 30)
    p = parse_plan("heads=4,2,0 mlp=4,4,0 +prumerge-100")
    assert (p.kind, p.heads, p.mlp, p.tokens_removed) == ("units", (4, 2, 0), (4, 4, 0), 100)
    assert parse_plan('{"blocks": 6}') is None and parse_plan(None) is None
    fractions = unit_fractions(pd.Series(["heads=4,2 mlp=4,0", "blocks=10"]))
    assert fractions.tolist() == [[1.0, 0.25], [1.0, 0.0]]


def test_block_counts_match_samples_parquet(run_dir):
    samples = pd.read_parquet(run_dir / "samples.parquet")
    atlas = plan_atlas(samples).set_index(["method", "budget", "family", "layer"])["runs"]
    low = samples[(samples["contention"] == 0) & (samples["method"] == "adallava-l")]
    for (budget, family), group in low.groupby(["budget", "family"]):
        bits = group["plan"].str.removeprefix("blocks=")
        for layer in range(make_run.N_BLOCKS):
            share = (bits.str[layer] == "1").mean()
            assert atlas[("adallava-l", budget, family, layer)] == pytest.approx(share)
    at_half = low[low["budget"] == 0.5]["plan"].str.removeprefix("blocks=")
    assert atlas[("adallava-l", 0.5, ALL, 0)] == pytest.approx((at_half.str[0] == "1").mean())
    # the fixture's scheduler keeps other blocks per family: the map is not one column repeated
    by_family = atlas.loc[("adallava-l", 0.5)].unstack("family").drop(columns=ALL)
    assert by_family.nunique(axis=1).max() > 1


def test_unit_plans_and_distinct_counts(run_dir):
    samples = pd.read_parquet(run_dir / "samples.parquet")
    low = samples[samples["contention"] == 0]
    plans = distinct_plans(samples).set_index(["method", "budget"])
    for (method, budget), group in low.groupby(["method", "budget"]):
        assert plans.loc[(method, budget), "plans"] == group["plan"].nunique()
        assert plans.loc[(method, budget), "n"] == len(group)
    assert plans.loc[("layer-drop", 0.5), "plans"] == 1
    atlas = plan_atlas(samples).set_index(["method", "budget", "family", "layer"])["runs"]
    h = low[(low["method"] == "adallava-h") & (low["budget"] == 0.5)]
    heads = h["plan"].str.extract(r"heads=([\d,]+)")[0].str.split(",").map(lambda x: int(x[7]))
    assert atlas[("adallava-h", 0.5, ALL, 7)] == pytest.approx((heads / make_run.N_HEADS).mean())


def test_kept_tokens_per_family(run_dir):
    samples = pd.read_parquet(run_dir / "samples.parquet")
    kept = kept_tokens(samples).set_index(["method", "budget", "family"])
    assert set(kept.index.get_level_values("method")) == {"prumerge"}
    low = samples[(samples["contention"] == 0) & (samples["method"] == "prumerge")]
    for (budget, family), group in low[low["budget"] < 1].groupby(["budget", "family"]):
        removed = group["plan"].str.extract(r"prumerge-(\d+)")[0].astype(int)
        expected = 1 - removed.mean() / make_run.VISUAL_TOKENS
        assert kept.loc[("prumerge", budget, family), "kept_fraction"] == pytest.approx(expected)


def test_plot_draws_the_atlas(run_dir, tmp_path):
    written = {p.name for p in make_plots(run_dir, out=tmp_path, formats=["png"])}
    assert "plans_shapes.png" in written
    static = make_run.make_run(tmp_path, name="static", methods=("full", "layer-drop"))
    written = {p.name for p in make_plots(static, out=tmp_path / "s", formats=["png"])}
    assert "plans_shapes.png" not in written  # no scheduler, nothing to map
