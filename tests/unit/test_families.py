"""The per-family exactness gate: for every decoder family adabench runs, its executor equals HF.

One row per family (tests/family_models.py builds it with the family's features turned on and
every bias and norm weight randomised). For each family:
- full plan: greedy tokens and every step's logits equal HF `generate`; prefill logits equal
  the HF forward (fp32, atol/rtol 1e-4), on every attention implementation HF accepts;
- layer-drop: a block-skipping plan equals `generate` on the model truncated to those blocks;
- partial blocks: kept query heads (whole kv groups, a single head of a group, one head of
  each group) and MLP groups equal the HF forward with the dropped heads / neurons zeroed
  (prefill and the decode steps after it);
- FLOPs: the analytic prefill count equals FlopCounterMode on the HF eager forward;
- detection: each config resolves to its family; unsupported families and VLM classes are
  refused with a UserError naming what is supported.
HF-only checks (`test_references_are_sound`, `test_family_features_matter`) keep the references
honest: they do not use the adabench executor.
"""

from __future__ import annotations

import pytest
import torch

from adabench.errors import UserError
from adabench.models import flops
from adabench.models.execution import LlavaRunner, decode_step, prefill
from adabench.models.families import FAMILIES as ADABENCH_FAMILIES
from adabench.models.families import family_of
from adabench.models.plan import LayerPlan, Plan
from adabench.models.wrappers import wrapper_of
from tests.family_models import (
    FAMILIES,
    build_family_llava,
    hf_last_logits,
    llava_config,
    masked_reference_logits,
    prompt_inputs,
    truncated_copy,
)
from tests.flop_count import counted

NEW_TOKENS = 8
ATOL = RTOL = 1e-4
KEPT = (0, 2, 3, 5, 6)
"""Blocks kept by the layer-drop test: a mix of sliding and full layers in every family."""
HF_ATTN = {family: ("eager", "sdpa") for family in FAMILIES} | {"gemma2": ("eager",)}
"""Attention implementations HF builds per family (Gemma 2 refuses sdpa: soft-capping)."""

FAMILY_ATTN = [
    pytest.param(family, attn, id=f"{family}-{attn}")
    for family in FAMILIES
    for attn in HF_ATTN[family]
]

PARTIAL_PLAN = Plan(
    layers=(
        LayerPlan(),
        LayerPlan(heads=(0, 1), mlp_groups=(0, 2)),  # kv group 0 whole
        LayerPlan(heads=(3,)),  # a single head of kv group 1
        LayerPlan(mlp_groups=(1, 3)),
        LayerPlan(heads=(2, 3), mlp_groups=(3,)),  # kv group 1 whole
        LayerPlan(heads=(0, 3), mlp_groups=(0, 1, 2)),  # one head of each kv group
        LayerPlan(heads=(1,), mlp_groups=(2,)),
        LayerPlan(),
    ),
    mlp_group_count=4,
)

_MODELS: dict = {}


def family_model(family: str, attn: str = "eager"):
    """Returns the (model, processor) of a family, built once per module (tests do not mutate it)."""
    key = (family, attn)
    if key not in _MODELS:
        _MODELS[key] = build_family_llava(family, layers=8, attn=attn)
    return _MODELS[key]


def adabench_greedy(model, ids, pix, plan):
    """Returns (tokens, per-step logits) of adabench's executor: prefill, then decode_step with
    the argmax until NEW_TOKENS tokens or EOS (as the sweep's generation loop)."""
    eos = model.generation_config.eos_token_id
    eos = set(eos if isinstance(eos, list) else [eos])
    runner = LlavaRunner(model)
    embeds = runner.embed(ids, runner.image_features(pix))
    logits, state = prefill(runner, embeds, plan, ids.shape[1] + NEW_TOKENS)
    steps, tokens = [logits], [int(logits.argmax())]
    while len(tokens) < NEW_TOKENS and tokens[-1] not in eos:
        logits = decode_step(runner, torch.tensor([[tokens[-1]]]), state)
        steps.append(logits)
        tokens.append(int(logits.argmax()))
    return tokens, steps


def hf_greedy(model, ids, pix):
    """Returns (new tokens, per-step raw logits) of HF `generate` (greedy)."""
    out = model.generate(
        input_ids=ids,
        pixel_values=pix,
        do_sample=False,
        max_new_tokens=NEW_TOKENS,
        return_dict_in_generate=True,
        output_logits=True,
    )
    return out.sequences[0, ids.shape[1] :].tolist(), list(out.logits)


def assert_same_generation(ours, theirs):
    (tokens, steps), (ref_tokens, ref_steps) = ours, theirs
    assert tokens == ref_tokens
    for i, (a, b) in enumerate(zip(steps, ref_steps)):
        torch.testing.assert_close(a, b, atol=ATOL, rtol=RTOL, msg=lambda m, i=i: f"step {i}: {m}")


