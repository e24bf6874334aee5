"""Plugins end to end on the embedded tiny model: `--plugin FILE` on eval, sweep, methods and
flops; `plugins:` in a sweep YAML; meta.json records; resume and compare; broken plugins and
`plan-file` give exit 2 with one line."""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

import pandas as pd
import pytest
from typer.testing import CliRunner

from adabench.cli import app
from adabench.models import plugins

ROOT = Path(__file__).resolve().parents[2]
SKIP_ODD = ROOT / "examples" / "plugins" / "skip_odd.py"
QUICK = ["--limit", "2", "--repeats", "1", "--warmup", "0"]
runner = CliRunner()


@pytest.fixture(autouse=True)
def _fresh_plugins():
    plugins.unload_plugins()
    yield
    plugins.unload_plugins()


def invoke(args, **kwargs):
    return runner.invoke(app, [str(a) for a in args], **kwargs)


def one_error_line(result) -> str:
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output
    return lines[-1]


def test_eval_runs_a_file_plugin_with_the_flops_ratio_of_its_plan():
    result = invoke(["eval", "--plugin", SKIP_ODD, "--method", "skip-odd", "--budget", "0.75",
                     *QUICK, "--json"])  # fmt: skip
    assert result.exit_code == 0, result.output
    cell = json.loads(result.stdout)
    assert cell["method"] == "skip-odd" and cell["n"] == 2
    assert cell["flops_ratio"] == pytest.approx(9 / 12)  # blocks 0-5 and 6, 8, 10 of 12


def test_methods_list_shows_each_origin():
    result = invoke(["methods", "list", "--plugin", SKIP_ODD, "--json"])
    assert result.exit_code == 0, result.output
    origins = {row["name"]: row["origin"] for row in json.loads(result.stdout)}
    assert origins["full"] == "built-in" and origins["plan-file"] == "built-in"
    assert origins["skip-odd"] == f"file {SKIP_ODD}"


def test_flops_counts_a_plugin_plan_from_the_config():
    result = invoke(["flops", "--plugin", SKIP_ODD, "--method", "skip-odd", "--model", "tiny",
                     "--budgets", "0.75,1.0", "--json"])  # fmt: skip
    assert result.exit_code == 0, result.output
    rows = json.loads(result.stdout)
    assert [r["flops_ratio"] for r in rows] == pytest.approx([0.75, 0.75])
    low = invoke(["flops", "--plugin", SKIP_ODD, "--method", "skip-odd", "--budgets", "0.5"])
    assert "minimum is 0.75" in one_error_line(low)


@pytest.fixture(scope="module")
def plugin_run(tmp_path_factory):
    """A sweep whose YAML names the plugin: full and skip-odd, paired, on the tiny model."""
    plugins.unload_plugins()
    out = tmp_path_factory.mktemp("plugin-sweeps")
    config = out / "sweep.yaml"
    config.write_text(f"plugins: [{SKIP_ODD}]\nmodels: [tiny]\nmethods: [full, skip-odd]\n"
                      "budgets: [0.75]\ncontention: [0]\nsuites: [shapes]\n")  # fmt: skip
    result = invoke(["sweep", "--config", config, *QUICK, "--device", "cpu", "--out", out,
                     "--name", "p", "--no-report"])  # fmt: skip
    assert result.exit_code == 0, result.output
    plugins.unload_plugins()
    return (out / "p").resolve()


def test_a_sweep_runs_the_plugin_paired_and_records_it_in_meta(plugin_run):
    cells = pd.read_parquet(plugin_run / "cells.parquet").set_index("method")
    assert cells.loc["skip-odd", "flops_ratio"] == pytest.approx(0.75)
    assert 0 < cells.loc["skip-odd", "latency_ratio"] < 10  # paired to full, like a built-in
    meta = json.loads((plugin_run / "meta.json").read_text())
    (record,) = meta["plugins"]
    assert record["name"] == "skip_odd" and record["methods"] == ["skip-odd"]
    assert record["sha256"] == hashlib.sha256(SKIP_ODD.read_bytes()).hexdigest()


def test_resume_loads_the_same_plugins_and_refuses_changed_code(plugin_run, tmp_path):
    result = invoke(["sweep", "--resume", plugin_run, "--no-report"])
    assert result.exit_code == 0, result.output  # the plugin came back from config.yaml
    copy = tmp_path / "changed"
    shutil.copytree(plugin_run, copy)
    meta = json.loads((copy / "meta.json").read_text())
    meta["plugins"][0]["sha256"] = "0" * 64
    (copy / "meta.json").write_text(json.dumps(meta))
    plugins.unload_plugins()
    line = one_error_line(invoke(["sweep", "--resume", copy, "--no-report"]))
    assert "plugin code changed since the run started: skip_odd" in line


def test_compare_warns_when_plugin_code_differs(plugin_run, tmp_path):
    copy = tmp_path / "other"
    shutil.copytree(plugin_run, copy)
    meta = json.loads((copy / "meta.json").read_text())
    meta["plugins"][0]["sha256"] = "f" * 64
    (copy / "meta.json").write_text(json.dumps(meta))
    result = invoke(["compare", plugin_run, copy])
    assert "plugin skip_odd: sha256" in result.output and "different plugin code" in result.output


