"""downsample, visionzip, pyramiddrop, dart: kept tokens against independent references.

Each reference is computed here with plain torch from HF's own modules and forward outputs
(attentions, hidden states, the decoder layers called one by one), never by calling the
method's code; the method's choice comes from adabench's executor or `choose`.
"""

from __future__ import annotations

import math
from contextlib import contextmanager

import pytest
import torch
import torch.nn.functional as F

from adabench.models import flops
from adabench.models.factory import build_method
from adabench.models.plan import Plan, TokenDrop


@pytest.fixture(scope="module")
def tiny():
    from adabench.models.loading import load_model

    torch.set_num_threads(1)
    return load_model("tiny", device="cpu")


@pytest.fixture(scope="module")
def sample(tiny):
    from adabench.data.suites import get_spec, load_suite
    from adabench.sweep.cell import prepare_samples

    spec = get_spec("shapes")
    samples = load_suite("shapes", limit=2)
    return prepare_samples(tiny, spec, samples)[0]


@contextmanager
def eager(*configs):
    """Within the block, HF attention modules of `configs` compute explicit weights."""
    saved = [c._attn_implementation for c in configs]
    for c in configs:
        c._attn_implementation = "eager"
    try:
        yield
    finally:
        for c, impl in zip(configs, saved):
            c._attn_implementation = impl


def _visual(tiny, ids) -> list[int]:
    return torch.nonzero(ids[0] == tiny.config.image_token_id).squeeze(1).tolist()


def _run(tiny, method, ps):
    """Returns (request, prefill state) of `method` on prepared sample `ps` (adabench's path)."""
    from adabench.models.execution import LlavaRunner, prefill

    runner = LlavaRunner(tiny.model)
    with torch.no_grad():
        feats = runner.image_features(ps.pixel_values)
        request = method.request("s", ps.input_ids, feats)
        embeds = runner.embed(ps.input_ids, feats)
        vis = torch.tensor(_visual(tiny, ps.input_ids))
        _, state = prefill(runner, embeds, request.plan, embeds.shape[1] + 2, visual_positions=vis)
    return request, state


# ------------------------------------------------------------------ HF-side references
def _hf_llm(tiny, ps):
    """Returns (language model, hidden states per layer input [1, T, D] from HF's forward)."""
    model = tiny.model
    with torch.no_grad():
        out = model(input_ids=ps.input_ids, pixel_values=ps.pixel_values, output_hidden_states=True)
    return model.model.language_model, out.hidden_states


def _causal(t: int) -> torch.Tensor:
    return torch.full((t, t), float("-inf")).triu(1)[None, None]


def _hf_last_row_attention(lm, layer: int, h, pos) -> torch.Tensor:
    """Returns HF's own attention weights of decoder layer `layer` on input `h` at positions
    `pos`: the last query row, mean over heads [T]."""
    lay = lm.layers[layer]
    pe = lm.rotary_emb(h, pos[None])
    with eager(lm.config):
        _, weights = lay.self_attn(lay.input_layernorm(h), pe, _causal(h.shape[1]))
    return weights[0, :, -1].float().mean(0)


def _hf_layers(lm, h, pos, start: int, stop: int):
    """Returns `h` after HF's decoder layers [start, stop) at positions `pos`."""
    pe = lm.rotary_emb(h, pos[None])
    for i in range(start, stop):
        h = lm.layers[i](h, attention_mask=_causal(h.shape[1]), position_embeddings=pe)
    return h


