"""A PNG grid of suite samples with their question and answers, so a person can look at the data."""

from __future__ import annotations

import textwrap
from pathlib import Path

from adabench.data.images import read_image
from adabench.data.sample import Sample
from adabench.files import atomic_file


def sample_grid(samples: list[Sample], path: Path, columns: int = 4) -> Path:
    """Writes a grid of `samples` (image, question, answers, family) to `path`; returns the path."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = (len(samples) + columns - 1) // columns
    fig, axes = plt.subplots(rows, columns, figsize=(columns * 2.6, rows * 3.0), squeeze=False)
    for ax in axes.flat:
        ax.axis("off")
    for ax, s in zip(axes.flat, samples):
        ax.imshow(read_image(s), interpolation="nearest")
        title = (
            "\n".join(textwrap.wrap(s.question, 30)[:3])
            + f"\n→ {', '.join(s.answers[:3])} [{s.family}]"
        )
        ax.set_title(title, fontsize=7)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        with atomic_file(path) as tmp:
            fig.savefig(tmp, dpi=110, format="png")
    finally:
        plt.close(fig)
    return path
