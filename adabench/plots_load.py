"""The server scenario's figure: SLO attainment and goodput against offered rate, one line per
policy (static budgets, the queue-aware controller, the oracle fixed budget dashed), with each
static policy's capacity (1 / its mean service time) marked on the rate axis."""

from __future__ import annotations

import matplotlib.pyplot as plt
import pandas as pd

from adabench.analysis import serving


def load_figure(cells: pd.DataFrame, title: str):
    """Returns the load figure of one suite's server cells (None when it has none): panels
    attainment and goodput (requests/s) vs offered rate (requests/s), one row per (model,
    contention)."""
    data = serving.with_oracle(cells)
    if data.empty:
        return None
    groups = list(data.groupby(["model", "contention"], sort=True))
    fig, axes = plt.subplots(len(groups), 2, figsize=(7.0, 2.6 * len(groups)), squeeze=False)
    capacity = serving.capacity_per_s(cells)
    labels = sorted(data["policy_label"].unique())
    colours = {label: plt.cm.tab10(i % 10) for i, label in enumerate(labels)}
    for row, ((model, contention), group) in enumerate(groups):
        for label, series in group.groupby("policy_label"):
            series = series.sort_values("rate_per_s")
            style = "--" if "oracle" in label else (":" if "controller" not in label else "-")
            width = 2.0 if "controller" in label else 1.2
            for ax, column in zip(axes[row], ("slo_attainment", "goodput_per_s")):
                ax.plot(series["rate_per_s"], series[column], style, marker="o", ms=3,
                        lw=width, color=colours[label], label=label)  # fmt: skip
                if "oracle" in label:  # which fixed budget won at each rate
                    for rate, value, budget in zip(series["rate_per_s"], series[column],
                                                   series["oracle_budget"]):  # fmt: skip
                        ax.annotate(f"b={budget:g}", (rate, value), fontsize=6,
                                    xytext=(3, 3), textcoords="offset points")  # fmt: skip
        for label, cap in capacity.items():
            if label in set(group["policy_label"]) and cap == cap:
                axes[row][0].axvline(cap, color=colours[label], lw=0.6, alpha=0.5)
        axes[row][0].set_ylim(-0.02, 1.02)
        axes[row][0].set_ylabel(f"{model}\ncontention {contention:g}\nSLO attainment")
        axes[row][1].set_ylabel("goodput (req/s)")
        for ax in axes[row]:
            ax.set_xlabel("offered rate (req/s)")
            ax.grid(alpha=0.3)
    handles, names = axes[0][0].get_legend_handles_labels()
    fig.legend(handles, names, loc="lower center", ncol=min(3, len(names)), fontsize=7,
               bbox_to_anchor=(0.5, 0.0), frameon=False)  # fmt: skip
    fig.suptitle(f"{title} · serving under load (thin verticals: static capacity)", fontsize=9)
    fig.tight_layout(rect=(0, 0.06 + 0.03 * ((len(names) + 2) // 3), 1, 0.95))
    return fig
