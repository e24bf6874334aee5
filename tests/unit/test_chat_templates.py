"""The synthetic processor of every shipped VLM config (what `--no-weights`, `suites show
--model` and `adabench flops` use) carries its checkpoint's own chat template
(`Wrapper.chat_template`, sources in docs/shipped_configs.md): a one-image question renders
exactly as the checkpoint's processor renders it, the template's markers are single tokens at
ids below the vocabulary size, and HF's `get_rope_index` places a Qwen image where its grid is."""

from __future__ import annotations

import json

import pytest
import torch
from typer.testing import CliRunner

from adabench.cli import app
from adabench.models.no_weights import config_and_processor
from adabench.models.wrappers import wrapper_of
from adabench.sweep.prompts import build_prompt

SUITE_PROMPT = "USER: <image>\nx ASSISTANT:"
"""A suite's LLaVA-1.5 prompt of the question "x"."""

NEXT = "[INST] <image>\nx [/INST]"
ONEVISION = "<|im_start|>user <image>\nx<|im_end|><|im_start|>assistant\n"
QWEN = (
    "<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n"
    "<|im_start|>user\n<|vision_start|><|image_pad|><|vision_end|>x<|im_end|>\n"
    "<|im_start|>assistant\n"
)
SMOLVLM = "<|im_start|>User:<image>x<end_of_utterance>\nAssistant:"

QWEN_TOKENS = [
    "<|im_start|>", "system", "You", "are", "a", "helpful", "assistant.", "<|im_end|>",
    "<|im_start|>", "user", "<|vision_start|>", "<|image_pad|>", "<|vision_end|>", "x",
    "<|im_end|>", "<|im_start|>", "assistant",
]  # fmt: skip
"""The Qwen2.5-VL 3B and 7B prompt's tokens: the default system turn, then the user's."""

# config → (the checkpoint's rendering of one image + "x", its prompt's tokens before the
# processor expands the image placeholder)
LAYOUTS = {
    "llava-v1.6-mistral-7b": (NEXT, ["[INST]", "<image>", "x", "[/INST]"]),
    "llava-onevision-qwen2-0.5b": (
        ONEVISION,
        ["<|im_start|>", "user", "<image>", "x", "<|im_end|>", "<|im_start|>", "assistant"],
    ),
    "llava-onevision-qwen2-7b": (
        ONEVISION,
        ["<|im_start|>", "user", "<image>", "x", "<|im_end|>", "<|im_start|>", "assistant"],
    ),
    "qwen2.5-vl-3b": (
        QWEN,
        QWEN_TOKENS,
    ),
    "qwen2.5-vl-7b": (
        QWEN,
        QWEN_TOKENS,
    ),
    "smolvlm-256m": (
        SMOLVLM,
        ["<|im_start|>", "User:", "<image>", "x", "<end_of_utterance>", "Assistant:"],
    ),
}
MARKERS = {
    "llava-v1.6-mistral-7b": ("[INST]", "[/INST]"),
    "llava-onevision-qwen2-0.5b": ("<|im_start|>", "<|im_end|>"),
    "llava-onevision-qwen2-7b": ("<|im_start|>", "<|im_end|>"),
    "qwen2.5-vl-3b": ("<|im_start|>", "<|im_end|>", "<|vision_start|>", "<|vision_end|>"),
    "qwen2.5-vl-7b": ("<|im_start|>", "<|im_end|>", "<|vision_start|>", "<|vision_end|>"),
    "smolvlm-256m": ("<|im_start|>", "User:", "<end_of_utterance>", "Assistant:"),
}


def _prompt(name: str):
    _, config, processor = config_and_processor(name)
    prompt, source = build_prompt(processor, wrapper_of(config), SUITE_PROMPT, "x")
    return config, processor, prompt, source


@pytest.mark.parametrize("name", sorted(LAYOUTS))
def test_a_one_image_question_renders_the_checkpoints_layout(name):
    config, processor, prompt, source = _prompt(name)
    layout, tokens = LAYOUTS[name]
    assert (prompt, source) == (layout, "chat-template")
    # "x" is no word of the synthetic vocabulary: it is <unk>, one token as any unknown word
    expected = ["<unk>" if t == "x" else t for t in tokens]
    assert processor.tokenizer.tokenize(prompt) == expected


