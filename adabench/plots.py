"""Paper-ready figures from a results folder (matplotlib, Agg): Pareto curves, budget adherence,
latency CDFs under contention, accuracy per question family, cost and SLO plots, and the plan
atlas (adabench/plots_atlas.py). No torch. How they look (palette, one style per series, the
`--style` presets) is in adabench/plots_style.py.

Past MAX_SERIES series a figure gets one panel per model. Latency spreads are percentiles
(p10–p90), never mean ± std; CDF axes that outliers would stretch stop at the p99, with the
samples beyond counted in the axis label. PDFs embed TrueType fonts (Type 42).
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from adabench.analysis.pareto import accuracy_by_family, pareto, x_column  # noqa: E402
from adabench.errors import UserError, did_you_mean  # noqa: E402
from adabench.files import atomic_file  # noqa: E402
from adabench.plots_style import (  # noqa: E402
    RC,
    STYLES,
    WIDTH_IN,
    ci_err,
    cost_scale,
    figure_legend,
    finite_max,
    fit_width,
    is_full,
    level_title,
    marker_size,
    panel_cells,
    panel_column,
    panel_grid,
    series_groups,
    series_label,
    series_styles,
    short_level,
    with_series,
)
from adabench.store import Run, load_run  # noqa: E402

FORMATS = ("png", "pdf", "svg")
MAX_SERIES = 6
"""More (model, method) series than this get one panel per model."""
MIN_FAMILY_SAMPLES = 5
"""A question family gets its own accuracy panel only with at least this many samples per cell."""
SPREAD = (10, 90)
"""The latency spread drawn around a median (percentiles of the per-sample latencies)."""
CDF_CLIP = 99
"""Latency CDF axes end at this percentile of the panel's samples; the rest are counted."""


def make_plots(
    run_dir: Path,
    out: Path | None = None,
    formats: Iterable[str] = ("png",),
    x: str = "flops",
    suite: str | None = None,
    style: str = "default",
) -> list[Path]:
    """Writes every figure that the run's data supports and returns the written files.

    ``out`` defaults to RUN_DIR/plots; ``x`` is the Pareto cost axis (``flops`` | ``latency``);
    ``suite`` restricts to one suite; ``style`` is a key of STYLES. Accuracy plots are skipped
    for runs with random weights.
    """
    formats = _check_formats(formats)
    x_column(x)
    if style not in STYLES:
        raise did_you_mean(style, STYLES, "--style")
    run = load_run(run_dir)
    if run.cells.empty:
        raise UserError(f"{run.path} holds no finished cell yet: nothing to plot.")
    suites = sorted(run.cells["suite"].unique())
    if suite is not None and suite not in suites:
        raise did_you_mean(suite, suites, "suite")
    out = Path(out) if out is not None else run.path / "plots"
    out.mkdir(parents=True, exist_ok=True)
    written: list[Path] = []
    with plt.rc_context({**RC, **STYLES[style]["rc"]}):
        for name in [suite] if suite else suites:
            for stem, fig in figures(run, name, x, style):
                for fmt in formats:
                    path = out / f"{stem}.{fmt}"
                    with atomic_file(path) as tmp:  # a full disk leaves no partial figure
                        fig.savefig(tmp, bbox_inches="tight", format=fmt)
                    written.append(path)
                plt.close(fig)
    return written


def figures(run: Run, suite: str, x: str = "flops", style: str = "default"):
    """Yields (file stem, matplotlib Figure) for every figure of `suite` that the run's data
    supports, sized by `style` (call it inside ``plt.rc_context`` of that style's fonts)."""
    for stem, fig in _figures(run, suite, x):
        fit_width(fig, style)
        yield stem, fig