RAISES_ON_SECOND_MODEL = """
from adabench.api import Method, Plan, Request, num_blocks, register_method

@register_method
class Fragile(Method):
    NAME = "fragile"
    def request(self, sample_id, input_ids, image_features):
        if self.model.name != "tiny":
            raise RuntimeError("cannot plan this model")
        return Request(plan=Plan.full(num_blocks(self.model)))

    @classmethod
    def min_budget(cls, model):
        return 0.0
"""


def test_a_plugin_raising_in_request_exits_2_and_keeps_finished_cells(tmp_path):
    plugin = tmp_path / "fragile.py"
    plugin.write_text(RAISES_ON_SECOND_MODEL)
    result = invoke(["sweep", "--plugin", plugin, "--models", "tiny,tiny-adallava-l",
                     "--methods", "fragile", "--budgets", "1.0", "--contention", "0", *QUICK,
                     "--no-aa", "--device", "cpu", "--out", tmp_path, "--name", "f",
                     "--no-report"])  # fmt: skip
    line = one_error_line(result)
    assert line.startswith(f"error: plugin file {plugin}: method 'fragile' raised RuntimeError")
    cells = pd.read_parquet((tmp_path / "f").resolve() / "cells.parquet")
    assert list(cells["model"]) == ["tiny"]  # the first model's cell is kept


def test_adabench_debug_shows_the_plugin_traceback(tmp_path, monkeypatch):
    plugin = tmp_path / "broken.py"
    plugin.write_text("raise ImportError('needs a missing dependency')\n")
    line = one_error_line(invoke(["methods", "list", "--plugin", plugin]))
    assert line == (f"error: plugin file {plugin} failed to import (broken.py:1): ImportError: "
                    "needs a missing dependency")  # fmt: skip
    monkeypatch.setenv("ADABENCH_DEBUG", "1")
    result = invoke(["methods", "list", "--plugin", plugin])
    assert isinstance(result.exception.__cause__, ImportError)


def test_a_plugin_shadowing_a_built_in_exits_2(tmp_path):
    path = tmp_path / "shadow.py"
    path.write_text("from adabench.api import Method, register_method\n\n"
                    "@register_method\nclass F(Method):\n    NAME = 'full'\n")  # fmt: skip
    line = one_error_line(invoke(["eval", "--plugin", path, "--method", "full", *QUICK]))
    assert f"plugin file {path}: method 'full' shadows the built-in method" in line


def test_plan_file_replays_plans_and_names_bad_lines(tmp_path):
    plans = tmp_path / "plans.jsonl"
    plans.write_text("\n".join(json.dumps(x) for x in [
        {"sample_id": "shapes-test-000000", "blocks": [0, 1, 2, 3, 4, 5]},
        {"sample_id": "shapes-test-000001", "visual_tokens": [0, 1, 2, 3]},
    ]) + "\n")  # fmt: skip
    args = ["eval", "--method", "plan-file", "--method-arg", f"path={plans}", *QUICK]
    result = invoke([*args, "--samples-out", tmp_path / "rows.parquet", "--json"])
    assert result.exit_code == 0, result.output
    rows = pd.read_parquet(tmp_path / "rows.parquet").set_index("sample_id")
    assert rows.loc["shapes-test-000000", "flops_ratio"] == pytest.approx(0.5)
    assert rows.loc["shapes-test-000001", "flops_ratio"] < 1
    assert rows.loc["shapes-test-000001", "plan"].endswith("+prumerge-5")  # 9 visual tokens, 4 kept
    over = one_error_line(invoke([*args, "--budget", "0.4"]))
    assert "method 'plan-file' ran a plan with flops_ratio 0.5000" in over
    plans.write_text(json.dumps({"sample_id": "shapes-test-000000", "blocks": [0]}) + "\n")
    missing = one_error_line(invoke(args))
    assert "no plan for sample 'shapes-test-000001'" in missing
    plans.write_text(json.dumps({"sample_id": "x", "blocks": [0]}) + '\n{"sample_id": 1,}\n')
    assert f"plan-file {plans}:2: invalid JSON" in one_error_line(invoke(args))


def test_report_shows_the_plugin_method_like_a_built_in(plugin_run):
    result = invoke(["report", plugin_run])
    assert result.exit_code == 0, result.output
    assert "skip-odd" in (plugin_run / "report.md").read_text()


@pytest.mark.slow
def test_ray_tasks_load_the_runs_plugins(tmp_path):
    pytest.importorskip("ray")
    result = invoke(["sweep", "--plugin", SKIP_ODD, "--models", "tiny", "--methods", "skip-odd",
                     "--budgets", "0.75", "--contention", "0", *QUICK, "--device", "cpu",
                     "--executor", "ray", "--ray-address", "local", "--out", tmp_path,
                     "--name", "r", "--no-report"])  # fmt: skip
    assert result.exit_code == 0, result.output
    cells = pd.read_parquet((tmp_path / "r").resolve() / "cells.parquet")
    assert list(cells["method"]) == ["skip-odd"] and cells["flops_ratio"].iloc[0] == 0.75