@pytest.mark.parametrize("name", sorted(LAYOUTS))
def test_template_markers_are_single_tokens_below_the_vocabulary_size(name):
    config, processor, _, _ = _prompt(name)
    tok, vocab_size = processor.tokenizer, config.text_config.vocab_size
    for marker in MARKERS[name]:
        ids = tok(marker, add_special_tokens=False)["input_ids"]
        assert len(ids) == 1 and ids[0] != tok.unk_token_id and ids[0] < vocab_size, marker
    assert max(tok.get_vocab().values()) < vocab_size
    image_token = wrapper_of(config).image_token
    assert tok.convert_tokens_to_ids(image_token) == config.image_token_id
    config_ids = {
        "<|vision_start|>": "vision_start_token_id",
        "<|vision_end|>": "vision_end_token_id",
        "<|video_pad|>": "video_token_id",
        "<video>": "video_token_id",
    }
    for token in wrapper_of(config).special_tokens:
        if token in config_ids:  # where the config puts them, not where <pad> happened to go
            assert tok.convert_tokens_to_ids(token) == getattr(config, config_ids[token]), token


def test_llava_1_5_keeps_the_suites_prompt():
    _, _, prompt, source = _prompt("llava-1.5-7b")
    assert (prompt, source) == (SUITE_PROMPT, "suite")


def test_suites_show_prints_the_qwen_layout_and_whose_template_it_is():
    result = CliRunner().invoke(
        app, ["suites", "show", "shapes", "--model", "qwen2.5-vl-3b", "--json"]
    )
    assert result.exit_code == 0, result.output
    info = json.loads(result.stdout)
    assert info["model_prompt"] == QWEN.replace("x", "what color is the triangle ?")
    assert "the checkpoint's chat template (Qwen/Qwen2.5-VL-3B-Instruct" in info["processor"]
    table = CliRunner().invoke(app, ["suites", "show", "shapes", "--model", "qwen2.5-vl-3b"])
    assert table.exit_code == 0 and "You are a helpful assistant." in table.stdout, table.output


@pytest.mark.parametrize("wrapper", ["qwen2-vl", "qwen2.5-vl"])
def test_get_rope_index_places_the_image_grid_after_the_template_text(wrapper):
    """With the real template's system turn before the image, HF's 3-D positions give text
    0..k−1 on all three axes, the image's merged grid (t, k + row, k + col) from its first token k,
    and the text after it counts on from the largest position + 1."""
    from tests.wrapper_models import build, inputs

    model, processor = build(wrapper, layers=1)
    enc = inputs(processor, width=96, height=48)
    ids = enc["input_ids"]
    positions, _ = model.model.get_rope_index(
        ids, mm_token_type_ids=enc.get("mm_token_type_ids"), image_grid_thw=enc["image_grid_thw"]
    )
    image = (ids[0] == model.config.image_token_id).nonzero()[:, 0]
    k, n = int(image[0]), len(image)
    assert int(image[-1]) == k + n - 1  # one contiguous run after <|vision_start|>
    assert int(ids[0, k - 1]) == model.config.vision_start_token_id
    assert k > 9  # the system turn and the user header come first
    for axis in range(3):
        assert torch.equal(positions[axis, 0, :k], torch.arange(k))
    _, h, w = (int(v) for v in enc["image_grid_thw"][0])
    merge = model.config.vision_config.spatial_merge_size
    rows, cols = h // merge, w // merge
    assert rows * cols == n
    grid = positions[:, 0, k : k + n]
    assert torch.equal(grid[0], torch.full((n,), k))
    assert torch.equal(grid[1], k + torch.arange(rows).repeat_interleave(cols))
    assert torch.equal(grid[2], k + torch.arange(cols).repeat(rows))
    after = positions[0, 0, k + n :]
    assert torch.equal(after, k + max(rows, cols) + torch.arange(len(after)))