def _figures(run: Run, suite: str, x: str):
    from adabench.plots_atlas import plans_figure

    title = suite + (" · weights: random" if run.meta.get("weights") == "random" else "")
    if "scenario" in run.cells.columns and (run.cells["scenario"] == "server").any():
        from adabench.plots_load import load_figure  # a server run: its load figure only

        fig = load_figure(run.cells[run.cells["suite"] == suite], title)
        if fig is not None:
            yield f"load_{suite}", fig
        return
    cells = with_series(run.cells[run.cells["suite"] == suite])
    samples = with_series(run.samples[run.samples["suite"] == suite])
    styles = series_styles(cells)
    has_accuracy = run.meta.get("weights") != "random" and cells["accuracy"].notna().any()
    by_model = cells["series"].nunique() > MAX_SERIES and cells["model"].nunique() > 1
    makers = [
        (
            f"pareto_{x}_{suite}",
            lambda: pareto_figure(cells, styles, x, title, by_model),
            has_accuracy,
        ),
        (f"adherence_{suite}", lambda: adherence_figure(cells, styles, title, by_model), True),
        (f"plans_{suite}", lambda: plans_figure(samples, title), True),
        (
            f"latency_cdf_{suite}",
            lambda: latency_cdf_figure(samples, styles, title, by_model),
            True,
        ),
        (f"cost_{suite}", lambda: cost_figure(cells, samples, styles, title, by_model), True),
        (f"family_accuracy_{suite}", lambda: family_figure(samples, styles, title), has_accuracy),
        (f"slo_{suite}", lambda: slo_figure(cells, styles, title), True),
        (f"slo_timeline_{suite}", lambda: slo_timeline_figure(samples, cells, styles, title), True),
    ]
    for stem, make, wanted in makers:
        fig = make() if wanted else None
        if fig is not None:
            yield stem, fig


def slo_timeline_figure(samples: pd.DataFrame, cells: pd.DataFrame, styles: dict, title: str):
    """SLO mode over time: latency vs the target, the budget the controller chose, and the stress
    level, one line per series (x = seconds since the cell started). None without SLO samples."""
    need = {"t_s", "chosen_budget"}
    if not need <= set(samples.columns) or samples["t_s"].isna().all():
        return None
    frame = samples.dropna(subset=["t_s"]).sort_values("t_s")
    fig, axes = plt.subplots(3, 1, figsize=(3.5, 4.6), sharex=True, layout="constrained")
    fig._adabench_title = title + " · SLO over time"
    for series, group in frame.groupby("series"):
        colour = styles.get(series, ("#555555",))[0]
        axes[0].plot(group["t_s"], group["latency_ms"], color=colour, lw=0.8, label=series)
        axes[1].step(group["t_s"], group["chosen_budget"], where="post", color=colour, lw=0.8)
        if "contention_now" in group:
            axes[2].step(group["t_s"], group["contention_now"], where="post", color=colour, lw=0.8)
    for target in cells.get("slo_ms", pd.Series(dtype=float)).dropna().unique():
        axes[0].axhline(target, color="black", ls=":", lw=0.8)
    axes[0].set_ylabel("latency (ms)")
    axes[1].set_ylabel("chosen budget")
    axes[2].set_ylabel("stress level")
    axes[2].set_xlabel("time in cell (s)")
    figure_legend(fig, axes[0])
    return fig


def pareto_figure(cells: pd.DataFrame, styles: dict, x: str, title: str, by_model: bool = False):
    """Accuracy vs cost, one row per contention level (and one column per model when
    `by_model`), CIs as error bars, frontier in grey."""
    levels = sorted(cells["contention"].unique())
    models = sorted(cells["model"].unique()) if by_model else [None]
    fig, grid = panel_grid(len(levels), len(models), title)
    scale, unit = cost_scale(cells, x)
    for (row, level), (col, model) in panel_cells(levels, models):
        ax = grid[row][col]
        sub = cells[cells["contention"] == level]
        sub = sub if model is None else sub[sub["model"] == model]
        front = pareto(sub, x=x)
        front = front[front["on_frontier"]]
        ax.plot(front["cost"] / scale, front["accuracy"], color="0.6", lw=4, alpha=0.35,
                solid_capstyle="round", zorder=1, label="Pareto frontier")  # fmt: skip
        for series, d in series_groups(sub, styles):
            color, marker, dash = styles[series]
            cost = d[x_column(x)] / scale
            yerr = ci_err(d["accuracy"], d["accuracy_ci_low"], d["accuracy_ci_high"])
            ax.errorbar(cost, d["accuracy"], yerr=yerr, color=color, marker=marker, capsize=1.5,
                        elinewidth=0.7, label=series_label(series, by_model), ms=marker_size(series), ls=dash,
                        zorder=4 if is_full(series) else 3)  # fmt: skip
            if is_full(series):
                ax.axhline(d["accuracy"].mean(), color="black", ls=":", lw=0.7, zorder=2)
        if model is None:
            ax.set_title(level_title(sub, level))
        elif row == 0:
            ax.set_title(model)  # one model per column; the level labels each row
        if col == 0:
            ax.set_ylabel("accuracy" if model is None else f"{short_level(sub, level)}\naccuracy")
    for ax in grid[-1]:
        ax.set_xlabel(unit)
    figure_legend(fig, grid[0][0])
    return fig