def test_pyramiddrop_keeps_what_hf_attention_ranks_highest(tiny, sample):
    method = build_method("pyramiddrop", tiny, 1.0, {"lambda": "0.6"})
    request, state = _run(tiny, method, sample)
    drops = request.plan.token_drops
    assert [(d.layer, d.rule) for d in drops] == [(3, "pyramid"), (6, "pyramid"), (9, "pyramid")]
    assert [d.removed for d in drops] == [4, 2, 2]  # ⌊9·0.6ʲ⌋ = 5, 3, 1
    lm, hidden = _hf_llm(tiny, sample)
    visual = _visual(tiny, sample.input_ids)
    with torch.no_grad():
        h, pos, start = hidden[3], torch.arange(hidden[3].shape[1]), 3
        first = _hf_last_row_attention(lm, 3, h, pos)
        for j, (layer, keep) in enumerate(zip((3, 6, 9), (5, 3, 1))):
            h = _hf_layers(lm, h, pos, start, layer)
            attn = _hf_last_row_attention(lm, layer, h, pos)
            if j == 0:
                torch.testing.assert_close(attn, first)
            in_seq = [i for i, p in enumerate(pos.tolist()) if p in visual]
            top = [in_seq[i] for i in attn[in_seq].topk(keep).indices.tolist()]
            kept = sorted(set(range(len(pos))) - set(in_seq) | set(top))
            h, pos, start = h[:, kept], pos[kept], layer
            assert state.kept_positions[j].tolist() == pos.tolist(), f"stage {j + 1}"
    assert state.kept_visual == 1


def _dart_reference(hidden, keys, visual: list[int], n_keep: int, pivots: int) -> list[int]:
    """DART's `get_retained_image_token`, written out: key-L1 pivots (image, text after the
    image), then per pivot the least cosine-similar visual tokens; returns kept positions."""
    t = hidden.shape[0]
    norms = keys.abs().sum(-1)
    text_after = list(range(max(visual) + 1, t))
    img = sorted(visual[i] for i in norms[visual].topk(pivots).indices.tolist())
    txt = sorted(text_after[i] for i in norms[text_after].topk(pivots).indices.tolist())
    chosen = list(img)
    per = math.ceil((n_keep - pivots) / (len(img) + len(txt)))
    for p in img + txt:
        valid = [v for v in visual if v not in chosen]
        left = n_keep - len(chosen)
        if left <= 0:
            break
        cos = F.cosine_similarity(hidden[p][None], hidden[valid], dim=-1)
        chosen += [valid[i] for i in (-cos).topk(min(per, left, len(valid))).indices.tolist()]
    return sorted(set(range(t)) - set(visual) | set(chosen))


@pytest.mark.parametrize("keep", ["0.45", "0.67"])
def test_dart_keeps_what_the_duplication_reference_keeps(tiny, sample, keep):
    from transformers.models.llama.modeling_llama import apply_rotary_pos_emb

    method = build_method("dart", tiny, 1.0, {"keep": keep})
    request, state = _run(tiny, method, sample)
    n_keep = math.floor(float(keep) * 9)
    assert request.plan.token_drops == (TokenDrop(2, 9 - n_keep, "dart"),)
    lm, hidden = _hf_llm(tiny, sample)
    lay = lm.layers[1]  # the source block: the last before K = 2
    with torch.no_grad():
        x = lay.input_layernorm(hidden[1])
        t, hd = x.shape[1], lm.config.head_dim
        k = lay.self_attn.k_proj(x).view(1, t, -1, hd).transpose(1, 2)
        cos, sin = lm.rotary_emb(x, torch.arange(t)[None])
        _, k = apply_rotary_pos_emb(k, k, cos, sin)
        keys = k[0].transpose(0, 1).reshape(t, -1)
        want = _dart_reference(
            lm.norm(hidden[2])[0], keys, _visual(tiny, sample.input_ids), n_keep, 1
        )
    assert state.kept_positions[0].tolist() == want
    assert state.kept_visual == n_keep


def _hf_vision(tiny, ps):
    vt = tiny.model.model.vision_tower
    with torch.no_grad(), eager(vt.config):
        return vt(ps.pixel_values, output_attentions=True, output_hidden_states=True)


