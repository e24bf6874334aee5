"""`prumerge` / `prumerge+`: fewer visual tokens before the LLM (LLaVA-PruMerge, Shang et al., arXiv 2403.15388).

1. CLS attention: in the vision encoder layer that reads LLaVA's feature layer (the last layer
   when the feature layer is the output), softmax(q_cls·kᵀ/√hd) per head, averaged over heads,
   from that layer's own q/k projections. Forward hooks keep q, k and the tower's output while
   the runner computes image features, so the tower is not run again and no attention
   implementation is forced.
2. Selection (adaptive): patches whose CLS attention is an IQR outlier, a > Q3 + 1.5·IQR
   (linear-interpolated quartiles, like numpy.percentile); at least the top-1 patch is kept.
   `prumerge+` adds spatially uniform patches: every s-th patch in raster order with
   s = max(1, ⌊⌊n / outliers⌋ / 3⌋), the rule of the authors' released code.
3. Merge: each kept token becomes the attention-weighted average of itself and its m most
   key-similar pruned tokens (cosine similarity of the same layer's keys),
   x_i ← (a_i·x_i + Σ_j a_j·x_j) / (a_i + Σ_j a_j), m = max(1, round(32·n / 576)) (32 on CLIP-L/336).
   Kept tokens keep their raster order. The merged features then go through the projector.
Differences from the released code (documented choice, the paper's description): neighbours
come from the pruned tokens only, the average is normalised, and no extra "sum of all pruned
tokens" token is appended.

Budget: the keep ratio is adaptive and ignores the budget when it already fits (budget 1.0
still prunes: PruMerge is a token method). Standalone, when the adaptive selection would exceed
the budget, the lowest-attention kept tokens are dropped (and merged) until flops_ratio ≤ budget;
if even one visual token does not fit, a UserError names the minimum for that prompt.
Only vision_feature_select_strategy = "default" (CLS not passed to the LLM) is supported, and
only on LLaVA-1.5 (`WRAPPERS`): SigLIP towers (LLaVA-OneVision, Idefics3) and Qwen-VL's ViT have
no CLS token, and LLaVA-NeXT's tiles give one CLS per tile around image-newline tokens — no
variant of the selection is implemented for them, so they are refused with one line.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from adabench.errors import UserError
from adabench.models.baselines import TokenChoice, TokenMethod, visual_count
from adabench.models.flops import flops_ratio, num_image_tokens
from adabench.models.methods import register
from adabench.models.plan import Plan

_CAPTURE = "_adabench_last_output"


# ------------------------------------------------------------------ pure pieces (tested directly)
def iqr_outliers(cls_attn: torch.Tensor) -> torch.Tensor:
    """Returns the indices of patches with CLS attention > Q3 + 1.5·IQR, highest attention first
    (at least the single highest patch)."""
    a = cls_attn.float()
    q1, q3 = torch.quantile(a, 0.25), torch.quantile(a, 0.75)
    idx = torch.nonzero(a > q3 + 1.5 * (q3 - q1)).squeeze(1)
    if idx.numel() == 0:
        idx = a.argmax().reshape(1)
    return idx[torch.argsort(a[idx], descending=True, stable=True)]


def uniform_samples(n_patches: int, n_outliers: int) -> torch.Tensor:
    """Returns PruMerge+'s spatial samples: every s-th patch index, s = max(1, ⌊⌊n/outliers⌋/3⌋)."""
    step = max(1, (n_patches // max(n_outliers, 1)) // 3)
    return torch.arange(0, n_patches, step)


def select(cls_attn: torch.Tensor, plus: bool) -> torch.Tensor:
    """Returns kept patch indices ordered by CLS attention (highest first): IQR outliers, plus
    PruMerge+'s uniform samples when `plus`."""
    kept = iqr_outliers(cls_attn)
    if plus:
        extra = uniform_samples(cls_attn.numel(), kept.numel()).to(kept.device)
        extra = extra[~torch.isin(extra, kept)]
        extra = extra[torch.argsort(cls_attn[extra].float(), descending=True, stable=True)]
        kept = torch.cat([kept, extra])
    return kept


def neighbours_for(n_patches: int) -> int:
    """Returns how many pruned tokens each kept token merges: 32 per 576 patches, at least 1."""
    return max(1, round(32 * n_patches / 576))


def merge(
    features: torch.Tensor,
    keys: torch.Tensor,
    cls_attn: torch.Tensor,
    kept: torch.Tensor,
    neighbours: int,
) -> torch.Tensor:
    """Returns [len(kept), C] merged features in raster order of `kept`: each kept token averaged
    with its `neighbours` most key-similar pruned tokens, weighted by CLS attention.

    `features` [n, C] pre-projector patch features, `keys` [n, Ck], `cls_attn` [n]."""
    kept = torch.sort(kept).values
    mask = torch.ones(features.shape[0], dtype=torch.bool, device=features.device)
    mask[kept] = False
    pruned = torch.nonzero(mask).squeeze(1)
    x_kept, a_kept = features[kept].float(), cls_attn[kept].float()
    if pruned.numel() == 0:
        return x_kept.to(features.dtype)
    sim = F.normalize(keys[kept].float(), dim=-1) @ F.normalize(keys[pruned].float(), dim=-1).T
    near = sim.topk(min(neighbours, pruned.numel()), dim=-1).indices  # [kept, m] into `pruned`
    w = cls_attn[pruned].float()[near]  # [kept, m]
    x_near = features[pruned].float()[near]  # [kept, m, C]
    num = a_kept[:, None] * x_kept + (w[..., None] * x_near).sum(1)
    den = (a_kept + w.sum(1)).clamp_min(torch.finfo(torch.float32).tiny)[:, None]
    return (num / den).to(features.dtype)


# ------------------------------------------------------------------ the vision side
def _encoder_layers(vision_tower):
    return getattr(vision_tower, "vision_model", vision_tower).encoder.layers


def install_capture(vision_tower, attn_layer: int) -> None:
    """Makes the vision tower keep, on itself, its last output and the q/k projections of encoder
    layer `attn_layer` (forward hooks, as the released PruMerge code does); idempotent."""
    hooks = getattr(vision_tower, "_adabench_capture_hooks", {})
    if attn_layer in hooks:
        return
    store = getattr(vision_tower, _CAPTURE, None)
    if store is None:  # an empty store is kept: earlier hooks write into it (`or {}` lost them)
        store = {}
        setattr(vision_tower, _CAPTURE, store)
    attn = _encoder_layers(vision_tower)[attn_layer].self_attn

    def keep(key):
        return lambda module, args, output: store.__setitem__(key, output)

    hooks[attn_layer] = [
        vision_tower.register_forward_hook(keep("out")),
        attn.q_proj.register_forward_hook(keep(("q", attn_layer))),
        attn.k_proj.register_forward_hook(keep(("k", attn_layer))),
    ]
    vision_tower._adabench_capture_hooks = hooks


def cls_attention(
    q: torch.Tensor, k: torch.Tensor, heads: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """Returns (CLS→patch attention [n], patch keys [n, C]) from one encoder layer's q/k
    projections [1, 1 + n, C]: softmax(q_cls·kᵀ/√hd) per head, averaged over heads."""
    q, k = q[0].float(), k[0].float()
    hd = q.shape[-1] // heads
    scores = torch.einsum("hd,thd->ht", q[0].view(heads, hd), k.view(-1, heads, hd)) * hd**-0.5
    return torch.softmax(scores, dim=-1).mean(0)[1:], k[1:]


@register
class PruMerge(TokenMethod):
    NAME = "prumerge"
    WRAPPERS = ("llava",)
    WRAPPERS_WHY = (
        "it ranks patches by one CLIP image's CLS attention (SigLIP and Qwen-VL towers have no "
        "CLS token; LLaVA-NeXT tiles the image)"
    )
    VARIES = "visual tokens (before the LLM, adaptive per input)"
    DESCRIPTION = (
        "keep CLS-attention outliers (IQR) and merge pruned tokens into them by key similarity"
    )
    MIN_BUDGET_TEXT = "per prompt: one visual token left (the error names it)"
    KIND = "tokens"
    PAPER = "LLaVA-PruMerge (Shang et al., arXiv 2403.15388)"
    PLUS = False

    def __init__(self, model, budget, args=None, seed=0) -> None:
        super().__init__(model, budget, args, seed)
        cfg = model.config
        if getattr(cfg, "vision_feature_select_strategy", "default") != "default":
            raise UserError(
                f"{self.NAME} supports vision_feature_select_strategy 'default' only, "
                f"{model.name!r} uses {cfg.vision_feature_select_strategy!r}"
            )
        llava = model.model.model
        self.vision_tower, self.projector = llava.vision_tower, llava.multi_modal_projector
        layers = cfg.vision_feature_layer
        self.feature_layers = [layers] if isinstance(layers, int) else list(layers)
        self.attn_layer = self.attention_layer(len(_encoder_layers(self.vision_tower)))
        self.vision_heads = _encoder_layers(self.vision_tower)[self.attn_layer].self_attn.num_heads
        install_capture(self.vision_tower, self.attn_layer)

    def attention_layer(self, n_encoder: int) -> int:
        """Returns the encoder layer whose CLS attention ranks the patches: the layer that reads
        the feature layer (the last layer when the feature layer is the output)."""
        last = self.feature_layers[-1] % (n_encoder + 1)  # hidden_states has n_encoder + 1 entries
        return min(last, n_encoder - 1)

    @classmethod
    def min_budget(cls, model) -> float:
        """Returns a lower bound over prompts: one visual token left, one text token."""
        n = num_image_tokens(model.config)
        layers = model.config.text_config.num_hidden_layers
        return flops_ratio(
            model.config, 2, Plan.full(layers).with_tokens(visual_tokens_removed=n - 1)
        )

    @classmethod
    def prompt_floor(cls, config, seq_len: int, n_visual: int, args: dict) -> float:
        """Returns the smallest flops_ratio PruMerge reaches alone on a `seq_len`-token prompt
        with `n_visual` visual tokens: one visual token kept (`_fit`'s lower end)."""
        layers = config.text_config.num_hidden_layers
        removed = n_visual - 1
        return flops_ratio(
            config, seq_len - removed, Plan.full(layers).with_tokens(visual_tokens_removed=removed)
        )

    def choose(self, input_ids, image_features, extra_tokens=0, base_plan=None) -> TokenChoice:
        """Returns the PruMerge selection: the CLS-attention outlier tokens, merged with their
        neighbours, replace the image features."""
        hidden, q, k = self._captured(image_features)
        attn, keys = cls_attention(q, k, self.vision_heads)
        feats = torch.cat([hidden[i][0, 1:] for i in self.feature_layers], dim=-1)
        kept = select(attn, self.PLUS)
        n_visual = visual_count(self.model, input_ids, image_features)
        adaptive = kept.numel()
        kept = kept[: self._fit(base_plan, input_ids.shape[1] + extra_tokens, n_visual, adaptive)]
        merged = merge(feats, keys, attn, kept, neighbours_for(feats.shape[0]))
        projected = self.projector(merged[None].to(feats.dtype)).to(image_features.dtype)
        removed = n_visual - kept.numel()
        info = {"visual_kept": int(kept.numel()), "visual_kept_adaptive": int(adaptive)}
        return TokenChoice(image_features=projected, visual_tokens_removed=removed, info=info)

    def _captured(self, image_features: torch.Tensor):
        """Returns (vision hidden states, q, k of the attention layer) of the image just encoded."""
        store = getattr(self.vision_tower, _CAPTURE)
        out, q, k = (
            store.pop(key, None) for key in ("out", ("q", self.attn_layer), ("k", self.attn_layer))
        )
        hidden = getattr(out, "hidden_states", None)  # popped: never reuse another sample's states
        ok = (
            hidden is not None
            and q is not None
            and all(hidden[i] is not None for i in self.feature_layers)
        )
        if not ok or q.shape[0] != 1 or q.shape[1] - 1 != image_features.shape[1]:
            raise RuntimeError(
                f"{self.NAME} needs this sample's vision hidden states: run "
                "LlavaRunner.image_features(pixel_values) for one image right before request()"
            )
        return hidden, q, k

    def _fit(self, base_plan: Plan | None, seq_len: int, n_visual: int, n_keep: int) -> int:
        """Returns how many of the kept tokens fit the budget (all of them when they already do)."""
        base = base_plan or Plan.full(self.num_layers)

        def ratio(keep: int) -> float:
            removed = n_visual - keep
            return flops_ratio(
                self.model.config,
                seq_len - removed,
                base.with_tokens(visual_tokens_removed=removed),
            )

        if ratio(n_keep) <= self.budget + 1e-12:
            return n_keep
        if ratio(1) > self.budget + 1e-12:
            raise UserError(
                f"budget {self.budget} is below what {self.NAME!r} can reach on a {seq_len}-token prompt "
                f"with {n_visual} visual tokens: the minimum is {ratio(1):.4g}"
            )
        low, high = 1, n_keep  # ratio(low) ≤ budget < ratio(high)
        while high - low > 1:
            mid = (low + high) // 2
            low, high = (mid, high) if ratio(mid) <= self.budget + 1e-12 else (low, mid)
        return low


@register
class PruMergePlus(PruMerge):
    NAME = "prumerge+"
    DESCRIPTION = (
        "PruMerge plus spatially uniform patches (every s-th, s = ⌊⌊n/outliers⌋/3⌋), then merge"
    )
    PLUS = True
