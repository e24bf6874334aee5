"""AdaLLaVA on a Llava model: the head (latency encoder + scheduler), save/load, and the masked
training forward.

Checkpoint layout (a normal HF Llava folder plus two files):
  config.json, model.safetensors, processor files   — the base LlavaForConditionalGeneration
  adallava_config.json                                 — variant, prefix_layers, group_size, ...
  adallava.safetensors                                 — latency_encoder.* and scheduler.* weights
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from safetensors.torch import load_file, save_file
from torch import nn

from adabench.models.adallava import budget as budget_mod
from adabench.models.adallava.latency_encoder import LatencyEncoder
from adabench.models.adallava.scheduler import (
    Scheduler,
    plan_blocks,
    plan_heads,
    sample_blocks,
    sample_heads,
)
from adabench.models.plan import Plan

CONFIG_NAME = "adallava_config.json"
WEIGHTS_NAME = "adallava.safetensors"


@dataclass
class AdaLlavaConfig:
    """AdaLLaVA settings: which variant, where the scheduler reads, and the H unit size."""

    variant: str  # "L" (blocks) or "H" (heads + MLP groups)
    num_layers: int
    prefix_layers: int  # P: blocks that always run; the scheduler reads the input of block P
    num_heads: int
    kv_group: int = 1  # query heads per key/value head (GQA)
    group_size: int = 8  # r: heads (and MLP groups) per H unit
    hidden_size: int = 0
    tau: float = 5.0

    def __post_init__(self) -> None:
        if self.variant not in ("L", "H"):
            raise ValueError(f"variant must be 'L' or 'H', got {self.variant!r}")
        if not 0 < self.prefix_layers < self.num_layers:
            raise ValueError(
                f"prefix_layers must be in [1, {self.num_layers - 1}], got {self.prefix_layers}"
            )
        if self.variant == "H" and (
            self.num_heads % self.group_size or self.group_size % self.kv_group
        ):
            raise ValueError(
                "group_size must divide num_heads and be a multiple of the GQA group size"
            )

    @classmethod
    def for_model(
        cls,
        llava_config,
        variant: str,
        prefix_layers: int | None = None,
        group_size: int | None = None,
    ) -> AdaLlavaConfig:
        """Returns the config for a Llava config: P = N/2 and r = 8 by default (r = H/2 when H <
        16)."""
        text = llava_config.text_config
        n, h = text.num_hidden_layers, text.num_attention_heads
        kv = getattr(text, "num_key_value_heads", None) or h
        r = group_size or (8 if h >= 16 else max(h // 2, h // kv))
        return cls(variant, n, prefix_layers or n // 2, h, h // kv, r, text.hidden_size)

    @property
    def units(self) -> budget_mod.Units:
        """The budget geometry of this variant: blocks (L) or units of r heads + r MLP groups
        (H)."""
        return budget_mod.units(
            self.variant, self.num_layers, self.prefix_layers, self.num_heads, self.group_size
        )


class AdaLlavaHead(nn.Module):
    """Latency encoder + scheduler for one Llava model."""

    def __init__(self, config: AdaLlavaConfig) -> None:
        super().__init__()
        self.config = config
        self.latency_encoder = LatencyEncoder(config.hidden_size)
        self.scheduler = Scheduler(
            config.hidden_size,
            config.variant,
            config.num_layers - config.prefix_layers,
            config.num_heads,
        )
        self._tokens: dict = {}
        self._hold_parameters()

    def _hold_parameters(self) -> None:
        """Holds the parameters the per-request path reads (skips module attribute lookups);
        refreshed whenever torch may replace them (`_apply`, `load_state_dict`)."""
        self._encoder_params = list(self.latency_encoder.parameters())
        self._scheduler_wb = (self.scheduler.proj.weight, self.scheduler.proj.bias)

    def _apply(self, fn, recurse=True):
        out = super()._apply(fn, recurse)
        self._hold_parameters()
        return out

    def load_state_dict(self, *args, **kwargs):
        """Loads the weights like `nn.Module.load_state_dict`, then re-reads the parameters the
        per-request path holds (the cached latency tokens are keyed by weight version)."""
        out = super().load_state_dict(*args, **kwargs)
        self._hold_parameters()
        return out

    def k_for(self, budget: float) -> int:
        """Returns the number of selectable units that run at `budget`."""
        return budget_mod.selected_units(budget, self.config.units)

    def min_budget(self) -> float:
        """Returns the smallest budget the head can meet: the always-run prefix, P/N."""
        return budget_mod.min_budget(self.config.units)

    def latency_token(self, k: torch.Tensor | int) -> torch.Tensor:
        """Returns the latency token(s) [B, 1, D] for unit counts `k`."""
        k = torch.as_tensor(
            [k] if isinstance(k, int) else k, device=self.latency_encoder.fc1.weight.device
        )
        return self.latency_encoder(k.float() / (self.config.units.selectable + 1))

    def cached_latency_token(self, k: int) -> torch.Tensor:
        """Returns the latency token [1, 1, D] for `k`, computed once per (k, device, dtype) and
        reused until the encoder's weights change in place (training steps, load_state_dict bump
        their version): it depends on the budget only, so a request pays a dictionary lookup."""
        w = self._encoder_params[0]
        version = sum(p._version for p in self._encoder_params)  # only ever grows
        key = (k, w.device, w.dtype, version)
        token = self._tokens.get(key)
        if token is None:
            with torch.inference_mode(False), torch.no_grad():
                token = self.latency_token(k)
            self._tokens = {kk: v for kk, v in self._tokens.items() if kk[3] == version}
            self._tokens[key] = token
        return token

    def plan(self, hidden: torch.Tensor, k: int) -> Plan:
        """Returns the deterministic plan for one request from the latency token's hidden state
        [1, D]: one linear (the scheduler) and a top-k, with one device→host copy of the result."""
        c, (weight, bias) = self.config, self._scheduler_wb
        if hidden.dtype != weight.dtype:
            hidden = hidden.to(weight.dtype)
        logits = F.linear(hidden, weight, bias)[0]
        if c.variant == "L":
            return plan_blocks(logits, k, c.num_layers, c.prefix_layers)
        logits = logits.view(c.num_layers - c.prefix_layers, 2 * c.num_heads)
        return plan_heads(logits, k, c.group_size, c.num_layers, c.prefix_layers, c.kv_group)

    def masks(self, hidden: torch.Tensor, k: torch.Tensor, sample: bool) -> dict:
        """Returns per-layer training masks for a batch: {"block": [B, N−P]} (L) or
        {"heads": [B, N−P, H], "mlp": [B, N−P, H]} (H); sampled (Gumbel) or deterministic."""
        c = self.config
        logits = self.scheduler(hidden)
        if c.variant == "L":
            if sample:
                return {"block": sample_blocks(logits, k, c.tau)}
            return {
                "block": torch.stack(
                    [
                        _dense_blocks(plan_blocks(lg, int(kk), c.num_layers, c.prefix_layers), c)
                        for lg, kk in zip(logits, k)
                    ]
                ).to(hidden.device)
            }
        if sample:
            heads, mlp = sample_heads(logits, k, c.group_size, c.tau)
            return {"heads": heads, "mlp": mlp}
        dense = [
            _dense_heads(
                plan_heads(lg, int(kk), c.group_size, c.num_layers, c.prefix_layers, c.kv_group), c
            )
            for lg, kk in zip(logits, k)
        ]
        return {
            "heads": torch.stack([d[0] for d in dense]).to(hidden.device),
            "mlp": torch.stack([d[1] for d in dense]).to(hidden.device),
        }

    def overhead_flops(self) -> int:
        """Returns FLOPs of one latency-encoder + scheduler call (counted in `flops`, not the
        ratio)."""
        return self.latency_encoder.flops() + self.scheduler.flops()

    def save_pretrained(self, path: str | Path) -> None:
        """Writes adallava_config.json and adallava.safetensors into `path`."""
        path = Path(path)
        path.mkdir(parents=True, exist_ok=True)
        (path / CONFIG_NAME).write_text(json.dumps(asdict(self.config), indent=2))
        save_file(
            {k: v.detach().to(torch.float16).contiguous() for k, v in self.state_dict().items()},
            str(path / WEIGHTS_NAME),
        )

    @classmethod
    def from_pretrained(cls, path: str | Path, model=None) -> AdaLlavaHead:
        """Returns the head stored in `path` (float32; move it with `.to`)."""
        config = AdaLlavaConfig(**json.loads((Path(path) / CONFIG_NAME).read_text()))
        head = cls(config)
        state = load_file(str(Path(path) / WEIGHTS_NAME))
        head.load_state_dict({k: v.float() for k, v in state.items()})
        return head


def _dense_blocks(plan: Plan, c: AdaLlavaConfig) -> torch.Tensor:
    return torch.tensor([0.0 if lp is None else 1.0 for lp in plan.layers[c.prefix_layers :]])


def _dense_heads(plan: Plan, c: AdaLlavaConfig) -> tuple[torch.Tensor, torch.Tensor]:
    n_sel = c.num_layers - c.prefix_layers
    heads, mlp = torch.zeros(n_sel, c.num_heads), torch.zeros(n_sel, c.num_heads)
    for i, lp in enumerate(plan.layers[c.prefix_layers :]):
        if lp is None:
            continue
        heads[i, list(range(c.num_heads)) if lp.heads is None else list(lp.heads)] = 1.0
        mlp[i, list(range(c.num_heads)) if lp.mlp_groups is None else list(lp.mlp_groups)] = 1.0
    return heads, mlp


class AdaLlavaForConditionalGeneration(nn.Module):
    """A Llava model plus its AdaLLaVA head, saved as an HF Llava folder + the head's two files."""

    def __init__(self, llava, head: AdaLlavaHead) -> None:
        super().__init__()
        self.llava, self.head = llava, head

    @classmethod
    def from_pretrained(cls, path: str | Path, **kwargs) -> AdaLlavaForConditionalGeneration:
        """Returns the model in `path` (no network when `path` is local)."""
        from transformers import LlavaForConditionalGeneration

        llava = LlavaForConditionalGeneration.from_pretrained(str(path), **kwargs)
        head = AdaLlavaHead.from_pretrained(path).to(llava.device, llava.dtype)
        return cls(llava, head)

    def save_pretrained(self, path: str | Path, dtype: torch.dtype = torch.float16) -> None:
        """Saves the base Llava weights (HF names, safetensors in `dtype`) and the head."""
        original = self.llava.dtype
        self.llava.to(dtype).save_pretrained(str(path), safe_serialization=True)
        self.llava.to(original)
        self.head.save_pretrained(path)


