"""Accuracy-versus-cost trade-offs: Pareto frontiers per (suite, contention) and per-family curves."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from adabench.errors import did_you_mean

X_COLUMNS: dict[str, str] = {"flops": "flops", "latency": "latency_ms_mean"}
"""Cost axes by CLI name: FLOPs per sample, or mean measured latency in ms."""
GROUP: list[str] = ["suite", "contention"]


def x_column(x: str) -> str:
    """Returns the cells column for a cost axis name (``flops`` | ``latency``)."""
    if x not in X_COLUMNS:
        raise did_you_mean(x, X_COLUMNS, "x axis")
    return X_COLUMNS[x]


def frontier_mask(cost: np.ndarray, accuracy: np.ndarray) -> np.ndarray:
    """Returns a boolean mask of the non-dominated points (lower cost, higher accuracy).

    A point is dominated when another has cost ≤ and accuracy ≥ with one strict; NaN points
    are never on the frontier.
    """
    cost, accuracy = np.asarray(cost, float), np.asarray(accuracy, float)
    valid = ~(np.isnan(cost) | np.isnan(accuracy))
    mask = np.zeros(len(cost), dtype=bool)
    best = -math.inf
    # sweep by cost ascending (ties: best accuracy first); keep points that beat every cheaper one
    for i in sorted(np.flatnonzero(valid), key=lambda i: (cost[i], -accuracy[i])):
        if accuracy[i] > best:
            mask[i] = True
            best = accuracy[i]
    return mask


def pareto(cells: pd.DataFrame, x: str = "flops", y: str = "accuracy") -> pd.DataFrame:
    """Returns the cells' (suite, contention, model, method, budget, cost, accuracy, CI) rows with
    an ``on_frontier`` flag computed per (suite, contention), sorted by group then cost.

    ``x`` is ``flops`` (per sample) or ``latency`` (latency_ms_mean); the cost lands in ``cost``.
    """
    col = x_column(x)
    keep = ["suite", "contention", "model", "method", "budget", col, y,
            "accuracy_ci_low", "accuracy_ci_high"]  # fmt: skip
    frame = cells[[c for c in keep if c in cells.columns]].copy()
    frame["cost"] = frame[col].astype(float)
    frame["on_frontier"] = False
    for _, idx in frame.groupby(GROUP, dropna=False).groups.items():
        sub = frame.loc[idx]
        frame.loc[idx, "on_frontier"] = frontier_mask(sub["cost"].to_numpy(), sub[y].to_numpy())
    return frame.sort_values([*GROUP, "cost"], ignore_index=True)


def accuracy_by_family(samples: pd.DataFrame) -> pd.DataFrame:
    """Returns mean score per (suite, model, method, budget, contention, family) with n and a
    normal-approximation 95 % CI (``accuracy_ci_low``/``high``, clipped to [0, 1]).

    Empty when the samples have no ``family`` column.
    """
    key = ["suite", "model", "method", "budget", "contention", "family"]
    if "family" not in samples.columns or samples.empty:
        return pd.DataFrame(columns=[*key, "n", "accuracy", "accuracy_ci_low", "accuracy_ci_high"])
    grouped = samples.dropna(subset=["family"]).groupby(key, dropna=False)["score"]
    frame = grouped.agg(n="count", accuracy="mean", std="std").reset_index()
    half = 1.96 * frame["std"].fillna(0.0) / np.sqrt(frame["n"].clip(lower=1))
    frame["accuracy_ci_low"] = (frame["accuracy"] - half).clip(0.0, 1.0)
    frame["accuracy_ci_high"] = (frame["accuracy"] + half).clip(0.0, 1.0)
    return frame.drop(columns="std")
