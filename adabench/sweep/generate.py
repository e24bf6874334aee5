"""One timed greedy generation under a method's plan: prefill (TTFT) and each decode step timed directly."""

from __future__ import annotations

from dataclasses import dataclass, field

import torch

from adabench.measure.busy import held_gpu_ms
from adabench.measure.timing import Timer
from adabench.models.cuda_graphs import static_decode
from adabench.models.execution import LlavaRunner, decode_step, prefill
from adabench.models.methods import Method, checked_request


@dataclass
class PreparedSample:
    """Processor outputs of one sample (made once per suite and model, reused by every arm).
    Kept on the host; `to(device)` gives the copy a timed generation reads."""

    sample_id: str
    input_ids: torch.Tensor
    pixel_values: torch.Tensor
    image_positions: torch.Tensor | None = field(
        default=None,
        metadata={
            "help": "positions of the image tokens in input_ids (1-D, made on the host, "
            "so FastV and PruMerge need no device → host sync to find them)"
        },
    )
    visual: dict[str, torch.Tensor] = field(
        default_factory=dict,
        metadata={
            "help": "the other processor tensors the wrapper's vision side reads (image_sizes, "
            "pixel_attention_mask, image_grid_thw; adabench/models/wrappers/)"
        },
    )
    rotary: torch.Tensor | None = field(
        default=None,
        metadata={
            "help": "3-D rotary positions [3, 1, T] of an mrope wrapper (Qwen-VL), else None"
        },
    )

    def to(self, device: torch.device) -> PreparedSample:
        """Returns this sample with its tensors on `device` (itself when already there). Every
        model-facing use of a prepared sample goes through this (`generate` calls it itself)."""
        if self.input_ids.device == device and self.pixel_values.device == device:
            return self

        def move(t: torch.Tensor | None) -> torch.Tensor | None:
            return None if t is None else t.to(device, non_blocking=True)

        return PreparedSample(
            self.sample_id,
            move(self.input_ids),
            move(self.pixel_values),
            move(self.image_positions),
            {k: move(v) for k, v in self.visual.items()},
            move(self.rotary),
        )


@dataclass
class Generation:
    """Result of one timed generation. Times in milliseconds."""

    token_ids: list[int]
    latency_ms: float
    prefill_ms: float
    decode_ms: list[float]
    overhead_ms: float
    prompt_len: int
    full_prompt_len: int
    plan: object
    kept_visual: int | None = None
    info: dict = field(default_factory=dict)
    overhead_parts_ms: dict[str, float] = field(
        default_factory=dict,
        metadata={"help": "overhead_ms split: encoder, scheduler, plan (ms; they sum to it)"},
    )
    decode_held_ms: list[float] = field(
        default_factory=list,
        metadata={
            "help": "probe_busy on CUDA: GPU ms of each decode step re-run behind a spin hold "
            "after the timed region (adabench.measure.busy); empty otherwise"
        },
    )


