"""The paper table (adabench/analysis/table.py, table_render.py): numbers as in cells.parquet,
MME's score from the samples, significance marks, bold best values, LaTeX that compiles."""

from __future__ import annotations

import csv
import importlib.util
import io
import math
import re
import shutil
import subprocess
from pathlib import Path

import pandas as pd
import pytest

from adabench import store
from adabench.analysis.table import MARK, build_table, mme_perception
from adabench.analysis.table_render import latex_document, latex_escape, render, to_json
from adabench.errors import UserError

TINY_RUN = Path(__file__).parents[1] / "fixtures" / "tiny_run"
"""A real `adabench sweep` (tiny, tiny-adallava-l × full, layer-drop, early-exit × budgets 0.5, 1
× contention 0, 0.5; --limit 2) trimmed to meta.json, config.yaml and the two parquet files."""

_spec = importlib.util.spec_from_file_location(
    "make_run", Path(__file__).parents[1] / "fixtures" / "make_run.py"
)
make_run = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(make_run)


@pytest.fixture(scope="module")
def tiny() -> store.Run:
    return store.load_run(TINY_RUN)


@pytest.fixture(scope="module")
def made(tmp_path_factory) -> store.Run:
    return store.load_run(make_run.make_run(tmp_path_factory.mktemp("t"), paired=True))


def _csv_rows(text: str) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(text)))


def _latex_rows(text: str) -> list[list[str]]:
    body = text.split("\\midrule", 1)[1].split("\\bottomrule")[0]
    rows = []
    for line in body.splitlines():
        if line.strip().endswith("\\\\"):
            cells = line.strip()[:-2].split(" & ")
            clean = [re.sub(r"\\textbf\{(.*?)\}|\\textsuperscript\{\\dag\}", r"\1", c).strip()
                     for c in cells]  # fmt: skip
            rows.append([c.replace("\\_", "_") for c in clean])
    return rows


def _markdown_rows(text: str) -> list[list[str]]:
    lines = [x for x in text.splitlines() if x.startswith("| ")][1:]
    return [[c.strip().replace("**", "").replace(MARK, "") for c in x.strip("| ").split(" | ")]
            for x in lines]  # fmt: skip


def _expected(cells: pd.DataFrame, contention: float, scale: float = 1e9) -> list[list[str]]:
    """The table's rows written straight from cells.parquet, rounded as the table shows them."""
    at = cells[cells["contention"] == contention].sort_values(["model", "method", "budget"])
    return [[c.model, c.method, f"{c.budget:g}", f"{c.flops / scale:.2f}",
             f"{c.prefill_ms_mean:.1f}", f"{c.latency_ms_mean:.1f}", f"{c.accuracy * 100:.1f}"]
            for c in at.itertuples()]  # fmt: skip


@pytest.mark.parametrize("level", [0.0, 0.5])
@pytest.mark.parametrize("which", ["tiny", "made"])
def test_every_format_matches_cells_parquet_number_for_number(request, which, level):
    run = request.getfixturevalue(which)
    cells = pd.read_parquet(run.path / "cells.parquet")
    expected = _expected(cells, level)
    table = build_table(run, contention=level)
    assert _latex_rows(render(table, "latex")) == expected
    assert _markdown_rows(render(table, "markdown")) == expected
    got = [list(r.values()) for r in _csv_rows(render(table, "csv"))]
    assert [[r[i] for i in range(7)] for r in got] == expected
    raw = [r["raw"] for r in to_json(table)["rows"]]
    at = cells[cells["contention"] == level].sort_values(["model", "method", "budget"])
    assert [r["latency_ms"] for r in raw] == pytest.approx(list(at["latency_ms_mean"]))


def test_ratio_column_is_the_cells_paired_ratio_with_its_ci(tiny):
    table = build_table(tiny, latency="ratio", ci=True)
    cells = tiny.cells[tiny.cells["contention"] == 0].sort_values(["model", "method", "budget"])
    rows = _markdown_rows(render(table, "markdown"))
    for row, c in zip(rows, cells.itertuples(), strict=True):
        assert row[5] == (f"{c.latency_ratio:.2f} [{c.latency_ratio_ci_low:.2f}, "
                          f"{c.latency_ratio_ci_high:.2f}]")  # fmt: skip
    assert "Latency (×full)" in render(table, "markdown")


def test_marks_follow_the_paired_tests_against_the_vs_row(made):
    table = build_table(made)  # the default reference: full
    marks = {(r["method"], r["budget"]): r["shapes_mark"] for r in table.rows}
    assert marks[("early-exit", 0.5)] == MARK  # 25 % vs 80 % on the same 20 samples
    assert marks[("adallava-l", 1.0)] == ""  # the same answers as full
    assert marks[("full", 1.0)] == ""
    assert table.reference == "full@1"
    flipped = build_table(made, vs="early-exit@0.5")
    assert {(r["method"], r["budget"]): r["shapes_mark"] for r in flipped.rows}[
        ("full", 1.0)
    ] == MARK
    assert "early-exit@0.5" in flipped.caption