@pytest.mark.parametrize(("family", "attn"), FAMILY_ATTN)
def test_full_plan_prefill_logits_match_hf(family, attn):
    model, proc = family_model(family, attn)
    ids, pix = prompt_inputs(proc)
    runner = LlavaRunner(model)
    with torch.no_grad():
        ref = model(input_ids=ids, pixel_values=pix).logits[:, -1]
        ours, _ = prefill(runner, runner.embed(ids, runner.image_features(pix)), None, 32)
    torch.testing.assert_close(ours, ref, atol=ATOL, rtol=RTOL)


@pytest.mark.parametrize(("family", "attn"), FAMILY_ATTN)
def test_full_plan_greedy_matches_generate(family, attn):
    model, proc = family_model(family, attn)
    ids, pix = prompt_inputs(proc)
    with torch.no_grad():
        assert_same_generation(
            adabench_greedy(model, ids, pix, Plan.full(8)), hf_greedy(model, ids, pix)
        )


@pytest.mark.parametrize(("family", "attn"), FAMILY_ATTN)
def test_layer_drop_matches_truncated_model(family, attn):
    model, proc = family_model(family, attn)
    ids, pix = prompt_inputs(proc)
    short = truncated_copy(model, KEPT)
    plan = Plan.from_kept_blocks(8, KEPT)
    runner = LlavaRunner(model)
    with torch.no_grad():
        ref = short(input_ids=ids, pixel_values=pix).logits[:, -1]
        ours, _ = prefill(runner, runner.embed(ids, runner.image_features(pix)), plan, 32)
        torch.testing.assert_close(ours, ref, atol=ATOL, rtol=RTOL)
        assert_same_generation(adabench_greedy(model, ids, pix, plan), hf_greedy(short, ids, pix))


@pytest.mark.parametrize(("family", "attn"), FAMILY_ATTN)
def test_partial_blocks_match_masked_hf(family, attn):
    """Prefill and three decode steps under PARTIAL_PLAN equal the masked HF forward of the
    whole sequence so far (the decode steps read the cache of the kept kv heads only)."""
    model, proc = family_model(family, attn)
    ids, pix = prompt_inputs(proc)
    runner = LlavaRunner(model)
    with torch.no_grad():
        embeds = runner.embed(ids, runner.image_features(pix))
        logits, state = prefill(runner, embeds, PARTIAL_PLAN, ids.shape[1] + 4)
        seq, prompt_len = ids, ids.shape[1]
        for step in range(4):
            ref = masked_reference_logits(model, seq, pix, PARTIAL_PLAN, prompt_len)
            torch.testing.assert_close(
                logits, ref, atol=ATOL, rtol=RTOL, msg=lambda m, s=step: f"step {s}: {m}"
            )
            token = torch.tensor([[int(ref.argmax())]])
            seq = torch.cat([seq, token], dim=1)
            if step < 3:
                logits = decode_step(runner, token, state)


EMPTY_HALVES_PLAN = Plan(
    layers=(
        LayerPlan(),
        LayerPlan(heads=(), mlp_groups=(0, 2)),  # no attention: o_proj's bias is not added
        LayerPlan(heads=(1, 3), mlp_groups=()),  # no MLP: down_proj's bias is not added
        LayerPlan(heads=(), mlp_groups=()),
    )
    + (LayerPlan(),) * 4,
    mlp_group_count=4,
)


def _partial_logits(model, ids, pix, plan, runs_from_bytes=None, steps=4):
    """Returns (runner, [prefill and decode logits], tokens fed) of adabench on `plan`, the
    decode steps fed the masked reference's argmax; `runs_from_bytes` 0 forces `Runs` halves."""
    runner = LlavaRunner(model)
    runner.runs_from_bytes = runs_from_bytes
    embeds = runner.embed(ids, runner.image_features(pix))
    logits, state = prefill(runner, embeds, plan, ids.shape[1] + steps)
    seq, out = ids, []
    for step in range(steps):
        out.append(logits)
        ref = masked_reference_logits(model, seq, pix, plan, ids.shape[1])
        torch.testing.assert_close(
            logits, ref, atol=ATOL, rtol=RTOL, msg=lambda m, s=step: f"step {s}: {m}"
        )
        token = torch.tensor([[int(ref.argmax())]])
        seq = torch.cat([seq, token], dim=1)
        if step < steps - 1:
            logits = decode_step(runner, token, state)
    return runner, out


