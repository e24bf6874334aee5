"""`head-prune`: static head + MLP-group pruning by weight-norm importance (the static counterpart
of AdaLLaVA-H), at AdaLLaVA-H's budget geometry.

Geometry (adabench.models.adallava.budget): the first P = N/2 blocks always run in full; a unit is
r heads + r MLP neuron groups of one later block (r = AdaLlavaConfig.for_model(...,"H").group_size,
the intermediate size split into H contiguous groups); k = selected_units(budget) units run.
Every block's cost is linear in the fraction of heads and groups it keeps, so
flops_ratio = (P·H/r + k) / (N·H/r) exactly; the minimum budget is P/N.

Importance (no data needed): head h of block i: ‖o_proj columns of h‖_F · ‖q_proj rows of h‖_F;
MLP group g: ‖down_proj columns of g‖_F · ‖up_proj rows of g‖_F. Each kind is divided by its mean
over the selectable blocks so heads and groups compare on one scale. Units are then picked by
AdaLLaVA-H's own deterministic rule (scheduler.plan_heads) with these scores as the logits:
k rounds of (best remaining entry → its block, that block's r best remaining heads and r best
remaining groups; whole key/value groups under GQA). The same plan serves every sample.
"""

from __future__ import annotations

import torch

from adabench.models.adallava import budget as budget_mod
from adabench.models.adallava.model import AdaLlavaConfig
from adabench.models.adallava.scheduler import plan_heads
from adabench.models.block_weights import projections
from adabench.models.families import Decoder, decoder_of
from adabench.models.methods import Method, Request, register
from adabench.models.wrappers import decoder_module, wrapper_of


def importance(layers, num_heads: int, decoder: Decoder) -> torch.Tensor:
    """Returns [len(layers), 2H] scores: per head (first H) and per MLP group (next H), each kind
    divided by its mean over `layers` (fused projections read through their row views)."""
    rows = []
    for layer in layers:
        p = projections(layer, decoder)
        q = p["q"][0].detach().float()  # [H·hd, d]
        o = p["o"][0].detach().float()  # [d, H·hd]
        heads = q.reshape(num_heads, -1).norm(dim=1) * o.T.reshape(num_heads, -1).norm(dim=1)
        up = p["up"][0].detach().float()  # [I, d]
        down = p["down"][0].detach().float()  # [d, I]
        groups = up.reshape(num_heads, -1).norm(dim=1) * down.T.reshape(num_heads, -1).norm(dim=1)
        rows.append(torch.cat([heads, groups]))
    scores = torch.stack(rows)
    h = num_heads
    return torch.cat(
        [scores[:, :h] / scores[:, :h].mean(), scores[:, h:] / scores[:, h:].mean()], dim=1
    ).cpu()


@register
class HeadPrune(Method):
    KIND = "heads"
    PAPER = "static counterpart of AdaLLaVA-H (arXiv 2503.10905)"
    NAME = "head-prune"
    VARIES = "heads + MLP neuron groups (static, weight norms)"
    MIN_BUDGET_TEXT = "P/N (the always-run prefix, 0.5)"
    DESCRIPTION = "AdaLLaVA-H geometry (P = N/2 full, units of r heads + r MLP groups) chosen once by weight-norm importance"

    @classmethod
    def min_budget(cls, model) -> float:
        """Returns P/N: the always-run prefix of AdaLLaVA-H's geometry."""
        return budget_mod.min_budget(AdaLlavaConfig.for_model(model.config, "H").units)

    def __init__(self, model, budget, args=None, seed=0) -> None:
        super().__init__(model, budget, args, seed)
        c = AdaLlavaConfig.for_model(model.config, "H")
        self.units = budget_mod.selected_units(self.budget, c.units)
        decoder = decoder_module(wrapper_of(model.model.config), model.model)
        layers = decoder.layers[c.prefix_layers :]
        scores = importance(layers, c.num_heads, decoder_of(model.model.config))
        self.plan = plan_heads(
            scores, self.units, c.group_size, c.num_layers, c.prefix_layers, c.kv_group
        )

    def request(self, sample_id, input_ids, image_features) -> Request:
        """Returns the one static plan chosen at construction (the same for every sample)."""
        return Request(plan=self.plan, info={"units": self.units})