def test_visionzip_keeps_the_dominant_and_contextual_tokens_of_hf_attention(tiny, sample):
    method = build_method("visionzip", tiny, 1.0, {"keep": "0.67"})  # 6 tokens: 5 + 1
    from adabench.models.execution import LlavaRunner

    runner = LlavaRunner(tiny.model)
    with torch.no_grad():
        feats = runner.image_features(sample.pixel_values)
        choice = method.choose(sample.input_ids, feats)
    out = _hf_vision(tiny, sample)
    layer = len(out.attentions) - 1  # the tiny's feature layer is the output of the last layer
    cls = out.attentions[layer][0, :, 0, 1:].sum(0)
    dominant = sorted(cls.topk(5).indices.tolist())
    rest = [i for i in range(9) if i not in dominant]
    with torch.no_grad():
        x = out.hidden_states[-1][0, 1:]
        target, others = rest[0], rest[1:]  # one contextual token (54:10 of 6 is 5:1)
        contextual = x[target] + x[others].mean(0)
        want = tiny.model.model.multi_modal_projector(
            torch.cat([x[dominant], contextual[None]])[None]
        )
    assert choice.visual_tokens_removed == 3
    assert choice.info["visual_dominant"] == 5
    torch.testing.assert_close(choice.image_features, want, atol=1e-5, rtol=1e-4)


def test_downsample_area_averages_the_hf_token_grid(tiny, sample):
    method = build_method("downsample", tiny, 0.75)
    with torch.no_grad():
        feats = tiny.model.model.get_image_features(pixel_values=sample.pixel_values)
        feats = getattr(feats, "pooler_output", feats)
        feats = torch.stack(list(feats)) if isinstance(feats, (list, tuple)) else feats
        choice = method.choose(sample.input_ids, feats)
    grid = feats[0].reshape(3, 3, -1)
    bins = [(0, 2), (1, 3)]  # adaptive pooling 3 → 2: cells [⌊3i/2⌋, ⌈3(i+1)/2⌉)
    want = torch.stack(
        [
            grid[r0:r1, c0:c1].reshape(-1, grid.shape[-1]).mean(0)
            for r0, r1 in bins
            for c0, c1 in bins
        ]
    )
    assert choice.visual_tokens_removed == 5 and choice.info["grid_side"] == 2
    torch.testing.assert_close(choice.image_features[0], want)
    seq = sample.input_ids.shape[1]
    ratio = flops.flops_ratio(tiny.config, seq - 5, choice.apply(Plan.full(12)))
    assert ratio <= 0.75
    one = flops.flops_ratio(
        tiny.config, seq - 8, Plan.full(12).with_tokens(visual_tokens_removed=8)
    )
    assert one < ratio  # the 1×1 grid would fit too: the largest fitting grid is kept


def test_staged_drops_count_each_stage_on_its_own_length(tiny):
    plan = Plan.full(12).with_tokens(drops=(TokenDrop(3, 4, "pyramid"), TokenDrop(6, 2, "pyramid")))
    per_block = [
        flops.decoder_block_flops(tiny.config, s, s) for s in [17] * 3 + [13] * 3 + [11] * 6
    ]
    assert flops.llm_flops(tiny.config, 17, plan) == sum(per_block)
    assert plan.describe(4).endswith("+pyramid@3-4 +pyramid@6-2")


@pytest.mark.parametrize(
    "name,budget",
    [("layer-drop+dart", 0.5), ("layer-drop+pyramiddrop", 0.5), ("early-exit+visionzip", 0.75)],
)
def test_token_methods_combine_with_block_methods(tiny, sample, name, budget):
    from adabench.measure.timing import Timer
    from adabench.models.execution import LlavaRunner
    from adabench.sweep.generate import generate

    method = build_method(name, tiny, budget)
    gen = generate(LlavaRunner(tiny.model), method, sample, 2, None, Timer(tiny.device))
    fl = flops.generation_flops(tiny.config, gen.prompt_len, 2, gen.plan, gen.full_prompt_len)
    assert fl["flops_ratio"] <= budget + 1e-9
    assert gen.plan.layers != Plan.full(12).layers  # the block method's plan
    if "visionzip" in name:
        assert gen.plan.visual_tokens_removed == 9 - math.floor(0.5 * 9)
    else:
        assert gen.plan.drops and gen.kept_visual is not None and gen.kept_visual < 9


