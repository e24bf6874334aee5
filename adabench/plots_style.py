"""How adabench's figures look and are laid out: the colour-blind-safe palette, one style per
(model, method) series, the rc settings and `--style` presets (widths in inches, fonts in pt),
and the panel grid / legend helpers every figure of adabench/plots.py shares."""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

WIDTH_IN = 3.5  # one column of a two-column paper
# Okabe & Ito (2008): distinguishable with every common colour-vision deficiency
OKABE_ITO = ["#0072B2", "#E69F00", "#009E73", "#D55E00", "#CC79A7", "#56B4E9", "#F0E442"]
MARKERS = ["o", "s", "^", "D", "v", "P", "X", "h"]
FULL_COLOUR, FULL_MARKER = "#000000", "*"
LINESTYLES = ["-", "--", ":", "-.", (0, (5, 1, 1, 1, 1, 1)), (0, (1, 2))]
RC = {
    "font.size": 8, "axes.titlesize": 8, "axes.labelsize": 8, "legend.fontsize": 7,
    "xtick.labelsize": 7, "ytick.labelsize": 7, "lines.linewidth": 1.2, "lines.markersize": 4,
    "axes.spines.top": False, "axes.spines.right": False, "axes.grid": True,
    "grid.alpha": 0.3, "grid.linewidth": 0.5, "savefig.dpi": 200, "pdf.fonttype": 42,
    "svg.fonttype": "none", "legend.frameon": False,
}  # fmt: skip
STYLES = {
    "default": {"single_in": None, "double_in": None, "rc": {}},
    "paper": {"single_in": 3.3, "double_in": 7.0,
              "rc": {"font.size": 8, "axes.titlesize": 9, "axes.labelsize": 8,
                     "legend.fontsize": 8, "xtick.labelsize": 8, "ytick.labelsize": 8,
                     "legend.title_fontsize": 9, "figure.titlesize": 9}},
}  # fmt: skip
"""Figure presets (`adabench plot --style`): widths of one and of two paper columns (in; None:
each figure keeps its own) and the font sizes (pt). A figure keeps its aspect ratio and takes
the single-column width unless it is over 1.2 × that wide."""


def series_styles(frame: pd.DataFrame) -> dict[str, tuple[str, str, object]]:
    """Returns {series: (colour, marker, line style)}: colour by method (``full`` a black
    star), marker by model, line style by method in a one-model run and by model otherwise, in
    sorted order: a method has one colour in every figure of a run, and no two (model, method)
    series share a style, not even in figures without markers (the CDF)."""
    methods = sorted(m for m in frame["method"].unique() if m != "full")
    models = sorted(frame["model"].unique())
    styles = {}
    for series, method, model in (
        frame[["series", "method", "model"]].drop_duplicates().itertuples(index=False)
    ):
        j = models.index(model)
        if method == "full":
            dash = ":" if len(models) == 1 else LINESTYLES[j % len(LINESTYLES)]
            styles[series] = (FULL_COLOUR, FULL_MARKER, dash)
            continue
        i = methods.index(method)
        dash = LINESTYLES[(i if len(models) == 1 else j) % len(LINESTYLES)]
        styles[series] = (OKABE_ITO[i % len(OKABE_ITO)], MARKERS[j % len(MARKERS)], dash)
    return styles


def fit_width(fig, style: str) -> None:
    """Scales `fig` to its style's single- or double-column width (in), keeping its aspect
    ratio; leaves it as drawn when the style names no widths."""
    single, double = STYLES[style]["single_in"], STYLES[style]["double_in"]
    if single is None:
        return
    width, height = fig.get_size_inches()
    target = single if width <= 1.2 * single else double
    fig.set_size_inches(target, height * target / width)


def panel_grid(
    nrows: int, ncols: int, title: str, height_in: float = 2.0, sharey: bool | str = "row"
):
    """Returns (figure, rows of axes): `nrows` × `ncols` panels sharing x (and y per row), one
    column 3.5 in wide, more up to 7.2 in; `title` becomes the legend's title."""
    width = WIDTH_IN if ncols == 1 else min(7.2, 0.4 + 2.4 * ncols)  # two columns of a paper
    fig, axes = plt.subplots(nrows, ncols, figsize=(width, 0.75 + height_in * nrows),
                             sharex=True, sharey=sharey, squeeze=False, layout="constrained")  # fmt: skip
    fig._adabench_title = title
    return fig, [list(row) for row in axes]


