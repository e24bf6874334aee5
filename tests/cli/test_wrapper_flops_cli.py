"""`adabench flops --image-size` agrees with `adabench eval` sample for sample: for every wrapper
(tiny saved builds of tests/wrapper_models.py, and the shipped no-weights configs that fit a CPU
box), a sample's FLOPs and flops_ratio as eval records them equal those `adabench flops` gives
for the sample's image size (`image_px`), visual-token count and text tokens."""

from __future__ import annotations

import json
import subprocess
import sys

import pandas as pd
import pytest
from typer.testing import CliRunner

from adabench.cli import app
from tests.wrapper_models import reachable_budget

runner = CliRunner()


def _eval_samples(
    model: str, tmp_path, method: str, budget: str, *extra: str, own_process: bool = False
) -> pd.DataFrame:
    """Returns the per-sample rows of `adabench eval`; `own_process`: in a fresh interpreter,
    as a user runs it (a full-size build's memory then leaves with it instead of staying in
    the test process, where later RSS measurements would reuse its freed pages)."""
    out = tmp_path / f"{method}.parquet"
    args = ["eval", "--model", model, "--method", method, "--budget", budget, "--suite",
            "shapes", "--limit", "2", "--max-new-tokens", "2", "--warmup", "0", "--device",
            "cpu", "--samples-out", str(out), "--json", *extra]  # fmt: skip
    if own_process:
        cmd = [sys.executable, "-c", "from adabench.cli import run; run()", *args]
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
        assert done.returncode == 0, done.stderr[-2000:]
    else:
        result = runner.invoke(app, args)
        assert result.exit_code == 0, result.output
    return pd.read_parquet(out)


def _flops_row(model: str, method: str, budget: str, sample) -> dict:
    """Returns `adabench flops --json`'s row for the sample's image, tokens and answer length."""

    def call(prompt_tokens: int) -> dict:
        result = runner.invoke(
            app,
            ["flops", "--model", model, "--method", method, "--budgets", budget,
             "--image-size", sample.image_px, "--prompt-tokens", str(prompt_tokens),
             "--new-tokens", str(int(sample.new_tokens)), "--json"],
        )  # fmt: skip
        assert result.exit_code == 0, result.output
        return json.loads(result.stdout)[0]

    markers = call(0)["structure_tokens"]  # the processor's image markers are text tokens too
    return call(int(sample.text_tokens) - markers)


def _check_agree(model: str, samples: pd.DataFrame, method: str, budget: str) -> None:
    assert len(samples) == 2
    for sample in samples.itertuples():
        row = _flops_row(model, method, budget, sample)
        assert row["image_tokens"] == sample.visual_tokens, sample.sample_id
        assert row["flops"] == int(sample.flops), sample.sample_id
        assert row["llm_flops"] == int(sample.llm_flops)
        assert row["flops_ratio"] == pytest.approx(sample.flops_ratio, abs=1e-12)
        if method == "fastv":
            assert row["image_tokens"] - row["fastv_removed"] == sample.visual_kept


@pytest.mark.parametrize(("method", "budget"), [("fastv", "0.8"), ("layer-drop", "0.5")])
def test_flops_of_the_sample_image_equal_evals_on_every_wrapper(
    wrapper_dir, tmp_path, method, budget
):
    if method == "fastv":
        budget = reachable_budget(wrapper_dir, budget)
    samples = _eval_samples(str(wrapper_dir), tmp_path, method, budget, "--dtype", "float32")
    _check_agree(str(wrapper_dir), samples, method, budget)


def _shipped(name: str, tmp_path, budget: str = "0.6") -> None:
    samples = _eval_samples(
        name, tmp_path, "fastv", budget, "--no-weights", "--dtype", "bfloat16", own_process=True
    )
    _check_agree(name, samples, "fastv", budget)


@pytest.mark.parametrize("name", ["smolvlm-256m", "llava-onevision-qwen2-0.5b"])
def test_shipped_small_vlm_configs_eval_no_weights_and_flops_agree(name, tmp_path):
    _shipped(name, tmp_path)


@pytest.mark.slow
def test_shipped_qwen2_5_vl_3b_eval_no_weights_and_flops_agree(tmp_path):
    _shipped("qwen2.5-vl-3b", tmp_path, "0.9")  # 4 visual tokens (Qwen's minimum) of 25


def test_image_size_changes_the_tiles_and_counts_of_variable_resolution_models():
    """A larger image means more visual tokens on LLaVA-NeXT / Qwen-VL (not on LLaVA-1.5): the
    counts follow the processor (LLaVA-NeXT's 672 × 672 image is the 2928 tokens of its model
    card: 576 base + 2304 tile tokens + 48 image-newline tokens)."""

    def row(model: str, size: str) -> dict:
        result = runner.invoke(app, ["flops", "--model", model, "--image-size", size, "--json"])
        assert result.exit_code == 0, result.output
        return json.loads(result.stdout)[0]

    next_672 = row("llava-v1.6-mistral-7b", "672x672")
    assert (next_672["image_tokens"], next_672["tiles"]) == (2928, 5)
    assert row("llava-v1.6-mistral-7b", "336")["image_tokens"] < 2928
    small, big = row("qwen2.5-vl-3b", "448"), row("qwen2.5-vl-3b", "1024x768")
    assert (small["image_tokens"], big["image_tokens"]) == (256, 37 * 27)  # 28-px merged grid
    assert big["vision_flops"] > small["vision_flops"] and big["seq_len"] > small["seq_len"]
    assert row("llava-1.5-7b", "1024x768")["image_tokens"] == 576
    result = runner.invoke(
        app, ["flops", "--model", "qwen2.5-vl-3b", "--visual-tokens", "100", "--json"]
    )
    override = json.loads(result.stdout)[0]
    assert (override["image_tokens"], override["vision_flops"]) == (100, small["vision_flops"])
    assert row("smolvlm-256m", "1024x768")["structure_tokens"] > 0


@pytest.mark.parametrize("size", ["12x", "axb", "0x5", "20000"])
def test_bad_image_size_is_one_line_exit_2(size):
    result = runner.invoke(app, ["flops", "--model", "qwen2.5-vl-3b", "--image-size", size])
    assert result.exit_code == 2
    assert len(result.output.strip().splitlines()) == 1, result.output
    assert "--image-size" in result.output
