"""The plan atlas figure `plans_<suite>`: for each adaptive method and budget, a heat map of how
often each decoder block (or its heads and MLP groups) runs — one column for all samples, then
one per question family — titled with the number of distinct plans; and for token selection,
the share of visual tokens kept per family. Data from adabench/analysis/plans.py.
"""

from __future__ import annotations

import math

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from adabench.analysis.plans import ALL, distinct_plans, kept_tokens, plan_atlas

CMAP = "cividis"  # lightness rises monotonically: the heat map reads in greyscale print
PANEL_IN = 1.5


def plans_figure(samples: pd.DataFrame, title: str):
    """Returns the atlas figure, or None when no method adapted its plan or removed tokens.

    A method is shown when any of its cells ran more than one distinct plan, or when its name
    says it is AdaLLaVA (so a scheduler that collapsed to one plan is shown collapsed)."""
    atlas, plans = plan_atlas(samples), distinct_plans(samples)
    tokens = kept_tokens(samples)
    shown = _adaptive(plans)
    atlas = atlas.merge(shown, on=["model", "method"])
    atlas = atlas[atlas["budget"] < 1.0]
    # a cell that always ran every block chose tokens, not blocks: shown in the token panel
    skips = atlas.groupby(["model", "method", "budget"])["runs"].transform("min") < 1.0
    atlas = atlas[skips]
    panels = list(atlas.groupby(["model", "method", "budget"], sort=True).groups)
    token_panels = list(tokens.groupby(["model", "method"], sort=True).groups)
    if not panels and not token_panels:
        return None
    ncols = min(3, max(1, len(panels)))
    nrows = math.ceil(len(panels) / ncols) + (1 if token_panels else 0)
    fig = plt.figure(figsize=(0.6 + 2.3 * ncols, 0.9 + 1.9 * nrows), layout="constrained")
    grid = fig.add_gridspec(nrows, ncols)
    image = None
    for i, (model, method, budget) in enumerate(panels):
        ax = fig.add_subplot(grid[i // ncols, i % ncols])
        cell = atlas[(atlas["model"] == model) & (atlas["method"] == method)
                     & (atlas["budget"] == budget)]  # fmt: skip
        n_plans = plans[(plans["model"] == model) & (plans["method"] == method)
                        & (plans["budget"] == budget)]["plans"].sum()  # fmt: skip
        image = _heat_map(ax, cell)
        ax.set_title(f"{model}\n{method}@{budget:g}: {int(n_plans)} plans", fontsize="medium")
    if image is not None:
        bar = fig.colorbar(image, ax=fig.axes, shrink=0.6, location="right")
        bar.set_label("share of the block that runs")
    if token_panels:
        ax = fig.add_subplot(grid[nrows - 1, :])
        _token_bars(ax, tokens)
    fig.suptitle(f"{title} · what the schedulers chose (contention 0)", fontweight="bold")
    return fig


def _adaptive(plans: pd.DataFrame) -> pd.DataFrame:
    varied = plans.groupby(["model", "method"])["plans"].max() > 1
    named = varied.index.get_level_values("method").str.startswith("adallava")
    keep = varied[varied.to_numpy() | named]
    return keep.index.to_frame(index=False)


def _heat_map(ax, cell: pd.DataFrame):
    families = [ALL] + sorted(f for f in cell["family"].unique() if f != ALL)
    table = cell.pivot_table(index="layer", columns="family", values="runs").reindex(
        columns=families
    )
    values = table.to_numpy(float)
    image = ax.imshow(values, aspect="auto", origin="lower", cmap=CMAP, vmin=0.0, vmax=1.0,
                      interpolation="nearest")  # fmt: skip
    ax.set_xticks(range(len(families)), families, rotation=90)  # upright boxes never overlap
    ax.set_ylabel("decoder block")
    ax.set_yticks(range(len(table.index)), [str(i) for i in table.index])
    ax.axvline(0.5, color="white", lw=1.5)  # "all" apart from the families
    ax.grid(False)
    if values.size <= 16 * 8:  # the numbers, so the map reads without its colours
        for (y, x), v in np.ndenumerate(values):
            if not math.isnan(v):
                ax.text(x, y, _short(v), ha="center",
                        va="center", fontsize=5, color="black" if v > 0.55 else "white")  # fmt: skip
    return image


def _short(value: float) -> str:
    """0, 1 or ".4": one decimal, and short enough to fit a heat-map cell."""
    text = f"{value:.1f}"
    return text[0] if text in ("0.0", "1.0") else text.lstrip("0")


def _token_bars(ax, tokens: pd.DataFrame) -> None:
    """Kept visual-token share per family (tokens removed when the run lacks the total)."""
    column = "kept_fraction" if tokens["kept_fraction"].notna().any() else "tokens_removed"
    families = [ALL] + sorted(f for f in tokens["family"].unique() if f != ALL)
    cells = list(tokens.groupby(["model", "method", "budget"], sort=True))
    width = 0.8 / max(1, len(cells))
    hatches = ["", "//", "..", "xx", "\\\\", "oo"]
    for i, ((model, method, budget), d) in enumerate(cells):
        d = d.set_index("family").reindex(families)
        ax.bar(np.arange(len(families)) + i * width, d[column], width=width, color="white",
               edgecolor="black", hatch=hatches[i % len(hatches)], lw=0.6,
               label=f"{model} {method}@{budget:g}")  # fmt: skip
    ax.set_xticks(np.arange(len(families)) + 0.4 - width / 2, families)
    ax.set_ylabel("visual tokens kept" if column == "kept_fraction" else "visual tokens removed")
    if column == "kept_fraction":
        ax.set_ylim(0, 1.05)
    ax.set_title("token selection per question family")
    ax.legend(
        loc="upper center", bbox_to_anchor=(0.5, -0.2), ncol=3
    )  # below: keeps the columns wide
