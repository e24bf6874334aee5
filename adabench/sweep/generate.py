"""One timed greedy generation under a method's plan: prefill (TTFT) and each decode step timed directly."""

from __future__ import annotations

from dataclasses import dataclass, field

import torch

from adabench.measure.timing import Timer
from adabench.models.execution import LlavaRunner, decode_step, prefill
from adabench.models.methods import Method


@dataclass
class PreparedSample:
    """Processor outputs of one sample (made once per suite and model, reused by every arm).
    Kept on the host; `to(device)` gives the copy a timed generation reads."""

    sample_id: str
    input_ids: torch.Tensor
    pixel_values: torch.Tensor

    def to(self, device: torch.device) -> PreparedSample:
        """Returns this sample with its tensors on `device` (itself when already there)."""
        if self.input_ids.device == device and self.pixel_values.device == device:
            return self
        return PreparedSample(
            self.sample_id,
            self.input_ids.to(device, non_blocking=True),
            self.pixel_values.to(device, non_blocking=True),
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


@torch.inference_mode()
def generate(
    runner: LlavaRunner,
    method: Method,
    ps: PreparedSample,
    max_new_tokens: int,
    eos_id: int | None,
    timer: Timer,
) -> Generation:
    """Returns the greedy generation of `ps` under `method`, with end-to-end, prefill and
    per-token decode latency measured directly (decode is never derived by subtraction).

    `overhead_ms` is the time of the method's own decision (AdaLLaVA scheduler + latency encoder,
    token scoring), measured inside prefill with the same clock."""
    image_token = runner.model.config.image_token_id
    decode_ms: list[float] = []
    tokens: list[int] = []
    overhead = {"ms": 0.0}
    with timer.track() as e2e:
        with timer.track() as pf:
            feats = runner.image_features(ps.pixel_values)
            with timer.track() as req_clock:
                request = method.request(ps.sample_id, ps.input_ids, feats)
            overhead["ms"] += req_clock.elapsed_ms
            ids = ps.input_ids
            if request.image_features is not None:
                ids = _shrink_image_tokens(ids, image_token, request.image_features.shape[1])
                feats = request.image_features
            embeds = runner.embed(ids, feats)
            if request.extra_embeds is not None:
                embeds = torch.cat([embeds, request.extra_embeds.to(embeds.dtype)], dim=1)
            visual_positions = torch.nonzero(ids[0] == image_token).squeeze(1)
            decide = request.decide
            if decide is not None:
                decide = _timed(decide, timer, overhead)
            logits, state = prefill(
                runner,
                embeds,
                request.plan,
                embeds.shape[1] + max_new_tokens,
                decide=decide,
                decide_at=request.decide_at,
                visual_positions=visual_positions,
            )
            token = int(logits.argmax(-1))
        tokens.append(token)
        while len(tokens) < max_new_tokens and token != eos_id:
            with timer.track() as step:
                logits = decode_step(runner, torch.tensor([[token]], device=ids.device), state)
                token = int(logits.argmax(-1))
            decode_ms.append(step.elapsed_ms)
            tokens.append(token)
    full_len = ps.input_ids.shape[1] + (
        0 if request.extra_embeds is None else request.extra_embeds.shape[1]
    )
    return Generation(
        tokens,
        e2e.elapsed_ms,
        pf.elapsed_ms,
        decode_ms,
        overhead["ms"],
        embeds.shape[1],
        full_len,
        state.plan,
        state.kept_visual,
        request.info,
    )


def _timed(fn, timer: Timer, acc: dict):
    def wrapped(*args):
        with timer.track() as run:
            result = fn(*args)
        acc["ms"] += run.elapsed_ms
        return result

    return wrapped


def _shrink_image_tokens(ids: torch.Tensor, image_token: int, n_keep: int) -> torch.Tensor:
    """Returns `ids` with its image-token run shortened to `n_keep` tokens (PruMerge before the LLM)."""
    positions = torch.nonzero(ids[0] == image_token).squeeze(1)
    drop = positions[n_keep:]
    keep = torch.ones(ids.shape[1], dtype=torch.bool, device=ids.device)
    keep[drop] = False
    return ids[:, keep]
