"""Plan execution for HF Llava models: real block skipping, sliced heads/neurons, our own KV cache.

`LlavaRunner` runs the Llama-family decoder of a `LlavaForConditionalGeneration` block by block:
- a skipped block (plan layer None) does no work and gets no KV-cache entry;
- a partial block runs q/k/v and o_proj, gate/up and down on weights sliced to the kept heads /
  neurons, prepared once per request (`prepare`) and reused by every decode step; its cache holds
  only the kept key/value heads;
- FastV drops visual tokens after block K using the last token's attention at block K−1,
  computed for that one query row, so no attention implementation is forced;
- `forward_masked` is the batched, full-compute path for training and reference runs: masks
  multiply head outputs before o_proj, MLP activations before down_proj, and block outputs.
Attention: eager (explicit softmax) when the config asks for it, else torch SDPA.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from transformers.models.llama.modeling_llama import apply_rotary_pos_emb

from adabench.models.plan import LayerPlan, Plan


@dataclass
class BlockWeights:
    """Weights one block runs with for a request (views for full blocks, slices for partial)."""

    layer: torch.nn.Module
    q: tuple | None  # (weight, bias) per projection; None when attention is skipped
    k: tuple | None
    v: tuple | None
    o: tuple | None
    kv_of_q: torch.Tensor | None  # for each kept query head, the index of its kept kv head
    n_q: int
    n_kv: int
    gate: tuple | None
    up: tuple | None
    down: tuple | None


@dataclass
class KVEntry:
    """Preallocated key/value buffers of one block: [1, n_kv, capacity, head_dim]."""

    k: torch.Tensor
    v: torch.Tensor
    length: int


def _nbytes(bw: BlockWeights) -> int:
    """Returns the bytes held by the sliced tensors of a prepared block."""
    return sum(
        t.numel() * t.element_size()
        for part in (bw.q, bw.k, bw.v, bw.o, bw.gate, bw.up, bw.down)
        if part is not None
        for t in part
        if t is not None
    )


def _wb(
    linear: torch.nn.Linear, rows: torch.Tensor | None = None, cols: torch.Tensor | None = None
) -> tuple:
    w, b = linear.weight, linear.bias
    if rows is not None:
        w = w.index_select(0, rows)
        b = b.index_select(0, rows) if b is not None else None
    if cols is not None:
        w = w.index_select(1, cols)
    return (w, b)


class LlavaRunner:
    """Executes a LlavaForConditionalGeneration under a Plan (batch 1 for timing, batched masks for training)."""

    def __init__(self, model) -> None:
        self.model = model
        self.lm = model.model.language_model
        self.layers = self.lm.layers
        self.text = model.config.text_config
        self.n_heads = self.text.num_attention_heads
        self.n_kv = getattr(self.text, "num_key_value_heads", None) or self.n_heads
        self.head_dim = (
            getattr(self.text, "head_dim", None) or self.text.hidden_size // self.n_heads
        )
        self.group = self.n_heads // self.n_kv
        self.scale = self.head_dim**-0.5
        self.eager = getattr(self.text, "_attn_implementation", "sdpa") == "eager"

    # ---------------------------------------------------------------- inputs
    def image_features(self, pixel_values: torch.Tensor) -> torch.Tensor:
        """Returns projected visual tokens [n_images, n_visual, hidden] (vision tower + projector)."""
        cfg = self.model.config
        out = self.model.model.get_image_features(
            pixel_values=pixel_values,
            vision_feature_layer=cfg.vision_feature_layer,
            vision_feature_select_strategy=cfg.vision_feature_select_strategy,
        )
        feats = out.pooler_output if hasattr(out, "pooler_output") else out
        return torch.stack(list(feats)) if isinstance(feats, (list, tuple)) else feats

    def embed(self, input_ids: torch.Tensor, image_features: torch.Tensor | None) -> torch.Tensor:
        """Returns input embeddings [B, T, D] with image-token slots filled by `image_features`."""
        embeds = self.lm.embed_tokens(input_ids)
        if image_features is not None:
            mask = input_ids == self.model.config.image_token_id
            embeds = embeds.masked_scatter(
                mask.unsqueeze(-1), image_features.to(embeds.dtype).reshape(-1)
            )
        return embeds

    # ---------------------------------------------------------------- plans
    def prepare(self, plan: Plan) -> list[BlockWeights | None]:
        """Returns per-block weights for `plan`; slicing happens here, once per request."""
        if plan.num_layers != len(self.layers):
            raise ValueError(f"plan has {plan.num_layers} blocks, model has {len(self.layers)}")
        return [self._cached_block(i, lp, plan) for i, lp in enumerate(plan.layers)]

    def _cached_block(self, i: int, lp: LayerPlan | None, plan: Plan) -> BlockWeights | None:
        """Full and skipped blocks cost nothing to prepare; sliced ones are kept in a small LRU
        keyed by (block, heads, groups), bounded to a quarter of the decoder's weight bytes, so a
        plan that recurs across requests (plans repeat: a few per budget) is not sliced again."""
        if lp is None or lp.is_full:
            return self._prepare_block(i, lp, plan)
        key = (i, lp.heads, lp.mlp_groups, plan.mlp_group_count)
        cache = self.__dict__.setdefault("_slices", OrderedDict())
        if key in cache:
            cache.move_to_end(key)
            return cache[key]
        bw = self._prepare_block(i, lp, plan)
        cache[key] = bw
        limit = self.__dict__.setdefault(
            "_slice_limit", sum(p.numel() * p.element_size() for p in self.layers.parameters()) // 4
        )
        while len(cache) > 1 and sum(_nbytes(b) for b in cache.values()) > limit:
            cache.popitem(last=False)
        return bw

    def _prepare_block(self, i: int, lp: LayerPlan | None, plan: Plan) -> BlockWeights | None:
        if lp is None:
            return None
        layer = self.layers[i]
        attn, mlp = layer.self_attn, layer.mlp
        dev = attn.q_proj.weight.device
        q = k = v = o = kv_of_q = None
        n_q, n_kv = self.n_heads, self.n_kv
        if lp.heads is None:
            q, k, v, o = _wb(attn.q_proj), _wb(attn.k_proj), _wb(attn.v_proj), _wb(attn.o_proj)
            if self.group > 1:
                kv_of_q = torch.arange(self.n_heads, device=dev) // self.group
        elif len(lp.heads) > 0:
            heads = torch.tensor(sorted(lp.heads), device=dev)
            kv_heads = torch.unique(heads // self.group)
            n_q, n_kv = len(heads), len(kv_heads)
            hd = self.head_dim
            q_rows = (heads[:, None] * hd + torch.arange(hd, device=dev)).reshape(-1)
            kv_rows = (kv_heads[:, None] * hd + torch.arange(hd, device=dev)).reshape(-1)
            q, o = _wb(attn.q_proj, rows=q_rows), _wb(attn.o_proj, cols=q_rows)
            k, v = _wb(attn.k_proj, rows=kv_rows), _wb(attn.v_proj, rows=kv_rows)
            kv_of_q = torch.searchsorted(kv_heads, heads // self.group) if n_kv != n_q else None
        gate = up = down = None
        if lp.mlp_groups is None:
            gate, up, down = _wb(mlp.gate_proj), _wb(mlp.up_proj), _wb(mlp.down_proj)
        elif len(lp.mlp_groups) > 0:
            size = mlp.gate_proj.weight.shape[0] // plan.mlp_group_count
            groups = torch.tensor(sorted(lp.mlp_groups), device=dev)
            rows = (groups[:, None] * size + torch.arange(size, device=dev)).reshape(-1)
            gate, up, down = (
                _wb(mlp.gate_proj, rows=rows),
                _wb(mlp.up_proj, rows=rows),
                _wb(mlp.down_proj, cols=rows),
            )
        return BlockWeights(layer, q, k, v, o, kv_of_q, n_q, n_kv, gate, up, down)

    # ---------------------------------------------------------------- blocks
    def _attend(self, q, k, v, kv_of_q, causal: bool, pad_mask=None):
        if kv_of_q is not None:
            k, v = k.index_select(1, kv_of_q), v.index_select(1, kv_of_q)
        if self.eager or pad_mask is not None:
            scores = (q @ k.transpose(-1, -2)) * self.scale
            tq, tk = q.shape[-2], k.shape[-2]
            if causal and tq > 1:
                future = torch.ones(tq, tk, dtype=torch.bool, device=q.device).triu(tk - tq + 1)
                scores = scores.masked_fill(future, torch.finfo(scores.dtype).min)
            if pad_mask is not None:
                scores = scores.masked_fill(
                    ~pad_mask[:, None, None, :], torch.finfo(scores.dtype).min
                )
            return torch.softmax(scores, dim=-1, dtype=torch.float32).to(q.dtype) @ v
        return F.scaled_dot_product_attention(q, k, v, is_causal=causal and q.shape[-2] > 1)

    def block(
        self,
        bw: BlockWeights,
        h,
        cos,
        sin,
        cache: KVEntry | None = None,
        *,
        head_mask=None,
        neuron_mask=None,
        block_gate=None,
        pad_mask=None,
        last_query_probs=False,
    ):
        """Runs one decoder block; returns (new hidden states, last-token attention probs or None).

        Masks (training / reference only): head_mask [B, n_q], neuron_mask [B, I], block_gate [B].
        """
        layer = bw.layer
        probs = None
        bsz, t, _ = h.shape
        if bw.q is not None:
            x = layer.input_layernorm(h)
            hd = self.head_dim
            q = F.linear(x, *bw.q).view(bsz, t, bw.n_q, hd).transpose(1, 2)
            k = F.linear(x, *bw.k).view(bsz, t, bw.n_kv, hd).transpose(1, 2)
            v = F.linear(x, *bw.v).view(bsz, t, bw.n_kv, hd).transpose(1, 2)
            q, k = apply_rotary_pos_emb(q, k, cos, sin)
            if cache is not None:
                end = cache.length + t
                cache.k[:, :, cache.length : end] = k
                cache.v[:, :, cache.length : end] = v
                cache.length = end
                k, v = cache.k[:, :, :end], cache.v[:, :, :end]
            a = self._attend(q, k, v, bw.kv_of_q, causal=True, pad_mask=pad_mask)
            if last_query_probs:
                kk = k.index_select(1, bw.kv_of_q) if bw.kv_of_q is not None else k
                probs = torch.softmax(
                    (q[:, :, -1:] @ kk.transpose(-1, -2)) * self.scale, dim=-1
                ).mean(1)[:, 0]
            if head_mask is not None:
                a = a * head_mask[:, :, None, None].to(a.dtype)
            a = a.transpose(1, 2).reshape(bsz, t, bw.n_q * hd)
            delta = F.linear(a, *bw.o)
            h = h + (delta * block_gate[:, None, None] if block_gate is not None else delta)
        if bw.gate is not None:
            x = layer.post_attention_layernorm(h)
            act = layer.mlp.act_fn(F.linear(x, *bw.gate)) * F.linear(x, *bw.up)
            if neuron_mask is not None:
                act = act * neuron_mask[:, None, :].to(act.dtype)
            delta = F.linear(act, *bw.down)
            h = h + (delta * block_gate[:, None, None] if block_gate is not None else delta)
        return h, probs

    def new_cache(
        self, prepared: list[BlockWeights | None], capacity: int, like: torch.Tensor
    ) -> list[KVEntry | None]:
        """Returns empty preallocated KV buffers for the blocks that run attention."""
        return [
            None
            if bw is None or bw.q is None
            else KVEntry(
                like.new_empty(1, bw.n_kv, capacity, self.head_dim),
                like.new_empty(1, bw.n_kv, capacity, self.head_dim),
                0,
            )
            for bw in prepared
        ]

    def rope(self, h: torch.Tensor, positions: torch.Tensor):
        """Returns (cos, sin) for `positions` [B, T]."""
        return self.lm.rotary_emb(h, positions)

    def logits(self, h_last: torch.Tensor) -> torch.Tensor:
        """Returns lm_head(final_norm(h)) for the given positions."""
        return self.model.lm_head(self.lm.norm(h_last))


@dataclass
class PrefillState:
    """What decode needs after prefill: cache, prepared weights, next position, the plan used."""

    prepared: list[BlockWeights | None]
    cache: list[KVEntry | None]
    next_position: int
    plan: Plan
    kept_visual: int | None = None


def prefill(
    runner: LlavaRunner,
    embeds: torch.Tensor,
    plan: Plan | None,
    capacity: int,
    decide: Callable[[torch.Tensor], Plan] | None = None,
    decide_at: int = 0,
    visual_positions: torch.Tensor | None = None,
) -> tuple[torch.Tensor, PrefillState]:
    """Runs the prompt `embeds` [1, T, D] through the decoder; returns (last-token logits, state).

    With `decide`, blocks [0, decide_at) run in full, then `decide(hidden at the last position)`
    returns the plan for the whole model (AdaLLaVA's scheduler). FastV (plan.fastv_layer = K) drops
    the `plan.fastv_removed` visual tokens with the lowest last-token attention of block K−1.
    """
    n = len(runner.layers)
    t = embeds.shape[1]
    positions = torch.arange(t, device=embeds.device)[None]
    h = embeds
    # With `decide`, `plan` (if given) carries only the token fields, known before the decision,
    # so FastV can rank tokens in the always-run prefix; the decided plan replaces it at decide_at.
    plan = plan or Plan.full(n)
    prepared = (
        runner.prepare(Plan.full(n))[:decide_at] if decide is not None else runner.prepare(plan)
    )
    cache = runner.new_cache(prepared, capacity, embeds)
    cos, sin = runner.rope(h, positions)
    kept_visual = None
    for i in range(n):
        if decide is not None and i == decide_at:
            plan = decide(h[:, -1])
            tail = runner.prepare(plan)[decide_at:]
            prepared, cache = prepared + tail, cache + runner.new_cache(tail, capacity, embeds)
        if prepared[i] is None:
            continue
        want_probs = (
            plan.fastv_layer is not None
            and visual_positions is not None
            and kept_visual is None
            and plan.fastv_layer <= len(prepared)
            and i == _fastv_source(plan, prepared)
        )
        h, probs = runner.block(prepared[i], h, cos, sin, cache[i], last_query_probs=want_probs)
        if want_probs and plan.fastv_removed > 0:
            keep = fastv_keep(probs[0], visual_positions, plan.fastv_removed, h.shape[1])
            h, positions = h[:, keep], positions[:, keep]
            cos, sin = runner.rope(h, positions)
            kept_visual = len(visual_positions) - plan.fastv_removed
    return runner.logits(h[:, -1:])[:, -1], PrefillState(prepared, cache, t, plan, kept_visual)


def _fastv_source(plan: Plan, prepared: list) -> int:
    """Returns the block whose attention ranks visual tokens: the last block that runs before K."""
    ran = [
        i for i in range(plan.fastv_layer) if prepared[i] is not None and prepared[i].q is not None
    ]
    return ran[-1] if ran else -1


def fastv_keep(
    last_probs: torch.Tensor, visual_positions: torch.Tensor, n_remove: int, seq_len: int
) -> torch.Tensor:
    """Returns the sorted sequence positions kept after dropping the `n_remove` visual tokens with
    the lowest attention from the last token (`last_probs` [T]); text tokens are always kept."""
    scores = last_probs[visual_positions]
    drop = visual_positions[torch.topk(scores, n_remove, largest=False).indices]
    keep = torch.ones(seq_len, dtype=torch.bool, device=last_probs.device)
    keep[drop] = False
    return torch.nonzero(keep).squeeze(1)


def decode_step(runner: LlavaRunner, token_id: torch.Tensor, state: PrefillState) -> torch.Tensor:
    """Runs one greedy decode step for `token_id` [1, 1] under the prefill's plan; returns logits [1, V]."""
    h = runner.lm.embed_tokens(token_id)
    positions = torch.tensor([[state.next_position]], device=h.device)
    cos, sin = runner.rope(h, positions)
    for bw, entry in zip(state.prepared, state.cache):
        if bw is not None:
            h, _ = runner.block(bw, h, cos, sin, entry)
    state.next_position += 1
    return runner.logits(h)[:, -1]
