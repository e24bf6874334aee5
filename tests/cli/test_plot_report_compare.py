"""`adabench plot`, `report` and `compare` on a hand-built results folder (no model, no torch)."""

from __future__ import annotations

import base64
import importlib.util
import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest
from typer.testing import CliRunner

from adabench.cli import app

_spec = importlib.util.spec_from_file_location(
    "make_run", Path(__file__).parents[1] / "fixtures" / "make_run.py"
)
make_run = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(make_run)

runner = CliRunner()
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
CHROMIUM_FLAGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
    "--enable-logging=stderr", "--v=0",
]  # fmt: skip


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory) -> Path:
    return make_run.make_run(tmp_path_factory.mktemp("runs"))


@pytest.fixture(scope="module")
def worse_dir(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("worse")
    return make_run.make_run(out, acc_shift=-0.2, latency_scale=2.0)


def test_plot_writes_png_pdf_svg(run_dir, tmp_path):
    result = runner.invoke(
        app, ["plot", str(run_dir), "--out", str(tmp_path), "--format", "png,pdf,svg"]
    )
    assert result.exit_code == 0, result.output
    pngs = sorted(p.name for p in tmp_path.glob("*.png"))
    assert len(pngs) >= 2 and "pareto_flops_shapes.png" in pngs
    assert "family_accuracy_shapes.png" in pngs and "adherence_shapes.png" in pngs
    for png in tmp_path.glob("*.png"):
        assert (tmp_path / f"{png.stem}.pdf").read_bytes().startswith(b"%PDF")
        assert "<svg" in (tmp_path / f"{png.stem}.svg").read_text()
    assert str(tmp_path / "pareto_flops_shapes.png") in result.stdout


def test_plot_latency_axis_json_and_bad_input(run_dir, tmp_path):
    result = runner.invoke(app, ["plot", str(run_dir), "--out", str(tmp_path), "--x", "latency",
                                 "--format", "png", "--json"])  # fmt: skip
    assert result.exit_code == 0, result.output
    assert any(p.endswith("pareto_latency_shapes.png") for p in json.loads(result.stdout))
    bad = runner.invoke(app, ["plot", str(run_dir), "--format", "gif"])
    assert bad.exit_code == 2 and "figure format" in bad.stderr
    bad = runner.invoke(app, ["plot", str(run_dir), "--suite", "shape"])
    assert bad.exit_code == 2 and "Did you mean 'shapes'" in bad.stderr


def test_plot_random_weights_skips_accuracy(tmp_path):
    run = make_run.make_run(tmp_path, weights="random", slo_ms=45.0)
    result = runner.invoke(app, ["plot", str(run), "--format", "png"])
    assert result.exit_code == 0, result.output
    names = {p.stem for p in (run / "plots").glob("*.png")}
    assert not any(n.startswith(("pareto", "family")) for n in names)
    assert {"adherence_shapes", "latency_cdf_shapes", "cost_shapes", "slo_shapes"} <= names


def test_report_writes_markdown_and_self_contained_html(tmp_path):
    run = make_run.make_run(tmp_path)
    result = runner.invoke(app, ["report", str(run)])
    assert result.exit_code == 0, result.output
    md, page = (run / "report.md").read_text(), (run / "report.html").read_text()
    assert "## Environment" in md and "torch" in md and "adallava-l" in md
    assert "(plots/pareto_flops_shapes.png)" in md  # plots were made because none existed
    srcs = re.findall(r'<img[^>]*src="([^"]+)"', page)
    assert len(srcs) >= 2 and all(s.startswith("data:image/png;base64,") for s in srcs)
    assert "as few as 20 samples" in page  # warnings section


@pytest.mark.skipif(CHROMIUM is None, reason="chromium not installed (apt-get install -y chromium)")
def test_report_html_renders_in_headless_chromium(run_dir, tmp_path):
    assert runner.invoke(app, ["report", str(run_dir)]).exit_code == 0
    url = (run_dir / "report.html").as_uri()
    flags = [CHROMIUM, *CHROMIUM_FLAGS, f"--user-data-dir={tmp_path / 'profile'}"]
    dom = subprocess.run([*flags, "--dump-dom", url], capture_output=True, text=True, timeout=120)
    assert dom.returncode == 0, dom.stderr[-2000:]
    console = [line for line in dom.stderr.splitlines() if ":CONSOLE" in line]
    assert not console, console
    srcs = re.findall(r'<img[^>]*src="([^"]+)"', dom.stdout)
    assert len(srcs) >= 2
    for src in srcs:  # every image is an embedded, decodable PNG
        assert src.startswith("data:image/png;base64,")
        assert base64.b64decode(src.split(",", 1)[1]).startswith(b"\x89PNG")
    shot = tmp_path / "report.png"
    subprocess.run([*flags, f"--screenshot={shot}", "--window-size=1200,2000", url],
                   capture_output=True, timeout=120, check=True)  # fmt: skip
    assert shot.read_bytes().startswith(b"\x89PNG") and shot.stat().st_size > 20_000


def test_compare_same_run_exits_0(run_dir):
    result = runner.invoke(app, ["compare", str(run_dir), str(run_dir)])
    assert result.exit_code == 0, result.output
    assert "shapes/tiny/adallava-l@0.5/c0" in result.stdout


def test_compare_regression_exits_1_and_names_cells(run_dir, worse_dir):
    result = runner.invoke(app, ["compare", str(run_dir), str(worse_dir), "--format", "markdown"])
    assert result.exit_code == 1, result.output
    assert "regression in 10 cell(s)" in result.stderr  # c0.5: latency reported, not gated
    gated = runner.invoke(app, ["compare", str(run_dir), str(worse_dir), "--gate-contended"])
    assert gated.exit_code == 1 and "regression in 20 cell(s)" in gated.stderr
    assert "shapes/tiny/layer-drop@0.5/c0.5" in result.stderr
    assert result.stdout.startswith("adabench compare: **regression**")
    as_json = runner.invoke(app, ["compare", str(run_dir), str(worse_dir), "--format", "json"])
    assert as_json.exit_code == 1 and json.loads(as_json.stdout)["regressed"] is True


def test_compare_bad_input_exits_2(run_dir, tmp_path):
    missing = runner.invoke(app, ["compare", str(run_dir), str(tmp_path / "nope")])
    assert missing.exit_code == 2 and "not found" in missing.stderr
    other = make_run.make_run(tmp_path, name="other")
    cells = other / "cells.parquet"
    import pandas as pd

    pd.read_parquet(cells).assign(suite="vqa").to_parquet(cells)
    (other / "parts").rename(other / "old-parts")
    disjoint = runner.invoke(app, ["compare", str(run_dir), str(other)])
    assert disjoint.exit_code == 2 and "share no cell" in disjoint.stderr
    bad = runner.invoke(app, ["compare", str(run_dir), str(run_dir), "--alpha", "0"])
    assert bad.exit_code == 2 and "--alpha" in bad.stderr


@pytest.fixture(scope="module")
def paired_dir(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("paired")
    methods = ("full", "layer-drop", "early-exit", "adallava-l", "prumerge")
    return make_run.make_run(out, paired=True, n_samples=60, methods=methods)


def test_report_holds_findings_atlas_and_aa_band(paired_dir):
    result = runner.invoke(app, ["report", str(paired_dir)])
    assert result.exit_code == 0, result.output
    md = (paired_dir / "report.md").read_text()
    findings = md.split("## Findings", 1)[1].split("\n## ", 1)[0]
    claims = [line for line in findings.splitlines() if "more accurate than" in line]
    assert claims and all("n = 60" in c and "McNemar exact p" in c for c in claims)
    assert "Benjamini–Hochberg" in findings and "A/A noise floor" in findings
    assert "(plots/plans_shapes.png)" in md and "Plan atlas" in md
    assert "| A/A [95% CI] |" in md and "latency ratio [95% CI]" in md
    page = (paired_dir / "report.html").read_text()
    assert "<h2>Findings</h2>" in page and 'alt="plans_shapes"' in page


def test_compare_paired_run_with_itself_reports_no_difference(paired_dir):
    result = runner.invoke(app, ["compare", str(paired_dir), str(paired_dir), "--format", "json"])
    assert result.exit_code == 0, result.output
    cells = json.loads(result.stdout)["cells"]
    assert {c["mark"] for c in cells} == {"~"}
    assert {c["acc_mark"] for c in cells} == {"~"} and {c["lat_mark"] for c in cells} == {"~"}
