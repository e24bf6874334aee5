"""The sweep side of the CI recipe: a grid checked before the first cell (unreachable budgets
refused or skipped), repeated grid values collapsed, one table per suite, an honest `weights`
label and a `<out>/<name>` link to the newest run."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
from typer.testing import CliRunner

from adabench.cli import app
from adabench.models.catalog import weights_label

runner = CliRunner()
FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "suites"
FAST = ["--models", "tiny", "--limit", "2", "--repeats", "1", "--warmup", "0",
        "--contention", "0", "--no-report"]  # fmt: skip


def _sweep(out, *extra):
    return runner.invoke(app, ["sweep", *FAST, "--out", str(out), "--name", "g", *extra])


def _runs(out):
    return [p for p in out.iterdir() if not p.is_symlink()] if out.exists() else []


def test_unreachable_budget_is_refused_before_any_folder(tmp_path):
    out = tmp_path / "out"
    result = _sweep(out, "--methods", "full,fastv,layer-drop", "--budgets", "0.5,0.75")
    assert result.exit_code == 2
    line = result.stderr.strip().splitlines()[-1]
    assert "1 cell(s) of the grid cannot meet their budget: tiny · shapes · fastv@0.5" in line
    assert "0.5547" in line and "--skip-unreachable" in line
    assert _runs(out) == [] and not (out / "g").exists()


def test_skip_unreachable_runs_the_rest(tmp_path):
    out = tmp_path / "out"
    result = _sweep(out, "--methods", "full,fastv", "--budgets", "0.5,0.75",
                    "--skip-unreachable")  # fmt: skip
    assert result.exit_code == 0, result.output
    assert "fastv@0.5 on shapes" in result.stderr
    (run,) = _runs(out)
    cells = pd.read_parquet(run / "cells.parquet")
    assert sorted(zip(cells["method"], cells["budget"])) == [("fastv", 0.75), ("full", 1.0)]
    assert (out / "g").resolve() == run.resolve()  # the newest-run link


def test_repeated_budgets_collapse_with_a_note(tmp_path):
    out = tmp_path / "out"
    result = _sweep(out, "--methods", "full,layer-drop", "--budgets", "0.5,0.5,0.50")
    assert result.exit_code == 0, result.output
    assert "budgets: repeated value(s) 0.5, 0.5 collapsed" in result.stderr
    assert "grid      2 cells" in result.stderr
    (run,) = _runs(out)
    assert len(pd.read_parquet(run / "cells.parquet")) == 2


def test_summary_has_one_table_per_suite(tmp_path, monkeypatch):
    monkeypatch.setenv("COLUMNS", "200")
    monkeypatch.setenv("ADABENCH_DATA_DIR", str(FIXTURES))
    out = tmp_path / "out"
    result = _sweep(out, "--methods", "full", "--suites", "shapes,pope", "--budgets", "1")
    assert result.exit_code == 0, result.output
    headings = [line for line in result.stdout.splitlines() if line.startswith("── tiny")]
    assert [h.split(" · ")[1] for h in headings] == ["pope", "shapes"]


def test_weights_label_follows_what_the_folder_says(tmp_path):
    assert weights_label("tiny") == "trained"  # training.json with steps
    folder = tmp_path / "m"
    folder.mkdir()
    (folder / "config.json").write_text("{}")
    assert weights_label(str(folder)) == "unknown"  # no training record: never a guess
    (folder / "training.json").write_text(json.dumps({"weights": "random"}))
    assert weights_label(str(folder)) == "random"
    (folder / "training.json").write_text(json.dumps({"steps": 120}))
    assert weights_label(str(folder)) == "trained"
    (folder / "training.json").write_text("not json")
    assert weights_label(str(folder)) == "unknown"