def panel_cells(levels: list, models: list):
    """Yields ((row, level), (column, model)) for every panel of a level × model grid."""
    for row, level in enumerate(levels):
        for col, model in enumerate(models):
            yield (row, level), (col, model)


def series_label(series: str, by_model: bool) -> str:
    """In per-model panels the model is the panel's title: the legend names methods only."""
    return series.split(" ", 1)[-1] if by_model else series


def panel_column(n: int, title: str, height_in: float = 2.0):
    """Returns (figure, axes): `n` panels in one 3.5 in column sharing x."""
    fig, axes = plt.subplots(n, 1, figsize=(WIDTH_IN, 0.75 + height_in * n), sharex=True,
                             squeeze=False, layout="constrained")  # fmt: skip
    fig._adabench_title = title  # shown as the legend's title, so the two never overlap
    return fig, list(axes[:, 0])


def figure_legend(fig, ax) -> None:
    """Draws one legend for every series of `fig` above its panels (outside the data), titled
    with the figure's title."""
    handles, labels = [], []
    for a in fig.axes:
        for h, label in zip(*a.get_legend_handles_labels(), strict=True):
            if label not in labels and not label.startswith("_"):
                handles.append(h)
                labels.append(label)
    # Long series names (model · method) get fewer columns so the legend stays inside the figure.
    ncol = max(1, min(3 if max((len(x) for x in labels), default=0) <= 18 else 2, len(labels)))
    fig.legend(handles, labels, loc="outside upper center", ncol=ncol,
               handlelength=1.8, columnspacing=1.0, title=getattr(fig, "_adabench_title", None),
               title_fontproperties={"weight": "bold", "size": 8})  # fmt: skip


def with_series(frame: pd.DataFrame) -> pd.DataFrame:
    """Returns a copy of `frame` with a `series` column: "model method", or the method alone in
    a one-model run."""
    frame = frame.copy()
    if frame.empty:
        frame["series"] = pd.Series(dtype=str)
    elif frame["model"].nunique() > 1:
        frame["series"] = frame["model"] + " " + frame["method"]
    else:
        frame["series"] = frame["method"]
    return frame


def series_groups(frame: pd.DataFrame, styles: dict):
    """Yields (series, its rows sorted by budget) for each styled series present in `frame`."""
    # `full` last, so the reference point is drawn on top of the methods it coincides with
    for series in sorted(styles, key=is_full):
        d = frame[frame["series"] == series]
        if len(d):
            yield series, d.sort_values("budget")


def is_full(series: str) -> bool:
    """Returns True for the `full` series of any model."""
    return series == "full" or series.endswith(" full")


def marker_size(series: str) -> float:
    """Returns the marker size (pt): larger for the `full` star."""
    return 7.0 if is_full(series) else 4.0


def ci_err(acc, low, high) -> np.ndarray:
    """Returns the (2, n) error-bar lengths of a CI around `acc`, never negative (NaN → 0)."""
    err = np.vstack([np.asarray(acc - low, float), np.asarray(high - acc, float)])
    return np.clip(np.nan_to_num(err, nan=0.0), 0.0, None)


def cost_scale(cells: pd.DataFrame, x: str) -> tuple[float, str]:
    """Returns (divisor, axis label) for the cost axis: ms, or FLOPs in T or G."""
    if x == "latency":
        return 1.0, "mean latency per sample (ms)"
    peak = finite_max(cells["flops"])
    return (1e12, "TFLOPs per sample") if peak >= 1e12 else (1e9, "GFLOPs per sample")


def short_level(cells: pd.DataFrame, level: float) -> str:
    """'c = 0.5 (×1.60)': the level and its reference slowdown, short enough for a row label."""
    slowdown = cells["achieved_slowdown"].dropna() if "achieved_slowdown" in cells else []
    if len(slowdown) and level > 0:
        return f"c = {level:g} (×{slowdown.mean():.2f})"
    return f"c = {level:g}"


def level_title(cells: pd.DataFrame, level: float) -> str:
    """Returns 'contention 0.5 (reference slowdown 1.60×)' for a panel title."""
    slowdown = cells["achieved_slowdown"].dropna() if "achieved_slowdown" in cells else []
    if len(slowdown) and level > 0:
        return f"contention {level:g} (reference slowdown {slowdown.mean():.2f}×)"
    return f"contention {level:g}"


def finite_max(values) -> float:
    """Returns the largest finite value (0 when there is none)."""
    arr = np.asarray(values, float)
    arr = arr[np.isfinite(arr)]
    return float(arr.max()) if len(arr) else 0.0