def forward_masked(
    runner,
    head: AdaLlavaHead,
    embeds: torch.Tensor,
    lat_pos: torch.Tensor,
    k: torch.Tensor,
    sample: bool,
) -> torch.Tensor:
    """Returns logits [B, T, V] of a batched full-compute forward with AdaLLaVA masks (training,
    reference runs): prefix blocks run in full, the scheduler reads the latency token's hidden
    state at the input of block P (`lat_pos[b]` is its position), masks gate the rest."""
    from adabench.models.plan import Plan as _Plan

    c = head.config
    bsz, t, _ = embeds.shape
    positions = torch.arange(t, device=embeds.device)[None].expand(bsz, -1)
    rope = runner.rope(embeds, positions)
    full = runner.prepare(_Plan.full(c.num_layers, c.num_heads))
    h = embeds
    for i in range(c.prefix_layers):
        h, _ = runner.block(full[i], h, rope)
    masks = head.masks(h[torch.arange(bsz), lat_pos], k, sample)
    inter = runner.decoder.intermediate_size
    for j, i in enumerate(range(c.prefix_layers, c.num_layers)):
        if c.variant == "L":
            h, _ = runner.block(full[i], h, rope, block_gate=masks["block"][:, j])
        else:
            neuron = masks["mlp"][:, j].repeat_interleave(inter // c.num_heads, dim=-1)
            h, _ = runner.block(
                full[i], h, rope, head_mask=masks["heads"][:, j], neuron_mask=neuron
            )
    return runner.logits(h)
