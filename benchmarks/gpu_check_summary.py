"""The numbers of benchmarks/gpu_check.sh as JSON lines (one object a line, each with a "step").

Reads DEST/sweeps/*-eager and *-graphs (results folders) and DEST/calibration.json; prints
  cell        one per measured cell of either sweep: latency, ratios, decode per token, the
              GPU-busy fraction and launch_bound, peak memory, energy, slowdown, telemetry
  graphs      one per (method, budget) at contention 0: eager vs --cuda-graphs decode ms per
              token and latency, their ratio, both busy fractions, and whether every sample's
              prediction is equal (tokens_equal)
  prediction  the issue's own prediction for an H100 (7B fp16, 8 new tokens: full ≈ 57 ms,
              adallava-l@0.5 ≈ 0.54× of it, hardware bound 0.51) beside what was measured
  calibration one per stress level
Missing inputs give a line with "error" instead; the exit status is 1 then.

    python benchmarks/gpu_check_summary.py DEST
"""

from __future__ import annotations

import json
import math
import sys
from pathlib import Path

import pandas as pd

CELL_KEYS = ("contention", "method", "budget", "cuda_graphs", "latency_ms_mean", "latency_ratio",
             "decode_ms_per_token_mean", "prefill_ms_mean", "gpu_busy_fraction", "gpu_busy_note",
             "launch_bound", "peak_mem_mb", "energy_j_mean", "achieved_slowdown", "aa_ratio",
             "flops_ratio", "mps_active", "throttled", "sm_clock_mhz", "gpu_uuid")  # fmt: skip
PREDICTED = {"full_latency_ms": 57.0, "adallava-l@0.5_ratio": 0.54, "hardware_bound": 0.51}


def _value(v):
    """Returns a JSON-ready value: numpy scalars as Python ones, NaN as None."""
    if hasattr(v, "item"):
        v = v.item()
    if isinstance(v, float) and not math.isfinite(v):
        return None
    return v


def _run(dest: Path, name: str) -> Path | None:
    runs = sorted((dest / "sweeps").glob(f"*-{name}"))
    return runs[-1] if runs else None


def summary(dest: Path) -> list[dict]:
    """Returns the JSON lines of `dest` (see the module docstring)."""
    lines: list[dict] = []
    tables = {}
    for name in ("eager", "graphs"):
        run = _run(dest, name)
        if run is None or not (run / "cells.parquet").exists():
            lines.append({"step": "cell", "sweep": name, "error": "no results folder"})
            continue
        cells = pd.read_parquet(run / "cells.parquet")
        tables[name] = (cells, pd.read_parquet(run / "samples.parquet"))
        for _, c in cells.sort_values(["contention", "method", "budget"]).iterrows():
            keys = [k for k in CELL_KEYS if k in c.index]
            lines.append({"step": "cell", "sweep": name, **{k: _value(c[k]) for k in keys}})
    if set(tables) == {"eager", "graphs"}:
        lines += _graphs_lines(*tables["eager"], *tables["graphs"])
    if "eager" in tables:
        lines.append(_prediction(tables["eager"][0]))
    lines += _calibration_lines(dest / "calibration.json")
    return lines


def _graphs_lines(cells_e, samples_e, cells_g, samples_g) -> list[dict]:
    out = []
    at0 = cells_e[cells_e["contention"] == 0]
    for _, e in at0.iterrows():
        same = [(cells_g[k] == e[k]) for k in ("model", "suite", "method", "budget") if k in e]
        g = cells_g[pd.concat(same, axis=1).all(axis=1)] if same else cells_g
        if g.empty:
            continue
        g = g[g["contention"] == 0].iloc[0] if (g["contention"] == 0).any() else g.iloc[0]
        pe = samples_e[samples_e["cell_id"] == e["cell_id"]].set_index("sample_id")["prediction"]
        pg = samples_g[samples_g["cell_id"] == g["cell_id"]].set_index("sample_id")["prediction"]
        common = pe.index.intersection(pg.index)
        out.append({
            "step": "graphs", "model": e.get("model"), "suite": e.get("suite"),
            "method": e["method"], "budget": _value(e["budget"]),
            "decode_ms_per_token_eager": _value(e["decode_ms_per_token_mean"]),
            "decode_ms_per_token_graphs": _value(g["decode_ms_per_token_mean"]),
            "decode_graphs_over_eager": _value(
                g["decode_ms_per_token_mean"] / e["decode_ms_per_token_mean"]),
            "latency_ms_eager": _value(e["latency_ms_mean"]),
            "latency_ms_graphs": _value(g["latency_ms_mean"]),
            "gpu_busy_eager": _value(e.get("gpu_busy_fraction", math.nan)),
            "gpu_busy_graphs": _value(g.get("gpu_busy_fraction", math.nan)),
            "tokens_equal": bool(len(common) and (pe[common] == pg[common]).all()),
            "samples_compared": len(common),
        })  # fmt: skip
    return out


def _prediction(cells: pd.DataFrame) -> dict:
    at0 = cells[cells["contention"] == 0]
    full = at0[at0["method"] == "full"]
    ada = at0[(at0["method"] == "adallava-l") & (at0["budget"] == 0.5)]
    return {
        "step": "prediction",
        "predicted": PREDICTED,
        "full_latency_ms": _value(full["latency_ms_mean"].iloc[0]) if len(full) else None,
        "adallava-l@0.5_ratio": _value(ada["latency_ratio"].iloc[0]) if len(ada) else None,
    }


def _calibration_lines(path: Path) -> list[dict]:
    try:
        rows = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        return [{"step": "calibration", "error": f"{path.name}: {exc}"}]
    return [{"step": "calibration", **{k: _value(v) for k, v in r.items()}} for r in rows]


def main() -> int:
    lines = summary(Path(sys.argv[1]))
    for line in lines:
        print(json.dumps(line, default=str))
    return 1 if any("error" in line for line in lines) else 0


if __name__ == "__main__":
    sys.exit(main())
