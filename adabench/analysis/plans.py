"""The plan atlas: what a scheduler chose, read back from the plan text in samples.parquet
(`Plan.describe`: "blocks=1101…", "heads=4,2,… mlp=4,2,…", " +prumerge-N", " +fastv@K-N").
How often each decoder block (or unit) runs, overall and per question family, how many distinct
plans a cell used, and the share of visual tokens a token-selection method kept."""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

import numpy as np
import pandas as pd

ALL = "all"
"""The family label of the overall column."""
KEY = ["suite", "model", "method", "budget"]
_TOKENS = re.compile(r"\+(?:prumerge-(\d+)|fastv@\d+-(\d+))")


@dataclass(frozen=True)
class ParsedPlan:
    """One plan text, parsed: per-layer counts and the visual tokens removed."""

    kind: str  # "blocks" (1/0 per block) | "units" (heads and MLP groups per block)
    heads: tuple[int, ...]  # per layer: 1/0 for blocks, kept query heads for units
    mlp: tuple[int, ...]  # per layer: 1/0 for blocks, kept MLP groups for units
    tokens_removed: int


def parse_plan(text) -> ParsedPlan | None:
    """Returns the parsed plan, or None for a text that is not `Plan.describe`'s (NaN, JSON)."""
    if not isinstance(text, str):
        return None
    removed = sum(int(a or b) for a, b in _TOKENS.findall(text))
    head = text.split(" +")[0].strip()
    if m := re.fullmatch(r"blocks=([01]+)", head):
        bits = tuple(int(c) for c in m.group(1))
        return ParsedPlan("blocks", bits, bits, removed)
    if m := re.fullmatch(r"heads=([\d,]+) mlp=([\d,]+)", head):
        heads = tuple(int(x) for x in m.group(1).split(","))
        mlp = tuple(int(x) for x in m.group(2).split(","))
        return ParsedPlan("units", heads, mlp, removed) if len(heads) == len(mlp) else None
    return None


def unit_fractions(plans: pd.Series) -> np.ndarray:
    """Returns a (samples × layers) array: the fraction of each block that runs per sample — 1/0
    for block plans, (kept heads ÷ heads + kept MLP groups ÷ groups) ÷ 2 for unit plans, where
    the totals are the largest counts seen in `plans` (a full block runs them all). Rows of
    unparseable plans are NaN."""
    parsed = [parse_plan(t) for t in plans]
    layers = max((len(p.heads) for p in parsed if p), default=0)
    units = [p for p in parsed if p and p.kind == "units"]
    total_heads = max((max(p.heads) for p in units), default=1) or 1
    total_mlp = max((max(p.mlp) for p in units), default=1) or 1
    out = np.full((len(parsed), layers), math.nan)
    for i, p in enumerate(parsed):
        if p is None or len(p.heads) != layers:
            continue
        if p.kind == "blocks":
            out[i] = p.heads
        else:
            out[i] = (np.array(p.heads) / total_heads + np.array(p.mlp) / total_mlp) / 2
    return out


def plan_atlas(samples: pd.DataFrame) -> pd.DataFrame:
    """Returns one row per (suite, model, method, budget, family, layer): ``runs``, the mean
    fraction of that block that ran over the family's samples (family ``all`` = every sample),
    and ``n``. Lowest contention only: the scheduler decides per sample, not per load."""
    frame = _lowest_contention(samples)
    rows = []
    for key, cell in frame.groupby(KEY, sort=True):
        fractions = unit_fractions(cell["plan"])
        if fractions.size == 0 or np.isnan(fractions).all():
            continue
        families = cell["family"] if "family" in cell else pd.Series(ALL, index=cell.index)
        for family, mask in [(ALL, np.ones(len(cell), bool))] + [
            (f, (families == f).to_numpy()) for f in sorted(families.dropna().unique())
        ]:
            runs = np.nanmean(fractions[mask], axis=0)
            for layer, value in enumerate(runs):
                rows.append({**dict(zip(KEY, key, strict=True)), "family": family,
                             "layer": layer, "runs": float(value), "n": int(mask.sum())})  # fmt: skip
    return pd.DataFrame(rows, columns=[*KEY, "family", "layer", "runs", "n"])


def distinct_plans(samples: pd.DataFrame) -> pd.DataFrame:
    """Returns per (suite, model, method, budget): ``plans`` (distinct plan texts) and ``n``."""
    frame = _lowest_contention(samples)
    grouped = frame.groupby(KEY, sort=True)["plan"]
    return grouped.agg(plans="nunique", n="size").reset_index()


def kept_tokens(samples: pd.DataFrame) -> pd.DataFrame:
    """Returns per (suite, model, method, budget, family) the mean ``tokens_removed`` and, when
    the samples record ``visual_tokens``, the ``kept_fraction`` of visual tokens; only for cells
    that removed tokens at all (token selection: PruMerge, FastV)."""
    frame = _lowest_contention(samples).copy()
    frame["tokens_removed"] = [p.tokens_removed if (p := parse_plan(t)) else math.nan
                               for t in frame["plan"]]  # fmt: skip
    if "visual_tokens" in frame:
        frame["kept_fraction"] = 1 - frame["tokens_removed"] / frame["visual_tokens"]
    else:
        frame["kept_fraction"] = math.nan
    removed = frame.groupby(KEY)["tokens_removed"].transform("max") > 0
    frame = frame[removed]
    if "family" not in frame:
        frame["family"] = ALL
    cols = ["tokens_removed", "kept_fraction"]
    per_family = frame.groupby([*KEY, "family"], sort=True)[cols].mean().reset_index()
    overall = frame.groupby(KEY, sort=True)[cols].mean().reset_index().assign(family=ALL)
    return pd.concat([overall, per_family], ignore_index=True)


def _lowest_contention(samples: pd.DataFrame) -> pd.DataFrame:
    if samples.empty or "plan" not in samples:
        return pd.DataFrame(columns=[*KEY, "plan", "family"])
    low = samples.groupby(["suite", "model"])["contention"].transform("min")
    return samples[samples["contention"] == low]