@pytest.mark.parametrize("family", FAMILIES)
def test_partial_blocks_as_runs_match_masked_hf(family):
    """The copy-free path (several runs of heads / groups as per-run matmuls, what a multi-run
    half of a width-1024 block runs on CPU) equals the masked HF forward; the CPU default copies
    these small halves instead (tested by test_partial_blocks_match_masked_hf)."""
    from adabench.models.block_weights import Runs

    model, proc = family_model(family)
    ids, pix = prompt_inputs(proc)
    with torch.no_grad():
        runner, _ = _partial_logits(model, ids, pix, PARTIAL_PLAN, runs_from_bytes=0)
    again = runner.prepare(PARTIAL_PLAN)
    assert any(isinstance(bw.gate, Runs) for bw in again) and runner.cache_bytes == 0
    assert any(isinstance(bw.q, Runs) and isinstance(bw.o, Runs) for bw in again)
    default = LlavaRunner(model).prepare(PARTIAL_PLAN)
    assert not any(isinstance(p, Runs) for bw in default for p in (bw.q, bw.o, bw.gate, bw.down))


@pytest.mark.parametrize("family", ["llama", "qwen2", "gemma2"])
def test_empty_halves_add_no_bias(family):
    """A block with no kept head (or MLP group) runs no such sublayer: the sliced path, its
    Runs twin and the masked training path (`block` with a zero mask) all add no bias (Llama's
    test model has o_proj and down_proj biases)."""
    model, proc = family_model(family)
    ids, pix = prompt_inputs(proc)
    with torch.no_grad():
        _partial_logits(model, ids, pix, EMPTY_HALVES_PLAN, steps=2)
        runner = LlavaRunner(model)
        h = runner.embed(ids, runner.image_features(pix))
        rope = runner.rope(h, torch.arange(h.shape[1])[None])
        sliced = runner.prepare(EMPTY_HALVES_PLAN)
        for i in (1, 2, 3):
            lp = EMPTY_HALVES_PLAN.layers[i]
            heads = torch.zeros(1, runner.n_heads)
            heads[0, list(lp.heads)] = 1
            size = runner.decoder.intermediate_size // 4
            neurons = torch.zeros(1, runner.decoder.intermediate_size)
            for g in lp.mlp_groups:
                neurons[0, g * size : (g + 1) * size] = 1
            full = runner.full_blocks()[i]
            masked, _ = runner.block(full, h, rope, head_mask=heads, neuron_mask=neurons)
            ours, _ = runner.block(sliced[i], h, rope)
            torch.testing.assert_close(ours, masked, atol=ATOL, rtol=RTOL)


@pytest.mark.parametrize("family", FAMILIES)
def test_prefill_flops_match_flop_counter(family):
    """Eager attention (FlopCounterMode counts the CPU SDPA kernel as 0): both count matmuls at
    2 × MAC; norms, soft-caps, rotary, embedding scales are 0 in both."""
    model, proc = family_model(family, "eager")
    ids, pix = prompt_inputs(proc)
    seq_len = ids.shape[1]
    reference = counted(lambda: model(input_ids=ids, pixel_values=pix, logits_to_keep=1))
    assert flops.prefill_flops(model.config, seq_len) == reference
    short = truncated_copy(model, KEPT)
    skipped = counted(lambda: short(input_ids=ids, pixel_values=pix, logits_to_keep=1))
    assert flops.prefill_flops(model.config, seq_len, Plan.from_kept_blocks(8, KEPT)) == skipped


@pytest.mark.parametrize("family", FAMILIES)
def test_family_is_detected(family):
    model, _ = family_model(family)
    assert family_of(model.config).name == family
    assert family_of(model.config.to_dict()).name == family  # config.json form
    assert wrapper_of(model.config).hf_class == "LlavaForConditionalGeneration"


def _llava_with(text):
    from adabench.models import tiny

    return llava_config(text, tiny.build_processor().tokenizer)


@pytest.mark.parametrize("text_class", ["PhiConfig", "GPTNeoXConfig"])
def test_unsupported_family_is_refused(text_class):
    import transformers

    text = getattr(transformers, text_class)(
        hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4
    )
    for config in (_llava_with(text), _llava_with(text).to_dict()):
        with pytest.raises(UserError) as err:
            family_of(config)
        msg = str(err.value)
        assert text.model_type in msg
        for fam in ADABENCH_FAMILIES.values():
            assert fam.label in msg and all(t in msg for t in fam.model_types)


@pytest.mark.parametrize(
    "config", [{"model_type": "paligemma"}, {"model_type": "mllama", "architectures": ["X"]}]
)
def test_unsupported_vlm_class_is_refused(config):
    with pytest.raises(UserError, match="LlavaForConditionalGeneration") as err:
        wrapper_of(config)
    assert config["model_type"] in str(err.value)
    assert "LlavaNextForConditionalGeneration" in str(err.value)


