"""Batches for training on a suite: pixel values, prompt+answer ids, labels on answer tokens only."""

from __future__ import annotations

import random
from collections.abc import Iterator
from dataclasses import dataclass

import torch

from adabench.data import synthetic


@dataclass
class Batch:
    """One training/eval batch (right-padded)."""

    pixel_values: torch.Tensor
    input_ids: torch.Tensor
    attention_mask: torch.Tensor
    labels: torch.Tensor
    prompt_lens: torch.Tensor
    families: list[str]
    answers: list[str]


def make_batch(
    processor, items: list[synthetic.ShapesItem], prompt: str, with_answer: bool = True
) -> Batch:
    """Returns a Batch for `items`; labels cover the answer and the end-of-sequence token only."""
    images = [synthetic.render(it.scene) for it in items]
    prompts = [prompt.format(question=it.question) for it in items]
    texts = [f"{p} {it.answers[0]} </s>" if with_answer else p for p, it in zip(prompts, items)]
    enc = processor(images=images, text=texts, return_tensors="pt", padding=True)
    # The processor expands <image> into one token per visual token; count the prompt the same way.
    n_visual = processor.image_processor.crop_size["height"] // processor.patch_size
    n_visual = n_visual * n_visual + processor.num_additional_image_tokens - 1
    expanded = " ".join([processor.image_token] * n_visual)
    tok = processor.tokenizer
    prompt_lens = torch.tensor(
        [len(tok(p.replace(processor.image_token, expanded))["input_ids"]) for p in prompts]
    )
    labels = enc["input_ids"].clone()
    positions = torch.arange(labels.shape[1]).unsqueeze(0)
    labels[positions < prompt_lens.unsqueeze(1)] = -100
    labels[enc["attention_mask"] == 0] = -100
    return Batch(
        enc["pixel_values"],
        enc["input_ids"],
        enc["attention_mask"],
        labels,
        prompt_lens,
        [it.family for it in items],
        [it.answers[0] for it in items],
    )


TRAIN_FAMILIES = ("describe", "where", *synthetic.FAMILIES)


def batches(
    processor,
    split: str,
    batch_size: int,
    seed: int,
    prompt: str,
    chunk: int = 4096,
    families: tuple[str, ...] = TRAIN_FAMILIES,
) -> Iterator[Batch]:
    """Yields an endless stream of fresh training batches from the procedural `split`.

    The default mix adds the training-only `describe` family (list every object and its cell),
    which teaches the vision tower and projector to ground each object in its visual token.
    """
    round_ = 0
    while True:
        items = synthetic.generate(split, chunk, seed=seed * 1000 + round_, families=families)
        random.Random(round_).shuffle(items)
        for start in range(0, chunk - batch_size + 1, batch_size):
            yield make_batch(processor, items[start : start + batch_size], prompt)
        round_ += 1
