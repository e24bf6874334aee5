"""Stage 0 of the tiny model's recipe: pre-train the CLIP tower to recognise each grid cell.

With `position`, a second probe also predicts each token's cell index, so the frozen features
say where an object is as well as what it is (the shipped `tiny` uses it: the `spatial` and
training-only `where` families read an object's row/column from its visual token). A from-scratch CLIP tower inside a Llava gets almost no gradient while the decoder still ignores
the visual tokens (measured: vision-grad norm ~1e-3 of the decoder's, accuracy stuck at chance).
Like CLIP pre-training gives LLaVA a tower that already sees, this stage trains the tower alone
with a linear probe per patch (17 classes: 16 colour × shape objects + empty); the probe is then
discarded and the tower is used as the initialisation of the Llava's vision tower.
"""

from __future__ import annotations

import random

import torch
import torch.nn.functional as F

from adabench.data import synthetic


def cell_labels(scene: synthetic.Scene) -> list[int]:
    """Returns the class of each of the 9 cells: object index in OBJECTS, or 16 for empty."""
    labels = [len(synthetic.OBJECTS)] * 9
    for cell, color, shape in scene.objects:
        labels[cell] = synthetic.OBJECTS.index((color, shape))
    return labels


def pretrain_vision(
    vision_tower,
    image_processor,
    steps: int = 300,
    batch_size: int = 128,
    lr: float = 2e-3,
    seed: int = 0,
    log=None,
    position: bool = False,
) -> float:
    """Trains `vision_tower` in place to classify every cell; returns the final probe accuracy."""
    rng = random.Random(seed)
    hidden = vision_tower.config.hidden_size
    probe = torch.nn.Linear(hidden, len(synthetic.OBJECTS) + 1)
    # A second probe reads the cell index from each visual token, so the features keep *where*
    # an object is (needed by the spatial family), not only what it is.
    where = torch.nn.Linear(hidden, 9) if position else None
    params = (
        list(vision_tower.parameters())
        + list(probe.parameters())
        + (list(where.parameters()) if where else [])
    )
    opt = torch.optim.AdamW(params, lr=lr, weight_decay=0.0)
    vision_tower.train()
    acc = 0.0
    for step in range(steps):
        scenes = [synthetic._random_scene(rng) for _ in range(batch_size)]
        pixels = image_processor([synthetic.render(s) for s in scenes], return_tensors="pt")[
            "pixel_values"
        ]
        target = torch.tensor([cell_labels(s) for s in scenes])
        feats = vision_tower(pixels, output_hidden_states=True).hidden_states[-1][:, 1:]
        logits = probe(feats)
        loss = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), target.reshape(-1))
        if where is not None:
            cells = torch.arange(9).expand(len(scenes), 9)
            loss = loss + F.cross_entropy(where(feats).reshape(-1, 9), cells.reshape(-1))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        acc = float((logits.argmax(-1) == target).float().mean())
        if log and step % 50 == 0:
            log(f"vision pre-training step {step}: loss {float(loss):.3f}, cell accuracy {acc:.3f}")
    return acc
