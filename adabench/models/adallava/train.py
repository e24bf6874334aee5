"""Fine-tune a Llava model into AdaLLaVA-L/H (docs/adallava.md §5–6) on a procedural suite.

Joint training of the LLM, projector, latency encoder and scheduler (vision tower frozen) with
the LM loss on answer tokens only. Per sample, k is uniform on {0, …, N−P} units (the budget
grid P/N … 1); k rounds of masked Gumbel-softmax (τ = 5, straight-through) pick the units;
masks multiply head outputs (before o_proj), MLP activations (before down_proj) or block outputs.
The latency token sits right after the prompt, just before the answer.
"""

from __future__ import annotations

import json
import math
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch
import torch.nn.functional as F

from adabench.data import synthetic
from adabench.models.adallava.model import (
    AdaLlavaConfig,
    AdaLlavaForConditionalGeneration,
    AdaLlavaHead,
    forward_masked,
)
from adabench.models.execution import LlavaRunner
from adabench.models.tiny import PROMPT
from adabench.models.training_data import Batch, batches, make_batch

VAL_BUDGETS = (0.5, 0.75, 1.0)


@dataclass
class AdaTrainConfig:
    """Settings of `adabench train adallava`."""

    variant: str = field(metadata={"help": "L (blocks) or H (heads + MLP groups)"})
    base: str = field(metadata={"help": "base Llava checkpoint (alias or folder)"})
    out: Path = field(metadata={"help": "output folder"})
    minutes: float = field(default=10.0, metadata={"help": "wall-clock budget in minutes"})
    max_steps: int = field(default=0, metadata={"help": "stop after this many steps (0: none)"})
    seed: int = field(default=0, metadata={"help": "seed"})
    batch_size: int = field(default=32, metadata={"help": "samples per step"})
    lr: float = field(default=3e-4, metadata={"help": "peak learning rate (LLM, projector)"})
    head_lr: float = field(
        default=3e-3, metadata={"help": "learning rate of latency encoder + scheduler"}
    )
    warmup_frac: float = field(default=0.03, metadata={"help": "warm-up fraction (paper: 0.03)"})
    eval_every: int = field(default=200, metadata={"help": "steps between val evaluations"})
    val_size: int = field(default=300, metadata={"help": "val samples per budget"})
    test_size: int = field(default=1000, metadata={"help": "test samples of the final summary"})
    prefix_layers: int | None = field(default=None, metadata={"help": "P (default N/2)"})
    group_size: int | None = field(
        default=None, metadata={"help": "r for H (default 8, or H/2 for small models)"}
    )


def insert_latency_token(runner: LlavaRunner, head: AdaLlavaHead, batch: Batch, k: torch.Tensor):
    """Returns (embeds with the latency token after each prompt, its positions, shifted targets [B, T])."""
    with torch.no_grad():
        feats = runner.image_features(batch.pixel_values)
    embeds = runner.embed(batch.input_ids, feats)
    token = head.latency_token(k)
    bsz, t, d = embeds.shape
    out = embeds.new_zeros(bsz, t + 1, d)
    targets = torch.full((bsz, t + 1), -100, dtype=torch.long)
    for b in range(bsz):
        p = int(batch.prompt_lens[b])
        out[b] = torch.cat([embeds[b, :p], token[b], embeds[b, p:]])
        labels = torch.cat([batch.labels[b, :p], torch.tensor([-100]), batch.labels[b, p:]])
        targets[b, :-1] = labels[1:]  # logits at position i predict token i + 1
    return out, batch.prompt_lens.clone(), targets


def lr_scale(step: int, total: int, warmup: int) -> float:
    """Returns the LR multiplier: linear warm-up, cosine decay to zero."""
    if step < warmup:
        return (step + 1) / warmup
    return 0.5 * (1 + math.cos(math.pi * min(1.0, (step - warmup) / max(1, total - warmup))))


