"""Fault injection through the real entry point (`adabench.cli.run`): each hostile input gives
exit 2, one `error:` line on stderr naming the problem, no traceback, and loses nothing."""

from __future__ import annotations

import importlib.util
import os
import shutil
import sys
from pathlib import Path

import pytest

from adabench import cli

_spec = importlib.util.spec_from_file_location(
    "make_run", Path(__file__).parents[1] / "fixtures" / "make_run.py"
)
_module = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(_module)
make_run = _module.make_run

ASSETS = Path(cli.__file__).parent / "assets"


def invoke(argv: list[str], capsys) -> tuple[int, str, str]:
    """Runs the console entry point in this process; returns (exit code, stdout, stderr)."""
    saved = sys.argv
    sys.argv = ["adabench", *argv]
    try:
        cli.run()
        code = 0
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else 1
    finally:
        sys.argv = saved
    out, err = capsys.readouterr()
    return code, out, err


def write(path: Path, data: bytes | str) -> Path:
    path.write_bytes(data.encode() if isinstance(data, str) else data)
    return path


def truncate_half(path: Path) -> None:
    os.truncate(path, path.stat().st_size // 2)


def damaged_model(tmp: Path, how: str) -> Path:
    """Returns a copy of the embedded AdaLLaVA-L model damaged as `how` says."""
    folder = tmp / f"model-{how}"
    shutil.copytree(ASSETS / "tiny-adallava-l", folder)
    {
        "truncated": lambda: truncate_half(folder / "model.safetensors"),
        "random": lambda: write(folder / "model.safetensors", os.urandom(4096)),
        "bad-config": lambda: write(folder / "config.json", '{"model_type": "llava", '),
        "not-llava": lambda: write(folder / "config.json", "{}"),
        "no-tokenizer": lambda: [(folder / f).unlink() for f in ("tokenizer.json",)],
        "head-missing": lambda: (folder / "adallava.safetensors").unlink(),
        "head-truncated": lambda: truncate_half(folder / "adallava.safetensors"),
        "head-config": lambda: write(folder / "adallava_config.json", '{"variant": "Q"}'),
    }[how]()
    return folder


def yaml_file(tmp: Path, text: bytes | str) -> list[str]:
    return ["sweep", "--config", str(write(tmp / "sweep.yaml", text)), "--out", str(tmp / "out")]


def a_run(tmp: Path) -> Path:
    return make_run(tmp / "runs", n_samples=4)


CASES = {
    # command-line parsing (typer's vendored click exceptions)
    "bare": (lambda t: [], "missing command"),
    "bad-number": (lambda t: ["eval", "--budget", "abc"], "Invalid value for '--budget'"),
    "unknown-option": (lambda t: ["eval", "--bogus"], "No such option: --bogus"),
    "missing-argument": (lambda t: ["convert", "adallava"], "Missing argument 'src'"),
    "unknown-command": (lambda t: ["frobnicate"], "No such command 'frobnicate'"),
    "missing-value": (lambda t: ["sweep", "--limit"], "requires an argument"),
    # sweep YAML
    "yaml-unclosed": (lambda t: yaml_file(t, "models: [tiny\n"), "invalid YAML at line 2"),
    "yaml-limit": (lambda t: yaml_file(t, "limit: abc\n"), "limit must be a whole number"),
    "yaml-budgets": (lambda t: yaml_file(t, 'budgets: "abc"\n'), "budgets must be numbers"),
    "yaml-int-key": (lambda t: yaml_file(t, "1: 2\n"), "config keys must be names"),
    "yaml-method-args": (lambda t: yaml_file(t, "method_args: [1, 2]\n"), "method_args must be a mapping"),
    "yaml-not-utf8": (lambda t: yaml_file(t, b"models: \xff\xfe\n"), "not UTF-8"),
    "yaml-tag": (lambda t: yaml_file(t, "models: !!python/object/apply:os.system [echo]\n"), "could not determine a constructor"),
    "yaml-unknown-key": (lambda t: yaml_file(t, "modles: [tiny]\n"), "Did you mean 'models'"),
    "yaml-list": (lambda t: yaml_file(t, "- tiny\n"), "must be a mapping"),
    "yaml-aa": (lambda t: yaml_file(t, "aa: 'yes'\n"), "aa must be true or false"),
    "yaml-chunk": (lambda t: yaml_file(t, "chunk: 0\n"), "chunk must be >= 1"),
    "yaml-order": (lambda t: yaml_file(t, "order: random\n"), "unknown order 'random'"),
    "yaml-target-ci": (lambda t: yaml_file(t, "target_ci: 2\n"), "target-ci must be in"),
    "yaml-max-rounds": (lambda t: yaml_file(t, "max_rounds: 1.5\n"), "max_rounds must be a whole number"),
    "yaml-max-time": (lambda t: yaml_file(t, "max_time_s: -1\n"), "max-time must be > 0"),
    "yaml-kind": (lambda t: yaml_file(t, "contention_kind: cpu\n"), "unknown contention kind"),
    # sweep flags and folders
    "out-is-file": (lambda t: ["sweep", "--models", "tiny", "--out", str(write(t / "f", "x"))], "is a file"),
    "out-uncreatable": (lambda t: ["sweep", "--models", "tiny", "--out", str(write(t / "f", "x") / "sub")], "cannot create the results folder"),
    "name-newline": (lambda t: ["sweep", "--name", "demo\n", "--out", str(t / "out")], "run name must be"),
    "empty-range": (lambda t: ["sweep", "--budget-range", "1.0:0.5:0.1", "--out", str(t / "out")], "is empty"),
    "empty-budgets": (lambda t: ["sweep", "--budgets", "", "--out", str(t / "out")], "budgets is empty"),
    "extend-alone": (lambda t: ["sweep", "--extend", "--out", str(t / "out")], "use it with --resume"),
    "sm-on-cpu": (lambda t: ["sweep", "--models", "tiny", "--contention", "0.5", "--contention-kind", "sm", "--device", "cpu", "--out", str(t / "out")], "needs a CUDA device"),
    "sweep-damaged-model": (lambda t: ["sweep", "--models", str(damaged_model(t, "truncated")), "--out", str(t / "out")], "truncated or damaged"),
    # eval
    "samples-out-folder": (lambda t: ["eval", "--samples-out", str(t)], "is a folder"),
    "samples-out-no-parent": (lambda t: ["eval", "--samples-out", str(t / "no" / "x.parquet")], "does not exist"),
    "samples-out-run-table": (lambda t: ["eval", "--samples-out", str(a_run(t) / "samples.parquet")], "would overwrite the results table"),
    # damaged model folders
    **{
        f"model-{how}": (lambda t, how=how: ["eval", "--model", str(damaged_model(t, how)), "--limit", "1"], text)
        for how, text in {
            "truncated": "truncated or damaged",
            "random": "not a valid safetensors file",
            "bad-config": "config.json is damaged",
            "not-llava": "is not a Llava config",
            "no-tokenizer": "has no tokenizer",
            "head-missing": "no adallava.safetensors",
            "head-truncated": "adallava.safetensors is truncated",
            "head-config": "not a valid AdaLLaVA config",
        }.items()
    },
    # convert
    "convert-bad-json": (lambda t: ["convert", "adallava", str(write((t / "src").mkdir() or t / "src" / "config.json", "{").parent), "--out", str(t / "o")], "config.json is damaged"),
    "convert-list-config": (lambda t: ["convert", "adallava", str(write((t / "src").mkdir() or t / "src" / "config.json", "[1]").parent), "--out", str(t / "o")], "must hold a JSON object"),
    "convert-random-weights": (lambda t: ["convert", "adallava", str(write(write((t / "src").mkdir() or t / "src" / "config.json", "{}").parent / "model.safetensors", os.urandom(999)).parent), "--out", str(t / "o")], "not a valid safetensors file"),
    "convert-a-file": (lambda t: ["convert", "adallava", str(write(t / "f", "x")), "--out", str(t / "o")], "neither a folder nor in the HF cache"),
    # results folders read back
    "compare-missing-files": (lambda t: ["compare", str(a_run(t)), str((t / "empty").mkdir() or t / "empty")], "holds no readable results"),
    "compare-broken-meta": (lambda t: ["compare", str(a_run(t)), str(write(a_run(t / "b") / "meta.json", "{bad").parent)], "meta.json is damaged"),
    "resume-unknown-key": (lambda t: ["sweep", "--resume", str(write(a_run(t) / "config.yaml", "bogus: 1\n").parent)], "unknown config key"),
    "resume-missing-config": (lambda t: ["sweep", "--resume", str(a_run(t)), "--force", "--config", str(t / "nope.yaml")], "config file not found"),
    "resume-not-a-run": (lambda t: ["sweep", "--resume", str(t)], "not a results folder"),
    # contention
    "workers-too-many": (lambda t: ["contention", "run", "--level", "0.5", "--workers", "100000"], "--workers must be in [1,"),
}  # fmt: skip


@pytest.mark.parametrize("case", sorted(CASES))
def test_hostile_input_is_one_line_and_exit_2(case, tmp_path, capsys, monkeypatch):
    monkeypatch.delenv("ADABENCH_DEBUG", raising=False)
    build, expected = CASES[case]
    argv = build(tmp_path)
    before = {p: p.stat().st_mtime_ns for p in tmp_path.rglob("*.parquet")}
    code, _, err = invoke(argv, capsys)
    lines = [line for line in err.splitlines() if line.strip()]
    assert code == 2, err
    assert len(lines) == 1 and lines[0].startswith("error: "), err
    assert expected in lines[0], lines[0]
    assert "Traceback" not in err
    out = tmp_path / "out"
    assert not out.exists() or not any(out.iterdir()), "a failed sweep left a run folder behind"
    assert before == {p: p.stat().st_mtime_ns for p in before}, "a results table was rewritten"


def test_parse_errors_name_the_command_and_help(capsys):
    code, _, err = invoke(["eval", "--budget", "abc"], capsys)
    assert err.strip().endswith("Try 'adabench eval --help'.")


def test_memory_check_refuses_before_allocating(capsys, monkeypatch):
    from adabench.models import loading

    monkeypatch.setattr(loading, "available_bytes", lambda device: 2 * loading.GB)
    code, _, err = invoke(
        ["eval", "--model", "llava-1.5-7b", "--no-weights", "--limit", "1"], capsys
    )
    assert code == 2, err
    assert "needs about 28.3 GB at float32" in err and "2.0 GB of RAM" in err
    assert "--dtype bfloat16" in err


def test_a_user_error_after_the_folder_was_made_removes_it(tmp_path, capsys, monkeypatch):
    from adabench.models import loading

    monkeypatch.setattr(loading, "available_bytes", lambda device: 1)  # found at model load
    argv = ["sweep", "--models", "tiny", "--methods", "full", "--contention", "0", "--limit", "1"]
    code, _, err = invoke([*argv, "--out", str(tmp_path / "out"), "--no-report"], capsys)
    assert code == 2 and err.strip().splitlines()[-1].startswith("error: model 'tiny' needs")
    assert "Traceback" not in err and "grid" in err  # the run had started
    assert list((tmp_path / "out").iterdir()) == []


def test_memory_estimate_is_the_parameter_count():
    import torch

    from adabench.models.catalog import shipped_config
    from adabench.models.loading import estimate_bytes

    weights, kv = estimate_bytes(shipped_config("llava-1.5-7b"), torch.float16)
    assert 7.0e9 < weights / 2 < 7.1e9  # llava-1.5-7b: 7.06 B parameters
    assert kv == 2 * 32 * 32 * 128 * 2048 * 2


def test_offline_hub_model_is_one_line(capsys, monkeypatch):
    from adabench.models.catalog import weights_in_cache

    if weights_in_cache("llava-hf/llava-1.5-7b-hf"):
        pytest.skip("llava-1.5-7b is in this HF cache")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    code, _, err = invoke(["eval", "--model", "llava-1.5-7b", "--limit", "1"], capsys)
    assert code == 2 and "HF_HUB_OFFLINE=1 forbids downloads" in err


def test_yaml_scalars_for_lists_read_like_the_flags(tmp_path):
    from adabench.config import SweepConfig

    path = write(
        tmp_path / "s.yaml", "models: tiny,tiny-adallava-l\nbudgets: 0.5\nsuites: shapes\n"
    )
    cfg = SweepConfig.from_layers(path, {})
    assert cfg.models == ["tiny", "tiny-adallava-l"] and cfg.budgets == [0.5]


def test_damaged_parts_are_left_out_of_reads_with_a_warning(tmp_path, capsys):
    from adabench import store

    run = a_run(tmp_path)
    (run / "cells.parquet").unlink()
    victim = sorted((run / "parts").glob("*.cell.parquet"))[0]
    truncate_half(victim)
    cid = victim.name.removesuffix(".cell.parquet")
    loaded = store.load_run(run)
    assert cid not in set(loaded.cells["cell_id"]) and len(loaded.cells) > 0
    assert f"cell {cid} left out" in capsys.readouterr().err
    assert set(store.quarantine_damaged(run)) == {cid}
    assert (run / "parts" / store.DAMAGED).is_dir() and not victim.exists()
