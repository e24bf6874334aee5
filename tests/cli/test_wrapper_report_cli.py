"""Results and report by VLM wrapper, and the prompt per model in `suites show` (issue 28, items
2 and 6): a sweep over two wrappers (the embedded LLaVA-1.5 `tiny` and a tiny LLaVA-OneVision
saved by tests/wrapper_models.py) writes each cell's `wrapper` and `prompt_source`, and
`adabench report` gives one Cells section per wrapper in WRAPPERS order; a results folder
written before those columns still reports, compares and tabulates; `suites show --model`
builds the model's processor alone and prints the prompt it runs."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pandas as pd
import pytest
from typer.testing import CliRunner

from adabench.cli import app
from tests.wrapper_models import build

runner = CliRunner()
OLD_RUN = Path(__file__).parents[1] / "fixtures" / "tiny_run"
"""A results folder written before cells recorded `wrapper` / `prompt_source`."""


@pytest.fixture(scope="module")
def two_wrappers(tmp_path_factory):
    """A finished sweep (full, 2 samples) over a tiny OneVision folder and the embedded `tiny`,
    the OneVision model named first (its cells also sort first: the folder path < 'tiny')."""
    tmp = tmp_path_factory.mktemp("wrappers")
    onevision = tmp / "onevision"
    model, processor = build("llava-onevision", layers=2)
    model.save_pretrained(onevision)
    processor.save_pretrained(onevision)
    result = runner.invoke(
        app,
        ["sweep", "--models", f"{onevision},tiny", "--methods", "full", "--budgets", "1.0",
         "--contention", "0", "--suites", "shapes", "--limit", "2", "--repeats", "1",
         "--warmup", "0", "--max-new-tokens", "2", "--device", "cpu", "--dtype", "float32",
         "--out", str(tmp / "runs"), "--name", "two", "--no-report"],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    (run_dir,) = (tmp / "runs").glob("*-two")
    return run_dir, str(onevision)


def _sections(markdown: str) -> list[str]:
    return [line[3:] for line in markdown.splitlines() if line.startswith("## ")]


def _section(markdown: str, title: str) -> str:
    return markdown.split(f"## {title}\n", 1)[1].split("\n## ", 1)[0]


def test_cells_record_their_wrapper_and_prompt_source(two_wrappers):
    run_dir, onevision = two_wrappers
    cells = pd.read_parquet(run_dir / "cells.parquet")
    by_model = {
        m: (w, p) for m, w, p in zip(cells["model"], cells["wrapper"], cells["prompt_source"])
    }
    assert by_model == {onevision: ("llava-onevision", "chat-template"), "tiny": ("llava", "suite")}


def test_report_has_one_cells_section_per_wrapper_in_wrappers_order(two_wrappers):
    run_dir, onevision = two_wrappers
    result = runner.invoke(app, ["report", str(run_dir)])
    assert result.exit_code == 0, result.output
    md = (run_dir / "report.md").read_text()
    cells = [s for s in _sections(md) if s.startswith("Cells")]
    assert cells == ["Cells · LLaVA-1.5", "Cells · LLaVA-OneVision"]
    llava, ov = _section(md, cells[0]), _section(md, cells[1])
    assert "| tiny |" in llava and onevision not in llava
    assert f"| {onevision} |" in ov and "| tiny |" not in ov
    run = _section(md, "Run")
    assert ("| wrappers | LLaVA-1.5 (llava): 1 cell, prompt suite; LLaVA-OneVision "
            "(llava-onevision): 1 cell, prompt chat-template |") in run  # fmt: skip
    page = (run_dir / "report.html").read_text()
    assert page.index("<h2>Cells · LLaVA-1.5</h2>") < page.index("<h2>Cells · LLaVA-OneVision</h2>")
    assert "<h2>Cells</h2>" not in page
    table = runner.invoke(app, ["table", str(run_dir), "--format", "markdown"])
    assert table.exit_code == 0, table.output
    assert (f"Wrappers: llava (tiny; suite prompt), llava-onevision ({onevision}; "
            "chat-template prompt).") in table.stdout  # fmt: skip


def test_one_wrapper_run_keeps_one_cells_section_with_a_wrapper_line(tmp_path):
    run_dir = tmp_path / "next"
    shutil.copytree(OLD_RUN, run_dir)
    cells = pd.read_parquet(run_dir / "cells.parquet")
    cells.assign(wrapper="llava-next", prompt_source="chat-template").to_parquet(
        run_dir / "cells.parquet"
    )
    assert runner.invoke(app, ["report", str(run_dir)]).exit_code == 0
    md = (run_dir / "report.md").read_text()
    assert [s for s in _sections(md) if s.startswith("Cells")] == ["Cells"]
    line = f"| wrapper | LLaVA-NeXT (llava-next): {len(cells)} cells, prompt chat-template |"
    assert line in _section(md, "Run")


def test_folder_without_the_columns_still_reports_compares_and_tabulates(tmp_path):
    run_dir = tmp_path / "old"
    shutil.copytree(OLD_RUN, run_dir)
    assert "wrapper" not in pd.read_parquet(run_dir / "cells.parquet").columns
    result = runner.invoke(app, ["report", str(run_dir)])
    assert result.exit_code == 0, result.output
    md = (run_dir / "report.md").read_text()
    assert [s for s in _sections(md) if s.startswith("Cells")] == ["Cells"]
    assert "| wrapper | wrapper not recorded: " in md and "prompt unknown |" in md
    assert runner.invoke(app, ["compare", str(run_dir), str(run_dir)]).exit_code == 0
    table = runner.invoke(app, ["table", str(run_dir), "--format", "markdown"])
    assert table.exit_code == 0 and "Wrapper" not in table.stdout, table.output


def _show(*args: str):
    return runner.invoke(app, ["suites", "show", "shapes", *args])


def test_suites_show_says_which_prompt_runs_without_a_model():
    result = _show("--json")
    assert result.exit_code == 0, result.output
    info = json.loads(result.stdout)
    assert info["prompt_models"].startswith("LLaVA-1.5 models (wrapper llava) run this prompt")
    assert "adabench suites show shapes --model M" in info["prompt_models"]


def test_suites_show_model_prints_the_chat_template_prompt_of_onevision():
    result = _show("--model", "llava-onevision-qwen2-0.5b", "--json")
    assert result.exit_code == 0, result.output
    info = json.loads(result.stdout)
    assert (info["wrapper"], info["prompt_source"]) == ("llava-onevision", "chat-template")
    assert info["model_prompt"] == (
        "<|im_start|>user <image>\nwhat color is the triangle ?<|im_end|><|im_start|>assistant\n"
    )
    assert info["image_tokens"] > 576  # anyres: the base view plus tiles, not one CLIP grid
    assert info["text_tokens"] + info["image_tokens"] == info["prompt_tokens"]
    table = _show("--model", "llava-onevision-qwen2-0.5b")
    assert table.exit_code == 0 and "chat-template" in table.stdout, table.output


def test_suites_show_model_prints_the_suite_prompt_of_llava_1_5():
    result = _show("--model", "llava-1.5-7b", "--json")
    assert result.exit_code == 0, result.output
    info = json.loads(result.stdout)
    assert (info["wrapper"], info["prompt_source"]) == ("llava", "suite")
    assert info["model_prompt"] == info["prompt_example"]
    assert info["image_tokens"] == 576  # 336 px / 14 px patches, squared


def test_suites_show_unknown_model_is_one_line_with_did_you_mean():
    result = _show("--model", "llava-onevison")
    assert result.exit_code == 2
    assert len(result.stderr.strip().splitlines()) == 1 and "Traceback" not in result.output
    assert "Did you mean 'llava-onevision-qwen2-" in result.stderr


def test_suites_show_model_folder_uses_its_own_processor(two_wrappers):
    _, onevision = two_wrappers
    result = _show("--model", onevision, "--json")
    assert result.exit_code == 0, result.output
    info = json.loads(result.stdout)
    assert (info["wrapper"], info["prompt_source"]) == ("llava-onevision", "chat-template")
    assert info["processor"] == f"the model's own ({onevision})" and info["image_tokens"] > 0
