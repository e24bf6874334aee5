"""GPU recipes in short form: the no-weights latency sweep on llava-1.5-7b shapes (issue 14) and
the paper recipe on real llava-1.5-7b weights when they are in the HF cache (issue 12).
Skipped without CUDA (and without the weights for the paper recipe)."""

import json
import math

import pandas as pd
import pytest
import torch
from typer.testing import CliRunner

from adabench.cli import app

pytestmark = [
    pytest.mark.gpu,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA"),
]
runner = CliRunner()


def test_no_weights_latency_sweep_7b_short(tmp_path):
    result = runner.invoke(
        app,
        [
            "sweep",
            "--models",
            "llava-1.5-7b",
            "--no-weights",
            "--methods",
            "full,layer-drop,adallava-l,adallava-h",
            "--budgets",
            "0.5,1.0",
            "--contention",
            "0,1.0",
            "--limit",
            "4",
            "--repeats",
            "2",
            "--warmup",
            "2",
            "--max-new-tokens",
            "4",
            "--device",
            "cuda",
            "--dtype",
            "float16",
            "--out",
            str(tmp_path),
            "--name",
            "gpu",
            "--no-report",
            "--json",
        ],
    )
    assert result.exit_code == 0, result.output
    cells = json.loads(result.stdout)
    assert all(
        c["accuracy"] is None for c in cells
    )  # NaN → null: random weights never report accuracy
    by = {(c["method"], c["budget"], c["contention"]): c for c in cells}
    for method in ("layer-drop", "adallava-l"):
        assert by[(method, 0.5, 0.0)]["latency_ms_mean"] < by[("full", 1.0, 0.0)]["latency_ms_mean"]
    assert by[("full", 1.0, 1.0)]["achieved_slowdown"] > 1.05
    assert all(math.isfinite(c["energy_j_mean"]) and c["energy_j_mean"] > 0 for c in cells)
    # energy is measured per arm (NVML counter deltas around its own generations): an arm
    # doing half the blocks spends less energy than `full` on the same samples
    assert by[("layer-drop", 0.5, 0.0)]["energy_j_mean"] < by[("full", 1.0, 0.0)]["energy_j_mean"]
    # The latency (wall time of the synced generation) is what the spans add up to: prefill +
    # every decode step, within 5 %, so no sync or host work is left uncounted or doubled.
    samples = pd.concat(pd.read_parquet(p) for p in tmp_path.glob("*/parts/*.samples.parquet"))
    # Per contention level: pooled over both, a stressed level could hide an unstressed miss.
    for (method, level), rows in samples.groupby(["method", "contention"]):
        wall, parts = rows["latency_ms"].sum(), (rows["prefill_ms"] + rows["decode_ms"]).sum()
        print(f"{method} c={level:g}: wall {wall:.1f} ms, prefill + decode {parts:.1f} ms")
        if method in ("full", "layer-drop"):  # AdaLLaVA adds its scheduler (overhead_ms)
            assert parts == pytest.approx(wall, rel=0.05), (method, level)


def _weights_cached() -> bool:
    from adabench.models.catalog import describe_shipped

    return bool(describe_shipped("llava-1.5-7b").get("weights_present"))


@pytest.mark.skipif(
    not torch.cuda.is_available() or not _weights_cached(),
    reason="needs CUDA and llava-hf/llava-1.5-7b-hf in the HF cache",
)
def test_paper_recipe_short(tmp_path):
    result = runner.invoke(
        app,
        [
            "eval",
            "--model",
            "llava-1.5-7b",
            "--method",
            "layer-drop",
            "--budget",
            "0.75",
            "--suite",
            "shapes",
            "--limit",
            "4",
            "--device",
            "cuda",
            "--json",
        ],
    )
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["flops_ratio"] <= 0.75