def adherence_figure(cells: pd.DataFrame, styles: dict, title: str, by_model: bool = False):
    """Requested budget vs achieved FLOPs ratio (top row) and the paired latency ratio to
    `full` with its 95 % CI (one row per contention level), y = x dashed; one column per model
    when `by_model`. The grey band is the group's A/A noise floor, when the run measured one."""
    levels = sorted(cells["contention"].unique())
    models = sorted(cells["model"].unique()) if by_model else [None]
    fig, grid = panel_grid(1 + len(levels), len(models), title, height_in=1.7)
    top = max(1.1, finite_max(cells.get("latency_ratio_ci_high", cells["latency_ratio"])) * 1.05)
    for col, model in enumerate(models):
        mine = cells if model is None else cells[cells["model"] == model]
        low = mine[mine["contention"] == levels[0]]
        for series, d in series_groups(low, styles):
            color, marker, dash = styles[series]
            grid[0][col].plot(d["budget"], d["flops_ratio"], color=color, marker=marker, ls=dash,
                              label=series_label(series, by_model), ms=marker_size(series))  # fmt: skip
        grid[0][col].set_title(
            f"{model}\nachieved FLOPs ratio" if model else "achieved FLOPs ratio; dashed: y = x"
        )
        for row, level in enumerate(levels, start=1):
            ax, sub = grid[row][col], mine[mine["contention"] == level]
            _aa_band(ax, sub)
            for series, d in series_groups(sub, styles):
                color, marker, dash = styles[series]
                yerr = ci_err(d["latency_ratio"], d.get("latency_ratio_ci_low", d["latency_ratio"]),
                               d.get("latency_ratio_ci_high", d["latency_ratio"]))  # fmt: skip
                ax.errorbar(d["budget"], d["latency_ratio"], yerr=yerr, color=color,
                            marker=marker, ls=dash, ms=marker_size(series), capsize=1.5, elinewidth=0.7)  # fmt: skip
            if model is None:
                ax.set_title(level_title(sub, level).replace(" (reference ", "\n("))
    for r, row in enumerate(grid):
        for ax in row:
            ax.plot([0, 1], [0, 1], color="0.5", ls="--", lw=0.8, zorder=0)
            ax.set_xlim(0, 1.05)
            ax.set_ylim(0, top if r else 1.1)
        level_label = (
            ""
            if not by_model or r == 0
            else short_level(cells[cells["contention"] == levels[r - 1]], levels[r - 1]) + "\n"
        )
        row[0].set_ylabel("FLOPs ratio" if r == 0 else f"{level_label}latency ratio vs full")
    for ax in grid[-1]:
        ax.set_xlabel("requested budget")
    figure_legend(fig, grid[0][0])
    return fig


def _aa_band(ax, cells: pd.DataFrame) -> None:
    """Shades the A/A noise floor (a second `full` arm ÷ full) of the panel's groups."""
    if not {"aa_ratio_ci_low", "aa_ratio_ci_high"} <= set(cells.columns):
        return
    band = cells[["aa_ratio_ci_low", "aa_ratio_ci_high"]].dropna()
    if len(band):
        ax.axhspan(band["aa_ratio_ci_low"].min(), band["aa_ratio_ci_high"].max(), color="0.85",
                   zorder=0, label="A/A noise floor")  # fmt: skip


