"""Train the embedded tiny LLaVA from scratch on the `shapes` train split (CPU-friendly).

AdamW, linear warm-up then cosine decay, loss on answer tokens only, seeded, rich progress,
periodic val accuracy, an HF-format checkpoint (fp16 safetensors + processor) and a model card.
"""

from __future__ import annotations

import json
import math
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch
from transformers import LlavaForConditionalGeneration

from adabench.data import synthetic
from adabench.models import tiny
from adabench.models.training_data import TRAIN_FAMILIES, Batch, batches, make_batch
from adabench.models.vision_pretrain import pretrain_vision


@dataclass
class BaseTrainConfig:
    """Settings of `adabench train base`."""

    out: Path = field(metadata={"help": "output folder for the HF checkpoint"})
    minutes: float = field(default=20.0, metadata={"help": "wall-clock training budget in minutes"})
    seed: int = field(default=0, metadata={"help": "seed for init and data"})
    batch_size: int = field(default=64, metadata={"help": "samples per optimizer step"})
    lr: float = field(default=7e-4, metadata={"help": "peak learning rate"})
    vision_steps: int = field(default=250, metadata={"help": "stage-0 vision pre-training steps"})
    init_from: Path | None = field(
        default=None, metadata={"help": "continue from this checkpoint (skips stage 0)"}
    )
    spatial_weight: int = field(
        default=1, metadata={"help": "how many times `spatial` appears in the family mix"}
    )
    position_probe: bool = field(
        default=False, metadata={"help": "stage 0 also predicts each token's cell"}
    )
    vision_lr_scale: float = field(
        default=0.0, metadata={"help": "train the vision tower at lr × this (0 = frozen)"}
    )
    warmup_steps: int = field(default=150, metadata={"help": "linear warm-up steps"})
    eval_every: int = field(default=250, metadata={"help": "steps between val evaluations"})
    val_size: int = field(default=500, metadata={"help": "val samples per evaluation"})
    threads: int = field(default=0, metadata={"help": "torch threads (0 = all cores)"})


def lr_at(step: int, total_steps: int, cfg: BaseTrainConfig) -> float:
    """Returns the learning rate at `step`: linear warm-up, then cosine decay to 5 % of peak."""
    if step < cfg.warmup_steps:
        return cfg.lr * (step + 1) / cfg.warmup_steps
    progress = min(1.0, (step - cfg.warmup_steps) / max(1, total_steps - cfg.warmup_steps))
    return cfg.lr * (0.05 + 0.95 * 0.5 * (1 + math.cos(math.pi * progress)))


@torch.no_grad()
def first_token_accuracy(model, batch: Batch, tokenizer, forward=None) -> dict[str, list[float]]:
    """Returns per-family lists of 0/1: greedy first answer token == the gold answer token.

    All `shapes` answers are one token, so this equals greedy generation's exact match.
    `forward(batch) -> logits` overrides the plain model call (AdaLLaVA passes its budgeted one).
    """
    logits = (
        forward(batch)
        if forward
        else model(
            pixel_values=batch.pixel_values,
            input_ids=batch.input_ids,
            attention_mask=batch.attention_mask,
        ).logits
    )
    idx = (batch.prompt_lens - 1).clamp(min=0)
    pred = logits[torch.arange(len(idx)), idx].argmax(-1)
    gold = torch.tensor(tokenizer.convert_tokens_to_ids(batch.answers))
    result: dict[str, list[float]] = {}
    for fam, ok in zip(batch.families, (pred == gold).tolist()):
        result.setdefault(fam, []).append(float(ok))
    return result


def evaluate_split(
    model, processor, split: str, n: int, seed: int = 0, forward=None
) -> dict[str, float]:
    """Returns accuracy per family and "overall" on `n` samples of `split` (first-token greedy)."""
    model.eval()
    items = synthetic.generate(split, n, seed=seed)
    scores: dict[str, list[float]] = {}
    for start in range(0, n, 100):
        batch = make_batch(processor, items[start : start + 100], tiny.PROMPT, with_answer=False)
        for fam, vals in first_token_accuracy(model, batch, processor.tokenizer, forward).items():
            scores.setdefault(fam, []).extend(vals)
    table = {fam: sum(v) / len(v) for fam, v in sorted(scores.items())}
    table["overall"] = sum(sum(v) for v in scores.values()) / sum(len(v) for v in scores.values())
    return table