def test_best_value_per_suite_is_bold(made):
    table = build_table(made)
    column = next(c for c in table.columns if c.key == "shapes")
    best = table.best(column)
    top = max(table.shown(r, column) for r in table.rows)
    assert best and all(table.shown(table.rows[i], column) == top for i in best)
    latex = render(table, "latex")
    assert latex.count("\\textbf{") == len(best)


def test_caption_names_device_dtype_samples_and_contention(tiny):
    text = build_table(tiny, contention=0.5).caption
    assert "AMD EPYC" in text and "dtype auto" in text
    assert "2 samples per cell" in text and "contention 0.5 (compute stress" in text


def _mme_run(tmp_path: Path) -> store.Run:
    """Two suites: shapes (accuracy) and MME (perception score from the samples)."""
    run_dir = store.new_run_dir(tmp_path, "mme")
    store.write_config(run_dir, {"suites": ["mme", "shapes"], "dtype": "float16"})
    answers = {  # (image, category): predictions vs label 'yes'
        ("a", "existence"): ["yes", "yes"], ("b", "existence"): ["yes", "no"],
        ("c", "count"): ["yes", "yes"], ("d", "count"): ["yes", "yes"],
    }  # fmt: skip
    for suite in ("mme", "shapes"):
        coords = dict(suite=suite, model="m_1", method="full", budget=1.0, contention=0.0)
        samples = []
        for (image, family), preds in answers.items():
            for k, pred in enumerate(preds):
                samples.append({"sample_id": image + ("#1" if k else ""), "prediction": pred,
                                "answers": ["yes"], "score": float(pred == "yes"),
                                "family": family, "latency_ms": 10.0, "flops": 2e12})  # fmt: skip
        cell = {**coords, "n": len(samples), "accuracy": 0.875, "accuracy_ci_low": 0.5,
                "accuracy_ci_high": 1.0, "flops": 2e12, "prefill_ms_mean": 5.0,
                "latency_ms_mean": 10.0, "latency_ratio": 1.0, "achieved_slowdown": 1.0}  # fmt: skip
        store.write_cell(run_dir, cell, samples)
    store.consolidate(run_dir)
    return store.load_run(run_dir)


def test_mme_is_its_perception_score_the_rest_percent(tmp_path):
    run = _mme_run(tmp_path)
    table = build_table(run)
    (row,) = table.rows
    # existence: acc 3/4, acc+ 1/2 -> 125; count: 200 -> perception 325
    assert row["mme"] == pytest.approx(325.0)
    assert row["shapes"] == pytest.approx(87.5)
    assert row["flops"] == pytest.approx(2.0)  # T above 1e12
    headers = [c.header for c in table.columns]
    assert headers[-2:] == ["MME", "Shapes (%)"] and "FLOPs (T)" in headers
    assert build_table(run, metric="accuracy").rows[0]["mme"] == pytest.approx(87.5)
    assert mme_perception(run.samples.iloc[:0]) != mme_perception(run.samples.iloc[:0])  # NaN


def test_latex_escapes_special_characters():
    assert latex_escape("m_1 & 50% #2") == r"m\_1 \& 50\% \#2"
    assert latex_escape("×full ±") == r"$\times$full $\pm$"


@pytest.mark.skipif(shutil.which("pdflatex") is None, reason="pdflatex is not installed")
def test_latex_compiles_with_pdflatex(tmp_path, made):
    for table in (build_table(made, ci=True, latency="ratio"), build_table(_mme_run(tmp_path))):
        tex = tmp_path / "t.tex"
        tex.write_text(latex_document(table), encoding="utf-8")
        done = subprocess.run(["pdflatex", "-interaction=nonstopmode", "-halt-on-error", tex.name],
                              cwd=tmp_path, capture_output=True, text=True, timeout=60)  # fmt: skip
        assert done.returncode == 0, done.stdout[-2000:]
        assert (tmp_path / "t.pdf").stat().st_size > 0


@pytest.mark.parametrize(
    ("kwargs", "names"),
    [
        ({"rows": ("model", "methd", "budget")}, "Choose from: budget, contention"),
        ({"suites": ["vqa"]}, "Choose from: shapes"),
        ({"vs": "fastv"}, "Choose from: adallava-l, early-exit, full, layer-drop"),
        ({"vs": "full@0.5"}, "full has budgets 1"),
        ({"contention": 0.3}, "the run has contention 0, 0.5"),
        ({"rows": ("model", "method")}, "budget varies in this run (0.5, 0.75, 1)"),
        ({"metric": "f1"}, "Choose from: accuracy, official"),
    ],
)
def test_bad_names_raise_one_line_naming_what_exists(made, kwargs, names):
    with pytest.raises(UserError) as exc:
        build_table(made, **kwargs)
    assert names in str(exc.value) and "\n" not in str(exc.value)


def test_rows_may_drop_a_key_with_one_value(made):
    table = build_table(made, rows=("method", "budget"), suites=["shapes"])
    assert [c.key for c in table.columns][:2] == ["method", "budget"]
    assert not any(math.isnan(r["shapes"]) for r in table.rows)


def test_random_weights_are_said_in_the_caption(tmp_path):
    run = store.load_run(make_run.make_run(tmp_path, weights="random"))
    assert "Weights are random" in build_table(run).caption
    assert "\\label{tab:20250102-030405-tiny}" in render(build_table(run), "latex")
