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


def test_shipped_sweep_config_resolves_by_name_from_any_directory(tmp_path, monkeypatch):
    """The README's `--config ci` works outside the checkout: the YAML ships in the package."""
    from adabench.config import SHIPPED_SWEEPS_DIR, read_yaml, resolve_config, shipped_sweeps

    monkeypatch.chdir(tmp_path)
    assert {"ci", "demo", "paper"} <= set(shipped_sweeps())
    assert resolve_config("ci") == resolve_config("ci.yaml") == SHIPPED_SWEEPS_DIR / "ci.yaml"
    assert read_yaml("ci")["methods"] == ["full", "layer-drop", "adallava-l"]
    (tmp_path / "ci").write_text("limit: 3\n")  # a file of that name wins over the shipped one
    assert read_yaml("ci") == {"limit": 3}


def test_config_errors_are_one_line_exit_2(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "folder").mkdir()
    (tmp_path / "twice.yaml").write_text("limit: 2\nmodels: [tiny]\nlimit: 5\n")
    cases = {
        "cii": "unknown sweep config 'cii'. Did you mean 'ci'?",
        "nope/x.yaml": "config file not found: nope/x.yaml (shipped configs, usable by name: ci,",
        "folder": "--config folder: is a folder",
        "twice.yaml": "key 'limit' given twice (lines 1 and 3)",
    }
    for value, message in cases.items():
        result = runner.invoke(app, ["sweep", "--config", value, "--no-report"])
        assert result.exit_code == 2, (value, result.output)
        lines = result.stderr.strip().splitlines()
        assert len(lines) == 1 and message in lines[0], (value, lines)
