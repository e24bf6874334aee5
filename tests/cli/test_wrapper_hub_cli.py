"""A shipped VLM name loads its hub checkpoint: `--model qwen2.5-vl-3b` resolves to
Qwen/Qwen2.5-VL-3B-Instruct and loads it from the HF cache, offline, through the wrapper's own
classes (its processor without the video half). The checkpoint is a tiny random copy in the hub
cache layout (refs/main → snapshots/<commit>/...), written by the test; the answers equal those
of the same copy passed as a folder."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pandas as pd
import pytest

from adabench.models import catalog
from tests.wrapper_models import build


def _hub_copy(cache, repo_id: str, wrapper: str):
    """Writes a tiny `wrapper` model + processor as hub id `repo_id` into HF cache `cache`."""
    commit = "0" * 40
    repo = cache / f"models--{repo_id.replace('/', '--')}"
    snapshot = repo / "snapshots" / commit
    model, processor = build(wrapper)
    model.save_pretrained(snapshot)
    processor.save_pretrained(snapshot)
    (repo / "refs").mkdir(parents=True)
    (repo / "refs" / "main").write_text(commit)
    return snapshot


def _adabench(env: dict, *args: str) -> subprocess.CompletedProcess:
    cmd = [sys.executable, "-c", "from adabench.cli import run; run()", *args]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=300, env=env)


@pytest.mark.parametrize(
    ("name", "wrapper"),
    [("qwen2.5-vl-3b", "qwen2.5-vl"), ("llava-onevision-qwen2-0.5b", "llava-onevision")],
)
def test_a_shipped_vlm_name_loads_its_hub_checkpoint_offline(name, wrapper, tmp_path):
    repo_id = catalog.HUB_ALIASES[name]
    snapshot = _hub_copy(tmp_path / "hub", repo_id, wrapper)
    env = {**os.environ, "HF_HUB_CACHE": str(tmp_path / "hub"), "HF_HUB_OFFLINE": "1"}
    shown = _adabench(env, "models", "show", name, "--json")
    assert shown.returncode == 0, shown.stderr
    assert json.loads(shown.stdout)["weights_present"] is True
    rows = {}
    for label, model in (("hub", name), ("folder", str(snapshot))):
        out = tmp_path / f"{label}.parquet"
        done = _adabench(
            env, "eval", "--model", model, "--suite", "shapes", "--limit", "2",
            "--max-new-tokens", "3", "--warmup", "0", "--device", "cpu", "--dtype", "float32",
            "--samples-out", str(out), "--json",
        )  # fmt: skip
        assert done.returncode == 0, done.stderr[-2000:]
        rows[label] = pd.read_parquet(out)
        if label == "hub":
            assert json.loads(done.stdout)["weights"] == "trained"  # a published checkpoint
    assert list(rows["hub"]["prediction"]) == list(rows["folder"]["prediction"])
    assert set(rows["hub"]["prompt_source"]) == {"chat-template"}


def test_a_shipped_vlm_name_missing_from_the_cache_is_one_line_offline(tmp_path):
    env = {**os.environ, "HF_HUB_CACHE": str(tmp_path / "empty"), "HF_HUB_OFFLINE": "1"}
    done = _adabench(env, "eval", "--model", "smolvlm-256m", "--limit", "1", "--device", "cpu")
    assert done.returncode == 2, done.stderr
    lines = [line for line in done.stderr.strip().splitlines() if line.strip()]
    assert len(lines) == 1 and "HuggingFaceTB/SmolVLM-256M-Instruct" in lines[0], lines
