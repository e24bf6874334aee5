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
    rope = runner.rope(embeds, positions)
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
        h, _ = runner.block(full[i], h, rope, head_mask=hm, neuron_mask=nm)
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


def _two_block_plan(heads, groups):
    """Block 0 keeps one run of heads / groups (views), block 1 the given units."""
    return Plan(
        layers=(
            LayerPlan(heads=(1, 2), mlp_groups=(0, 1)),
            LayerPlan(heads=heads, mlp_groups=groups),
        ),
        mlp_group_count=4,
    )


def _storage(t):
    return t.untyped_storage().data_ptr()


def test_one_run_of_units_is_a_view_and_split_runs_copy_only_kept_rows():
    model, _ = build_random_llava(layers=2)  # hidden 64, 4 heads of 16, intermediate 128
    runner = LlavaRunner(model)
    with torch.no_grad():
        blocks = runner.prepare(_two_block_plan(heads=(0, 3), groups=(1, 3)))
    attn0, mlp0 = runner.layers[0].self_attn, runner.layers[0].mlp
    for ours, theirs in (
        (blocks[0].q, attn0.q_proj),
        (blocks[0].k, attn0.k_proj),
        (blocks[0].o, attn0.o_proj),
        (blocks[0].gate, mlp0.gate_proj),
        (blocks[0].down, mlp0.down_proj),
    ):
        assert _storage(ours[0]) == _storage(theirs.weight)  # no copy
    torch.testing.assert_close(blocks[0].o[0], attn0.o_proj.weight[:, 16:48])
    assert _storage(blocks[1].q[0]) != _storage(runner.layers[1].self_attn.q_proj.weight)
    q_rows = torch.cat([torch.arange(0, 16), torch.arange(48, 64)])
    torch.testing.assert_close(blocks[1].q[0], runner.layers[1].self_attn.q_proj.weight[q_rows])
    # block 1 only: q, k, v rows and o columns of 2 heads; gate, up rows and down columns of 2 groups
    assert runner.cache_bytes == 4 * (4 * 32 * 64) + 4 * (3 * 64 * 64)


def test_half_cache_keeps_the_plan_in_use_and_reuses_halves_within_its_limit():
    model, _ = build_random_llava(layers=2)
    runner = LlavaRunner(model)
    plan_a, plan_b = _two_block_plan((0, 3), (1, 3)), _two_block_plan((0, 2), (0, 2))
    one_plan = 4 * (4 * 32 * 64) + 4 * (3 * 64 * 64)
    with torch.no_grad():
        runner.cache_limit_bytes = 0
        runner.prepare(plan_a)
        assert runner.cache_bytes == one_plan  # over the limit, but in use: kept
        runner.prepare(plan_b)
        assert runner.cache_bytes == one_plan  # plan_a's copies evicted
        runner.cache_limit_bytes = 10**9
        first = runner.prepare(plan_a)
        runner.prepare(plan_b)
        assert runner.cache_bytes == 2 * one_plan
        again = runner.prepare(plan_a)
    assert again[1].q[0] is first[1].q[0] and again[1].down[0] is first[1].down[0]


def test_cached_halves_follow_in_place_weight_updates():
    model, _ = build_random_llava(layers=2)
    runner = LlavaRunner(model)
    plan = _two_block_plan((0, 3), (1, 3))
    q_proj = runner.layers[1].self_attn.q_proj
    with torch.no_grad():
        runner.prepare(plan)
        q_proj.weight.add_(1.0)  # a training step
        fresh = runner.prepare(plan)[1].q[0]
    q_rows = torch.cat([torch.arange(0, 16), torch.arange(48, 64)])
    torch.testing.assert_close(fresh, q_proj.weight[q_rows])


def test_reused_halves_give_the_outputs_of_a_fresh_runner():
    model, proc = build_random_llava(layers=4)
    ids, pix = _inputs(proc)
    plans = [
        Plan(
            layers=(LayerPlan(), LayerPlan(heads=h, mlp_groups=g), LayerPlan(heads=h), None),
            mlp_group_count=4,
        )
        for h, g in (((0, 3), (1, 3)), ((0, 3), (0, 2)), ((1, 2), (1, 3)))
    ]
    warm = LlavaRunner(model)
    with torch.no_grad():
        embeds = _embeds(warm, ids, pix)
        for plan in plans:
            warm.prepare(plan)
        for plan in plans:
            ours, _ = prefill(warm, embeds, plan, embeds.shape[1] + 1)
            ref, _ = prefill(LlavaRunner(model), embeds, plan, embeds.shape[1] + 1)
            torch.testing.assert_close(ours, ref, atol=0, rtol=0)
            masked = _masked_reference(warm, embeds, plan, 4, 128)
            torch.testing.assert_close(ours, masked, atol=1e-5, rtol=1e-4)


def test_decode_step_makes_no_host_to_device_tensor(monkeypatch):
    model, proc = build_random_llava(layers=2)
    ids, pix = _inputs(proc)
    runner = LlavaRunner(model)
    token = torch.tensor([[7]])
    with torch.no_grad():
        _, state = prefill(runner, _embeds(runner, ids, pix), None, ids.shape[1] + 3)

        def no_new_tensor(*args, **kwargs):
            raise AssertionError("decode_step built a tensor from host data")

        monkeypatch.setattr(torch, "tensor", no_new_tensor)
        decode_step(runner, token, state)
        decode_step(runner, token, state)
    assert state.next_position == ids.shape[1] + 2


@pytest.mark.parametrize("device,kept_plans", [("cpu", 2), ("cuda", 0)])
def test_default_cache_limit_keeps_copies_on_cpu_only(device, kept_plans):
    """CPU keeps copied halves across requests (up to the decoder's bytes); CUDA copies nothing
    (split sets run as per-run matmuls on views: no per-request copy in the timed region)."""
    from types import SimpleNamespace

    model, _ = build_random_llava(layers=2)
    runner = LlavaRunner(model)
    runner._probe = SimpleNamespace(device=torch.device(device))  # the policy, not the kernels
    one_plan = 4 * (4 * 32 * 64) + 4 * (3 * 64 * 64)
    with torch.no_grad():
        runner.prepare(_two_block_plan((0, 3), (1, 3)))
        runner.prepare(_two_block_plan((0, 2), (0, 2)))
    assert runner.cache_bytes == kept_plans * one_plan
