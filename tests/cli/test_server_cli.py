"""`adabench sweep --scenario server` end to end on the embedded AdaLLaVA-L: paired arrivals
across policies, per-request queueing columns, the summary with the oracle, resume, errors."""

from __future__ import annotations

import pandas as pd
from typer.testing import CliRunner

from adabench.cli import app

runner = CliRunner()


def _args(out, *extra):
    return ["sweep", "--scenario", "server", "--models", "tiny-adallava-l", "--methods",
            "full,adallava-l", "--budgets", "0.5", "--contention", "0", "--rates", "100",
            "--duration", "0.6s", "--slo-ms", "40", "--limit", "4", "--warmup", "1",
            "--threads", "1", "--device", "cpu", "--out", str(out), "--name", "srv",
            "--no-report", *extra]  # fmt: skip


def test_server_sweep_pairs_policies_and_resumes(tmp_path):
    result = runner.invoke(app, _args(tmp_path))
    assert result.exit_code == 0, result.output
    assert "server summary" in result.stdout and "oracle (b=0.5)" in result.stdout
    run_dir = (tmp_path / "srv").resolve()
    cells = pd.read_parquet(run_dir / "cells.parquet")
    assert sorted(cells.policy_label) == ["adallava-l (controller)", "adallava-l@0.5", "full@1"]
    assert (cells.scenario == "server").all() and (cells.rate_per_s == 100).all()
    assert (cells.requests_scored >= 50).all() and cells.slo_attainment.between(0, 1).all()
    samples = pd.read_parquet(run_dir / "samples.parquet")
    arrivals = samples.pivot_table(index="request", columns="cell_id", values="arrival_s")
    assert arrivals.notna().all().all() and (arrivals.nunique(axis=1) == 1).all()  # paired
    served = samples[~samples.dropped]
    assert (served.latency_ms >= served.queue_ms + served.service_ms - 1e-6).all()
    assert (served.queue_ms >= 0).all()
    again = runner.invoke(app, ["sweep", "--resume", str(run_dir), "--no-report"])
    assert again.exit_code == 0, again.output
    assert len(pd.read_parquet(run_dir / "cells.parquet")) == 3  # nothing ran twice
    plotted = runner.invoke(app, ["plot", str(run_dir), "--format", "png"])
    assert plotted.exit_code == 0, plotted.output
    assert plotted.stdout.split() == [str(run_dir / "plots" / "load_shapes.png")]
    assert runner.invoke(app, ["report", str(run_dir)]).exit_code == 0
    assert "load_shapes.png" in (run_dir / "report.md").read_text()


def test_server_errors_are_one_line(tmp_path):
    args = [a for a in _args(tmp_path) if a not in ("--slo-ms", "40")]
    result = runner.invoke(app, args)
    assert result.exit_code == 2 and "needs one --slo-ms" in result.stderr
    short = _args(tmp_path)
    short[short.index("0.6s")] = "0.1s"
    result = runner.invoke(app, short)
    assert result.exit_code == 2 and "fewer than the 50" in result.stderr
    assert not [p for p in tmp_path.iterdir() if p.is_dir()]