@torch.inference_mode()
def generate(
    runner: LlavaRunner,
    method: Method,
    ps: PreparedSample,
    max_new_tokens: int,
    eos_id: int | None,
    timer: Timer,
    cuda_graphs: bool = False,
    probe_busy: bool = False,
) -> Generation:
    """Returns the greedy generation of `ps` under `method`, with end-to-end, prefill and
    per-token decode latency measured directly (decode is never derived by subtraction).

    Only the end-to-end region is a synchronised `timer.track()`; prefill, every decode step and
    the method's own work are `timer.span()`s (CUDA events, no synchronisation), so every method
    runs with the synchronisations `full` has: one `.item()` per token for the EOS check. The
    next token stays on the device.

    `overhead_ms` is the method's own work, split in `overhead_parts_ms` (encoder and plan are
    host work, timed by the wall clock: `Timer.host_span`; the scheduler is a GPU span):
      encoder    `method.request` (AdaLLaVA: the cached latency token; PruMerge: token selection),
      scheduler  `decide` mid-prefill (AdaLLaVA: scheduler + plan),
      plan       preparing the plan's block weights (views; copies only for split head sets).

    With `cuda_graphs`, decode steps run on the plan's static buffers
    (adabench/models/cuda_graphs.py): captured and replayed as a CUDA graph on CUDA, the same
    static-buffer step run eagerly elsewhere (what the CPU tests check).

    With `probe_busy` on CUDA, after the timed region the decode steps are run again on the
    same tokens, each behind a spin hold (`decode_held_ms`, adabench.measure.busy): not timed,
    for the GPU-busy fraction only (the warm-up runs probe)."""
    ps = ps.to(runner.device)  # the one host → device move (a no-op when the caller did it)
    image_token = runner.model.config.image_token_id
    decode_spans = []
    tokens: list[int] = []
    with timer.track() as e2e:
        with timer.span() as pf:
            feats = runner.image_features(ps.pixel_values, ps.visual)
            with timer.host_span() as encoder:  # host work (a cached token, a lookup)
                request = checked_request(method, ps.sample_id, ps.input_ids, feats)
            ids, positions = ps.input_ids, ps.image_positions
            if positions is None:  # a sample made without them: found on the device (a sync)
                positions = torch.nonzero(ids[0] == image_token).squeeze(1)
            if request.image_features is not None:
                n_keep = request.image_features.shape[1]
                ids = _shrink_image_tokens(ids, positions, n_keep)
                positions = positions[:n_keep]  # the kept run starts where the image did
                feats = request.image_features
            embeds = runner.embed(ids, feats)
            if request.extra_embeds is not None:
                embeds = torch.cat([embeds, request.extra_embeds.to(embeds.dtype)], dim=1)
            drops = request.plan is not None and bool(request.plan.token_drops)
            logits, state = prefill(
                runner,
                embeds,
                request.plan,
                embeds.shape[1] + max_new_tokens,
                decide=request.decide,
                decide_at=request.decide_at,
                visual_positions=positions if drops else None,
                timer=timer,
                rotary=ps.rotary,
            )
            next_id = logits.argmax(-1, keepdim=True)
        rewind = ([e.length if e is not None else 0 for e in state.cache], state.next_position)
        tokens.append(int(next_id))
        static, load_static = None, cuda_graphs
        while len(tokens) < max_new_tokens and tokens[-1] != eos_id:
            with timer.span() as step:
                if load_static:  # the first step loads (or captures) the plan's static decode
                    static, load_static = static_decode(runner, state, timer.is_cuda), False
                logits = static.step(next_id) if static else decode_step(runner, next_id, state)
                next_id = logits.argmax(-1, keepdim=True)
            decode_spans.append(step)
            tokens.append(int(next_id))
    held = []
    if probe_busy and timer.is_cuda and decode_spans:
        hold_ms = 2 * max(s.elapsed_ms for s in decode_spans) + 1
        held = _held_decode_ms(runner, state, rewind, tokens, cuda_graphs, hold_ms)
    parts = {
        "encoder": encoder.elapsed_ms,
        "scheduler": sum(s.elapsed_ms for s in state.spans.get("scheduler", [])),
        "plan": sum(s.elapsed_ms for s in state.spans.get("plan", [])),
    }
    full_len = ps.input_ids.shape[1] + (
        0 if request.extra_embeds is None else request.extra_embeds.shape[1]
    )
    return Generation(
        tokens,
        e2e.elapsed_ms,
        pf.elapsed_ms,
        [s.elapsed_ms for s in decode_spans],
        sum(parts.values()),
        embeds.shape[1],
        full_len,
        state.plan,
        state.kept_visual,
        request.info,
        parts,
        held,
    )


def _held_decode_ms(runner, state, rewind, tokens, cuda_graphs: bool, hold_ms: float):
    """Returns the held GPU ms of each decode step of a finished generation, re-run from its
    prefill state (`rewind`: each cache entry's length and the position after prefill) on the
    tokens it produced; what the re-run writes to the KV cache is what the run wrote."""
    lengths, position = rewind
    for entry, length in zip(state.cache, lengths):
        if entry is not None:
            entry.length = length
    state.next_position = position
    static = static_decode(runner, state, capture=True) if cuda_graphs else None
    out = []
    for token in tokens[:-1]:
        token_id = torch.tensor([[token]], device=runner.device)
        step = (lambda t=token_id: static.step(t)) if static else (
            lambda t=token_id: decode_step(runner, t, state)
        )  # fmt: skip
        out.append(held_gpu_ms(runner.device, step, hold_ms))
    return out


def _shrink_image_tokens(ids: torch.Tensor, positions: torch.Tensor, n_keep: int) -> torch.Tensor:
    """Returns `ids` with its image-token run (at `positions`) shortened to its first `n_keep`
    tokens (PruMerge before the LLM)."""
    drop = positions[n_keep:]
    keep = torch.ones(ids.shape[1], dtype=torch.bool, device=ids.device)
    keep[drop] = False
    return ids[:, keep]