def test_adallava_l_plus_visionzip(random_adallava_dirs):
    from adabench.data.suites import get_spec, load_suite
    from adabench.measure.timing import Timer
    from adabench.models.execution import LlavaRunner
    from adabench.models.loading import load_model
    from adabench.sweep.cell import prepare_samples
    from adabench.sweep.generate import generate

    loaded = load_model(str(random_adallava_dirs["L"]), device="cpu")
    ps = prepare_samples(loaded, get_spec("shapes"), load_suite("shapes", limit=1))[0]
    method = build_method("adallava-l+visionzip", loaded, 0.75)
    gen = generate(LlavaRunner(loaded.model), method, ps, 2, None, Timer(loaded.device))
    assert gen.plan.visual_tokens_removed == 5 and len(gen.plan.kept_blocks()) < 8


def test_visionzip_contextual_tokens_join_their_most_similar_target():
    from adabench.models.baselines.visionzip import contextual_merge

    torch.manual_seed(0)
    features, metric = torch.randn(20, 6), torch.randn(20, 5)
    rest = torch.tensor([1, 2, 4, 5, 7, 8, 9, 11, 12, 15, 17])
    got = contextual_merge(features, metric, rest, 3)
    targets = [rest[i].item() for i in (0, 3, 6)]  # every ⌊11/3⌋-th of the rest
    m = F.normalize(metric, dim=-1)
    joined = {t: [] for t in targets}
    for r in rest.tolist():
        if r not in targets:
            joined[max(targets, key=lambda t: float(m[r] @ m[t]))].append(r)
    want = torch.stack(
        [features[t] + (features[joined[t]].mean(0) if joined[t] else 0) for t in targets]
    )
    torch.testing.assert_close(got, want)


@pytest.mark.parametrize(
    ("name", "count_for"),
    [("dart", "_kept"), ("visionzip", "kept_for"), ("downsample", "grid_for")],
)
def test_a_keep_argument_over_the_budget_is_refused_in_one_line(name, count_for):
    """`keep` fixes the count (token_budget.fitted_count): keeping every visual token cannot
    meet a 0.75 budget, and the error names the argument and the ratio it gives."""
    from adabench.errors import UserError
    from adabench.models.loading import load_model

    loaded = load_model("tiny", device="cpu")
    method = build_method(name, loaded, 0.75, {"keep": "1.0"})
    layers, n_visual = loaded.config.text_config.num_hidden_layers, 9
    with pytest.raises(
        UserError, match=rf"{name} with keep=1.0 gives flops_ratio .* > budget 0.75"
    ):
        getattr(method, count_for)(Plan.full(layers), n_visual + 8, n_visual)


def test_visionzip_and_prumerge_on_one_fresh_model():
    """Both built before any image is encoded (as a sweep builds its cells' methods) on a tower
    read at feature layer -2, where they capture different encoder layers (llava-1.5: 22 and
    23): each still finds its own q/k (an empty capture store was once replaced, orphaning the
    first method's hooks)."""
    from transformers import CLIPVisionConfig, LlamaConfig, LlavaConfig

    from adabench.data.suites import get_spec, load_suite
    from adabench.models.no_weights import build_no_weights
    from adabench.sweep.cell import prepare_samples

    vision = CLIPVisionConfig(
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=2,
        image_size=336,
        patch_size=14,
        projection_dim=32,
    )
    text = LlamaConfig(
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=2,
        num_key_value_heads=2,
        vocab_size=32064,
        pad_token_id=32001,
    )
    config = LlavaConfig(
        vision_config=vision,
        text_config=text,
        image_token_index=32000,
        vision_feature_layer=-2,
        vision_feature_select_strategy="default",
    )
    fresh = build_no_weights(config, device="cpu", dtype="float32")
    ps = prepare_samples(fresh, get_spec("shapes"), load_suite("shapes", limit=1))[0]
    zip_, merge = build_method("visionzip", fresh, 0.5), build_method("prumerge", fresh, 0.5)
    assert zip_.attn_layer != merge.attn_layer
    for method in (zip_, merge, zip_):
        request, _ = _run(fresh, method, ps)
        assert request.image_features is not None
