"""`adabench sweep` on variable-resolution wrappers decides up front, from each sample's own
image as the model's processor counts it: a token method's budget below the hardest prompt's
floor, and a prompt that overflows the context because its image gives many visual tokens, are
refused before any cell is measured (no part written). The shipped VLM sweeps name only
(model, method) pairs that run."""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

from adabench.cli import app
from tests.fixtures.user_images import files_suite
from tests.wrapper_models import build

runner = CliRunner()


@pytest.fixture(scope="module")
def qwen_dir(tmp_path_factory):
    path = tmp_path_factory.mktemp("qwen2_5_vl")
    model, processor = build("qwen2.5-vl")
    model.save_pretrained(path)
    processor.save_pretrained(path)
    return path


def _sweep(model, out, methods: str, budgets: str, suite: str = "shapes"):
    return runner.invoke(
        app,
        ["sweep", "--models", str(model), "--methods", methods, "--budgets", budgets,
         "--suites", suite, "--limit", "3", "--repeats", "1", "--warmup", "0", "--device",
         "cpu", "--out", str(out), "--name", "w", "--no-report"],
    )  # fmt: skip


def _one_line(result) -> str:
    assert result.exit_code == 2, result.output
    lines = [line for line in result.output.strip().splitlines() if line.strip()]
    assert len(lines) == 1, lines
    return lines[0]


def test_a_token_budget_below_the_floor_of_the_samples_images_is_refused_up_front(
    qwen_dir, tmp_path
):
    """The shapes images are small: Qwen's processor gives each 4 visual tokens (its minimum),
    so FastV cannot reach 0.6 — refused before the first cell, not in the middle of the run."""
    line = _one_line(_sweep(qwen_dir, tmp_path, "full,fastv", "0.6,1.0"))
    assert "fastv@0.6" in line and "4 visual" in line, line
    assert not list(tmp_path.rglob("*.parquet"))


def test_an_image_that_overflows_the_context_is_refused_up_front(qwen_dir, tmp_path, monkeypatch):
    """A 6000 × 6000 image gives the tiny Qwen2.5-VL over 1200 visual tokens, past its
    512-position context: the sweep names the sample before measuring anything."""
    files_suite(tmp_path, monkeypatch, ["rgb", "huge"])
    line = _one_line(_sweep(qwen_dir, tmp_path / "out", "full", "1.0", suite="photos"))
    assert "sample 'huge'" in line and "context of 512" in line, line
    assert not list((tmp_path / "out").rglob("*.parquet"))


@pytest.mark.parametrize("name", ["vlms", "vlms-real"])
def test_shipped_vlm_sweeps_name_only_pairs_that_run(name):
    from adabench.config import SweepConfig, resolve_config
    from adabench.models import catalog
    from adabench.models.methods import METHODS
    from adabench.models.wrappers import wrapper_of

    cfg = SweepConfig.from_layers(resolve_config(name), {})
    wrappers = {wrapper_of(catalog.config_for(m)).name for m in cfg.models}
    assert {"llava", "llava-next", "llava-onevision", "qwen2.5-vl", "idefics3"} <= wrappers
    for model in cfg.models:
        wrapper = wrapper_of(catalog.config_for(model)).name
        for method in cfg.methods:
            for part in method.split("+"):
                allowed = METHODS.get(part).WRAPPERS
                assert allowed is None or wrapper in allowed, (model, method)
    if name == "vlms-real":
        assert not cfg.no_weights
        assert all(m in catalog.HUB_ALIASES for m in cfg.models)
