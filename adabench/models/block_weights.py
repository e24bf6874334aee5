"""The weights one decoder block runs with under a plan: views of the model's own weights.

A head is a contiguous block of rows of q_proj (k/v: its key/value head) and of columns of
o_proj; an MLP neuron group is a contiguous block of rows of gate_proj/up_proj and of columns of
down_proj. A kept set of heads or groups that forms one run is therefore a *view* (no copy, no
kernel). Several runs are either joined by one `torch.cat` of views per weight, which copies the
kept bytes once per request, or kept as `Runs` of views run one matmul per run (no copy): the
first for small halves (a kernel's dispatch costs more than copying them), the second for large
ones on CPU (a width-1024 block's copy costs milliseconds; see `HalfCache`). Neither needs index
tensors or host→device transfers, so the per-step work of a partial block is the op sequence
of a full block on fewer rows and its latency differs from a full block's by the work it skips.

A block's kept heads (its attention half) and kept MLP groups (its MLP half) are prepared and
cached separately (`HalfCache`): plans that differ in one block still share the other halves.
benchmarks/adaptive_overhead.py `--paths` times one partial projection pair both ways and with
index_select gathers (the same bytes as the cat, plus index tensors to build per request).
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from adabench.models.families import Decoder
from adabench.models.plan import LayerPlan

MAX_HALVES = 4096  # entries of a HalfCache (views included; each a few hundred bytes)


@dataclass(frozen=True)
class LayerSpec:
    """How one decoder layer computes besides its projections (from its family, see
    adabench/models/families/): its norm modules, window, rotary table and activation."""

    attn_norm: torch.nn.Module
    mlp_norm: torch.nn.Module
    post_attn_norm: torch.nn.Module | None  # Gemma: norm of the attention output
    post_mlp_norm: torch.nn.Module | None  # Gemma: norm of the MLP output
    q_norm: torch.nn.Module | None  # Qwen3, Gemma 3: per-head norm of q and k
    k_norm: torch.nn.Module | None
    gemma_norm: bool  # (1 + w)·x̂ in float32 (Gemma) instead of w·x̂
    window: int | None  # sliding window: keys visible to a query, itself included
    rope_key: str  # which rotary table (Gemma 3 has one per layer type)
    act: object  # the MLP activation module of the layer


def layer_spec(layer: torch.nn.Module, decoder: Decoder, index: int) -> LayerSpec:
    """Returns the LayerSpec of decoder layer `index` (module names from its family)."""
    fam, attn, mlp = decoder.family, layer.self_attn, layer.mlp
    return LayerSpec(
        attn_norm=getattr(layer, fam.attn_norm),
        mlp_norm=getattr(layer, fam.mlp_norm),
        post_attn_norm=getattr(layer, fam.post_attn_norm) if fam.post_attn_norm else None,
        post_mlp_norm=getattr(layer, fam.post_mlp_norm) if fam.post_mlp_norm else None,
        q_norm=attn.q_norm if fam.qk_norm else None,
        k_norm=attn.k_norm if fam.qk_norm else None,
        gemma_norm=fam.norm == "gemma",
        window=decoder.windows[index],
        rope_key=decoder.rope_keys[index],
        act=getattr(mlp, "act_fn", None) or mlp.activation_fn,
    )


def projections(layer: torch.nn.Module, decoder: Decoder) -> dict[str, tuple]:
    """Returns {q, k, v, o, gate, up, down: (weight, bias)} of `layer`; fused projections
    (Phi-3's qkv_proj rows [q | k | v], gate_up_proj rows [gate | up]) are split into row views."""
    attn, mlp = layer.self_attn, layer.mlp

    def wb(lin, start=None, stop=None):
        w, b = lin.weight, lin.bias
        if start is None:
            return (w, b)
        return (w[start:stop], None if b is None else b[start:stop])

    if decoder.family.fused:
        q_rows = decoder.num_heads * decoder.head_dim
        kv_rows = decoder.num_kv_heads * decoder.head_dim
        inter = decoder.intermediate_size
        qkv, gate_up = attn.qkv_proj, mlp.gate_up_proj
        return {
            "q": wb(qkv, 0, q_rows),
            "k": wb(qkv, q_rows, q_rows + kv_rows),
            "v": wb(qkv, q_rows + kv_rows, q_rows + 2 * kv_rows),
            "o": wb(attn.o_proj),
            "gate": wb(gate_up, 0, inter),
            "up": wb(gate_up, inter, 2 * inter),
            "down": wb(mlp.down_proj),
        }
    names = {"q": attn.q_proj, "k": attn.k_proj, "v": attn.v_proj, "o": attn.o_proj}
    names |= {"gate": mlp.gate_proj, "up": mlp.up_proj, "down": mlp.down_proj}
    return {key: wb(lin) for key, lin in names.items()}


@dataclass
class BlockWeights:
    """Weights one block runs with for a request (the parameters for full blocks, views or
    joined runs of views for partial ones)."""

    layer: torch.nn.Module
    spec: LayerSpec
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


def full_block(layer: torch.nn.Module, decoder: Decoder, index: int, kv_of_q) -> BlockWeights:
    """Returns the weights of decoder layer `index` run in full (the module's parameters, or
    row views of its fused projections)."""
    p = projections(layer, decoder)
    return BlockWeights(
        layer,
        layer_spec(layer, decoder, index),
        p["q"],
        p["k"],
        p["v"],
        p["o"],
        kv_of_q,
        decoder.num_heads,
        decoder.num_kv_heads,
        p["gate"],
        p["up"],
        p["down"],
    )


def runs(units: list[int]) -> list[tuple[int, int]]:
    """Returns the maximal runs [start, stop) of consecutive values in sorted `units`."""
    out: list[tuple[int, int]] = []
    for u in units:
        if out and out[-1][1] == u:
            out[-1] = (out[-1][0], u + 1)
        else:
            out.append((u, u + 1))
    return out


@dataclass(frozen=True)
class Runs:
    """A projection restricted to several runs of its rows or input columns, without a copy.

    `axis` "rows": `parts` are ((weight, bias), ...) row views; the output is theirs side by
    side (one small cat of activations per forward). "cols": `parts` are (weight, ...) column
    views, `widths` their input widths; the output is the sum of each run applied to its slice
    of the input, plus `bias`."""

    parts: tuple
    axis: str
    widths: tuple[int, ...] = ()
    bias: torch.Tensor | None = None

    @property
    def nbytes(self) -> int:
        """Returns the bytes one cat of the runs would copy."""
        weights = (p[0] for p in self.parts) if self.axis == "rows" else self.parts
        return sum(w.numel() * w.element_size() for w in weights)

    def joined(self) -> tuple:
        """Returns the runs copied into one (weight, bias): one matmul per projection."""
        if self.axis == "cols":
            return torch.cat(self.parts, dim=1), self.bias
        biases = [b for _, b in self.parts]
        bias = None if biases[0] is None else torch.cat(biases)
        return torch.cat([w for w, _ in self.parts]), bias


def linear(x: torch.Tensor, proj) -> torch.Tensor:
    """Returns x·Wᵀ + b of a projection: (weight, bias), or `Runs` of one."""
    if not isinstance(proj, Runs):
        return F.linear(x, *proj)
    if proj.axis == "rows":
        return torch.cat([F.linear(x, w, b) for w, b in proj.parts], dim=-1)
    out, start = None, 0
    for w, width in zip(proj.parts, proj.widths):
        y = F.linear(x[..., start : start + width], w)
        out = y if out is None else out.add_(y)
        start += width
    return out if proj.bias is None else out.add_(proj.bias)


def mlp_runs(x: torch.Tensor, gate: Runs, up: Runs, down: Runs, act) -> torch.Tensor:
    """Returns the MLP output of per-run gate/up rows and down columns: the sum over runs of
    down_r(act(gate_r·x) · up_r·x), so neither weights nor activations are copied."""
    out = None
    for (gw, gb), (uw, ub), dw in zip(gate.parts, up.parts, down.parts):
        y = F.linear(act(F.linear(x, gw, gb)) * F.linear(x, uw, ub), dw)
        out = y if out is None else out.add_(y)
    return out if down.bias is None else out.add_(down.bias)


def _rows(wb: tuple, spans: list[tuple[int, int]], unit: int):
    """Returns (weight, bias) restricted to the rows of `spans` (in units): one run is a view,
    several are `Runs` of views."""
    w, b = wb
    if len(spans) == 1:
        s = slice(spans[0][0] * unit, spans[0][1] * unit)
        return w[s], None if b is None else b[s]
    return Runs(
        tuple(
            (w[a * unit : z * unit], None if b is None else b[a * unit : z * unit])
            for a, z in spans
        ),
        "rows",
    )


def _cols(wb: tuple, spans: list[tuple[int, int]], unit: int):
    """Returns (weight, bias) restricted to the input columns of `spans`: one run is a view,
    several are `Runs` of views."""
    w, b = wb
    if len(spans) == 1:
        return w[:, spans[0][0] * unit : spans[0][1] * unit], b
    parts = tuple(w[:, a * unit : z * unit] for a, z in spans)
    return Runs(parts, "cols", tuple((z - a) * unit for a, z in spans), b)


def attention_half(
    full: BlockWeights,
    heads: tuple[int, ...],
    head_dim: int,
    kv_group: int,
    kv_index,
) -> tuple:
    """Returns (q, k, v, o, kv_of_q, n_q, n_kv) of `full` restricted to the query `heads`
    (empty: no attention); several runs of heads are `Runs` of views. `kv_index(tuple)`
    returns the device tensor mapping kept query heads to kept kv heads (the runner caches
    these few small tensors)."""
    if not heads:
        return (None, None, None, None, None, 0, 0)
    heads_sorted = sorted(heads)
    kv_heads = sorted({h // kv_group for h in heads_sorted})
    head_runs, kv_runs = runs(heads_sorted), runs(kv_heads)
    q, o = _rows(full.q, head_runs, head_dim), _cols(full.o, head_runs, head_dim)
    k, v = _rows(full.k, kv_runs, head_dim), _rows(full.v, kv_runs, head_dim)
    n_q, n_kv = len(heads_sorted), len(kv_heads)
    kv_of_q = (
        kv_index(tuple(kv_heads.index(h // kv_group) for h in heads_sorted))
        if n_q != n_kv
        else None
    )
    return (q, k, v, o, kv_of_q, n_q, n_kv)


def mlp_half(full: BlockWeights, groups: tuple[int, ...], group_count: int) -> tuple:
    """Returns (gate, up, down) of `full` restricted to the MLP `groups` of `group_count`
    contiguous neuron groups (empty: no MLP); several runs of groups are `Runs` of views (run by
    `mlp_runs`)."""
    if not groups:
        return (None, None, None)
    size = full.gate[0].shape[0] // group_count
    group_runs = runs(sorted(groups))
    return (
        _rows(full.gate, group_runs, size),
        _rows(full.up, group_runs, size),
        _cols(full.down, group_runs, size),
    )


class HalfCache:
    """LRU of prepared halves keyed by (block, units, weight version): views cost no bytes,
    copies count in `nbytes`. The version key drops halves of weights updated in place.

    A half with several runs is copied (one matmul per projection afterwards) when the copy is
    under `runs_from_bytes`, and kept as `Runs` of views (one matmul per run, nothing copied)
    otherwise. On CPU a width-1024 block's copy costs milliseconds, more than its extra per-run
    matmuls over a whole request, and plans that vary per request would keep copying (or thrash
    an LRU smaller than their working set); small halves (the embedded tiny models) are cheaper
    copied, where a kernel's dispatch costs more than copying its weights."""

    def __init__(self, head_dim: int, kv_group: int, kv_index, runs_from_bytes: int) -> None:
        self.head_dim, self.kv_group, self.kv_index = head_dim, kv_group, kv_index
        self.runs_from_bytes = runs_from_bytes
        self.halves: OrderedDict = OrderedDict()  # key -> (parts, copied bytes)
        self.nbytes = 0

    def block(
        self, i: int, full: BlockWeights, lp: LayerPlan, group_count: int, used: list
    ) -> BlockWeights:
        """Returns block `i` restricted to `lp`, from cached or new halves; records their keys."""
        attn = (full.q, full.k, full.v, full.o, full.kv_of_q, full.n_q, full.n_kv)
        if lp.heads is not None:
            key = (i, lp.heads, full.q[0]._version)
            args = (full, lp.heads, self.head_dim, self.kv_group, self.kv_index)
            attn = self._get(key, used, attention_half, args)
        mlp = (full.gate, full.up, full.down)
        if lp.mlp_groups is not None:
            key = (i, lp.mlp_groups, group_count, full.gate[0]._version)
            mlp = self._get(key, used, mlp_half, (full, lp.mlp_groups, group_count))
        return BlockWeights(full.layer, full.spec, *attn, *mlp)

    def _get(self, key: tuple, used: list, build, args: tuple) -> tuple:
        used.append(key)
        hit = self.halves.get(key)
        if hit is not None:
            self.halves.move_to_end(key)
            return hit[0]
        parts = build(*args)
        nbytes = sum(p.nbytes for p in parts if isinstance(p, Runs))
        if nbytes < self.runs_from_bytes:  # small enough: copy the runs, one matmul each
            parts = tuple(p.joined() if isinstance(p, Runs) else p for p in parts)
        else:
            nbytes = 0
        self.halves[key] = (parts, nbytes)
        self.nbytes += nbytes
        return parts

    def evict(self, used: list, limit_bytes: int) -> None:
        """Drops the least recently used halves beyond `limit_bytes` of copies (and MAX_HALVES
        entries), never one in `used` (the plan in use), so one plan always fits."""
        while self.halves and (self.nbytes > limit_bytes or len(self.halves) > MAX_HALVES):
            key = next(iter(self.halves))
            if key in used:
                break
            self.nbytes -= self.halves.pop(key)[1]
