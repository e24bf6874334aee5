"""Plan execution for HF Llava models: real block skipping, sliced heads/neurons, our own KV cache.

`LlavaRunner` runs the decoder of a `LlavaForConditionalGeneration` block by block, for every
decoder family of adabench/models/families/ (Llama, Mistral, Qwen2, Qwen3, Phi-3, Gemma 2/3): the
family says which norms sit where, whether q/k are normed, how attention is scaled and capped,
which layers slide and which rotary table each layer reads; this one loop reads it.
- a skipped block (plan layer None) does no work and gets no KV-cache entry;
- a partial block runs q/k/v and o_proj, gate/up and down on the kept rows/columns of the
  model's weights (views, see adabench/models/block_weights.py), prepared once per request and
  reused by every decode step; its cache holds only the kept key/value heads;
- token drops inside the LLM (`plan.token_drops`: FastV, PyramidDrop's stages, DART) remove
  visual tokens before block K; FastV ranks them by the last token's attention at the last block
  that ran before K (computed for that one query row, so no attention implementation is forced),
  PyramidDrop by block K's own q/k on its input (`probe`), DART by duplication of pivot tokens
  (`dart_keep`); later blocks' KV caches hold only the kept tokens;
- `forward_masked` is the batched, full-compute path for training and reference runs: masks
  multiply head outputs before o_proj, MLP activations before down_proj, and block outputs.
Attention: explicit scores when the config asks for eager or the family soft-caps logits (Gemma 2),
else torch SDPA; sliding-window layers mask keys further back than the window (prefill) or
attend to the last `window` keys (decode). RMSNorm and RoPE are computed with fewer kernels than
the HF modules (same math, see `_norm`, `_rotate`); rotary tables are built once per request for
every position it can reach, so a decode step needs no host→device transfer.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from contextlib import nullcontext
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F

from adabench.errors import UserError
from adabench.measure.memory import free_bytes
from adabench.models.block_weights import (
    BlockWeights,
    HalfCache,
    Runs,
    full_block,
    linear,
    mlp_runs,
)
from adabench.models.families import decoder_of
from adabench.models.plan import Plan
from adabench.models.wrappers import decoder_module, image_features, wrapper_of

CPU_CACHE_CAP_BYTES = 1 << 30
CPU_RUNS_FROM_BYTES = 1 << 20
"""On CPU a multi-run half whose copy would be this large runs as per-run matmuls
(block_weights.HalfCache); on CUDA every multi-run half runs as per-run matmuls on views
(`CUDA_RUNS_FROM_BYTES`: nothing is copied per request)."""
CUDA_RUNS_FROM_BYTES = 0
COPY_FREE_FRACTION = 0.25
"""Copied halves may hold at most this fraction of the device's free memory (plus what they
hold): the cap on every device with a free-memory reading (CUDA), whatever the limit asked."""

__all__ = [
    "BlockWeights",
    "KVEntry",
    "LlavaRunner",
    "PrefillState",
    "Rope",
    "StaticKV",
    "decode_step",
    "decode_step_static",
    "prefill",
]


@dataclass
class KVEntry:
    """Preallocated key/value buffers of one block: [1, n_kv, capacity, head_dim]."""

    k: torch.Tensor
    v: torch.Tensor
    length: int


@dataclass
class StaticKV(KVEntry):
    """KV buffers a captured decode step (CUDA graph) writes without host values: `at` [1]
    (a device long tensor, a view of the decoder's counters) is where this step's key goes
    (the cache length before the step), `keys` is arange(capacity). Keys at or before `at`
    (and within the layer's window) are attended; the rest are masked, so the shapes of every
    step are those of the first."""

    at: torch.Tensor | None = None
    keys: torch.Tensor | None = None

    def write(self, k: torch.Tensor, v: torch.Tensor, window: int | None) -> tuple:
        """Stores one step's k, v [1, n_kv, 1, head_dim] at `at`; returns (all keys, all
        values, the mask [capacity] of keys the step's query sees)."""
        self.k.index_copy_(2, self.at, k)
        self.v.index_copy_(2, self.at, v)
        seen = self.keys <= self.at
        if window is not None:  # the last `window` keys, itself included (HF's window mask)
            seen = seen & (self.keys > self.at - window)
        return self.k, self.v, seen


@dataclass
class Rope:
    """Rotary tables for a run of positions: {table key: (cos, signed sin)}, each
    [B, 1, T, rotary dims] (one key per rotary kind the decoder has: Gemma 3 has two)."""

    tables: dict[str, tuple[torch.Tensor, torch.Tensor]]

    def narrow(self, stop: int, start: int = 0) -> Rope:
        """Returns the tables of positions [start, stop)."""
        return Rope(
            {k: (c[:, :, start:stop], s[:, :, start:stop]) for k, (c, s) in self.tables.items()}
        )

    def take(self, index: torch.Tensor) -> Rope:
        """Returns the tables of the positions in `index` (FastV's kept tokens)."""
        return Rope({k: (c[:, :, index], s[:, :, index]) for k, (c, s) in self.tables.items()})


class LlavaRunner:
    """Executes a LlavaForConditionalGeneration under a Plan (batch 1 for timing, batched masks for training).

    Partial blocks are built from halves (one block's kept heads, or its kept MLP groups). A
    half whose units form one run is a view; one with several runs is a copy of the kept rows
    when that copy is small (under `runs_from_bytes`; None: the device's default, CPU 1 MiB,
    CUDA never) and per-run views (`block_weights.Runs`, one matmul per run) otherwise. All
    are kept in an LRU keyed by (block, units): views at no byte cost, copies up to
    `cache_limit_bytes` (None: the device's default below) beyond the halves of the plan in
    use (never evicted, so one plan always fits), and never more than `COPY_FREE_FRACTION` of
    the device's free memory. `cache_bytes` is what the copies hold. Whatever is prepared
    inside a request is counted in its latency (the "plan" overhead of adabench.sweep.generate);
    `evict_copies()` drops copies beyond the limit between requests, outside a measured block.

    Defaults (measured with benchmarks/adaptive_overhead.py): on CPU a copy costs about a
    small matmul's dispatch, and an LRU smaller than the plans' working set mostly misses
    (tiny-adallava-h@0.75: a quarter of the decoder's bytes hit 34 %), so CPU keeps up to the
    decoder's own bytes, capped at 1 GiB. On CUDA a 7B AdaLLaVA-H request copied 1.1–3.7 GiB
    of slices inside its timed region: split head/neuron sets run as per-run matmuls on views
    instead (more kernels, no copy; unverified on GPU), and nothing is kept."""

    def __init__(self, model) -> None:
        self.model = model
        self.wrapper = wrapper_of(model.config)  # where the decoder and visual inputs live
        self.lm = decoder_module(self.wrapper, model)
        self.layers = self.lm.layers
        self.text = model.config.text_config
        self.decoder = decoder_of(model.config)
        self.family = self.decoder.family
        self.n_heads = self.decoder.num_heads
        self.n_kv = self.decoder.num_kv_heads
        self.head_dim = self.decoder.head_dim
        self.group = self.n_heads // self.n_kv
        self.scale = self.decoder.scale
        self.softcap = self.decoder.softcap
        self.eager = getattr(self.text, "_attn_implementation", "sdpa") == "eager"
        self._decoder_bytes = sum(p.numel() * p.element_size() for p in self.layers.parameters())
        self._probe = next(self.layers.parameters())  # its device is the model's
        # Gemma scales token embeddings by √d: inside embed_tokens in current transformers; in
        # releases where the decoder scaled its whole input instead, the runner does it here.
        self._input_scale = (
            self.text.hidden_size**0.5
            if self.family.norm == "gemma" and not hasattr(self.lm.embed_tokens, "embed_scale")
            else None
        )
        self.cache_limit_bytes: int | None = None  # None: the default of the model's device
        self._default_limit = 0
        self._full: list[BlockWeights] = []
        self._full_device: torch.device | None = None
        self._kv_index: dict = {}
        self.runs_from_bytes: int | None = None  # None: the default of the model's device
        self._halves = HalfCache(self.head_dim, self.group, self._index, CPU_RUNS_FROM_BYTES)
        self.decode_graphs = None  # --cuda-graphs: adabench.models.cuda_graphs.DecodeGraphs

    @property
    def cache_bytes(self) -> int:
        """Returns the bytes the LRU holds beyond the model's own weights (copied halves)."""
        return self._halves.nbytes

    # ---------------------------------------------------------------- inputs
    @property
    def device(self) -> torch.device:
        """Returns the device the model's blocks live on (where its inputs must be)."""
        return self._probe.device

    def image_features(
        self, pixel_values: torch.Tensor, visual: dict | None = None
    ) -> torch.Tensor:
        """Returns projected visual tokens (vision tower + projector, HF's own functions):
        [n_images, n_visual, hidden] for LLaVA-1.5, [1, n_visual, hidden] for a wrapper whose
        count follows the image (tiles, newline tokens); `visual` holds the other processor
        tensors the wrapper reads (image_sizes, pixel_attention_mask, image_grid_thw)."""
        return image_features(self.wrapper, self.model, pixel_values, visual or {})

    def embed(self, input_ids: torch.Tensor, image_features: torch.Tensor | None) -> torch.Tensor:
        """Returns input embeddings [B, T, D] with image-token slots filled by `image_features`
        (what the decoder's first block reads: the family's embedding scale applied)."""
        embeds = self.lm.embed_tokens(input_ids)
        if image_features is not None:
            mask = input_ids == self.model.config.image_token_id
            embeds = embeds.masked_scatter(
                mask.unsqueeze(-1), image_features.to(embeds.dtype).reshape(-1)
            )
        return self._scaled(embeds)

    def embed_tokens(self, input_ids: torch.Tensor) -> torch.Tensor:
        """Returns the decoder input of text tokens [B, T, D] (a decode step's new token)."""
        return self._scaled(self.lm.embed_tokens(input_ids))

    def _scaled(self, embeds: torch.Tensor) -> torch.Tensor:
        if self._input_scale is None:
            return embeds
        return embeds * torch.tensor(self._input_scale, dtype=embeds.dtype)

    # ---------------------------------------------------------------- plans
    def full_blocks(self) -> list[BlockWeights]:
        """Returns every block's full weights (the parameters themselves; built once per device)."""
        device = self._probe.device
        if device != self._full_device:
            self._kv_index = {}
            cpu = device.type == "cpu"
            runs_from = self.runs_from_bytes
            if runs_from is None:
                runs_from = CPU_RUNS_FROM_BYTES if cpu else CUDA_RUNS_FROM_BYTES
            self._halves = HalfCache(self.head_dim, self.group, self._index, runs_from)
            kv_of_q = (
                self._index(tuple(h // self.group for h in range(self.n_heads)))
                if self.group > 1
                else None
            )
            self._full = [
                full_block(lay, self.decoder, i, kv_of_q) for i, lay in enumerate(self.layers)
            ]
            self._full_device = device
            self._default_limit = min(self._decoder_bytes, CPU_CACHE_CAP_BYTES) if cpu else 0
        return self._full

    def _index(self, values: tuple[int, ...]) -> torch.Tensor:
        """Returns a cached device tensor of `values` (query head → kv head maps; a few exist)."""
        if values not in self._kv_index:
            device = self._probe.device
            self._kv_index[values] = torch.tensor(values, device=device)
        return self._kv_index[values]

    def prepare(self, plan: Plan, start: int = 0) -> list[BlockWeights | None]:
        """Returns the weights of blocks [start, N) under `plan`: full and skipped blocks cost a
        lookup; partial ones are assembled from an attention half and an MLP half, each a view
        of the model's weights or, when its heads/groups form several runs, a copy kept in the
        LRU (see `cache_bytes`)."""
        if plan.num_layers != len(self.layers):
            raise ValueError(f"plan has {plan.num_layers} blocks, model has {len(self.layers)}")
        full, halves = self.full_blocks(), self._halves
        used: list = []
        out = [
            None
            if lp is None
            else full[i]
            if lp.is_full
            else halves.block(i, full[i], lp, plan.mlp_group_count, used)
            for i, lp in enumerate(plan.layers[start:], start)
        ]
        halves.evict(used, self.copy_limit_bytes())
        return out

    def copy_limit_bytes(self) -> int:
        """Returns the bytes of copied halves the LRU may keep: `cache_limit_bytes` (or the
        device's default), capped at COPY_FREE_FRACTION of (free device memory + what the
        copies hold) where the device reports free memory (read only while copies exist)."""
        limit = self._default_limit if self.cache_limit_bytes is None else self.cache_limit_bytes
        held = self._halves.nbytes
        free = free_bytes(self._probe.device) if held else None
        if free is not None:
            limit = min(limit, int(COPY_FREE_FRACTION * (free + held)))
        return limit

    def evict_copies(self) -> None:
        """Drops copied halves beyond `copy_limit_bytes()`, the last request's included (call
        it between requests, outside a measured block: on CUDA, where nothing is kept, the
        copies of one arm would otherwise be freed inside the next arm's peak-memory block)."""
        self._halves.evict([], self.copy_limit_bytes())

    # ---------------------------------------------------------------- blocks
    def _scores(self, q: torch.Tensor, k: torch.Tensor) -> torch.Tensor:
        """Returns q·kᵀ scaled, soft-capped where the family caps (Gemma 2: tanh(s/cap)·cap)."""
        scores = (q @ k.transpose(-1, -2)) * self.scale
        if self.softcap is not None:
            scores = torch.tanh(scores / self.softcap) * self.softcap
        return scores

    def _attend(self, q, k, v, kv_of_q, causal: bool, pad_mask=None, window=None, seen=None):
        """Returns attention outputs [B, heads, T, head_dim]; `seen` [Tk] (a static decode
        step's visible keys, StaticKV.write) replaces the causal and window masks."""
        if kv_of_q is not None:
            k, v = k.index_select(1, kv_of_q), v.index_select(1, kv_of_q)
        if seen is not None:
            return self._attend_seen(q, k, v, seen)
        tq, tk = q.shape[-2], k.shape[-2]
        if window is not None and tq == 1 and tk > window:
            # one query sees the last `window` keys (itself included), as HF's window mask says
            k, v, tk = k[:, :, -window:], v[:, :, -window:], window
        banned = None
        if causal and tq > 1:
            banned = torch.ones(tq, tk, dtype=torch.bool, device=q.device).triu(tk - tq + 1)
            if window is not None and tk > window:
                banned |= torch.ones_like(banned).tril(tk - tq - window)
        if self.eager or pad_mask is not None or self.softcap is not None:
            scores = self._scores(q, k)
            if banned is not None:
                scores = scores.masked_fill(banned, torch.finfo(scores.dtype).min)
            if pad_mask is not None:
                scores = scores.masked_fill(
                    ~pad_mask[:, None, None, :], torch.finfo(scores.dtype).min
                )
            return torch.softmax(scores, dim=-1, dtype=torch.float32).to(q.dtype) @ v
        if banned is not None and window is not None and tk > window:
            return F.scaled_dot_product_attention(q, k, v, attn_mask=~banned, scale=self.scale)
        return F.scaled_dot_product_attention(
            q, k, v, is_causal=causal and tq > 1, scale=self.scale
        )

    def _attend_seen(self, q, k, v, seen: torch.Tensor) -> torch.Tensor:
        """Attention of one query over every key slot, masked to the `seen` ones."""
        if self.eager or self.softcap is not None:
            scores = self._scores(q, k).masked_fill(~seen, torch.finfo(q.dtype).min)
            return torch.softmax(scores, dim=-1, dtype=torch.float32).to(q.dtype) @ v
        return F.scaled_dot_product_attention(q, k, v, attn_mask=seen[None, :], scale=self.scale)

    def block(
        self,
        bw: BlockWeights,
        h,
        rope: Rope,
        cache: KVEntry | None = None,
        *,
        head_mask=None,
        neuron_mask=None,
        block_gate=None,
        pad_mask=None,
        last_query_probs=False,
    ):
        """Runs one decoder block; returns (new hidden states, last-token attention probs or None).

        `rope` holds the rotary tables of h's positions. Masks (training / reference only):
        head_mask [B, n_q], neuron_mask [B, I], block_gate [B]."""
        spec = bw.spec
        probs = None
        bsz, t, _ = h.shape
        if bw.q is not None:
            x = _norm(spec.attn_norm, h, spec.gemma_norm)
            hd = self.head_dim
            q = linear(x, bw.q).view(bsz, t, bw.n_q, hd)
            k = linear(x, bw.k).view(bsz, t, bw.n_kv, hd)
            v = linear(x, bw.v).view(bsz, t, bw.n_kv, hd).transpose(1, 2)
            if spec.q_norm is not None:
                q, k = (
                    _norm(spec.q_norm, q, spec.gemma_norm),
                    _norm(spec.k_norm, k, spec.gemma_norm),
                )
            cos, sin = rope.tables[spec.rope_key]
            q, k = _rotate(q.transpose(1, 2), cos, sin), _rotate(k.transpose(1, 2), cos, sin)
            seen = None
            if isinstance(cache, StaticKV):
                k, v, seen = cache.write(k, v, spec.window)
            elif cache is not None:
                end = cache.length + t
                cache.k[:, :, cache.length : end] = k
                cache.v[:, :, cache.length : end] = v
                cache.length = end
                k, v = cache.k[:, :, :end], cache.v[:, :, :end]
            a = self._attend(q, k, v, bw.kv_of_q, True, pad_mask, spec.window, seen)
            if last_query_probs:
                probs = self._last_query_probs(q, k, bw.kv_of_q, spec.window)
            if head_mask is not None:
                a = a * head_mask[:, :, None, None].to(a.dtype)
            a = a.transpose(1, 2).reshape(bsz, t, bw.n_q * hd)
            delta = linear(a, bw.o) if head_mask is None else _masked_linear(a, bw.o, head_mask)
            if spec.post_attn_norm is not None:
                delta = _norm(spec.post_attn_norm, delta, spec.gemma_norm)
            h = h + (delta * block_gate[:, None, None] if block_gate is not None else delta)
        if bw.gate is not None:
            x = _norm(spec.mlp_norm, h, spec.gemma_norm)
            if isinstance(bw.gate, Runs):
                delta = mlp_runs(x, bw.gate, bw.up, bw.down, spec.act)
            else:
                act = spec.act(F.linear(x, *bw.gate)) * F.linear(x, *bw.up)
                if neuron_mask is not None:
                    act = act * neuron_mask[:, None, :].to(act.dtype)
                    delta = _masked_linear(act, bw.down, neuron_mask)
                else:
                    delta = F.linear(act, *bw.down)
            if spec.post_mlp_norm is not None:
                delta = _norm(spec.post_mlp_norm, delta, spec.gemma_norm)
            h = h + (delta * block_gate[:, None, None] if block_gate is not None else delta)
        return h, probs

    def _last_query_probs(self, q, k, kv_of_q, window) -> torch.Tensor:
        """Returns the last token's attention probabilities [B, T] (mean over heads), in fp32:
        FastV's ranking (fp16 probabilities tie and reorder the smallest ones). Keys outside a
        sliding window get 0, as in the attention itself."""
        kk = k.index_select(1, kv_of_q) if kv_of_q is not None else k
        scores = self._scores(q[:, :, -1:], kk).float()
        if window is not None and kk.shape[-2] > window:
            scores[..., : kk.shape[-2] - window] = float("-inf")
        return torch.softmax(scores, dim=-1).mean(1)[:, 0]

    def probe(
        self, bw: BlockWeights, h: torch.Tensor, rope: Rope
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Returns (q of the last position [B, n_q, 1, hd], k of every position [B, n_kv, T, hd])
        that block `bw` computes from input `h`: normed, projected, q/k-normed and rotated as in
        `block`, without running it (PyramidDrop's ranking, DART's key norms)."""
        spec, hd = bw.spec, self.head_dim
        bsz, t, _ = h.shape
        x = _norm(spec.attn_norm, h, spec.gemma_norm)
        q = linear(x[:, -1:], bw.q).view(bsz, 1, bw.n_q, hd)
        k = linear(x, bw.k).view(bsz, t, bw.n_kv, hd)
        if spec.q_norm is not None:
            q, k = _norm(spec.q_norm, q, spec.gemma_norm), _norm(spec.k_norm, k, spec.gemma_norm)
        cos, sin = rope.tables[spec.rope_key]
        q = _rotate(q.transpose(1, 2), cos[:, :, -1:], sin[:, :, -1:])
        return q, _rotate(k.transpose(1, 2), cos, sin)

    def probe_probs(self, bw: BlockWeights, h: torch.Tensor, rope: Rope) -> torch.Tensor:
        """Returns the last position's attention probabilities [B, T] (mean over heads, fp32) that
        block `bw` would compute on input `h` (PyramidDrop ranks with the stage block's own q/k)."""
        q, k = self.probe(bw, h, rope)
        return self._last_query_probs(q, k, bw.kv_of_q, bw.spec.window)

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

    def positions(
        self, capacity: int, device: torch.device, rotary: torch.Tensor | None = None
    ) -> torch.Tensor:
        """Returns the rotary positions of sequence slots 0..capacity−1: [1, capacity] (0, 1, ...)
        for a 1-D rotary decoder; with `rotary` (an mrope wrapper's prompt positions [3, 1, T0],
        `wrappers.rotary_positions`) those, then every later slot (appended tokens, decode steps)
        one past the largest so far on all three axes, as HF continues with `rope_deltas`."""
        if rotary is None:
            return torch.arange(capacity, device=device)[None]
        rotary = rotary.to(device)
        t0 = rotary.shape[-1]
        start = int(rotary.max()) + 1 if t0 else 0
        tail = torch.arange(start, start + capacity - t0, device=device)
        return torch.cat([rotary, tail.view(1, 1, -1).expand(3, 1, -1)], dim=-1)

    def rope(self, h: torch.Tensor, positions: torch.Tensor) -> Rope:
        """Returns the rotary tables of `positions` [B, T] as `block` takes them: HF's tables
        (one per rotary kind of the decoder) with the sign of `rotate_half` folded into the first
        half of sin, so rotating is x·cos + roll(x, dims/2)·sin (bit-identical to HF's
        apply_rotary_pos_emb). Length-dependent rotary types (dynamic, longrope) are exact only
        within their original context: positions beyond it are a UserError."""
        limit = self.decoder.rope_limit
        if limit is not None and positions.numel() and int(positions.max()) >= limit:
            raise UserError(
                f"this request reaches position {int(positions.max()) + 1}, beyond the "
                f"{limit} positions where the model's rotary type is length-independent; "
                "lower --max-new-tokens or use shorter prompts"
            )
        tables = {}
        for key in set(self.decoder.rope_keys):
            if self.family.rope_per_layer_type:
                cos, sin = self.lm.rotary_emb(h, positions, key)
            else:
                cos, sin = self.lm.rotary_emb(h, positions)
            half = sin.shape[-1] // 2
            signed = torch.cat([-sin[..., :half], sin[..., half:]], dim=-1)
            tables[key] = (cos[:, None], signed[:, None])
        return Rope(tables)

    def logits(self, h_last: torch.Tensor) -> torch.Tensor:
        """Returns lm_head(final_norm(h)) for the given positions (LlavaForConditionalGeneration
        applies no final-logit soft-cap, so neither does this)."""
        return self.model.lm_head(_norm(self.lm.norm, h_last, self.family.norm == "gemma"))


def _rotate(x: torch.Tensor, cos: torch.Tensor, signed_sin: torch.Tensor) -> torch.Tensor:
    """Applies RoPE to x [B, heads, T, head_dim]: HF's x·cos + rotate_half(x)·sin in four kernels;
    with partial rotary (tables narrower than head_dim) only the leading dims rotate."""
    dims = cos.shape[-1]
    if dims == x.shape[-1]:
        return x * cos + x.roll(dims // 2, -1) * signed_sin
    rot, rest = x[..., :dims], x[..., dims:]
    return torch.cat([rot * cos + rot.roll(dims // 2, -1) * signed_sin, rest], dim=-1)


def _masked_linear(x: torch.Tensor, proj: tuple, mask: torch.Tensor) -> torch.Tensor:
    """Returns x·Wᵀ + b·max(mask) per row of the batch: a sublayer whose mask drops every unit
    adds no bias, as a sliced block with no kept heads (or MLP groups) runs no sublayer."""
    w, b = proj
    y = F.linear(x, w)
    if b is None:
        return y
    return y + b * mask.amax(-1).to(y.dtype)[:, None, None]


def _norm(norm: torch.nn.Module, x: torch.Tensor, gemma: bool = False) -> torch.Tensor:
    """Returns the RMSNorm of x with one fused kernel, in the family's convention:
    Llama-style w·x̂ (float32 input: one kernel; other dtypes normalise in float32 and cast
    before the weight, as HF does), or Gemma's (1 + w)·x̂ computed in float32, then cast. A norm
    module of another kind runs itself."""
    if gemma:
        w = norm.weight
        y = F.rms_norm(x.float(), w.shape, eps=norm.eps) * (1.0 + w.float())
        return y.to(x.dtype)
    eps = getattr(norm, "variance_epsilon", None)
    if eps is None:
        return norm(x)
    if x.dtype == torch.float32:
        return F.rms_norm(x, norm.weight.shape, norm.weight, eps)
    return norm.weight * F.rms_norm(x.float(), norm.weight.shape, eps=eps).to(x.dtype)


@dataclass
class PrefillState:
    """What decode needs after prefill: cache, prepared weights, next position, the plan used,
    the rotary tables of every position up to the cache capacity, the timed spans of the
    method's own work ("scheduler": `decide`, "plan": preparing the plan's weights), and after
    each token drop the prompt positions it kept (device tensors, in drop order)."""

    prepared: list[BlockWeights | None]
    cache: list[KVEntry | None]
    next_position: int
    plan: Plan
    kept_visual: int | None = None
    rope: Rope | None = None
    spans: dict = field(default_factory=dict)
    kept_positions: list = field(default_factory=list)


def prefill(
    runner: LlavaRunner,
    embeds: torch.Tensor,
    plan: Plan | None,
    capacity: int,
    decide: Callable[[torch.Tensor], Plan] | None = None,
    decide_at: int = 0,
    visual_positions: torch.Tensor | None = None,
    timer=None,
    rotary: torch.Tensor | None = None,
) -> tuple[torch.Tensor, PrefillState]:
    """Runs the prompt `embeds` [1, T, D] through the decoder; returns (last-token logits, state).

    With `decide`, blocks [0, decide_at) run in full, then `decide(hidden at the last position)`
    returns the plan for the whole model (AdaLLaVA's scheduler); only blocks [decide_at, N) are
    prepared for it. FastV (plan.fastv_layer = K) drops the `plan.fastv_removed` visual tokens
    with the lowest last-token attention of block K−1. With `timer` (adabench.measure.timing),
    the decision and the plan's preparation are timed as spans (no synchronisation added).
    `rotary`: the prompt's 3-D rotary positions of an mrope wrapper (see `LlavaRunner.positions`);
    FastV's kept tokens keep their own positions (their rows of the tables)."""
    n = len(runner.layers)
    t = embeds.shape[1]
    spans: dict = {}

    def span(name: str):
        if timer is None:
            return nullcontext()
        # the plan's preparation is host work (views, bookkeeping): timed by the wall clock
        cm = timer.host_span() if name == "plan" else timer.span()
        return _Collect(cm, spans.setdefault(name, []))

    rope_all = runner.rope(embeds, runner.positions(capacity, embeds.device, rotary))
    positions = torch.arange(t, device=embeds.device)[None]  # sequence slots (FastV keeps some)
    rope = rope_all.narrow(t)
    h = embeds
    # With `decide`, `plan` (if given) carries only the token fields, known before the decision,
    # so FastV can rank tokens in the always-run prefix; the decided plan replaces it at decide_at.
    plan = plan or Plan.full(n)
    if decide is not None:  # the always-run prefix: the full blocks, nothing to prepare
        prepared = runner.full_blocks()[:decide_at]
    else:
        with span("plan"):
            prepared = runner.prepare(plan)
    cache = runner.new_cache(prepared, capacity, embeds)
    stages = list(plan.token_drops) if visual_positions is not None else []
    visual, kept_visual, source, kept_positions = visual_positions, None, None, []
    for i in range(n):
        if decide is not None and i == decide_at:
            with span("scheduler"):
                plan = decide(h[:, -1])
            with span("plan"):
                tail = runner.prepare(plan, start=decide_at)
            prepared, cache = prepared + tail, cache + runner.new_cache(tail, capacity, embeds)
        if prepared[i] is None:
            continue
        while stages and stages[0].layer <= i:  # drops due before this block
            keep = _drop_keep(runner, stages.pop(0), prepared[i], h, rope, visual, source)
            if keep is not None:
                h, positions = h[:, keep], positions[:, keep]
                rope = rope_all.take(positions[0])
                visual = _remap(visual, keep)
                kept_visual = len(visual)
                kept_positions.append(positions[0])
        ranks_next = bool(stages) and stages[0].rule != "pyramid"
        ranks_next = ranks_next and stages[0].layer <= len(prepared)
        ranks_next = ranks_next and i == _source_block(stages[0].layer, prepared)
        h_in = h
        h, probs = runner.block(
            prepared[i],
            h,
            rope,
            cache[i],
            last_query_probs=ranks_next and stages[0].rule == "fastv",
        )
        if ranks_next:
            source = (stages[0].layer, prepared[i], h_in, h, rope, probs)
    state = PrefillState(prepared, cache, t, plan, kept_visual, rope_all, spans, kept_positions)
    return runner.logits(h[:, -1:])[:, -1], state


def _source_block(layer: int, prepared: list) -> int:
    """Returns the block whose attention ranks a drop at `layer`: the last block with attention
    that runs before it (-1: none)."""
    ran = [i for i in range(layer) if prepared[i] is not None and prepared[i].q is not None]
    return ran[-1] if ran else -1


def _remap(visual: torch.Tensor, keep: torch.Tensor) -> torch.Tensor:
    """Returns the positions in the kept sequence of the visual tokens of `visual` that `keep`
    (sorted positions of the old sequence) kept."""
    return torch.nonzero(torch.isin(keep, visual)).squeeze(1)


def _drop_keep(runner, stage, bw, h, rope, visual, source) -> torch.Tensor | None:
    """Returns the sorted positions of `h` kept by drop `stage` before block `bw` runs (None:
    nothing to rank with, e.g. no block with attention before a FastV/DART stage)."""
    removed = min(stage.removed, len(visual))
    if removed <= 0:
        return None
    if stage.rule == "pyramid":
        if bw.q is None:
            return None
        probs = runner.probe_probs(bw, h, rope)
        return fastv_keep(probs[0], visual, removed, h.shape[1])
    if source is None or source[0] != stage.layer:
        return None
    _, src_bw, src_in, src_out, src_rope, probs = source
    if stage.rule == "fastv":
        return fastv_keep(probs[0], visual, removed, h.shape[1])
    _, keys = runner.probe(src_bw, src_in, src_rope)
    hidden = _norm(runner.lm.norm, src_out, runner.family.norm == "gemma")
    return dart_keep(hidden[0], keys[0], visual, len(visual) - removed)


class _Collect:
    """Enters a timer span and appends the yielded Span to a list."""

    def __init__(self, cm, into: list) -> None:
        self.cm, self.into = cm, into

    def __enter__(self):
        span = self.cm.__enter__()
        self.into.append(span)
        return span

    def __exit__(self, *exc):
        return self.cm.__exit__(*exc)


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


def dart_pivot_count(n_visual: int) -> int:
    """Returns DART's pivots per kind (image, text): 4 on LLaVA's 576 visual tokens, scaled to
    `n_visual`, at least 1."""
    return max(1, round(4 * n_visual / 576))


def dart_keep(
    hidden: torch.Tensor, keys: torch.Tensor, visual: torch.Tensor, n_keep: int
) -> torch.Tensor:
    """Returns the sorted sequence positions kept by DART (Wen et al., arXiv 2502.11494): text
    tokens, and `n_keep` visual tokens — the image pivots (largest L1 norm of the source block's
    keys among visual tokens) and, per pivot in turn (image pivots, then the text pivots: the
    largest-norm tokens after the image), the visual tokens least cosine-similar to it in
    `hidden` [T, D] among those not yet kept. `keys` [n_kv, T, hd]; `visual` positions [n]."""
    t, n = hidden.shape[0], visual.numel()
    norms = keys.permute(1, 0, 2).reshape(t, -1).float().abs().sum(-1)
    p = min(dart_pivot_count(n), n_keep)
    after = torch.arange(int(visual.max()) + 1, t, device=hidden.device)
    image_pivots = visual[norms[visual].topk(p).indices].sort().values
    text_pivots = (
        after[norms[after].topk(min(p, after.numel())).indices].sort().values
        if after.numel()
        else after
    )
    pivots = torch.cat([image_pivots, text_pivots])
    chosen = set(image_pivots.tolist())
    per_pivot = math.ceil((n_keep - p) / max(pivots.numel(), 1))
    feats = F.normalize(hidden.float(), dim=-1)
    for pivot in pivots.tolist():
        left = n_keep - len(chosen)
        if left <= 0:
            break
        valid = torch.tensor([v for v in visual.tolist() if v not in chosen], device=visual.device)
        sim = feats[valid] @ feats[pivot]
        take = valid[(-sim).topk(min(per_pivot, left, valid.numel())).indices]
        chosen.update(take.tolist())
    keep = torch.ones(t, dtype=torch.bool, device=hidden.device)
    keep[visual] = False
    keep[torch.tensor(sorted(chosen), device=hidden.device, dtype=torch.long)] = True
    return torch.nonzero(keep).squeeze(1)


def decode_step(runner: LlavaRunner, token_id: torch.Tensor, state: PrefillState) -> torch.Tensor:
    """Runs one greedy decode step for `token_id` [1, 1] (a device tensor) under the prefill's
    plan; returns logits [1, V]. The position is host-side bookkeeping: no transfer."""
    h = runner.embed_tokens(token_id)
    p = state.next_position
    rope = state.rope.narrow(p + 1, p)
    for bw, entry in zip(state.prepared, state.cache):
        if bw is not None:
            h, _ = runner.block(bw, h, rope, entry)
    state.next_position += 1
    return runner.logits(h)[:, -1]


def decode_step_static(
    runner: LlavaRunner,
    token_id: torch.Tensor,
    prepared: list[BlockWeights | None],
    cache: list[StaticKV | None],
    rope: Rope,
    counters: torch.Tensor,
) -> torch.Tensor:
    """Runs one greedy decode step with static shapes and no host values (what a CUDA graph
    captures, adabench/models/cuda_graphs.py); returns logits [1, V].

    `counters` [n + 1] (device, long) holds each cache entry's length (the `at` of `cache`,
    views of it) and, last, the step's position; the step advances all of them by one."""
    h = runner.embed_tokens(token_id)
    rope_p = rope.take(counters[-1:])
    for bw, entry in zip(prepared, cache):
        if bw is not None:
            h, _ = runner.block(bw, h, rope_p, entry)
    counters.add_(1)
    return runner.logits(h)[:, -1]
