"""Baselines and token methods: closed-form FLOPs ratios, budgets never exceeded, FastV's R from
the budget, PruMerge's IQR selection and merge, random-skip seeding, `a+b` product rule, errors."""

from __future__ import annotations

import pytest
import torch

from adabench.errors import UserError
from adabench.models import flops
from adabench.models.baselines.head_prune import importance
from adabench.models.factory import build_method
from adabench.models.families import decoder_of
from adabench.models.methods import evenly_spaced, kept_count
from adabench.models.plan import LayerPlan, Plan

BUDGETS = (0.5, 0.75, 1.0)


@pytest.fixture(scope="module")
def loaded(random_llava_dir):
    from adabench.models.loading import load_model

    torch.set_num_threads(1)
    return load_model(str(random_llava_dir), device="cpu")


@pytest.fixture(scope="module")
def shapes(loaded):
    from adabench.data.suites import get_spec, load_suite
    from adabench.sweep.cell import prepare_samples

    spec = get_spec("shapes")
    samples = load_suite("shapes", limit=4)
    return spec, samples, prepare_samples(loaded, spec, samples)


def _cell(loaded, shapes, method, budget, **kw):
    from adabench.sweep.cell import CellConfig
    from adabench.sweep.group import run_single

    spec, samples, prepared = shapes
    cfg = CellConfig(model="x", method=method, budget=budget, warmup=0, max_new_tokens=2, **kw)
    return run_single(loaded, spec, samples, prepared, cfg)


def _generation(loaded, method, ps):
    from adabench.measure.timing import Timer
    from adabench.models.execution import LlavaRunner
    from adabench.sweep.generate import generate

    return generate(LlavaRunner(loaded.model), method, ps, 2, None, Timer(loaded.device))


# ---------------------------------------------------------------- static block / head methods
def test_layer_drop_spacing_on_12_blocks():
    from adabench.models.loading import LoadedModel
    from tests.conftest import build_random_llava

    model, proc = build_random_llava(layers=12)
    lm = LoadedModel("r12", "", model, proc, torch.device("cpu"), torch.float32)
    plan = (
        build_method("layer-drop", lm, 0.5)
        .request("s", torch.zeros(1, 20, dtype=torch.long), None)
        .plan
    )
    assert kept_count(0.5, 12) == 6 and evenly_spaced(12, 6) == [0, 2, 4, 7, 9, 11]
    assert plan.kept_blocks() == [0, 2, 4, 7, 9, 11]
    assert flops.flops_ratio(model.config, 20, plan) == 0.5


@pytest.mark.parametrize("method", ["layer-drop", "early-exit", "random-skip", "head-prune"])
def test_block_and_head_methods_match_closed_form(loaded, shapes, method):
    n = 8  # blocks; head-prune: H = 4, r = 2 → 16 units, prefix 8: ratio = (8 + k) / 16
    full, _ = _cell(loaded, shapes, "full", 1.0)
    for b in (*BUDGETS, 0.9):
        cell, rows = _cell(loaded, shapes, method, b)
        expected = kept_count(b, n) / n if method != "head-prune" else kept_count(b, 16) / 16
        assert cell["flops_ratio_max"] <= b + 1e-9
        assert all(r["flops_ratio"] == pytest.approx(expected, abs=1e-12) for r in rows), (
            b,
            rows[0]["plan"],
        )
        assert b - cell["flops_ratio"] < 1 / 16 + 1e-9  # within one unit of granularity
        assert (cell["flops"] < full["flops"]) == (b < 1.0)