def latency_cdf_figure(samples: pd.DataFrame, styles: dict, title: str, by_model: bool = False):
    """Per-sample latency CDF per series at the smallest budget all methods share, one row per
    contention level (and one column per model when `by_model`; ``full`` at its own budget).
    The panels share one x axis; where outliers would stretch it, it ends at the p99
    (CDF_CLIP) of all samples shown and those beyond are counted in the x label."""
    if samples.empty:
        return None
    budget = _shared_budget(samples)
    levels = sorted(samples["contention"].unique())
    models = sorted(samples["model"].unique()) if by_model else [None]
    fig, grid = panel_grid(len(levels), len(models), title, height_in=1.6, sharey=True)
    shown = []
    for (row, level), (col, model) in panel_cells(levels, models):
        ax, sub = grid[row][col], samples[samples["contention"] == level]
        sub = sub if model is None else sub[sub["model"] == model]
        for series, d in series_groups(sub, styles):
            d = d if is_full(series) else d[np.isclose(d["budget"], budget)]
            values = np.sort(d["latency_ms"].dropna().to_numpy(float))
            if not len(values):
                continue
            shown.append(values)
            color, _, dash = styles[series]
            ax.step(values, np.arange(1, len(values) + 1) / len(values), where="post",
                    color=color, label=series_label(series, by_model), ls=dash)  # fmt: skip
        if model is None:
            ax.set_title(f"budget {budget:g} (full at 1), contention {level:g}")
        elif row == 0:
            ax.set_title(f"{model}, budget {budget:g}")
        if col == 0:
            ax.set_ylabel("CDF" if model is None else f"c = {level:g}\nCDF")
        ax.set_ylim(0, 1.02)
    beyond = _clip_at_percentile(grid[0][0], np.concatenate(shown)) if shown else 0  # shared x
    note = f"\n{beyond} sample(s) past the p{CDF_CLIP} not shown" if beyond else ""
    for ax in grid[-1]:
        ax.set_xlabel(f"latency per sample (ms){note}")
    figure_legend(fig, grid[0][0])
    return fig


def _clip_at_percentile(ax, values: np.ndarray) -> int:
    """Ends the x axis at the CDF_CLIP percentile of `values` (an order statistic, so a lone
    outlier never sets it) when the samples beyond would stretch the axis past twice that
    range; returns how many samples it leaves out (0 when it does not clip)."""
    low, top = float(values.min()), float(values.max())
    high = float(np.percentile(values, CDF_CLIP, method="lower"))
    if top - low <= 2 * (high - low):
        return 0
    pad = 0.02 * (high - low) + 1e-9
    ax.set_xlim(low - pad, high + pad)
    return int((values > high).sum())


def cell_percentiles(samples: pd.DataFrame, q: tuple[int, ...] = (SPREAD[0], 50, SPREAD[1])):
    """Returns {cell_id: [percentiles of its per-sample latencies (ms)]} at the `q` percentiles
    (by default p10, p50, p90): a spread that, unlike mean ± std, never goes below zero."""
    return {cid: np.percentile(g["latency_ms"].dropna().to_numpy(float), q).tolist()
            for cid, g in samples.groupby("cell_id") if g["latency_ms"].notna().any()}  # fmt: skip


def cost_figure(
    cells: pd.DataFrame, samples: pd.DataFrame, styles: dict, title: str, by_model: bool = False
):
    """Median per-sample latency with its p10–p90 range vs FLOPs per sample, one row per
    contention level (one column per model when `by_model`); cells without samples fall back
    to latency_ms_p50 and no range."""
    levels = sorted(cells["contention"].unique())
    models = sorted(cells["model"].unique()) if by_model else [None]
    fig, grid = panel_grid(len(levels), len(models), title, height_in=1.7)
    scale, unit = cost_scale(cells, "flops")
    spread = cell_percentiles(samples)
    for (row, level), (col, model) in panel_cells(levels, models):
        ax, sub = grid[row][col], cells[cells["contention"] == level]
        sub = sub if model is None else sub[sub["model"] == model]
        for series, d in series_groups(sub, styles):
            color, marker, dash = styles[series]
            q = np.array([spread.get(c, [m, m, m]) for c, m in
                          zip(d["cell_id"], d["latency_ms_p50"], strict=True)], float)  # fmt: skip
            yerr = np.clip(np.vstack([q[:, 1] - q[:, 0], q[:, 2] - q[:, 1]]), 0.0, None)
            ax.errorbar(d["flops"] / scale, q[:, 1], yerr=np.nan_to_num(yerr), color=color,
                        marker=marker, capsize=1.5, elinewidth=0.7, ls=dash, ms=marker_size(series),
                        label=series_label(series, by_model))  # fmt: skip
        if model is None:
            ax.set_title(level_title(sub, level))
        elif row == 0:
            ax.set_title(model)
        if col == 0:
            ax.set_ylabel("latency (ms)" if model is None
                          else f"{short_level(sub, level)}\nlatency (ms)")  # fmt: skip
        ax.set_ylim(bottom=0)
    for ax in grid[-1]:
        ax.set_xlabel(f"{unit}\nmarkers: median; bars: p{SPREAD[0]}–p{SPREAD[1]}")
    figure_legend(fig, grid[0][0])
    return fig


