"""The scheduler (docs/adallava.md §4, §5, §7): logits from the latency token, plans and training samples.

Scheduler: one Linear on the latency token's residual stream at the input of block P.
  L → N − P logits (one per selectable block);
  H → (N − P)·2H logits viewed as [N − P, 2H] (first H: heads, next H: MLP groups).
Inference (deterministic): L = top-k blocks; H = k rounds of (best unpicked entry → its layer,
then that layer's top-r unpicked heads and top-r unpicked MLP groups), computed in closed form
(`plan_heads`). Both are a few tensor ops and one device→host transfer of the plan.
Training: k rounds of masked Gumbel-softmax (τ = 5, hard, straight-through): the forward is an
exact 0/1 mask, the gradient is that of the soft sample.
GQA (H): heads are chosen by key/value group: a group's score is the mean of its query heads'
logits and a unit takes r/g whole groups (r must be a multiple of the group size g).
"""

from __future__ import annotations

import functools

import torch
from torch import nn

from adabench.models.plan import FULL_LAYER, LayerPlan, Plan

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
    """Returns the L plan: prefix blocks plus the top-k scoring selectable blocks (`logits` [N−P]).
    One device→host transfer (the k indices): the host needs the plan to launch only kept blocks."""
    chosen = tuple(sorted(torch.topk(logits, k).indices.tolist())) if k > 0 else ()
    return _blocks_plan(num_layers, prefix, chosen)


@functools.lru_cache(maxsize=4096)
def _blocks_plan(num_layers: int, prefix: int, chosen: tuple[int, ...]) -> Plan:
    """Plans are immutable and an L model has few (C(N−P, k)): built once each."""
    return Plan.from_kept_blocks(num_layers, [*range(prefix), *(prefix + i for i in chosen)])


def plan_heads(
    logits: torch.Tensor, k: int, r: int, num_layers: int, prefix: int, kv_group: int = 1
) -> Plan:
    """Returns the H plan from `logits` [N−P, 2H]: k rounds of (best unpicked entry → its layer,
    that layer's top-r unpicked heads and top-r unpicked groups), computed without the rounds.

    Within a layer heads are always taken in descending score order (whole key/value groups by
    their mean score) and groups likewise, so after c rounds a layer's best unpicked entry is
    max(best head outside its first c·r/g head groups, its (c·r+1)-th best MLP group): a
    non-increasing sequence in c. k rounds of "take the best head of these sequences" are then
    the k best entries of all of them (ties to the lower layer, as the rounds' argmax does), so
    the plan is: sort, count per layer, take each layer's leading heads and groups. One
    device→host copy; the same plan as the rounds (tests/unit/test_adallava_plans.py)."""
    n_sel, two_h = logits.shape
    h = two_h // 2
    units = h // r  # rounds a layer can take
    if k <= 0 or k >= n_sel * units:  # nothing or everything: the logits cannot matter
        layers = [FULL_LAYER] * num_layers if k > 0 else [FULL_LAYER] * prefix + [None] * n_sel
        return Plan(layers=tuple(layers), mlp_group_count=h)
    per_round = r // kv_group  # key/value groups per round
    lg = logits.detach().float()
    n_kv = h // kv_group
    if kv_group == 1:  # one transfer; then plain Python on a few hundred numbers
        rows = [(row[:h], row[:h], row[h:]) for row in lg.tolist()]
    else:
        group_lg = lg[:, :h].reshape(n_sel, n_kv, kv_group)
        both = torch.cat([group_lg.mean(-1), group_lg.amax(-1), lg[:, h:]], 1).tolist()
        rows = [(row[:n_kv], row[n_kv : 2 * n_kv], row[2 * n_kv :]) for row in both]
    orders, next_best = [], []
    for means, maxes, mlp in rows:
        # sorted(..., reverse=True) is stable: equal scores keep index order, like the rounds
        kv_order = sorted(range(n_kv), key=means.__getitem__, reverse=True)
        mlp_order = sorted(range(h), key=mlp.__getitem__, reverse=True)
        unpicked_best = [maxes[g] for g in kv_order]  # then: best head from group j on
        for j in range(n_kv - 2, -1, -1):
            if unpicked_best[j + 1] > unpicked_best[j]:
                unpicked_best[j] = unpicked_best[j + 1]
        orders.append((kv_order, mlp_order))
        next_best += [
            max(unpicked_best[c * per_round], mlp[mlp_order[c * r]]) for c in range(units)
        ]
    rounds = [0] * n_sel
    for i in sorted(range(len(next_best)), key=next_best.__getitem__, reverse=True)[:k]:
        rounds[i // units] += 1
    return _heads_plan(rounds, orders, r, kv_group, prefix, h)


def _heads_plan(
    rounds: list[int],
    orders: list[tuple[list[int], list[int]]],
    r: int,
    kv_group: int,
    prefix: int,
    h: int,
) -> Plan:
    """Returns the Plan from per-layer round counts and (kv group, MLP group) rank orders."""
    per_round = r // kv_group
    layers: list[LayerPlan | None] = [FULL_LAYER] * prefix
    for c, (kv_order, mlp_order) in zip(rounds, orders):
        if c == 0:
            layers.append(None)
        elif c * r == h:
            layers.append(FULL_LAYER)
        else:
            kv = kv_order[: c * per_round]
            heads = kv if kv_group == 1 else [g * kv_group + j for g in kv for j in range(kv_group)]
            heads.sort()
            layers.append(
                LayerPlan(heads=tuple(heads), mlp_groups=tuple(sorted(mlp_order[: c * r])))
            )
    return Plan(layers=tuple(layers), mlp_group_count=h)


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