def test_head_prune_drops_the_lowest_norm_heads(loaded):
    layer = loaded.model.model.language_model.layers[6]
    saved = layer.self_attn.o_proj.weight.detach().clone()
    with torch.no_grad():
        layer.self_attn.o_proj.weight[:, 16:32] = 0  # head 1 of block 6 contributes nothing
    try:
        plan = build_method("head-prune", loaded, 0.9).plan  # k = 6 of 8 selectable units
    finally:
        with torch.no_grad():
            layer.self_attn.o_proj.weight.copy_(saved)
    assert plan.layers[:4] == (LayerPlan(),) * 4
    assert sum(plan.num_heads(i, 4) for i in range(4, 8)) == 12
    kept6 = plan.layers[6]
    assert kept6.heads is not None and len(kept6.heads) == 2 and 1 not in kept6.heads
    # Every partly kept block keeps its best-scoring heads and MLP groups.
    layers = loaded.model.model.language_model.layers[4:]
    with torch.no_grad():
        layer.self_attn.o_proj.weight[:, 16:32] = 0
    try:
        scores = importance(layers, 4, decoder_of(loaded.model.config))
    finally:
        with torch.no_grad():
            layer.self_attn.o_proj.weight.copy_(saved)
    for i, lp in enumerate(plan.layers[4:]):
        if lp.heads is not None:
            best = scores[i, :4].argsort(descending=True)[: len(lp.heads)]
            assert set(lp.heads) == set(best.tolist())
            best_groups = scores[i, 4:].argsort(descending=True)[: len(lp.mlp_groups)]
            assert set(lp.mlp_groups) == set(best_groups.tolist())


def test_random_skip_is_reproducible_by_seed(loaded):
    ids = torch.zeros(1, 5, dtype=torch.long)

    def kept(seed, sample):
        return (
            build_method("random-skip", loaded, 0.75, seed=seed)
            .request(sample, ids, None)
            .plan.kept_blocks()
        )

    assert kept(0, "a") == kept(0, "a")
    plans = {tuple(kept(0, f"s{i}")) for i in range(12)}
    assert len(plans) > 1 and all(p[:4] == (0, 1, 2, 3) and len(p) == 6 for p in plans)
    assert [kept(0, f"s{i}") for i in range(12)] != [kept(1, f"s{i}") for i in range(12)]


# ---------------------------------------------------------------- FastV
def test_fastv_r_from_budget_is_the_least_that_fits(loaded):
    from adabench.models.baselines.fastv import fastv_plan, removed_for_budget

    cfg, full = loaded.config, Plan.full(8)
    for b in (0.7, 0.75, 0.8, 0.9, 0.99):
        r = removed_for_budget(cfg, full, 17, 9, 2, b)
        assert flops.flops_ratio(cfg, 17, fastv_plan(full, 2, r)) <= b
        assert r == 0 or flops.flops_ratio(cfg, 17, fastv_plan(full, 2, r - 1)) > b
    assert removed_for_budget(cfg, full, 17, 9, 2, 1.0) == 0
    assert removed_for_budget(cfg, full, 17, 9, 2, 0.3) is None


def test_fastv_cells_keep_the_expected_tokens(loaded, shapes):
    _, _, prepared = shapes
    for b in (0.75, 0.9):
        cell, rows = _cell(loaded, shapes, "fastv", b)
        assert cell["flops_ratio_max"] <= b + 1e-9
        method = build_method("fastv", loaded, b)
        gen = _generation(loaded, method, prepared[0])
        removed = gen.plan.fastv_removed
        assert removed > 0 and gen.kept_visual == 9 - removed
        assert rows[0]["plan"].endswith(f"+fastv@2-{removed}")
    explicit = build_method("fastv", loaded, 1.0, {"k": "3", "r": "0.5"})
    plan = explicit.request("s", prepared[0].input_ids, None).plan
    assert (plan.fastv_layer, plan.fastv_removed) == (3, 4)  # ⌊0.5 · 9⌋


def test_fastv_budget_below_the_prompt_minimum_is_a_clear_error(loaded, shapes):
    ids = shapes[2][0].input_ids
    method = build_method("fastv", loaded, 0.5)  # above the all-prompt lower bound
    with pytest.raises(UserError, match=r"minimum is 0\.\d+"):
        method.request("s", ids, None)
    with pytest.raises(UserError, match="r=0.5 gives flops_ratio"):
        build_method("fastv", loaded, 0.6, {"r": "0.5"}).request("s", ids, None)


def test_cli_fastv_budget_below_minimum_exits_2(random_llava_dir):
    from typer.testing import CliRunner

    from adabench.cli import app

    args = [
        "eval",
        "--model",
        str(random_llava_dir),
        "--method",
        "fastv",
        "--limit",
        "2",
        "--device",
        "cpu",
    ]
    result = CliRunner().invoke(app, [*args, "--budget", "0.05"])
    assert result.exit_code == 2 and "minimum is" in result.stderr
    result = CliRunner().invoke(app, [*args, "--budget", "0.5", "--warmup", "0"])
    assert result.exit_code == 2 and "prompt with 9 visual tokens: the minimum is" in result.stderr


