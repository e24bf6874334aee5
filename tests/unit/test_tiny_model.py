"""The shipped tiny checkpoints: plain-transformers loading, real answers, accuracy floors, size budget."""

import pytest
import torch

from adabench.models.catalog import ASSETS

SHIPPED = ["tiny", "tiny-adallava-l", "tiny-adallava-h"]


def test_assets_fit_the_size_budget():
    total = sum(f.stat().st_size for f in ASSETS.rglob("*") if f.is_file())
    assert total <= 25e6, f"shipped checkpoints take {total / 1e6:.1f} MB > 25 MB"


@pytest.mark.parametrize("name", SHIPPED)
def test_loads_with_plain_transformers_and_answers(name):
    from transformers import AutoProcessor, LlavaForConditionalGeneration

    from adabench.data.suites import get_spec, load_suite

    path = ASSETS / name
    model = LlavaForConditionalGeneration.from_pretrained(path, dtype=torch.float32).eval()
    try:
        processor = AutoProcessor.from_pretrained(path, backend="pil")
    except TypeError:
        processor = AutoProcessor.from_pretrained(path, use_fast=False)
    spec = get_spec("shapes")
    right = 0
    samples = [s for s in load_suite("shapes", limit=20) if s.family in ("color", "exist")][:8]
    for s in samples:
        enc = processor(images=s.image, text=spec.render_prompt(s), return_tensors="pt")
        out = model.generate(**enc, max_new_tokens=3, do_sample=False)
        text = processor.tokenizer.decode(
            out[0, enc["input_ids"].shape[1] :], skip_special_tokens=True
        ).strip()
        right += text == s.answers[0]
    assert right >= len(samples) - 1  # plain HF generation answers the easy families


def _accuracy(name, method, budget, limit=60, rows_out=None):
    from adabench.data.suites import get_spec, load_suite
    from adabench.models.loading import load_model
    from adabench.sweep.cell import CellConfig, prepare_samples
    from adabench.sweep.group import run_single

    loaded = load_model(name, device="cpu")
    spec, samples = get_spec("shapes"), load_suite("shapes", limit=limit)
    cell, rows = run_single(
        loaded,
        spec,
        samples,
        prepare_samples(loaded, spec, samples),
        CellConfig(model=name, method=method, budget=budget, warmup=0),
    )
    if rows_out is not None:
        rows_out.extend(rows)
    return cell


def test_tiny_accuracy_floor_and_every_family_above_chance():
    # measured 0.997 on 300 samples, spatial 0.983 (model card); floors with a margin for this
    # 60-sample slice (12 per family). Chance: spatial/exist 0.5, choice 0.25, colour 0.25.
    from adabench.models.model_card import family_table

    rows: list[dict] = []
    assert _accuracy("tiny", "full", 1.0, rows_out=rows)["accuracy"] >= 0.9
    table = family_table(rows)
    assert set(table) == {"choice", "color", "count", "exist", "spatial", "overall"}
    assert all(acc >= 0.75 for acc in table.values()), table


@pytest.mark.parametrize(
    ("name", "method"), [("tiny-adallava-l", "adallava-l"), ("tiny-adallava-h", "adallava-h")]
)
def test_adallava_checkpoints_keep_accuracy_and_budget(name, method):
    for budget in (0.5, 1.0):
        cell = _accuracy(name, method, budget, limit=40)
        assert cell["flops_ratio_max"] <= budget + 1e-9
        assert cell["accuracy"] >= 0.8
