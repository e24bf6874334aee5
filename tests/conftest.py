"""Shared fixtures: tiny random Llava checkpoints built locally (no network), the slow marker."""

from __future__ import annotations

import os
from types import SimpleNamespace

import pytest
import torch

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")


def pytest_addoption(parser):
    parser.addoption(
        "--run-slow", action="store_true", default=False, help="also run tests marked slow"
    )


def pytest_collection_modifyitems(config, items):
    if config.getoption("--run-slow") or os.environ.get("ADABENCH_RUN_SLOW") == "1":
        return
    skip = pytest.mark.skip(reason="slow: run with --run-slow (make test-all)")
    for item in items:
        if "slow" in item.keywords:
            item.add_marker(skip)


def build_random_llava(
    layers: int = 4,
    heads: int = 4,
    kv_heads: int = 4,
    hidden: int = 64,
    intermediate: int = 128,
    attn: str = "sdpa",
    seed: int = 0,
):
    """Returns (model, processor): a random tiny Llava using the embedded tokenizer/processor."""
    from transformers import LlamaConfig, LlavaForConditionalGeneration

    from adabench.models import tiny
    from tests.family_models import llava_config

    torch.manual_seed(seed)
    processor = tiny.build_processor()
    tok = processor.tokenizer
    text = LlamaConfig(
        vocab_size=len(tok),
        hidden_size=hidden,
        intermediate_size=intermediate,
        num_hidden_layers=layers,
        num_attention_heads=heads,
        num_key_value_heads=kv_heads,
        max_position_embeddings=128,
        tie_word_embeddings=False,
        pad_token_id=tok.pad_token_id,
        eos_token_id=tok.eos_token_id,
        bos_token_id=tok.bos_token_id,
    )
    config = llava_config(text, tok)  # the tiny CLIP tower every test model shares
    config.text_config._attn_implementation = attn
    config._attn_implementation = attn
    model = LlavaForConditionalGeneration(config).eval()
    return model, processor


@pytest.fixture(scope="session")
def random_llava_dir(tmp_path_factory):
    """A saved random tiny Llava folder (HF format) — stands in for a checkpoint on disk."""
    model, processor = build_random_llava(layers=8)
    path = tmp_path_factory.mktemp("random_llava")
    model.save_pretrained(path)
    processor.save_pretrained(path)
    return path


@pytest.fixture(scope="session")
def random_adallava_dirs(random_llava_dir, tmp_path_factory):
    """Saved random AdaLLaVA-L and -H folders built on the random tiny Llava."""
    from transformers import LlavaForConditionalGeneration

    from adabench.models.adallava.model import (
        AdaLlavaConfig,
        AdaLlavaForConditionalGeneration,
        AdaLlavaHead,
    )
    from adabench.models.loading import load_processor
    from adabench.models.no_weights import center_random_scheduler_

    out = {}
    for variant in ("L", "H"):
        torch.manual_seed(1)
        model = LlavaForConditionalGeneration.from_pretrained(random_llava_dir)
        head = AdaLlavaHead(AdaLlavaConfig.for_model(model.config, variant))
        with torch.no_grad():
            head.scheduler.proj.weight.normal_(0, 1.0)
            head.latency_encoder.fc2.weight.zero_()  # same (zero) token at every budget
            head.latency_encoder.fc2.bias.zero_()
            # Centre the scheduler on typical inputs (bias = -W·mean h) so that a random head's
            # plans depend on the input, as a trained one's do (the --no-weights path does the same).
            center_random_scheduler_(
                SimpleNamespace(model=model, adallava=head), _prepared_test_samples()
            )
        path = tmp_path_factory.mktemp(f"random_adallava_{variant}")
        AdaLlavaForConditionalGeneration(model, head).save_pretrained(path, dtype=torch.float32)
        load_processor(str(random_llava_dir)).save_pretrained(path)
        out[variant] = path
    return out


def _prepared_test_samples(n: int = 8) -> list:
    """Returns `n` shapes test samples as PreparedSample (processor outputs), for calibration."""
    from adabench.data import synthetic
    from adabench.models.tiny import PROMPT, build_processor
    from adabench.sweep.generate import PreparedSample

    processor = build_processor()
    out = []
    for item in synthetic.generate("test", n):
        enc = processor(
            images=synthetic.render(item.scene),
            text=PROMPT.format(question=item.question),
            return_tensors="pt",
        )
        out.append(PreparedSample(item.id, enc["input_ids"], enc["pixel_values"]))
    return out
