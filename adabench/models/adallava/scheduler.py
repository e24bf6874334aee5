"""The scheduler (ADALLAVA.md §4, §5, §7): logits from the latency token, plans and training samples.

Scheduler: one Linear on the latency token's residual stream at the input of block P.
  L → N − P logits (one per selectable block);
  H → (N − P)·2H logits viewed as [N − P, 2H] (first H: heads, next H: MLP groups).
Inference (deterministic): L = top-k blocks; H = k rounds of (best unpicked entry → its layer,
then that layer's top-r unpicked heads and top-r unpicked MLP groups).
Training: k rounds of masked Gumbel-softmax (τ = 5, hard, straight-through): the forward is an
exact 0/1 mask, the gradient is that of the soft sample.
GQA (H): heads are chosen by key/value group: a group's score is the mean of its query heads'
logits and a unit takes r/g whole groups (r must be a multiple of the group size g).
"""

from __future__ import annotations

import torch
from torch import nn

from adabench.models.plan import LayerPlan, Plan

NEG = -1e9


class Scheduler(nn.Module):
    """Linear head from the latency token's hidden state to per-unit logits."""

    def __init__(
        self, hidden_size: int, variant: str, selectable_layers: int, num_heads: int
    ) -> None:
        super().__init__()
        self.variant, self.n_sel, self.num_heads = variant, selectable_layers, num_heads
        out = selectable_layers if variant == "L" else selectable_layers * 2 * num_heads
        self.proj = nn.Linear(hidden_size, out)

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        """Returns logits [B, N−P] (L) or [B, N−P, 2H] (H) for hidden states `h` [B, D]."""
        logits = self.proj(h.to(self.proj.weight.dtype)).float()
        return logits if self.variant == "L" else logits.view(-1, self.n_sel, 2 * self.num_heads)

    def flops(self) -> int:
        """Returns the FLOPs of one scheduler call (2 × MAC)."""
        return 2 * self.proj.in_features * self.proj.out_features


def plan_blocks(logits: torch.Tensor, k: int, num_layers: int, prefix: int) -> Plan:
    """Returns the L plan: prefix blocks plus the top-k scoring selectable blocks (`logits` [N−P])."""
    chosen = torch.topk(logits, k).indices.tolist() if k > 0 else []
    return Plan.from_kept_blocks(num_layers, list(range(prefix)) + [prefix + i for i in chosen])


def _group_scores(head_logits: torch.Tensor, kv_group: int) -> torch.Tensor:
    return (
        head_logits.view(*head_logits.shape[:-1], -1, kv_group).mean(-1)
        if kv_group > 1
        else head_logits
    )


def plan_heads(
    logits: torch.Tensor, k: int, r: int, num_layers: int, prefix: int, kv_group: int = 1
) -> Plan:
    """Returns the H plan from `logits` [N−P, 2H]: k rounds of best entry → layer → top-r heads/groups."""
    n_sel, two_h = logits.shape
    h = two_h // 2
    heads_picked = torch.zeros(n_sel, h, dtype=torch.bool)
    mlp_picked = torch.zeros(n_sel, h, dtype=torch.bool)
    logits = logits.detach().float().cpu()
    for _ in range(k):
        scores = logits.clone()
        scores[:, :h][heads_picked] = NEG
        scores[:, h:][mlp_picked] = NEG
        room = (~heads_picked).sum(1) >= r
        scores[~room] = NEG
        layer = int(torch.argmax(scores)) // two_h
        _pick_top(logits[layer, :h], heads_picked[layer], r, kv_group)
        _pick_top(logits[layer, h:], mlp_picked[layer], r, 1)
    layers: list[LayerPlan | None] = [LayerPlan() for _ in range(prefix)]
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


def _pick_top(entry_logits: torch.Tensor, picked: torch.Tensor, r: int, kv_group: int) -> None:
    """Marks the top-r unpicked entries (whole key/value groups when kv_group > 1) in `picked`."""
    if kv_group > 1:
        g_scores = _group_scores(entry_logits, kv_group).clone()
        g_picked = picked.view(-1, kv_group).all(1)
        g_scores[g_picked] = NEG
        for g in torch.topk(g_scores, r // kv_group).indices.tolist():
            picked[g * kv_group : (g + 1) * kv_group] = True
        return
    scores = entry_logits.clone()
    scores[picked] = NEG
    picked[torch.topk(scores, r).indices] = True


def _gumbel_st(
    logits: torch.Tensor, blocked: torch.Tensor, tau: float
) -> tuple[torch.Tensor, torch.Tensor]:
    """Returns (straight-through one-hot [B, n], hard one-hot bool) of one masked Gumbel-softmax draw."""
    u = torch.rand_like(logits).clamp_(1e-9, 1 - 1e-9)
    z = (logits - torch.log(-torch.log(u))) / tau
    soft = torch.softmax(z.masked_fill(blocked, NEG), dim=-1)
    hard = torch.nn.functional.one_hot(soft.argmax(-1), logits.shape[-1]).to(soft.dtype)
    return hard - soft.detach() + soft, hard.bool()


def sample_blocks(logits: torch.Tensor, k: torch.Tensor, tau: float = 5.0) -> torch.Tensor:
    """Returns a [B, N−P] block mask with exactly k[b] ones per row (straight-through gradients)."""
    bsz, n = logits.shape
    mask = torch.zeros_like(logits)
    picked = torch.zeros(bsz, n, dtype=torch.bool, device=logits.device)
    for t in range(int(k.max()) if len(k) else 0):
        active = (t < k).to(logits.dtype)[:, None]
        st, hard = _gumbel_st(logits, picked, tau)
        mask = mask + st * active
        picked = picked | (hard & active.bool())
    return mask


def sample_heads(
    logits: torch.Tensor, k: torch.Tensor, r: int, tau: float = 5.0
) -> tuple[torch.Tensor, torch.Tensor]:
    """Returns (head mask, MLP-group mask), each [B, N−P, H], with k[b] units (r heads + r groups each).

    Each round picks a layer by one Gumbel draw over all unpicked (layer, entry) pairs of layers
    with room left, then r unpicked heads and r unpicked MLP groups of that layer (straight-through).
    """
    bsz, n_sel, two_h = logits.shape
    h = two_h // 2
    rows = torch.arange(bsz, device=logits.device)
    head_mask = torch.zeros(bsz, n_sel, h, device=logits.device)
    mlp_mask = torch.zeros_like(head_mask)
    for t in range(int(k.max()) if len(k) else 0):
        active = t < k
        picked_h, picked_m = head_mask.detach() > 0.5, mlp_mask.detach() > 0.5
        room = (~picked_h).sum(-1) >= r
        blocked = torch.cat([picked_h, picked_m], -1) | ~room[..., None]
        _, hard = _gumbel_st(logits.detach().reshape(bsz, -1), blocked.reshape(bsz, -1), tau)
        layer = hard.float().argmax(-1) // two_h
        for mask_, offset in ((head_mask, 0), (mlp_mask, h)):
            layer_logits = logits[rows, layer, offset : offset + h]
            picked = mask_.detach()[rows, layer] > 0.5
            for _ in range(r):
                st, hard1 = _gumbel_st(layer_logits, picked, tau)
                st = st * active[:, None].to(st.dtype)
                delta = torch.zeros_like(mask_).index_put((rows, layer), st)
                mask_ = mask_ + delta
                picked = picked | (hard1 & active[:, None])
            if offset == 0:
                head_mask = mask_
            else:
                mlp_mask = mask_
    return head_mask, mlp_mask
