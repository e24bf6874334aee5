"""`adabench train adallava` on tiny random Qwen2 and Gemma 2 Llavas (tests/family_models.py):
a few steps change the decoder and the head, the saved AdaLLaVA folder loads with its family,
its H units follow the family's heads and GQA, and `adabench eval` runs it at a budget."""

from __future__ import annotations

import json

import pytest
import torch
from typer.testing import CliRunner

from adabench.cli import app
from tests.family_models import save_family_llava

runner = CliRunner()


@pytest.fixture(scope="module", params=["qwen2", "gemma2"])
def base_dir(request, tmp_path_factory):
    path = tmp_path_factory.mktemp(f"{request.param}_base")
    return request.param, save_family_llava(request.param, path)


@pytest.mark.parametrize("variant", ["L", "H"])
def test_train_a_few_steps_then_eval(base_dir, tmp_path, variant):
    from transformers import LlavaForConditionalGeneration

    from adabench.models.loading import load_model

    family, base = base_dir
    out = tmp_path / "ada"
    args = ["train", "adallava", "--variant", variant, "--base", str(base), "--out", str(out)]
    args += ["--max-steps", "3", "--batch-size", "4", "--test-size", "8"]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    assert json.loads((out / "training.json").read_text())["steps"] == 3
    config = json.loads((out / "adallava_config.json").read_text())
    assert config["variant"] == variant
    if variant == "H":  # 4 query heads in 2 kv groups: units of r = 2 heads, whole kv groups
        assert config["num_heads"] == 4 and config["kv_group"] == 2
        assert config["group_size"] % config["kv_group"] == 0
    before = dict(LlavaForConditionalGeneration.from_pretrained(base).named_parameters())
    after = load_model(str(out), device="cpu")
    assert after.adallava is not None and after.model.config.text_config.model_type == family
    changed = [
        name
        for name, p in after.model.named_parameters()
        if "language_model" in name and not torch.equal(p.detach(), before[name].detach())
    ]
    assert changed  # the decoder was fine-tuned, not only the head

    method = "adallava-l" if variant == "L" else "adallava-h"
    rows = tmp_path / "rows.jsonl"
    result = runner.invoke(
        app,
        ["eval", "--model", str(out), "--method", method, "--budget", "0.75", "--suite", "shapes",
         "--limit", "2", "--warmup", "0", "--json", "--samples-out", str(rows)],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    cell = json.loads(result.stdout)
    assert cell["flops_ratio"] <= 0.75 + 1e-9