@torch.no_grad()
def val_accuracy(runner, head, processor, items, budget: float) -> dict[str, float]:
    """Returns first-token accuracy per family (+ overall) at `budget` with deterministic plans."""
    scores: dict[str, list[float]] = {}
    k_val = head.k_for(budget)
    for start in range(0, len(items), 100):
        batch = make_batch(processor, items[start : start + 100], PROMPT, with_answer=False)
        k = torch.full((len(batch.families),), k_val)
        embeds, lat_pos, _ = insert_latency_token(runner, head, batch, k)
        logits = forward_masked(runner, head, embeds, lat_pos, k, sample=False)
        pred = logits[torch.arange(len(k)), lat_pos].argmax(-1)
        gold = torch.tensor(processor.tokenizer.convert_tokens_to_ids(batch.answers))
        for fam, ok in zip(batch.families, (pred == gold).tolist()):
            scores.setdefault(fam, []).append(float(ok))
    table = {f: sum(v) / len(v) for f, v in sorted(scores.items())}
    table["overall"] = sum(sum(v) for v in scores.values()) / sum(len(v) for v in scores.values())
    return table


def train_adallava(cfg: AdaTrainConfig, progress=None) -> dict:
    """Fine-tunes `cfg.base` into AdaLLaVA-`cfg.variant`, saves it to `cfg.out`; returns a summary."""
    from adabench.models.loading import load_model

    torch.manual_seed(cfg.seed)
    loaded = load_model(cfg.base, device="cpu", dtype="float32")
    model, processor = loaded.model, loaded.processor
    head = AdaLlavaHead(
        AdaLlavaConfig.for_model(model.config, cfg.variant, cfg.prefix_layers, cfg.group_size)
    )
    runner = LlavaRunner(model)
    for p in model.model.vision_tower.parameters():
        p.requires_grad_(False)
    model.train()
    head.train()
    trainable = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(
        [{"params": trainable, "lr": cfg.lr}, {"params": head.parameters(), "lr": cfg.head_lr}],
        weight_decay=0.0,
    )
    base_lrs = [cfg.lr, cfg.head_lr]
    stream = batches(
        processor, "train", cfg.batch_size, cfg.seed + 17, PROMPT, families=synthetic.FAMILIES
    )
    val_items = synthetic.generate("val", cfg.val_size)
    sel = head.config.units.selectable
    start, step, total, history = time.monotonic(), 0, 10_000, []
    while time.monotonic() - start < cfg.minutes * 60 and not (0 < cfg.max_steps <= step):
        batch = next(stream)
        k = torch.randint(0, sel + 1, (len(batch.families),))
        for group, base_lr in zip(opt.param_groups, base_lrs):
            group["lr"] = base_lr * lr_scale(step, total, max(1, int(cfg.warmup_frac * total)))
        embeds, lat_pos, targets = insert_latency_token(runner, head, batch, k)
        logits = forward_masked(runner, head, embeds, lat_pos, k, sample=True)
        loss = F.cross_entropy(
            logits.reshape(-1, logits.shape[-1]), targets.reshape(-1), ignore_index=-100
        )
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(trainable + list(head.parameters()), 1.0)
        opt.step()
        step += 1
        elapsed = time.monotonic() - start
        if step == 10:
            total = int(cfg.minutes * 60 / (elapsed / step))
        if cfg.max_steps:
            total = min(total, cfg.max_steps)
        if progress:
            progress(step, total, float(loss.detach()), elapsed)
        if step % cfg.eval_every == 0:
            model.eval()
            history.append(
                {
                    "step": step,
                    "loss": float(loss.detach()),
                    **{
                        str(b): val_accuracy(runner, head, processor, val_items, b)["overall"]
                        for b in VAL_BUDGETS
                    },
                }
            )
            model.train()
            print(json.dumps(history[-1]), flush=True)
    model.eval()
    head.eval()
    test_items = synthetic.generate("test", cfg.test_size)
    summary = {
        "config": {k: str(v) for k, v in asdict(cfg).items()},
        "steps": step,
        "train_minutes": round((time.monotonic() - start) / 60, 2),
        "history": history,
        "adallava": asdict(head.config),
        "test": {
            str(b): val_accuracy(runner, head, processor, test_items, b)
            for b in (0.5, 0.6, 0.75, 0.85, 1.0)
        },
    }
    AdaLlavaForConditionalGeneration(model, head).save_pretrained(cfg.out)
    processor.save_pretrained(cfg.out)
    (Path(cfg.out) / "training.json").write_text(json.dumps(summary, indent=2))
    return summary