def train_base(cfg: BaseTrainConfig, progress=None) -> dict:
    """Trains the tiny model for `cfg.minutes` and saves it to `cfg.out`; returns the summary dict."""
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    torch.manual_seed(cfg.seed)
    processor = tiny.build_processor()
    tok = processor.tokenizer
    config = tiny.build_config(
        len(tok),
        tok.convert_tokens_to_ids("<image>"),
        tok.pad_token_id,
        tok.bos_token_id,
        tok.eos_token_id,
    )
    if cfg.init_from is not None:  # a second stage continues a checkpoint with a fresh schedule
        model = LlavaForConditionalGeneration.from_pretrained(cfg.init_from, dtype=torch.float32)
        probe_acc = float("nan")
    else:
        model = LlavaForConditionalGeneration(config)
        # Stage 0: the CLIP tower learns to see each cell, then stays frozen (as in LLaVA's recipe).
        probe_acc = pretrain_vision(
            model.model.vision_tower,
            processor.image_processor,
            steps=cfg.vision_steps,
            seed=cfg.seed,
            position=cfg.position_probe,
        )
    vision = list(model.model.vision_tower.parameters())
    for p in vision:
        p.requires_grad_(cfg.vision_lr_scale > 0)
    model.train()
    trainable = [p for p in model.parameters() if p.requires_grad]
    vision_ids = {id(p) for p in vision}
    groups = [{"params": [p for p in trainable if id(p) not in vision_ids], "lr_scale": 1.0}]
    if cfg.vision_lr_scale > 0:
        groups.append({"params": vision, "lr_scale": cfg.vision_lr_scale})
    opt = torch.optim.AdamW(groups, lr=cfg.lr, weight_decay=0.01, betas=(0.9, 0.98))
    families = tuple(
        f for f in TRAIN_FAMILIES for _ in range(cfg.spatial_weight if f == "spatial" else 1)
    )
    stream = batches(processor, "train", cfg.batch_size, cfg.seed, tiny.PROMPT, families=families)
    budget_s, start = cfg.minutes * 60, time.monotonic()
    # Estimate total steps from the first steps' speed so the cosine schedule ends on time.
    total_steps, step, history = 10_000, 0, []
    while time.monotonic() - start < budget_s:
        batch = next(stream)
        for group in opt.param_groups:
            group["lr"] = lr_at(step, total_steps, cfg) * group["lr_scale"]
        loss = model(
            pixel_values=batch.pixel_values,
            input_ids=batch.input_ids,
            attention_mask=batch.attention_mask,
            labels=batch.labels,
        ).loss
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(trainable, 1.0)
        opt.step()
        step += 1
        elapsed = time.monotonic() - start
        if step == 20:
            total_steps = int(budget_s / (elapsed / step))
        if progress:
            progress(step, total_steps, float(loss), elapsed)
        if step % cfg.eval_every == 0:
            val = evaluate_split(model, processor, "val", cfg.val_size)
            history.append({"step": step, "minutes": elapsed / 60, "loss": float(loss), **val})
            model.train()
            print(json.dumps(history[-1]), flush=True)
    train_minutes = (time.monotonic() - start) / 60
    val = evaluate_split(model, processor, "val", cfg.val_size)
    test = evaluate_split(model, processor, "test", 1000)
    summary = {
        "config": {k: str(v) for k, v in asdict(cfg).items()},
        "steps": step,
        "vision_probe_accuracy": probe_acc,
        "train_minutes": round(train_minutes, 2),
        "parameters": sum(p.numel() for p in model.parameters()),
        "val": val,
        "test": test,
        "history": history,
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
    }
    save(model, processor, cfg.out, summary)
    return summary


def save(model, processor, out: Path, summary: dict) -> None:
    """Saves `model` (fp16 safetensors), `processor` and `training.json` to `out`."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    model.to(torch.float16).save_pretrained(out, safe_serialization=True)
    model.to(torch.float32)
    processor.save_pretrained(out)
    (out / "training.json").write_text(json.dumps(summary, indent=2))
