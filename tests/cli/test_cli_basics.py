"""CLI basics and error paths through typer's CliRunner: exit codes, stdout vs stderr, no tracebacks."""

import json

import pytest
from typer.testing import CliRunner

from adabench.cli import app

runner = CliRunner()


def test_help_and_version():
    assert runner.invoke(app, ["--help"]).exit_code == 0
    result = runner.invoke(app, ["--version"])
    assert result.exit_code == 0 and "adabench" in result.stdout


def test_suites_list_json_is_valid_json():
    result = runner.invoke(app, ["suites", "list", "--json"])
    assert result.exit_code == 0
    assert "shapes" in {row["name"] for row in json.loads(result.stdout)}


def test_suites_show_unknown_suggests_and_exits_2():
    result = runner.invoke(app, ["suites", "show", "shapez"])
    assert result.exit_code == 2
    assert "Did you mean 'shapes'" in result.stderr and "Traceback" not in result.output


def test_suites_show_writes_sample_grid(tmp_path):
    result = runner.invoke(
        app, ["suites", "show", "shapes", "--samples", "8", "--out", str(tmp_path), "--json"]
    )
    assert result.exit_code == 0, result.output
    info = json.loads(result.stdout)
    assert info["prompt_example"].startswith("USER: <image>")
    assert (tmp_path / "shapes-test-samples.png").stat().st_size > 1000


def test_suites_validate_passes():
    result = runner.invoke(app, ["suites", "validate", "--json"])
    assert result.exit_code == 0, result.output
    assert all(row["ok"] for row in json.loads(result.stdout))


def test_methods_and_models_list():
    methods = json.loads(runner.invoke(app, ["methods", "list", "--json"]).stdout)
    names = {m["name"] for m in methods}
    assert {
        "full",
        "layer-drop",
        "early-exit",
        "random-skip",
        "adallava-l",
        "adallava-h",
        "fastv",
        "prumerge",
    } <= names
    models = json.loads(runner.invoke(app, ["models", "list", "--json"]).stdout)
    assert {"tiny", "llava-1.5-7b", "llava-1.5-13b"} <= {m["name"] for m in models}


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--model", "tinyy"], "Did you mean 'tiny'"),
        (["--method", "layer-dorp"], "Did you mean 'layer-drop'"),
        (["--budget", "1.5"], "budget must be in (0.0, 1.0]"),
        (["--budget", "0"], "budget must be in (0.0, 1.0]"),
        (["--device", "cuda"], "needs CUDA, which is not available"),
        (["--repeats", "0"], "repeats must be >= 1"),
        (["--suite", "shapez"], "Did you mean 'shapes'"),
    ],
)
def test_eval_errors_exit_2(args, message, random_llava_dir):
    import torch

    if "cuda" in args and torch.cuda.is_available():
        pytest.skip("CUDA present")
    base = ["eval", "--model", str(random_llava_dir), "--limit", "2", "--device", "cpu"]
    if "--device" in args:
        base = base[:-2]
    if "--model" in args:
        base = ["eval", "--limit", "2"]
    result = runner.invoke(app, base + args)
    assert result.exit_code == 2, result.output
    assert message in result.stderr
    assert "Traceback" not in result.output


def test_eval_json_has_cell_columns(random_llava_dir):
    from adabench.store import CELL_COLUMNS

    result = runner.invoke(
        app,
        [
            "eval",
            "--model",
            str(random_llava_dir),
            "--method",
            "layer-drop",
            "--budget",
            "0.5",
            "--limit",
            "3",
            "--repeats",
            "2",
            "--warmup",
            "1",
            "--device",
            "cpu",
            "--json",
        ],
    )
    assert result.exit_code == 0, result.output
    cell = json.loads(result.stdout)
    assert set(CELL_COLUMNS) - {"cell_id"} <= set(cell)
    assert cell["flops_ratio"] <= 0.5 and cell["latency_ms_mean"] > 0
    assert cell["flops"] > cell["llm_flops"] > 0
