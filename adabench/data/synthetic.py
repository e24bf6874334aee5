"""The procedural `shapes` suite: coloured shapes on a 3×3 grid, five question families.

Images are 48×48 RGB, a 3×3 grid of 16-pixel cells (one ViT patch per cell), each holding at
most one object (a colour × shape pair). Families mirror the paper's benchmark kinds:
  color    attribute QA        "what color is the triangle ?"            → red
  count    counting            "how many circles are there ?"            → 2
  spatial  position yes/no      "is the red circle on the left side ?"   → yes (balanced)
  exist    POPE-style existence with random / popular / adversarial negatives → no
  choice   4-way multiple choice (ScienceQA/MMBench style)               → B
Splits are disjoint by construction: every candidate (image, question) is hashed and the hash
decides its split, so no pair can appear in two splits.
"""

from __future__ import annotations

import hashlib
import random
from dataclasses import dataclass, field

from PIL import Image, ImageDraw

COLORS = {
    "red": (220, 40, 40),
    "green": (30, 170, 60),
    "blue": (40, 80, 220),
    "yellow": (235, 200, 30),
}
SHAPES = ("circle", "square", "triangle", "cross")
OBJECTS = [(c, s) for c in COLORS for s in SHAPES]
# A fixed, skewed prior over object types: it makes POPE's "popular" negatives meaningful.
PRIOR = [1.0 / (1 + 0.25 * i) for i in range(len(OBJECTS))]
POPULAR = [OBJECTS[i] for i in sorted(range(len(OBJECTS)), key=lambda i: -PRIOR[i])]
FAMILIES = ("color", "count", "spatial", "exist", "choice")
LETTERS = "ABCD"
PLURAL = {"circle": "circles", "square": "squares", "triangle": "triangles", "cross": "crosses"}
NUMBER_WORDS = ("0", "1", "2", "3", "4")
IMAGE_SIZE = 48
CELL = 16
SPLIT_BUCKETS = {"train": range(0, 80), "val": range(80, 88), "test": range(88, 100)}
SPLIT_SEEDS = {"train": 1, "val": 2, "test": 3}
BACKGROUND = (245, 245, 240)


@dataclass(frozen=True)
class Scene:
    """Objects placed on the grid: tuple of (cell index 0..8, colour, shape)."""

    objects: tuple[tuple[int, str, str], ...]

    def key(self) -> str:
        return ";".join(f"{i}:{c}:{s}" for i, c, s in sorted(self.objects))


@dataclass
class ShapesItem:
    """One generated sample before it becomes a suite Sample."""

    id: str
    scene: Scene
    question: str
    answers: list[str]
    family: str
    meta: dict = field(default_factory=dict)