def family_figure(samples: pd.DataFrame, styles: dict, title: str):
    """Accuracy vs budget per question family (small multiples), at the lowest contention."""
    fam = with_series(accuracy_by_family(samples))
    if fam.empty:
        return None
    fam = fam[fam["contention"] == fam["contention"].min()]
    big = fam.groupby("family")["n"].min()
    families = sorted(big[big >= MIN_FAMILY_SAMPLES].index)
    if not families:
        return None  # a tangle of 2-3 samples per point says nothing
    ncols = 2 if len(families) > 1 else 1
    nrows = math.ceil(len(families) / ncols)
    fig, grid = plt.subplots(nrows, ncols, figsize=(WIDTH_IN, 0.7 + 1.45 * nrows), sharex=True,
                             sharey=True, squeeze=False, layout="constrained")  # fmt: skip
    for ax, family in zip(grid.flat, families, strict=False):
        sub = fam[fam["family"] == family]
        for series, d in series_groups(sub, styles):
            color, marker, dash = styles[series]
            ax.errorbar(d["budget"], d["accuracy"], color=color, marker=marker, label=series, ls=dash,
                        yerr=ci_err(d["accuracy"], d["accuracy_ci_low"], d["accuracy_ci_high"]),
                        elinewidth=0.5, capsize=1, ms=marker_size(series))  # fmt: skip
        ax.set_title(f"{family} (n={int(sub['n'].max())})")
        ax.set_ylim(-0.05, 1.05)
    for ax in grid.flat[len(families) :]:
        ax.set_visible(False)
    for ax in grid[:, 0]:
        ax.set_ylabel("accuracy")
    for ax in grid[-1, :]:
        ax.set_xlabel("budget")
    fig._adabench_title = f"{title} · contention {fam['contention'].min():g}"
    figure_legend(fig, grid.flat[0])
    return fig


def slo_figure(cells: pd.DataFrame, styles: dict, title: str):
    """SLO attainment vs budget per method, one panel per contention level (None without SLO)."""
    if "slo_ms" not in cells.columns or cells["slo_ms"].isna().all():
        return None
    levels = sorted(cells["contention"].unique())
    fig, axes = panel_column(len(levels), title, height_in=1.6)
    for ax, level in zip(axes, levels, strict=True):
        sub = cells[cells["contention"] == level]
        for series, d in series_groups(sub, styles):
            color, marker, dash = styles[series]
            ax.plot(
                d["budget"],
                d["slo_attainment"],
                color=color,
                marker=marker,
                label=series,
                ls=dash,
                ms=marker_size(series),
            )
        slo = sub["slo_ms"].dropna()
        ax.set_title(
            f"contention {level:g}, SLO {slo.iloc[0]:g} ms" if len(slo) else f"contention {level:g}"
        )
        ax.set_ylabel("SLO attainment")
        ax.set_ylim(-0.05, 1.05)
    axes[-1].set_xlabel("budget")
    figure_legend(fig, axes[0])
    return fig


def _shared_budget(samples: pd.DataFrame) -> float:
    adaptive = samples[~samples["series"].map(is_full)]
    if adaptive.empty:
        return float(samples["budget"].min())
    sets = [set(d["budget"]) for _, d in adaptive.groupby("series")]
    shared = set.intersection(*sets)
    return float(min(shared) if shared else adaptive["budget"].min())


def _check_formats(formats: Iterable[str]) -> list[str]:
    result = []
    for fmt in formats:
        fmt = fmt.strip().lower().lstrip(".")
        if fmt not in FORMATS:
            raise did_you_mean(fmt, FORMATS, "figure format")
        result.append(fmt)
    if not result:
        raise UserError(f"give at least one figure format from {', '.join(FORMATS)}.")
    return result
