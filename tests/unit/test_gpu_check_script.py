"""benchmarks/gpu_check.sh fits its 7-minute slot and parses; its summary turns results folders
into JSON lines (run here on the trimmed tiny run standing in for both sweeps)."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).parents[2]
SCRIPT = ROOT / "benchmarks" / "gpu_check.sh"
TINY_RUN = ROOT / "tests" / "fixtures" / "tiny_run"
SLOT_S = 420


def test_the_script_parses_and_its_step_timeouts_fit_the_slot():
    subprocess.run(["bash", "-n", str(SCRIPT)], check=True)
    text = SCRIPT.read_text()
    limits = {k: int(v) for k, v in re.findall(r"^(T_[A-Z]+)=(\d+)$", text, flags=re.M)}
    assert len(limits) >= 5 and sum(limits.values()) <= SLOT_S, limits
    code = "\n".join(line for line in text.splitlines() if not line.lstrip().startswith("#"))
    calls = re.findall(r"\btimeout\s+(\S+)", code)
    assert calls and all(c.strip('"').lstrip("$") in limits for c in calls), calls
    for need in ("adabench.measure.preflight", "--cuda-graphs", "tee", "gpu_check.jsonl"):
        assert need in text
    assert "mktemp" not in text  # the sweeps' results folders stay under $OUT


def test_the_summary_writes_every_number_as_json_lines(tmp_path):
    sweeps = tmp_path / "sweeps"
    for name in ("eager", "graphs"):
        shutil.copytree(TINY_RUN, sweeps / f"20260101-000000-{name}")
    (tmp_path / "calibration.json").write_text(json.dumps([{"level": 0.0, "slowdown": 1.0}]))
    proc = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "gpu_check_summary.py"), str(tmp_path)],
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    lines = [json.loads(x) for x in proc.stdout.splitlines()]
    steps = {x["step"] for x in lines}
    assert steps == {"cell", "graphs", "prediction", "calibration"}
    graphs = [x for x in lines if x["step"] == "graphs"]
    assert graphs and all(x["tokens_equal"] and x["decode_graphs_over_eager"] == 1 for x in graphs)
    cells = [x for x in lines if x["step"] == "cell"]
    assert all("latency_ms_mean" in x for x in cells)


def test_the_summary_fails_when_a_sweep_left_no_results(tmp_path):
    proc = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "gpu_check_summary.py"), str(tmp_path)],
        capture_output=True, text=True,
    )  # fmt: skip
    assert proc.returncode == 1 and '"error"' in proc.stdout