# ---------------------------------------------------------------- PruMerge
def test_prumerge_selects_iqr_outliers():
    from adabench.models.baselines.prumerge import iqr_outliers, select, uniform_samples

    attn = torch.arange(1, 17) / 100  # Q1 = 0.0575, Q3 = 0.1425 after the spikes: threshold 0.27
    attn[3], attn[12] = 0.5, 0.9
    assert iqr_outliers(attn).tolist() == [12, 3]  # highest first; 0.16 > Q3 is no outlier
    assert iqr_outliers(torch.full((9,), 0.1)).tolist() == [0]  # flat map: keep the top patch
    assert uniform_samples(576, 32).tolist() == list(range(0, 576, 6))  # s = ⌊18 / 3⌋
    assert select(attn, plus=True).tolist() == [12, 3, 14, 10, 8, 6, 4, 2, 0]  # s = ⌊8 / 3⌋ = 2


def test_prumerge_merges_key_similar_pruned_tokens():
    from adabench.models.baselines.prumerge import merge

    feats = torch.tensor([[1.0, 0], [0, 1.0], [3.0, 0], [0, 5.0]])
    keys = torch.tensor([[1.0, 0], [0, 1.0], [0.9, 0.1], [0.1, 0.9]])
    attn = torch.tensor([0.4, 0.3, 0.2, 0.1])
    out = merge(feats, keys, attn, torch.tensor([1, 0]), neighbours=1)
    torch.testing.assert_close(out, torch.tensor([[(0.4 + 0.6) / 0.6, 0], [0, (0.3 + 0.5) / 0.4]]))


def test_prumerge_cls_attention_equals_the_layers_own(loaded, shapes):
    from adabench.models.baselines.prumerge import _CAPTURE, cls_attention

    method = build_method("prumerge", loaded, 1.0)  # installs the q/k hooks on encoder layer 1
    vt = loaded.model.model.vision_tower
    impl = vt.config._attn_implementation
    vt.config._attn_implementation = "eager"
    try:
        with torch.no_grad():
            out = vt(shapes[2][0].pixel_values, output_attentions=True)
    finally:
        vt.config._attn_implementation = impl
    store = getattr(vt, _CAPTURE)
    attn, keys = cls_attention(store.pop(("q", 1)), store.pop(("k", 1)), method.vision_heads)
    torch.testing.assert_close(attn, out.attentions[1][0, :, 0, 1:].mean(0), atol=1e-6, rtol=1e-5)
    assert keys.shape == (9, 32)


@pytest.mark.parametrize("method", ["prumerge", "prumerge+"])
def test_prumerge_cells_shorten_the_sequence(loaded, shapes, method):
    full, _ = _cell(loaded, shapes, "full", 1.0)
    for b in (0.75, 0.9, 1.0):
        cell, rows = _cell(loaded, shapes, method, b)
        assert cell["flops_ratio_max"] <= b + 1e-9 and cell["flops"] < full["flops"]
        for r, ps in zip(rows, shapes[2], strict=True):
            removed, t = 9 - r["visual_kept"], ps.input_ids.shape[1]
            # 9 patches: prumerge+'s uniform step is 1 as soon as 2 patches are outliers (keeps all)
            assert removed > 0 or (method == "prumerge+" and b == 1.0)
            assert not removed or r["plan"].endswith(f"+prumerge-{removed}")
            expected = flops.llm_flops(loaded.config, t - removed) / flops.llm_flops(
                loaded.config, t
            )
            assert r["flops_ratio"] == pytest.approx(expected, rel=1e-12)


def test_prumerge_caps_to_the_budget(loaded, shapes):
    gen = _generation(loaded, build_method("prumerge+", loaded, 0.6), shapes[2][0])
    ratio = flops.flops_ratio(loaded.config, gen.prompt_len, gen.plan, gen.full_prompt_len)
    assert ratio <= 0.6 and gen.info["visual_kept"] < gen.info["visual_kept_adaptive"]
    with pytest.raises(
        UserError,
        match=r"'prumerge' can reach on a \d+-token prompt with 9 visual tokens: the minimum",
    ):
        _generation(loaded, build_method("prumerge", loaded, 0.4), shapes[2][0])


