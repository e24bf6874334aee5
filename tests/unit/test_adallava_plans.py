"""AdaLLaVA-H plans in closed form equal the published k-round procedure, and the decision path
(cached latency token, scheduler, plan) gives the plans of the reference computation."""

import pytest
import torch

from adabench.models.adallava.scheduler import NEG, plan_heads
from adabench.models.plan import LayerPlan, Plan


def rounds_reference(logits, k, r, num_layers, prefix, kv_group=1) -> Plan:
    """The k-round procedure as written in the paper's released code: each round, the best
    unpicked (layer, head/group) entry among layers with room picks the layer, which takes its
    top-r unpicked heads (whole kv groups by mean score) and top-r unpicked MLP groups."""
    n_sel, two_h = logits.shape
    h = two_h // 2
    heads_picked = torch.zeros(n_sel, h, dtype=torch.bool)
    mlp_picked = torch.zeros(n_sel, h, dtype=torch.bool)
    logits = logits.detach().float().cpu()
    for _ in range(k):
        scores = logits.clone()
        scores[:, :h][heads_picked] = NEG
        scores[:, h:][mlp_picked] = NEG
        scores[(~heads_picked).sum(1) < r] = NEG
        layer = int(torch.argmax(scores)) // two_h
        _pick_top(logits[layer, :h], heads_picked[layer], r, kv_group)
        _pick_top(logits[layer, h:], mlp_picked[layer], r, 1)
    layers = [LayerPlan() for _ in range(prefix)]
    for i in range(n_sel):
        heads = tuple(torch.nonzero(heads_picked[i]).squeeze(1).tolist())
        groups = tuple(torch.nonzero(mlp_picked[i]).squeeze(1).tolist())
        if not heads and not groups:
            layers.append(None)
        elif len(heads) == h and len(groups) == h:
            layers.append(LayerPlan())
        else:
            layers.append(LayerPlan(heads=heads, mlp_groups=groups))
    return Plan(layers=tuple(layers), mlp_group_count=h)


def _pick_top(entry_logits, picked, r, kv_group):
    if kv_group > 1:
        g_scores = entry_logits.view(-1, kv_group).mean(-1)
        g_scores[picked.view(-1, kv_group).all(1)] = NEG
        for g in torch.topk(g_scores, r // kv_group).indices.tolist():
            picked[g * kv_group : (g + 1) * kv_group] = True
        return
    scores = entry_logits.clone()
    scores[picked] = NEG
    picked[torch.topk(scores, r).indices] = True


@pytest.mark.parametrize(
    "n_sel,h,r,kv_group",
    [(6, 4, 2, 1), (16, 32, 8, 1), (4, 8, 4, 2), (5, 8, 2, 2), (3, 8, 8, 4), (2, 16, 4, 1)],
)
def test_closed_form_plan_equals_the_rounds(n_sel, h, r, kv_group):
    gen = torch.Generator().manual_seed(n_sel * 100 + h)
    for trial in range(8):
        logits = torch.randn(n_sel, 2 * h, generator=gen)
        if trial % 2:  # shared values across layers: ties go to the lower layer in both
            logits[1:] = logits[0]
        for k in range(n_sel * h // r + 1):
            ours = plan_heads(logits, k, r, n_sel + 3, 3, kv_group)
            assert ours == rounds_reference(logits, k, r, n_sel + 3, 3, kv_group), (trial, k)


def test_closed_form_plan_runs_on_the_logits_dtype_and_counts_units():
    logits = torch.randn(6, 8, dtype=torch.float16)
    plan = plan_heads(logits, 5, 2, 12, 6)
    assert plan == rounds_reference(logits.float(), 5, 2, 12, 6)
    assert sum(plan.num_heads(i, 4) for i in range(6, 12)) == 5 * 2