def render(scene: Scene) -> Image.Image:
    """Returns the 48×48 RGB image of `scene`."""
    img = Image.new("RGB", (IMAGE_SIZE, IMAGE_SIZE), BACKGROUND)
    draw = ImageDraw.Draw(img)
    for cell, color, shape in scene.objects:
        x0, y0 = (cell % 3) * CELL + 2, (cell // 3) * CELL + 2
        x1, y1 = x0 + CELL - 5, y0 + CELL - 5
        rgb = COLORS[color]
        if shape == "circle":
            draw.ellipse([x0, y0, x1, y1], fill=rgb)
        elif shape == "square":
            draw.rectangle([x0 + 1, y0 + 1, x1 - 1, y1 - 1], fill=rgb)
        elif shape == "triangle":
            draw.polygon([((x0 + x1) / 2, y0), (x0, y1), (x1, y1)], fill=rgb)
        else:  # cross
            mid_x, mid_y = (x0 + x1) / 2, (y0 + y1) / 2
            draw.rectangle([mid_x - 2, y0, mid_x + 2, y1], fill=rgb)
            draw.rectangle([x0, mid_y - 2, x1, mid_y + 2], fill=rgb)
    return img


def _random_scene(rng: random.Random) -> Scene:
    n = rng.randint(1, 4)
    cells = rng.sample(range(9), n)
    kinds: list[tuple[str, str]] = []
    while len(kinds) < n:
        obj = rng.choices(OBJECTS, weights=PRIOR)[0]
        if obj not in kinds:
            kinds.append(obj)
    return Scene(tuple((cell, c, s) for cell, (c, s) in zip(cells, kinds)))


def _name(color: str, shape: str) -> str:
    return f"{color} {shape}"


def _q_color(scene: Scene, rng: random.Random) -> tuple[str, list[str], dict] | None:
    by_shape: dict[str, list[str]] = {}
    for _, c, s in scene.objects:
        by_shape.setdefault(s, []).append(c)
    unique = [s for s, cs in by_shape.items() if len(cs) == 1]
    if not unique:
        return None
    shape = rng.choice(unique)
    return f"what color is the {shape} ?", [by_shape[shape][0]], {}


def _q_count(scene: Scene, rng: random.Random) -> tuple[str, list[str], dict]:
    if rng.random() < 0.5:
        target = rng.choice(SHAPES)
        n = sum(s == target for _, _, s in scene.objects)
        return f"how many {PLURAL[target]} are there ?", [str(n)], {"target": target}
    target = rng.choice(list(COLORS))
    n = sum(c == target for _, c, _ in scene.objects)
    return f"how many {target} objects are there ?", [str(n)], {"target": target}


SIDES = {"left": (1, 0), "right": (1, 2), "top": (0, 0), "bottom": (0, 2)}  # (axis, index)


def _q_spatial(scene: Scene, rng: random.Random) -> tuple[str, list[str], dict]:
    """Absolute position, answers balanced: "is the red circle on the left side ?" → yes.

    Side = the object's grid column (left/right) or row (top/bottom). The answer is drawn first
    (yes/no with equal odds), so the family's prior is exactly chance (0.5).
    """
    _, color, shape = obj = rng.choice(list(scene.objects))
    cell = obj[0]
    rc = (cell // 3, cell % 3)
    holds = [side for side, (axis, idx) in SIDES.items() if rc[axis] == idx]
    fails = [side for side in SIDES if side not in holds]
    truth = bool(holds) and rng.random() < 0.5
    side = rng.choice(holds if truth else fails)
    q = f"is the {_name(color, shape)} on the {side} side ?"
    return q, ["yes" if truth else "no"], {"side": side}


def _q_exist(scene: Scene, rng: random.Random) -> tuple[str, list[str], dict] | None:
    present = [(c, s) for _, c, s in scene.objects]
    absent = [o for o in OBJECTS if o not in present]
    if rng.random() < 0.5:
        c, s = rng.choice(present)
        return f"is there a {_name(c, s)} in the image ?", ["yes"], {"pope_split": "positive"}
    strategy = rng.choice(("random", "popular", "adversarial"))
    if strategy == "random":
        obj = rng.choice(absent)
    elif strategy == "popular":
        obj = next(o for o in POPULAR if o in absent)
    else:  # shares colour or shape with something present: the hallucination-prone case
        near = [o for o in absent if any(o[0] == p[0] or o[1] == p[1] for p in present)]
        obj = rng.choice(near or absent)
    return f"is there a {_name(*obj)} in the image ?", ["no"], {"pope_split": strategy}


def _q_choice(scene: Scene, rng: random.Random) -> tuple[str, list[str], dict] | None:
    base = _q_color(scene, rng)
    if base is None:
        return None
    question, (answer,), _ = base
    options = list(COLORS)
    rng.shuffle(options)
    letter = LETTERS[options.index(answer)]
    text = " ".join(f"{LETTERS[i]} . {o}" for i, o in enumerate(options))
    return f"{question} {text}", [letter], {"options": options}


CELL_WORDS = ("nw", "n", "ne", "w", "c", "e", "sw", "s", "se")


def _q_describe(scene: Scene, rng: random.Random) -> tuple[str, list[str], dict]:
    """Training-only alignment task (LLaVA stage-1 style): list every object with its cell."""
    parts = [f"{c} {s} {CELL_WORDS[i]}" for i, c, s in sorted(scene.objects)]
    return "describe the image .", [" ".join(parts)], {}


def _q_where(scene: Scene, rng: random.Random) -> tuple[str, list[str], dict]:
    """Training-only grounding task: "where is the red circle ?" → its cell word (nw … se)."""
    cell, color, shape = rng.choice(list(scene.objects))
    return f"where is the {_name(color, shape)} ?", [CELL_WORDS[cell]], {}


_MAKERS = {
    "describe": _q_describe,
    "where": _q_where,
    "color": _q_color,
    "count": _q_count,
    "spatial": _q_spatial,
    "exist": _q_exist,
    "choice": _q_choice,
}


def split_of(scene: Scene, question: str) -> str:
    """Returns the split ("train", "val" or "test") that owns this (image, question) pair."""
    bucket = int(hashlib.sha256(f"{scene.key()}|{question}".encode()).hexdigest(), 16) % 100
    return next(name for name, rng in SPLIT_BUCKETS.items() if bucket in rng)


def generate(
    split: str, n: int, seed: int = 0, families: tuple[str, ...] = FAMILIES
) -> list[ShapesItem]:
    """Returns `n` deterministic items of `split`, families in round-robin order."""
    rng = random.Random(f"shapes-{split}-{seed}-{SPLIT_SEEDS[split]}")
    items: list[ShapesItem] = []
    while len(items) < n:
        family = families[len(items) % len(families)]
        scene = _random_scene(rng)
        made = _MAKERS[family](scene, rng)
        if made is None:
            continue
        question, answers, meta = made
        if split_of(scene, question) != split:
            continue
        items.append(
            ShapesItem(f"shapes-{split}-{len(items):06d}", scene, question, answers, family, meta)
        )
    return items
