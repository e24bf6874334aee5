"""Execution plans: which decoder blocks, heads, MLP neuron groups and visual tokens run.

A `Plan` is what every method produces and what both the executor and the FLOPs counter read,
so the FLOPs reported are always those of the plan that actually ran.

Conventions:
- `layers[i] is None` means decoder block i is skipped entirely (identity through the residual,
  no KV-cache entry).
- `LayerPlan.heads` lists the kept *query* heads (None = all). With GQA a kept query head keeps
  its key/value head; plans made by adabench keep whole key/value groups.
- `LayerPlan.mlp_groups` lists kept MLP neuron groups (None = all). The intermediate size is
  split into `mlp_group_count` contiguous groups (AdaLLaVA uses as many groups as heads).
- An empty tuple of heads (or groups) means the attention (or MLP) half of the block is skipped.
- Token selection: `visual_tokens_removed` visual tokens were removed before the LLM (PruMerge);
  `fastv_layer`/`fastv_removed`: after block `fastv_layer` the lowest-attention
  `fastv_removed` visual tokens are dropped (FastV); `drops` lists further staged drops inside
  the LLM (`TokenDrop`: PyramidDrop's stages, DART's duplicates), each with its ranking rule.
  `token_drops` is every stage, FastV's included, in block order: what the executor and the
  FLOPs read.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class LayerPlan:
    """What runs inside one decoder block."""

    heads: tuple[int, ...] | None = None
    mlp_groups: tuple[int, ...] | None = None

    @property
    def is_full(self) -> bool:
        """Whether every head and MLP group of the block runs."""
        return self.heads is None and self.mlp_groups is None


FULL_LAYER = LayerPlan()  # immutable, so every plan can share it

DROP_RULES = ("fastv", "pyramid", "dart")
"""How a stage ranks the visual tokens it drops (adabench/models/execution.py): "fastv" the last
token's attention in the last block that ran before the stage; "pyramid" the last token's
attention computed with the stage block's own q/k on its input (PyramidDrop); "dart" duplication
of pivot tokens in the hidden states entering the stage (DART)."""


@dataclass(frozen=True)
class TokenDrop:
    """One drop of visual tokens inside the LLM: from block `layer` on, `removed` more visual
    tokens are gone (ranked by `rule`, one of DROP_RULES)."""

    layer: int
    removed: int
    rule: str = "fastv"


@dataclass(frozen=True)
class Plan:
    """What executes for one request. Made once at prefill, reused for every decode step."""

    layers: tuple[LayerPlan | None, ...]
    mlp_group_count: int = 1
    visual_tokens_removed: int = 0
    fastv_layer: int | None = None
    fastv_removed: int = 0
    drops: tuple[TokenDrop, ...] = ()
    extra: dict = field(default_factory=dict, compare=False, hash=False)

    @classmethod
    def full(cls, num_layers: int, mlp_group_count: int = 1) -> Plan:
        """Returns the plan that runs every block, head and neuron."""
        return cls(layers=(FULL_LAYER,) * num_layers, mlp_group_count=mlp_group_count)

    @classmethod
    def from_kept_blocks(cls, num_layers: int, kept: list[int] | tuple[int, ...]) -> Plan:
        """Returns a block-skipping plan that runs only the blocks whose indices are in `kept`."""
        layers: list[LayerPlan | None] = [None] * num_layers
        for i in map(int, kept):
            if 0 <= i < num_layers:
                layers[i] = FULL_LAYER
        return cls(layers=tuple(layers))

    @property
    def token_drops(self) -> tuple[TokenDrop, ...]:
        """Returns every drop of visual tokens inside the LLM (FastV's and `drops`), by block."""
        stages = list(self.drops)
        if self.fastv_layer is not None and self.fastv_removed:
            stages.append(TokenDrop(self.fastv_layer, self.fastv_removed, "fastv"))
        return tuple(sorted((d for d in stages if d.removed), key=lambda d: d.layer))

    def removed_before(self, layer: int) -> int:
        """Returns how many visual tokens block `layer` no longer sees (drops at blocks ≤ it)."""
        return sum(d.removed for d in self.token_drops if d.layer <= layer)

    @property
    def num_layers(self) -> int:
        """The number of decoder blocks the plan covers."""
        return len(self.layers)

    def kept_blocks(self) -> list[int]:
        """Returns the indices of blocks that run (fully or partially)."""
        return [i for i, lp in enumerate(self.layers) if lp is not None and not self._empty(lp)]

    @staticmethod
    def _empty(lp: LayerPlan) -> bool:
        return (
            lp.heads is not None
            and len(lp.heads) == 0
            and lp.mlp_groups is not None
            and len(lp.mlp_groups) == 0
        )

    def num_heads(self, layer: int, total_heads: int) -> int:
        """Returns how many query heads run in `layer` (0 when the block is skipped)."""
        lp = self.layers[layer]
        if lp is None:
            return 0
        return total_heads if lp.heads is None else len(lp.heads)

    def mlp_fraction(self, layer: int) -> float:
        """Returns the fraction of MLP neurons that run in `layer` (0.0 when skipped)."""
        lp = self.layers[layer]
        if lp is None:
            return 0.0
        if lp.mlp_groups is None:
            return 1.0
        return len(lp.mlp_groups) / self.mlp_group_count

    def with_tokens(
        self,
        *,
        visual_tokens_removed: int = 0,
        fastv_layer: int | None = None,
        fastv_removed: int = 0,
        drops: tuple[TokenDrop, ...] = (),
    ) -> Plan:
        """Returns a copy of this plan with token selection added (used by `a+b` combinations)."""
        return Plan(
            layers=self.layers,
            mlp_group_count=self.mlp_group_count,
            visual_tokens_removed=visual_tokens_removed or self.visual_tokens_removed,
            fastv_layer=fastv_layer if fastv_layer is not None else self.fastv_layer,
            fastv_removed=fastv_removed or self.fastv_removed,
            drops=tuple(drops) or self.drops,
            extra=dict(self.extra),
        )

    def describe(self, total_heads: int) -> str:
        """Returns a compact human-readable plan: blocks as 1/0, or heads per block for partial plans.

        Examples: "blocks=111111101010", "heads=4,4,4,4,4,4,2,0,4,2,0,0 mlp=4,4,...", plus
        "+prumerge-N" / "+fastv@K-N" / "+pyramid@K-N" / "+dart@K-N" when visual tokens were removed.
        """
        if all(lp is None or lp.is_full for lp in self.layers):
            text = "blocks=" + "".join("0" if lp is None else "1" for lp in self.layers)
        else:
            heads = ",".join(str(self.num_heads(i, total_heads)) for i in range(self.num_layers))
            groups = ",".join(
                str(round(self.mlp_fraction(i) * self.mlp_group_count))
                for i in range(self.num_layers)
            )
            text = f"heads={heads} mlp={groups}"
        if self.visual_tokens_removed:
            text += f" +prumerge-{self.visual_tokens_removed}"
        if self.fastv_layer is not None:
            text += f" +fastv@{self.fastv_layer}-{self.fastv_removed}"
        for d in self.drops:
            text += f" +{d.rule}@{d.layer}-{d.removed}"
        return text