# ---------------------------------------------------------------- combinations
def _block_only(plan: Plan) -> Plan:
    return Plan(layers=plan.layers, mlp_group_count=plan.mlp_group_count)


def _fastv_product(config, plan: Plan, seq_len: int) -> float:
    """Independent product rule for FastV: Σ over blocks of (kept fraction) × (that block's FLOPs
    under FastV alone), over the full model's FLOPs on the same prompt."""
    n, heads = plan.num_layers, config.text_config.num_attention_heads
    total = 0.0
    for i in range(n):
        alone = Plan.from_kept_blocks(n, [i]).with_tokens(
            fastv_layer=plan.fastv_layer, fastv_removed=plan.fastv_removed
        )
        total += plan.num_heads(i, heads) / heads * flops.llm_flops(config, seq_len, alone)
    return total / flops.llm_flops(config, seq_len)


@pytest.mark.parametrize(
    "variant,method",
    [
        ("L", "adallava-l+fastv"),
        ("L", "layer-drop+fastv"),
        ("H", "adallava-h+prumerge"),
        ("L", "prumerge + adallava-l"),
    ],
)
def test_combinations_multiply(random_adallava_dirs, variant, method):
    from adabench.data.suites import get_spec, load_suite
    from adabench.models.loading import load_model
    from adabench.sweep.cell import prepare_samples

    method = method.replace(" ", "")
    lm = load_model(str(random_adallava_dirs[variant]), device="cpu")
    spec = get_spec("shapes")
    ps = prepare_samples(lm, spec, load_suite("shapes", limit=2))
    for b in (0.75, 0.9):
        m = build_method(method, lm, b)
        assert (variant if "adallava" in method else None) == m.NEEDS_ADALLAVA
        for p in ps:
            gen = _generation(lm, m, p)
            ratio = flops.flops_ratio(lm.config, gen.prompt_len, gen.plan, gen.full_prompt_len)
            block = flops.flops_ratio(lm.config, gen.full_prompt_len, _block_only(gen.plan))
            assert ratio <= b + 1e-9 and block <= b + 1e-9
            if "fastv" in method:
                assert gen.plan.fastv_removed == 4  # default r = 0.5 of 9
                assert ratio == pytest.approx(
                    _fastv_product(lm.config, gen.plan, gen.prompt_len), rel=1e-12
                )
            else:
                token = flops.flops_ratio(
                    lm.config,
                    gen.prompt_len,
                    Plan.full(8).with_tokens(visual_tokens_removed=gen.plan.visual_tokens_removed),
                )
                assert gen.plan.visual_tokens_removed > 0
                assert ratio == pytest.approx(block * token, rel=1e-9)


def test_fastv_actually_runs_under_adallava(random_adallava_dirs):
    from adabench.data.suites import get_spec, load_suite
    from adabench.models.loading import load_model
    from adabench.sweep.cell import prepare_samples

    lm = load_model(str(random_adallava_dirs["L"]), device="cpu")
    ps = prepare_samples(lm, get_spec("shapes"), load_suite("shapes", limit=1))[0]
    gen = _generation(lm, build_method("adallava-l+fastv", lm, 0.75), ps)
    assert gen.kept_visual == 5


def test_combination_errors(loaded):
    with pytest.raises(UserError, match="two token methods"):
        build_method("fastv+prumerge", loaded, 0.8)
    with pytest.raises(UserError, match="two block/head methods"):
        build_method("layer-drop+early-exit", loaded, 0.8)
    with pytest.raises(UserError, match="Did you mean 'layer-drop'"):
        build_method("layer-dorp+fastv", loaded, 0.8)
    with pytest.raises(UserError, match="AdaLLaVA-L"):
        build_method("adallava-l+fastv", loaded, 0.8)
    with pytest.raises(UserError, match="no argument"):
        build_method("layer-drop+fastv", loaded, 0.8, {"q": "1"})
    with pytest.raises(UserError, match="minimum is 0.5"):
        build_method("head-prune+prumerge", loaded, 0.3)
