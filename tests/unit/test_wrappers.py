"""The exactness gate of every VLM wrapper (adabench/models/wrappers/) against HF itself.

One tiny random build per wrapper (tests/wrapper_models.py, the wrapper's real processor class),
on a 96 × 48 image (LLaVA-NeXT / OneVision tile it and add image-newline tokens; Idefics3 splits
it; Qwen-VL encodes it at its own resolution with 3-D rotary positions):
- full plan: greedy tokens and every step's logits equal HF `generate` (fp32, 1e-4);
- layer-drop: a block-skipping plan equals `generate` on the model truncated to those blocks;
- FastV: the kept visual tokens are those an independent ranking keeps (HF's own eager
  attention of block K−1, last query, mean over heads), and the count is recorded;
- the visual-token count follows the image size for the variable-resolution wrappers.
"""

from __future__ import annotations

import pytest
import torch

from adabench.errors import UserError
from adabench.models.execution import LlavaRunner, decode_step, prefill
from adabench.models.plan import Plan
from adabench.models.wrappers import WRAPPERS, rotary_positions, wrapper_of
from tests.family_models import truncated_copy
from tests.wrapper_models import IMAGE_ID, build, inputs
from tests.wrapper_models import WRAPPERS as BUILT

NEW_TOKENS = 6
ATOL = RTOL = 1e-4
KEPT = (0, 2, 3, 5, 6)
_MODELS: dict = {}


def wrapper_model(name: str):
    """Returns (model, processor, processor tensors) of a wrapper, built once per module."""
    if name not in _MODELS:
        model, proc = build(name)
        _MODELS[name] = (model, proc, inputs(proc))
    return _MODELS[name]


def runner_inputs(model, enc):
    """Returns (runner, embeds, rotary positions) as the sweep's generation builds them."""
    wrapper = wrapper_of(model.config)
    runner = LlavaRunner(model)
    visual = {k: enc[k] for k in wrapper.visual_keys if k in enc}
    embeds = runner.embed(enc["input_ids"], runner.image_features(enc["pixel_values"], visual))
    return runner, embeds, rotary_positions(wrapper, model, enc["input_ids"], enc)


def adabench_greedy(model, enc, plan):
    runner, embeds, rotary = runner_inputs(model, enc)
    logits, state = prefill(runner, embeds, plan, embeds.shape[1] + NEW_TOKENS, rotary=rotary)
    steps, tokens = [logits], [int(logits.argmax())]
    while len(tokens) < NEW_TOKENS:
        logits = decode_step(runner, torch.tensor([[tokens[-1]]]), state)
        steps.append(logits)
        tokens.append(int(logits.argmax()))
    return tokens, steps


def hf_greedy(model, enc):
    out = model.generate(
        **enc,
        do_sample=False,
        max_new_tokens=NEW_TOKENS,
        min_new_tokens=NEW_TOKENS,
        return_dict_in_generate=True,
        output_logits=True,
    )
    return out.sequences[0, enc["input_ids"].shape[1] :].tolist(), list(out.logits)


def assert_same_generation(ours, theirs):
    (tokens, steps), (ref_tokens, ref_steps) = ours, theirs
    assert tokens == ref_tokens
    for i, (a, b) in enumerate(zip(steps, ref_steps)):
        torch.testing.assert_close(a, b, atol=ATOL, rtol=RTOL, msg=lambda m, i=i: f"step {i}: {m}")


def test_every_wrapper_has_a_tiny_build():
    assert set(BUILT) == set(WRAPPERS) - {"llava"}  # llava: tests/unit/test_families.py


@pytest.mark.parametrize("name", BUILT)
def test_full_plan_greedy_matches_generate(name):
    model, _, enc = wrapper_model(name)
    with torch.no_grad():
        assert_same_generation(adabench_greedy(model, enc, Plan.full(8)), hf_greedy(model, enc))


@pytest.mark.parametrize("name", BUILT)
def test_layer_drop_matches_truncated_generate(name):
    model, _, enc = wrapper_model(name)
    plan = Plan.from_kept_blocks(8, KEPT)
    with torch.no_grad():
        assert_same_generation(
            adabench_greedy(model, enc, plan), hf_greedy(truncated_copy(model, KEPT), enc)
        )


def reference_fastv_keep(model, enc, k: int, removed: int) -> list[int]:
    """Returns the sequence positions FastV keeps, ranked from HF's own eager attention of block
    k−1 (last query row, mean over heads): the `removed` lowest visual tokens go."""
    out = model(**enc, output_attentions=True)
    probs = out.attentions[k - 1][0, :, -1].float().mean(0)
    ids = enc["input_ids"][0]
    visual = torch.nonzero(ids == IMAGE_ID).squeeze(1)
    drop = set(visual[torch.topk(probs[visual], removed, largest=False).indices].tolist())
    return [i for i in range(ids.shape[0]) if i not in drop]


@pytest.mark.parametrize("name", BUILT)
def test_fastv_keeps_the_reference_ranking(name, monkeypatch):
    from adabench.models import execution

    model, _, enc = wrapper_model(name)
    ids = enc["input_ids"]
    visual = torch.nonzero(ids[0] == IMAGE_ID).squeeze(1)
    removed = len(visual) // 2
    plan = Plan.full(8).with_tokens(fastv_layer=2, fastv_removed=removed)
    kept: list = []
    real = execution.fastv_keep
    monkeypatch.setattr(execution, "fastv_keep", lambda *a: kept.append(real(*a)) or kept[-1])
    runner, embeds, rotary = runner_inputs(model, enc)
    with torch.no_grad():
        _, state = prefill(
            runner, embeds, plan, ids.shape[1] + 2, visual_positions=visual, rotary=rotary
        )
        assert kept and kept[0].tolist() == reference_fastv_keep(model, enc, 2, removed)
    assert state.kept_visual == len(visual) - removed


@pytest.mark.parametrize("name", [n for n in BUILT if not WRAPPERS[n].fixed_tokens])
def test_visual_tokens_follow_the_image_size(name):
    _, proc, _ = wrapper_model(name)
    counts = {
        size: int((inputs(proc, *size)["input_ids"] == IMAGE_ID).sum())
        for size in ((48, 48), (96, 48), (96, 96))
    }
    assert len(set(counts.values())) > 1, counts


def test_an_unknown_vlm_class_is_refused():
    with pytest.raises(UserError, match="paligemma.*LlavaNextForConditionalGeneration"):
        wrapper_of({"model_type": "paligemma"})
