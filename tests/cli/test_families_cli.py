"""`adabench eval` on saved tiny models of the non-Llama families (Gemma 2, Phi-3): each sample's
prediction is HF `generate`'s answer (full: the model; layer-drop@0.5: the model truncated to the
blocks layer-drop keeps); a folder whose decoder family adabench does not run exits 2."""

from __future__ import annotations

import json

import pandas as pd
import pytest
import torch
from typer.testing import CliRunner

from adabench.cli import app
from tests.family_models import llava_config, save_family_llava, truncated_copy

runner = CliRunner()
LIMIT, NEW_TOKENS = 3, 8
LAYER_DROP_KEPT = (0, 2, 5, 7)
"""layer-drop @ 0.5 on 8 blocks: ⌊0.5·8⌋ = 4 evenly spaced blocks, round(i·7/3), i = 0..3
(adabench/models/methods.py: kept_count, evenly_spaced)."""


@pytest.fixture(scope="module", params=["gemma2", "phi3"])
def family_dir(request, tmp_path_factory):
    """A saved tiny Llava of the family (random weights, biases and norms), with its processor."""
    return save_family_llava(request.param, tmp_path_factory.mktemp(f"{request.param}_llava"))


def _hf_answers(path, kept=None) -> dict[str, str]:
    """Returns {sample id: decoded HF generate answer} for the suite samples the CLI runs."""
    from transformers import AutoProcessor, LlavaForConditionalGeneration

    from adabench.data.hf_suites import prepare_image
    from adabench.data.suites import get_spec, load_suite

    model = LlavaForConditionalGeneration.from_pretrained(path, dtype=torch.float32).eval()
    if kept is not None:
        model = truncated_copy(model, kept)
    processor = AutoProcessor.from_pretrained(path)
    spec = get_spec("shapes")
    out = {}
    for s in load_suite("shapes", split="test", limit=LIMIT):
        image = prepare_image(spec, s.image, processor)
        enc = processor(images=image, text=spec.render_prompt(s), return_tensors="pt")
        with torch.no_grad():
            seq = model.generate(
                input_ids=enc["input_ids"],
                pixel_values=enc["pixel_values"],
                do_sample=False,
                max_new_tokens=NEW_TOKENS,
            )
        new = seq[0, enc["input_ids"].shape[1] :]
        out[s.id] = processor.tokenizer.decode(new, skip_special_tokens=True).strip()
    return out


@pytest.mark.parametrize(
    ("method", "kept", "plan"),
    [("full", None, "blocks=11111111"), ("layer-drop", LAYER_DROP_KEPT, "blocks=10100101")],
    ids=["full", "layer-drop"],
)
def test_eval_predictions_equal_hf_generate(family_dir, tmp_path, method, kept, plan):
    samples = tmp_path / "samples.parquet"
    result = runner.invoke(
        app,
        [
            "eval",
            "--model",
            str(family_dir),
            "--method",
            method,
            "--budget",
            "0.5",
            "--suite",
            "shapes",
            "--limit",
            str(LIMIT),
            "--max-new-tokens",
            str(NEW_TOKENS),
            "--warmup",
            "0",
            "--device",
            "cpu",
            "--dtype",
            "float32",
            "--samples-out",
            str(samples),
            "--json",
        ],
    )
    assert result.exit_code == 0, result.output
    cell = json.loads(result.stdout)
    assert cell["method"] == method and cell["n"] == LIMIT
    rows = pd.read_parquet(samples)
    assert set(rows["plan"]) == {plan}
    ours = dict(zip(rows["sample_id"], rows["prediction"]))
    assert ours == _hf_answers(family_dir, kept)


def test_unsupported_family_folder_exits_2(tmp_path):
    from transformers import PhiConfig

    from adabench.models import tiny
    from adabench.models.families import FAMILIES

    processor = tiny.build_processor()
    text = PhiConfig(
        vocab_size=len(processor.tokenizer),
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=2,
        num_attention_heads=4,
    )
    llava_config(text, processor.tokenizer).save_pretrained(tmp_path)
    processor.save_pretrained(tmp_path)
    result = runner.invoke(
        app, ["eval", "--model", str(tmp_path), "--limit", "1", "--device", "cpu"]
    )
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, result.stderr
    assert "'phi'" in lines[0]
    for family in FAMILIES.values():
        assert family.label in lines[0] and all(t in lines[0] for t in family.model_types)
