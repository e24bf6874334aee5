"""`adabench eval` on saved tiny models of every VLM wrapper (tests/wrapper_models.py): each
sample's prediction is HF `generate`'s answer on the same processor tensors (full: the model;
layer-drop@0.5: the model truncated to the blocks layer-drop keeps); FastV runs with its kept
visual-token count recorded; the prompt is the processor's chat template (recorded)."""

from __future__ import annotations

import json

import pandas as pd
import pytest
import torch
from typer.testing import CliRunner

from adabench.cli import app
from tests.family_models import truncated_copy
from tests.wrapper_models import reachable_budget

runner = CliRunner()
LIMIT, NEW_TOKENS = 2, 4
LAYER_DROP_KEPT = (0, 2, 5, 7)
"""layer-drop @ 0.5 on 8 blocks (tests/cli/test_families_cli.py)."""


def _hf_answers(path, kept=None, suite: str = "shapes", limit: int = LIMIT) -> dict[str, str]:
    """Returns {sample id: decoded HF generate answer} on the samples and prompts the CLI runs."""
    from adabench.data.hf_suites import prepare_image
    from adabench.data.suites import get_spec, load_suite
    from adabench.models.loading import load_processor
    from adabench.models.wrappers import model_class, wrapper_of
    from adabench.sweep.prompts import build_prompt

    config = json.loads((path / "config.json").read_text())
    wrapper = wrapper_of(config)
    model = model_class(wrapper).from_pretrained(path, dtype=torch.float32).eval()
    if kept is not None:
        model = truncated_copy(model, kept)
    processor = load_processor(str(path))
    spec = get_spec(suite)
    out = {}
    for s in load_suite(suite, split="test", limit=limit):
        prompt, source = build_prompt(processor, wrapper, spec.render_prompt(s), s.id)
        assert source == "chat-template"
        image = prepare_image(spec, s.image, processor)
        enc = dict(processor(images=image, text=prompt, return_tensors="pt"))
        with torch.no_grad():
            seq = model.generate(**enc, do_sample=False, max_new_tokens=NEW_TOKENS)
        new = seq[0, enc["input_ids"].shape[1] :]
        out[s.id] = processor.tokenizer.decode(new, skip_special_tokens=True).strip()
    return out


def _eval(
    path, tmp_path, method: str, *extra: str, budget: str = "0.5", suite: str = "shapes",
    limit: int = LIMIT,
):  # fmt: skip
    samples = tmp_path / f"{method}.parquet"
    result = runner.invoke(
        app,
        ["eval", "--model", str(path), "--method", method, "--budget", budget, "--suite",
         suite, "--limit", str(limit), "--max-new-tokens", str(NEW_TOKENS), "--warmup", "0",
         "--device", "cpu", "--dtype", "float32", "--samples-out", str(samples), "--json",
         *extra],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["n"] == limit
    return pd.read_parquet(samples)


def test_full_and_layer_drop_equal_hf_generate(wrapper_dir, tmp_path):
    for method, kept, plan in (
        ("full", None, "blocks=11111111"),
        ("layer-drop", LAYER_DROP_KEPT, "blocks=10100101"),
    ):
        rows = _eval(wrapper_dir, tmp_path, method)
        assert set(rows["plan"]) == {plan}
        assert set(rows["prompt_source"]) == {"chat-template"}
        assert dict(zip(rows["sample_id"], rows["prediction"])) == _hf_answers(wrapper_dir, kept)


USER_IMAGES = ("rgb", "wide", "one_pixel")
"""A user suite's images of three sizes and shapes: 40 × 32, 80 × 20, 1 × 1
(tests/fixtures/user_images.py); every wrapper's processor gives at least two of them
different visual-token counts (tiles, unpadding, native resolution)."""


def test_a_user_suite_of_odd_sized_images_runs_exact_on_every_wrapper(
    wrapper_dir, tmp_path, monkeypatch
):
    """On the user's own files (`photos`: a JSONL manifest over real image files) `full` and
    `layer-drop` equal HF `generate` (full model / truncated copy) sample for sample, FastV
    records its kept count, and each sample's visual-token count is the processor's for its
    image (`adabench flops --image-size` of the recorded `image_px` gives the same count)."""
    from adabench.flops_table import FlopsQuery, flops_table, parse_image_size
    from tests.fixtures.user_images import files_suite

    files_suite(tmp_path, monkeypatch, list(USER_IMAGES))
    n = len(USER_IMAGES)
    for method, kept in (("full", None), ("layer-drop", LAYER_DROP_KEPT)):
        rows = _eval(wrapper_dir, tmp_path, method, suite="photos", limit=n)
        answers = _hf_answers(wrapper_dir, kept, suite="photos", limit=n)
        assert dict(zip(rows["sample_id"], rows["prediction"])) == answers
    assert set(rows["image_px"]) == {"40x32", "80x20", "1x1"}
    assert rows["visual_tokens"].nunique() >= 2
    for row in rows.itertuples():
        query = FlopsQuery(model=str(wrapper_dir), image_size=parse_image_size(row.image_px))
        assert flops_table(query)[0]["image_tokens"] == row.visual_tokens, row.sample_id
    fastv = _eval(wrapper_dir, tmp_path, "fastv", "--method-arg", "r=0.5", budget="1.0",
                  suite="photos", limit=n)  # fmt: skip
    assert list(fastv["visual_kept"]) == [v - int(0.5 * v + 1e-9) for v in fastv["visual_tokens"]]


def test_fastv_records_its_kept_visual_tokens(wrapper_dir, tmp_path):
    rows = _eval(wrapper_dir, tmp_path, "fastv", "--method-arg", "r=0.5", budget="1.0")
    visual, kept = rows["visual_tokens"], rows["visual_kept"]
    assert (visual > 0).all()
    assert list(kept) == [v - int(0.5 * v + 1e-9) for v in visual]
    assert (rows["flops_ratio"] < 1).all()


@pytest.mark.parametrize("method", ["head-prune", "pyramiddrop", "adallava-l"])
def test_block_head_and_staged_token_methods_run_within_budget(wrapper_dir, tmp_path, method):
    extra = ("--no-weights",) if method.startswith("adallava") else ()
    budget = reachable_budget(wrapper_dir, "0.75")
    rows = _eval(wrapper_dir, tmp_path, method, *extra, budget=budget)
    assert (rows["flops_ratio"] <= float(budget) + 1e-9).all() and (rows["flops_ratio"] < 1).all()
    assert (rows["visual_tokens"] > 0).all()


@pytest.mark.parametrize("method", ["prumerge", "prumerge+", "visionzip", "downsample"])
def test_cls_and_square_grid_methods_refuse_other_wrappers_in_one_line(wrapper_dir, method):
    result = runner.invoke(
        app,
        ["eval", "--model", str(wrapper_dir), "--method", method, "--budget", "0.75", "--suite",
         "shapes", "--limit", "1", "--warmup", "0", "--device", "cpu"],
    )  # fmt: skip
    assert result.exit_code == 2, result.output
    lines = [line for line in result.output.strip().splitlines() if line.strip()]
    assert len(lines) == 1 and f"method {method!r} runs on llava only" in lines[0], lines
