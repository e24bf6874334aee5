"""The token baselines and loyalty end to end: a small demo sweep of downsample, visionzip,
pyramiddrop, dart (and fastv) beside full; FLOPs within budget, loyalty with a CI in every
cell, the A/A floor, the downsample comparisons in the findings, loyalty in table and compare."""

from __future__ import annotations

import json
import math

import pandas as pd
import pytest
from typer.testing import CliRunner

from adabench.cli import app

runner = CliRunner()
TOKEN = ("downsample", "visionzip", "pyramiddrop", "dart")


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    out = tmp_path_factory.mktemp("tokens")
    args = ["sweep", "--models", "tiny", "--methods", "full," + ",".join(TOKEN) + ",fastv",
            "--budgets", "0.75", "--contention", "0", "--limit", "2", "--repeats", "1",
            "--warmup", "0", "--out", str(out), "--name", "tok"]  # fmt: skip
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    path = (out / "tok").resolve()  # the run folder, linked by its name
    return path, result.stdout


def test_token_methods_run_within_their_budget(run):
    cells = pd.read_parquet(run[0] / "cells.parquet").set_index("method")
    for method in TOKEN:
        assert cells.loc[method, "flops_ratio_max"] <= 0.75 + 1e-9, method
        assert cells.loc[method, "flops_ratio"] < 0.76
    samples = pd.read_parquet(run[0] / "samples.parquet")
    plans = samples.groupby("method")["plan"].first()
    assert "+pyramid@3-" in plans["pyramiddrop"] and "+dart@2-" in plans["dart"]
    assert "+prumerge-" in plans["downsample"] and "+prumerge-" in plans["visionzip"]


def test_every_cell_has_loyalty_with_a_ci_and_the_aa_floor(run):
    cells = pd.read_parquet(run[0] / "cells.parquet").set_index("method")
    for method, c in cells.iterrows():
        assert 0.0 <= c["loyalty"] <= 1.0, method
        assert c["loyalty_ci_low"] <= c["loyalty"] <= c["loyalty_ci_high"], method
        assert not math.isnan(c["aa_loyalty"])
    assert cells.loc["full", "loyalty"] == 1.0
    samples = pd.read_parquet(run[0] / "samples.parquet")
    full = samples[samples["method"] == "full"].set_index("sample_id")["prediction"]
    for r in samples.itertuples():  # 0/1 metric: loyal exactly when the answers match
        assert r.loyalty == float(r.prediction.strip().lower() == full[r.sample_id].strip().lower())
    assert "A/A loyalty" in run[1]


def test_findings_compare_every_token_method_with_downsample(run):
    lines = [line for line in run[1].split("\n- ") if "downsample control" in line]
    for method in ("visionzip", "pyramiddrop", "dart", "fastv"):
        assert any(line.startswith(f"on tiny, {method}@0.75 ") for line in lines), method
    assert "loyalty to full (same answer as full)" in run[1].replace("\n", " ")


def test_table_and_compare_show_loyalty(run):
    result = runner.invoke(app, ["table", str(run[0]), "--format", "json"])
    assert result.exit_code == 0, result.output
    rows = json.loads(result.stdout)["rows"]
    assert {r["raw"]["method"]: r["raw"]["loyalty"] for r in rows}["full"] == 100.0
    assert "Loyalty (%)" in rows[0]["shown"]
    result = runner.invoke(app, ["compare", str(run[0]), str(run[0]), "--format", "json"])
    assert result.exit_code == 0, result.output
    cells = json.loads(result.stdout)["cells"]
    assert all(c["loyalty_base"] == c["loyalty_new"] for c in cells)
    text = runner.invoke(app, ["compare", str(run[0]), str(run[0]), "--format", "markdown"]).stdout
    assert "| loyalty |" in text and "1.00→1.00" in text


@pytest.mark.parametrize("method", TOKEN)
def test_budget_below_the_prompt_minimum_exits_2_naming_it(method):
    result = runner.invoke(app, ["eval", "--method", method, "--budget", "0.5", "--limit", "1",
                                 "--warmup", "0"])  # fmt: skip
    assert result.exit_code == 2, result.output
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "the minimum is" in errors[0] and "Traceback" not in result.output


def test_methods_list_groups_by_what_they_vary():
    rows = json.loads(runner.invoke(app, ["methods", "list", "--json"]).stdout)
    group = {r["name"]: r["group"] for r in rows}
    assert group["downsample"] == "image" and group["layer-drop"] == "blocks"
    assert {group[m] for m in ("visionzip", "pyramiddrop", "dart", "fastv")} == {"tokens"}
    assert group["adallava-h"] == "heads"
    papers = {r["name"]: r["paper"] for r in rows}
    assert "2412.04467" in papers["visionzip"] and "2510.07143" in papers["downsample"]
    order = [r["group"] for r in rows]
    assert order == sorted(
        order, key=["reference", "blocks", "heads", "tokens", "image", "other"].index
    )
    text = runner.invoke(app, ["methods", "list"]).stdout
    assert (
        text.index("methods · blocks")
        < text.index("methods · tokens")
        < text.index("methods · image")
    )
