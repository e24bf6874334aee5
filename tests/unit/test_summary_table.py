"""The sweep summary read through a pipe at 80 columns: whole names, nothing wider than 80,
grouped by (contention, model), findings at the end; more columns on a wide terminal."""

from __future__ import annotations

import importlib.util
import re
from pathlib import Path

import pytest

from adabench.console import fit_columns
from adabench.store import load_run
from adabench.sweep.summary import print_summary

_spec = importlib.util.spec_from_file_location(
    "make_run", Path(__file__).parents[1] / "fixtures" / "make_run.py"
)
make_run = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(make_run)

MODELS = ("tiny", "tiny-adallava-l", "tiny-adallava-h-with-a-long-checkpoint-name")
METHODS = ("full", "layer-drop", "early-exit", "adallava-l", "adallava-h", "prumerge")


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    out = tmp_path_factory.mktemp("summary")
    return load_run(make_run.make_run(out, paired=True, models=MODELS, methods=METHODS))


def _summary(run, capsys, monkeypatch, columns: int) -> list[str]:
    monkeypatch.setenv("COLUMNS", str(columns))
    print_summary(run.cells, as_json=False, samples=run.samples)
    return capsys.readouterr().out.splitlines()


def test_80_columns_keep_whole_names(run, capsys, monkeypatch):
    lines = _summary(run, capsys, monkeypatch, 80)
    assert max(len(line) for line in lines) <= 80
    assert not any("…" in line for line in lines)
    # no name split at its hyphen or cut at the edge
    assert not [line for line in lines if re.search(r"[a-z]-$", line)]
    headings = [line for line in lines if line.startswith("── ")]
    assert len(headings) == len(MODELS) * 2  # one section per (contention, model)
    for model in MODELS:
        assert any(f"── {model} · contention 0.5" in h for h in headings)
    table_rows = [line.split()[0] for line in lines if line.split()[:1] and
                  line.split()[0] in METHODS]  # fmt: skip
    assert set(table_rows) == set(METHODS)
    assert "Findings" in lines and lines.index("Findings") > lines.index(headings[-1])
    header = next(line for line in lines if line.startswith("method"))
    assert header.split()[:6] == ["method", "budget", "acc", "FLOPs", "ms", "×full"]


def test_wide_terminal_shows_more_columns(run, capsys, monkeypatch):
    narrow = next(x for x in _summary(run, capsys, monkeypatch, 80) if x.startswith("method"))
    wide = next(x for x in _summary(run, capsys, monkeypatch, 160) if x.startswith("method"))
    assert "p90 ms" not in narrow and "p90 ms" in wide and "decode" in wide


def test_fit_columns_drops_optional_columns_never_cuts():
    rows = [{"method": "prumerge+layer-drop-with-a-long-name", "ms": "12.5", "extra": "x" * 30}]
    lines = fit_columns(rows, right={"ms"}, optional=["extra"], max_width=50)
    assert lines[1].startswith("prumerge+layer-drop-with-a-long-name") and "extra" not in lines[0]
    assert fit_columns(rows, optional=["extra"], max_width=200)[0].endswith("extra")


def test_json_stays_the_cell_records(run, capsys):
    import json

    print_summary(run.cells, as_json=True)
    assert len(json.loads(capsys.readouterr().out)) == len(run.cells)
