"""How much FLOP saving becomes time saving on this machine (reported, never asserted).

Swept: (tiny, layer-drop), (tiny-adallava-l, adallava-l), (tiny-adallava-h, adallava-h) at budgets
0.5, 0.6, 0.75, 0.85, 1.0 on shapes test (40 samples, 3 repeats, 2 warm-up). Numbers per row:
  latency_ms        mean end-to-end latency (vision + prefill + decode), with its std
  latency_ratio     latency ÷ latency at budget 1.0 of the same model and method
  flops_ratio       achieved decoder-block FLOPs ratio (mean over samples)
  realization       (1 − latency_ratio) ÷ (1 − flops_ratio): share of the FLOP saving that became time
Prints a table and one JSON line at the end.
"""

from __future__ import annotations

import json
import math
import sys

import torch

from adabench.data.suites import get_spec, load_suite
from adabench.models.loading import load_model
from adabench.sweep.cell import CellConfig, prepare_samples
from adabench.sweep.group import run_single

SETTINGS = (
    ("tiny", "layer-drop"),
    ("tiny-adallava-l", "adallava-l"),
    ("tiny-adallava-h", "adallava-h"),
)
BUDGETS = (1.0, 0.85, 0.75, 0.6, 0.5)


def main(limit: int = 40, repeats: int = 3) -> list[dict]:
    spec = get_spec("shapes")
    samples = load_suite("shapes", limit=limit)
    print(
        f"card: cpu, torch threads {torch.get_num_threads()}, shapes test {limit} samples x {repeats} repeats"
    )
    out = []
    for model, method in SETTINGS:
        loaded = load_model(model, device="cpu")
        prepared = prepare_samples(loaded, spec, samples)
        base = None
        for b in BUDGETS:
            cell, _ = run_single(
                loaded,
                spec,
                samples,
                prepared,
                CellConfig(
                    model=model, method=method, budget=b, limit=limit, repeats=repeats, warmup=2
                ),
            )
            base = base or cell["latency_ms_mean"]
            lr = cell["latency_ms_mean"] / base
            fr = cell["flops_ratio"]
            real = (1 - lr) / (1 - fr) if fr < 1 else math.nan
            row = {
                "model": model,
                "method": method,
                "budget": b,
                "accuracy": round(cell["accuracy"], 3),
                "latency_ms": round(cell["latency_ms_mean"], 3),
                "latency_ms_std": round(cell["latency_ms_std"], 3),
                "latency_ratio": round(lr, 3),
                "flops_ratio": round(fr, 3),
                "realization": round(real, 3),
            }
            out.append(row)
            print(
                f"{model:>16} {method:>11} b={b:<4} acc {row['accuracy']:.3f}  {row['latency_ms']:7.2f} ± {row['latency_ms_std']:5.2f} ms"
                f"  latency_ratio {lr:.3f}  flops_ratio {fr:.3f}  realization {real:.2f}"
            )
    print(json.dumps(out))
    return out


if __name__ == "__main__":
    main(*(int(x) for x in sys.argv[1:3]))