# ---------------------------------------------------------------- the references themselves


def _nocache_greedy(model, ids, pix):
    eos = model.generation_config.eos_token_id
    eos = set(eos if isinstance(eos, list) else [eos])
    seq, out = ids, []
    while len(out) < NEW_TOKENS and (not out or out[-1] not in eos):
        token = int(hf_last_logits(model, seq, pix, ids.shape[1])[0].argmax())
        out.append(token)
        seq = torch.cat([seq, torch.tensor([[token]])], dim=1)
    return out


@pytest.mark.parametrize("family", FAMILIES)
def test_references_are_sound(family):
    """HF only: the masked forward keeping every head and group is the plain forward; the
    truncated copy keeping every block is the model; HF's cached generate on the truncated copy
    equals greedy re-computation of the whole sequence (its sliding-window cache included)."""
    model, proc = family_model(family)
    ids, pix = prompt_inputs(proc)
    every_unit = LayerPlan(heads=(0, 1, 2, 3), mlp_groups=(0, 1, 2, 3))
    everything = Plan(layers=(every_unit,) * 8, mlp_group_count=4)
    short = truncated_copy(model, KEPT)
    with torch.no_grad():
        plain = model(input_ids=ids, pixel_values=pix).logits[:, -1]
        torch.testing.assert_close(hf_last_logits(model, ids, pix, ids.shape[1]), plain)
        torch.testing.assert_close(masked_reference_logits(model, ids, pix, everything), plain)
        whole = truncated_copy(model, range(8))(input_ids=ids, pixel_values=pix).logits[:, -1]
        torch.testing.assert_close(whole, plain)
        assert len(short.model.language_model.layers) == len(KEPT)
        assert short.config.text_config.num_hidden_layers == len(KEPT)
        assert hf_greedy(short, ids, pix)[0] == _nocache_greedy(short, ids, pix)
        assert hf_greedy(model, ids, pix)[0] == _nocache_greedy(model, ids, pix)
        masked = masked_reference_logits(model, ids, pix, PARTIAL_PLAN)
    assert (masked - plain).abs().max() > 1e-2  # the hooks do act
    assert len(model.model.language_model.layers) == 8  # the copy left the model alone


ALL_FULL = {"layer_types": ["full_attention"] * 8}
DEFAULT_ROPE = {"rope_parameters": {"rope_type": "default", "rope_theta": 10000.0}}
FEATURES_OFF = {
    "llama": {"rope llama3": DEFAULT_ROPE},
    "mistral": {"sliding window": {"sliding_window": None}, "rope linear": DEFAULT_ROPE},
    "qwen2": {"sliding layers": ALL_FULL, "rope yarn": DEFAULT_ROPE},
    "qwen3": {"sliding layers": ALL_FULL},
    "phi3": {
        "sliding window": {"sliding_window": None},
        "partial rotary": {"rope_parameters": DEFAULT_ROPE["rope_parameters"]},
    },
    "gemma2": {
        "soft-cap": {"attn_logit_softcapping": None},
        "query_pre_attn_scalar": {"query_pre_attn_scalar": 16},
        "sliding layers": ALL_FULL,
    },
    "gemma3": {
        "sliding layers": ALL_FULL,
        "query_pre_attn_scalar": {"query_pre_attn_scalar": 16},
        "local rope": {
            "rope_parameters": {
                lt: {"rope_type": "linear", "rope_theta": 100000.0, "factor": 4.0}
                for lt in ("full_attention", "sliding_attention")
            }
        },
    },
}


@pytest.mark.parametrize("family", FAMILIES)
def test_family_features_matter(family):
    """HF only: switching a family feature off (same weights) moves the last logits by far more
    than the gate's tolerance, so a gate that passes has exercised the feature. Biases and norm
    weights are random: dropping one matters too."""
    model, proc = family_model(family)
    ids, pix = prompt_inputs(proc)
    with torch.no_grad():
        base = model(input_ids=ids, pixel_values=pix).logits[:, -1]
        for name, overrides in FEATURES_OFF[family].items():
            other, _ = build_family_llava(family, overrides=overrides)
            moved = (other(input_ids=ids, pixel_values=pix).logits[:, -1] - base).abs().max()
            assert moved > 1e-2, f"{name}: {float(moved)}"
    biases = [n for n, p in model.named_parameters() if n.endswith(".bias") and "layers.0." in n]
    if family in ("llama", "qwen2", "qwen3"):
        assert biases  # q/k/v (and o, MLP for Llama) biases exist and are not zero
    for name, p in model.named_parameters():
        if "language_model" in name and (name.endswith(".bias") or "norm" in name):
            assert p.std() > 0.1, name
