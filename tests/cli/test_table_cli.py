"""`adabench table`: formats on stdout or --out, and bad input → exit 2 with one line naming
what exists."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from typer.testing import CliRunner

from adabench.cli import app

runner = CliRunner()
TINY_RUN = Path(__file__).parents[1] / "fixtures" / "tiny_run"


def test_table_prints_latex_by_default_and_writes_out(tmp_path):
    result = runner.invoke(app, ["table", str(TINY_RUN)])
    assert result.exit_code == 0, result.output
    assert "\\toprule" in result.stdout and "\\begin{tabular}" in result.stdout
    out = tmp_path / "t.md"
    result = runner.invoke(app, ["table", str(TINY_RUN), "--format", "markdown", "--out", str(out)])
    assert result.exit_code == 0 and out.read_text().startswith("| Model | Method | Budget")


@pytest.mark.parametrize(
    ("args", "names"),
    [
        (["--rows", "model,methods,budget"], "Choose from: budget, contention, method, model"),
        (["--columns", "vqav2"], "Choose from: shapes"),
        (["--vs", "fastv"], "Choose from: early-exit, full, layer-drop"),
        (["--format", "tex"], "Choose from: csv, json, latex, markdown"),
        (["--contention", "1"], "the run has contention 0, 0.5"),
    ],
)
def test_bad_names_exit_2_with_one_line(args, names):
    result = runner.invoke(app, ["table", str(TINY_RUN), *args])
    assert result.exit_code == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and names in lines[0], result.stderr


def test_a_folder_that_is_not_a_run_names_the_runs_inside(tmp_path):
    shutil.copytree(TINY_RUN, tmp_path / "20260101-000000-demo")
    result = runner.invoke(app, ["table", str(tmp_path)])
    assert result.exit_code == 2
    (line,) = result.stderr.strip().splitlines()
    assert "is not an adabench results folder" in line and "20260101-000000-demo" in line
    result = runner.invoke(app, ["table", str(tmp_path / "nope")])
    assert result.exit_code == 2 and "not found" in result.stderr


def test_report_embeds_the_table_and_writes_table_tex(tmp_path):
    run_dir = tmp_path / "run"
    shutil.copytree(TINY_RUN, run_dir)
    result = runner.invoke(app, ["report", str(run_dir)])
    assert result.exit_code == 0, result.output
    assert str(run_dir / "table.tex") in result.stdout
    same = ["--latency", "ratio", "--ci", "--rows", "model,method,budget,contention"]
    tex = runner.invoke(app, ["table", str(run_dir), *same]).stdout
    assert (run_dir / "table.tex").read_text() == tex
    markdown = runner.invoke(app, ["table", str(run_dir), "--format", "markdown", *same]).stdout
    report = (run_dir / "report.md").read_text()
    assert markdown.split("\n\n")[0] in report  # the same rows, number for number
    html = (run_dir / "report.html").read_text()
    assert '<table class="paper">' in html and "<b>100.0</b>" in html


@pytest.mark.slow
def test_sweep_prints_where_the_latex_table_went(random_llava_dir, tmp_path):
    args = ["sweep", "--models", str(random_llava_dir), "--methods", "full,layer-drop",
            "--suites", "shapes", "--budgets", "0.5,1.0", "--contention", "0", "--limit", "2",
            "--repeats", "1", "--warmup", "0", "--device", "cpu", "--out", str(tmp_path),
            "--name", "t"]  # fmt: skip
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    (run_dir,) = [p for p in tmp_path.iterdir() if not p.is_symlink()]
    assert f"table:{run_dir / 'table.tex'}" in "".join(result.stderr.split())  # rich wraps lines
    assert (run_dir / "table.tex").read_text().startswith("\\begin{table}")


def test_plot_style_paper_and_a_bad_style(tmp_path):
    result = runner.invoke(app, ["plot", str(TINY_RUN), "--out", str(tmp_path), "--style", "paper",
                                 "--format", "pdf"])  # fmt: skip
    assert result.exit_code == 0, result.output
    assert (tmp_path / "cost_shapes.pdf").read_bytes().startswith(b"%PDF")
    result = runner.invoke(app, ["plot", str(TINY_RUN), "--out", str(tmp_path), "--style", "papr"])
    assert result.exit_code == 2 and "Did you mean 'paper'" in result.stderr
