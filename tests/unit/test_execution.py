"""The plan executor: equality with HF, real skipping, slicing == masking, KV cache in decode, GQA."""

import pytest
import torch

from adabench.models.execution import LlavaRunner, decode_step, fastv_keep, prefill
from adabench.models.plan import LayerPlan, Plan
from tests.conftest import build_random_llava


def _inputs(processor, question="what color is the circle ?"):
    from adabench.data import synthetic
    from adabench.models.tiny import PROMPT

    item = synthetic.generate("test", 1)[0]
    enc = processor(
        images=synthetic.render(item.scene),
        text=PROMPT.format(question=question),
        return_tensors="pt",
    )
    return enc["input_ids"], enc["pixel_values"]


def _embeds(runner, ids, pix):
    return runner.embed(ids, runner.image_features(pix))


@pytest.mark.parametrize("attn", ["sdpa", "eager"])
@pytest.mark.parametrize("kv_heads", [4, 2])
def test_full_plan_matches_hf(attn, kv_heads):
    model, proc = build_random_llava(kv_heads=kv_heads, attn=attn)
    ids, pix = _inputs(proc)
    runner = LlavaRunner(model)
    with torch.no_grad():
        ref = model(input_ids=ids, pixel_values=pix).logits[:, -1]
        ours, _ = prefill(runner, _embeds(runner, ids, pix), None, ids.shape[1] + 4)
    torch.testing.assert_close(ours, ref, atol=1e-4, rtol=1e-4)


def test_skipped_blocks_are_never_called():
    model, proc = build_random_llava(layers=6)
    calls = [0] * 6
    ids, pix = _inputs(proc)
    runner = LlavaRunner(model)
    index = {id(layer): i for i, layer in enumerate(runner.layers)}
    run_block = runner.block

    def counting(bw, *args, **kwargs):
        calls[index[id(bw.layer)]] += 1
        return run_block(bw, *args, **kwargs)

    runner.block = counting
    plan = Plan.from_kept_blocks(6, [0, 1, 2, 5])
    with torch.no_grad():
        _, state = prefill(runner, _embeds(runner, ids, pix), plan, ids.shape[1] + 4)
        decode_step(runner, torch.tensor([[7]]), state)
    assert calls == [2, 2, 2, 0, 0, 2]
    assert state.cache[3] is None and state.cache[4] is None  # no KV entry for skipped blocks


def _masked_reference(runner, embeds, plan, n_heads, inter):
    """Full-compute forward where masks zero the dropped heads / neurons / blocks."""
    t = embeds.shape[1]
    positions = torch.arange(t)[None]
    cos, sin = runner.rope(embeds, positions)
    full = runner.prepare(Plan.full(plan.num_layers, plan.mlp_group_count))
    h = embeds
    for i, lp in enumerate(plan.layers):
        if lp is None:
            continue
        hm = torch.zeros(1, n_heads)
        hm[0, list(range(n_heads)) if lp.heads is None else list(lp.heads)] = 1
        nm = torch.zeros(1, inter)
        size = inter // plan.mlp_group_count
        for g in range(plan.mlp_group_count) if lp.mlp_groups is None else lp.mlp_groups:
            nm[0, g * size : (g + 1) * size] = 1
        h, _ = runner.block(full[i], h, cos, sin, head_mask=hm, neuron_mask=nm)
    return runner.logits(h[:, -1:])[:, -1]


@pytest.mark.parametrize("kv_heads", [4, 2])
def test_sliced_heads_equal_masked_computation(kv_heads):
    model, proc = build_random_llava(kv_heads=kv_heads)
    ids, pix = _inputs(proc)
    runner = LlavaRunner(model)
    heads = (0, 1) if kv_heads == 2 else (1, 3)  # whole kv groups under GQA
    plan = Plan(
        layers=(
            LayerPlan(),
            LayerPlan(heads=heads, mlp_groups=(0, 2)),
            None,
            LayerPlan(heads=(), mlp_groups=(1,)),
        ),
        mlp_group_count=4,
    )
    with torch.no_grad():
        embeds = _embeds(runner, ids, pix)
        sliced, state = prefill(runner, embeds, plan, ids.shape[1] + 2)
        ref = _masked_reference(runner, embeds, plan, 4, 128)
    torch.testing.assert_close(sliced, ref, atol=1e-5, rtol=1e-4)
    assert state.cache[1].k.shape[1] == len(heads) // (4 // kv_heads)  # only kept kv heads cached
    assert state.cache[3] is None  # attention half skipped


@pytest.mark.parametrize("kv_heads", [4, 2])
def test_kv_cache_decode_equals_recompute(kv_heads):
    """Greedy tokens with the cache equal tokens from re-running the whole sequence each step."""
    model, proc = build_random_llava(kv_heads=kv_heads, layers=6)
    ids, pix = _inputs(proc)
    runner = LlavaRunner(model)
    plan = Plan(
        layers=(
            LayerPlan(),
            LayerPlan(),
            LayerPlan(heads=(0, 1), mlp_groups=(3,)),
            None,
            LayerPlan(),
            None,
        ),
        mlp_group_count=4,
    )
    with torch.no_grad():
        embeds = _embeds(runner, ids, pix)
        logits, state = prefill(runner, embeds, plan, embeds.shape[1] + 5)
        cached = [logits]
        tokens = [int(logits.argmax())]
        for _ in range(4):
            logits = decode_step(runner, torch.tensor([[tokens[-1]]]), state)
            cached.append(logits)
            tokens.append(int(logits.argmax()))
        seq = embeds
        for step in range(5):
            ref, _ = prefill(runner, seq, plan, seq.shape[1] + 1)
            torch.testing.assert_close(cached[step], ref, atol=1e-4, rtol=1e-4)
            seq = torch.cat([seq, runner.lm.embed_tokens(torch.tensor([[tokens[step]]]))], dim=1)


def test_fastv_keeps_the_highest_attention_visual_tokens():
    probs = torch.tensor([0.0, 0.5, 0.1, 0.3, 0.05, 0.05, 0.0])  # positions 1..4 are visual
    keep = fastv_keep(probs, torch.tensor([1, 2, 3, 4]), n_remove=2, seq_len=7)
    assert keep.tolist() == [0, 1, 3, 5, 6]


def test_fastv_shortens_later_blocks_cache():
    model, proc = build_random_llava(layers=4)
    ids, pix = _inputs(proc)
    runner = LlavaRunner(model)
    vis = torch.nonzero(ids[0] == model.config.image_token_id).squeeze(1)
    plan = Plan.full(4).with_tokens(fastv_layer=2, fastv_removed=4)
    with torch.no_grad():
        _, state = prefill(
            runner, _embeds(runner, ids, pix), plan, ids.shape[1] + 2, visual_positions=vis
        )
        decode_step(runner, torch.tensor([[5]]), state)
    t = ids.shape[1]
    assert [c.length for c in state.cache] == [t + 1, t + 1, t - 3, t - 3]
