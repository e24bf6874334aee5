"""Reading a server-scenario run: policies side by side per offered rate, the oracle fixed
budget chosen in hindsight, and findings in words.

The oracle of a (model, suite, contention, method, rate) is the static cell of that method with
the highest SLO attainment at that rate (ties: higher accuracy, then higher budget) — the best a
controller limited to one fixed budget per rate could have done, known only after measuring
every budget. It is a choice among measured cells, never a measurement of its own.
"""

from __future__ import annotations

import math

import pandas as pd

GROUP = ["model", "suite", "contention"]


def server_cells(cells: pd.DataFrame) -> pd.DataFrame:
    """Returns the server-scenario cells of a run (empty when it has none)."""
    if "scenario" not in cells.columns:
        return cells.iloc[0:0]
    return cells[cells["scenario"] == "server"]


def oracle(cells: pd.DataFrame) -> pd.DataFrame:
    """Returns one row per (model, suite, contention, method, rate) of the best static cell
    (see the module docstring), with `policy_label` "METHOD oracle" and its `oracle_budget`."""
    static = server_cells(cells)
    static = static[(static["policy"] == "static") & (static["method"] != "full")]
    if static.empty:
        return static
    ranked = static.assign(_acc=static["accuracy"].fillna(-1.0)).sort_values(
        ["slo_attainment", "_acc", "budget"], ascending=False
    )
    best = ranked.groupby([*GROUP, "method", "rate_per_s"], sort=True).head(1).drop(columns="_acc")
    return best.assign(
        policy="oracle",
        oracle_budget=best["budget"],
        policy_label=[f"{m} oracle" for m in best["method"]],
    )


def with_oracle(cells: pd.DataFrame) -> pd.DataFrame:
    """Returns the server cells with the oracle rows appended."""
    return pd.concat([server_cells(cells), oracle(cells)], ignore_index=True)


def capacity_per_s(cells: pd.DataFrame) -> dict[str, float]:
    """Returns {static policy label: capacity in requests/s} = 1 / its mean service time over
    every rate it ran at (service times do not depend on the rate at batch 1)."""
    static = server_cells(cells)
    static = static[static["policy"] == "static"]
    out = {}
    for label, group in static.groupby("policy_label"):
        service_ms = group["service_ms_mean"].mean()
        out[label] = 1e3 / service_ms if service_ms > 0 else math.nan
    return out


def table_rows(cells: pd.DataFrame) -> list[dict]:
    """Returns the summary rows of a server run: per (model, suite, contention, rate), every
    policy and the oracle, with attainment, goodput, p99 end-to-end latency and queue wait,
    accuracy, mean budget and the overloaded mark."""
    rows = []
    data = with_oracle(cells)
    for _, c in data.sort_values([*GROUP, "rate_per_s", "policy_label"]).iterrows():
        rows.append(
            {
                "model": c["model"],
                "contention": f"{c['contention']:g}",
                "rate/s": f"{c['rate_per_s']:g}",
                "policy": c["policy_label"]
                + (f" (b={c['oracle_budget']:g})" if c["policy"] == "oracle" else ""),
                "attain": f"{c['slo_attainment']:.2f}",
                "goodput/s": f"{c['goodput_per_s']:.1f}",
                "p99 ms": f"{c['e2e_ms_p99']:.1f}",
                "queue p99": f"{c['queue_ms_p99']:.1f}",
                "acc": "–" if pd.isna(c["accuracy"]) else f"{c['accuracy']:.2f}",
                "budget": f"{c['budget_mean']:.2f}",
                "state": ("overloaded" if c["overloaded"] else "")
                + ("" if c.get("valid", True) else " invalid"),
            }
        )
    return rows


def findings(cells: pd.DataFrame) -> list[str]:
    """Returns one sentence per (model, suite, contention, rate, budgeted method): the
    controller's attainment and accuracy, full's attainment, and the oracle's budget,
    attainment and accuracy — plus whether the controller came within 0.05 of the oracle."""
    data = server_cells(cells)
    best = oracle(cells)
    out = []
    for key, group in data.groupby([*GROUP, "rate_per_s"], sort=True):
        model, suite, contention, rate = key
        full = group[group["method"] == "full"]
        for method, mgroup in group[group["policy"] == "controller"].groupby("method"):
            ctl = mgroup.iloc[0]
            orc = best[(best["method"] == method) & (best["rate_per_s"] == rate)
                       & (best["model"] == model) & (best["suite"] == suite)
                       & (best["contention"] == contention)]  # fmt: skip
            text = (
                f"{model} · {suite} · contention {contention:g} · {rate:g} req/s: "
                f"{method} with the controller meets {ctl['slo_attainment']:.2f} of deadlines"
                f"{_acc(ctl)}"
            )
            if not full.empty:
                f = full.iloc[0]
                text += f"; full meets {f['slo_attainment']:.2f}{_acc(f)}"
                text += " (overloaded)" if f["overloaded"] else ""
            if not orc.empty:
                o = orc.iloc[0]
                gap = o["slo_attainment"] - ctl["slo_attainment"]
                text += (
                    f"; the best fixed budget ({o['budget']:g}) meets "
                    f"{o['slo_attainment']:.2f}{_acc(o)}"
                    + ("" if gap <= 0.05 else f" — the controller is {gap:.2f} below it")
                )
            out.append(text)
    return out


def _acc(cell) -> str:
    return "" if pd.isna(cell["accuracy"]) else f" at accuracy {cell['accuracy']:.2f}"
