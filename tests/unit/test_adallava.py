"""AdaLLaVA: Gumbel top-k sampling, deterministic plans, budgets, save/load, and eval through the CLI path."""

import pytest
import torch

from adabench.models.adallava.model import (
    AdaLlavaConfig,
    AdaLlavaForConditionalGeneration,
    AdaLlavaHead,
)
from adabench.models.adallava.scheduler import plan_blocks, plan_heads, sample_blocks, sample_heads


def test_sample_blocks_draws_exactly_k_with_straight_through_gradients():
    torch.manual_seed(0)
    logits = torch.randn(5, 6, requires_grad=True)
    k = torch.tensor([0, 1, 3, 6, 2])
    mask = sample_blocks(logits, k)
    assert torch.equal(mask.detach().sum(1), k.float())
    assert set(mask.detach().unique().tolist()) <= {0.0, 1.0}  # forward is exact 0/1
    (mask * torch.arange(6.0)).sum().backward()
    assert logits.grad is not None and logits.grad.abs().sum() > 0


def test_sample_heads_draws_k_units_of_r_heads_and_groups():
    torch.manual_seed(0)
    logits = torch.randn(3, 4, 8, requires_grad=True)  # 4 selectable layers, H = 4
    k = torch.tensor([0, 3, 8])
    heads, mlp = sample_heads(logits, k, r=2)
    assert heads.detach().sum((1, 2)).tolist() == [0, 6, 16]
    assert mlp.detach().sum((1, 2)).tolist() == [0, 6, 16]
    assert heads.detach().max() <= 1 and mlp.detach().max() <= 1
    (heads.sum() + 2 * mlp.sum()).backward()
    assert logits.grad.abs().sum() > 0


def test_plans_are_deterministic_and_respect_k():
    logits = torch.tensor([0.1, 2.0, -1.0, 0.5, 3.0, 0.0])
    plan = plan_blocks(logits, 2, num_layers=12, prefix=6)
    assert plan.kept_blocks() == [0, 1, 2, 3, 4, 5, 7, 10]
    hl = torch.randn(6, 8)
    p1, p2 = plan_heads(hl, 5, 2, 12, 6), plan_heads(hl, 5, 2, 12, 6)
    assert p1 == p2
    units = sum(p1.num_heads(i, 4) for i in range(6, 12)) // 2
    assert units == 5


def test_plan_heads_gqa_keeps_whole_kv_groups():
    hl = torch.randn(2, 16)  # H = 8 heads, kv_group 2
    plan = plan_heads(hl, 3, r=4, num_layers=4, prefix=2, kv_group=2)
    for lp in plan.layers[2:]:
        if lp is not None and lp.heads is not None:
            assert all((h ^ 1) in lp.heads for h in lp.heads)  # both heads of each kv pair


def test_config_defaults_follow_the_paper():
    from transformers import LlamaConfig, LlavaConfig

    cfg = LlavaConfig(
        text_config=LlamaConfig(num_hidden_layers=32, num_attention_heads=32, hidden_size=4096)
    )
    c = AdaLlavaConfig.for_model(cfg, "H")
    assert (c.prefix_layers, c.group_size, c.units.selectable) == (16, 8, 64)


def test_save_load_round_trip(tmp_path):
    from tests.conftest import build_random_llava

    model, _ = build_random_llava()
    head = AdaLlavaHead(AdaLlavaConfig.for_model(model.config, "H"))
    AdaLlavaForConditionalGeneration(model, head).save_pretrained(tmp_path, dtype=torch.float32)
    loaded = AdaLlavaForConditionalGeneration.from_pretrained(tmp_path)
    for (n1, p1), (_, p2) in zip(head.state_dict().items(), loaded.head.state_dict().items()):
        torch.testing.assert_close(p1, p2, atol=1e-3, rtol=1e-3, msg=n1)  # head stored in fp16
    assert loaded.head.config == head.config
    assert (tmp_path / "adallava_config.json").exists() and (
        tmp_path / "model.safetensors"
    ).exists()


@pytest.mark.parametrize("variant", ["L", "H"])
def test_adallava_cell_respects_budget_and_plans_vary(random_adallava_dirs, variant):
    from adabench.data.suites import get_spec, load_suite
    from adabench.models.loading import load_model
    from adabench.sweep.cell import CellConfig, prepare_samples
    from adabench.sweep.group import run_single

    loaded = load_model(str(random_adallava_dirs[variant]), device="cpu")
    spec = get_spec("shapes")
    samples = load_suite("shapes", limit=12)
    prepared = prepare_samples(loaded, spec, samples)
    method = f"adallava-{variant.lower()}"
    ratios = {}
    for b in (0.5, 0.75, 1.0):
        cell, rows = run_single(
            loaded,
            spec,
            samples,
            prepared,
            CellConfig(model="x", method=method, budget=b, warmup=0),
        )
        assert cell["flops_ratio_max"] <= b + 1e-9
        ratios[b] = cell["flops_ratio"]
        if b == 0.75:
            assert cell["distinct_plans"] > 1  # plans depend on the input
    assert ratios[0.5] < ratios[0.75] < ratios[1.0] <= 1.0


def test_budget_below_prefix_is_a_clear_error(random_adallava_dirs):
    from adabench.errors import UserError
    from adabench.models.factory import build_method
    from adabench.models.loading import load_model

    loaded = load_model(str(random_adallava_dirs["L"]), device="cpu")
    with pytest.raises(UserError, match="minimum is 0.5"):
        build_method("adallava-l", loaded, 0.3)
    with pytest.raises(UserError, match="AdaLLaVA-H"):
        build_method("adallava-h", loaded, 0.8)
