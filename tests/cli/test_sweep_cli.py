"""`adabench sweep` end to end on a random tiny Llava: schema, latency_ratio, resume, SIGKILL, errors."""

import os
import signal
import subprocess
import sys
import time

import pandas as pd
import pytest
from typer.testing import CliRunner

from adabench.cli import app
from adabench.store import CELL_COLUMNS, SAMPLE_COLUMNS

runner = CliRunner()


def _sweep_args(model_dir, out, name, extra=()):
    return [
        "sweep",
        "--models",
        str(model_dir),
        "--methods",
        "full,layer-drop",
        "--suites",
        "shapes",
        "--budgets",
        "0.5,1.0",
        "--contention",
        "0,0.5",
        "--limit",
        "4",
        "--repeats",
        "1",
        "--warmup",
        "0",
        "--device",
        "cpu",
        "--out",
        str(out),
        "--name",
        name,
        "--no-report",
        *extra,
    ]


@pytest.fixture(scope="module")
def finished_run(random_llava_dir, tmp_path_factory):
    out = tmp_path_factory.mktemp("sweeps")
    result = runner.invoke(app, _sweep_args(random_llava_dir, out, "x"))
    assert result.exit_code == 0, result.output
    (run_dir,) = [p for p in out.iterdir() if not p.is_symlink()]
    assert (out / "x").resolve() == run_dir.resolve()  # the newest-run link
    return run_dir


def test_results_folder_schema(finished_run):
    for name in ("meta.json", "config.yaml", "samples.parquet", "cells.parquet"):
        assert (finished_run / name).exists()
    cells = pd.read_parquet(finished_run / "cells.parquet")
    samples = pd.read_parquet(finished_run / "samples.parquet")
    assert set(CELL_COLUMNS) <= set(cells.columns)
    assert set(SAMPLE_COLUMNS) <= set(samples.columns)
    assert len(cells) == 6 and len(samples) == cells["n"].sum()
    # Each sample of a cell is paired with the `full` run of the same sample at the same
    # contention level (the same passes), not with another level's or another sample's.
    full = samples[samples.method == "full"].set_index(["contention", "sample_id"])
    others = samples[samples.method != "full"]
    for _, row in others.iterrows():
        partner = full.loc[(row.contention, row.sample_id), "latency_ms_repeats"]
        assert list(row.full_latency_ms_repeats) == list(partner)
        assert row.latency_ratio == pytest.approx(row.latency_ms_repeats[0] / partner[0])
    s0 = cells[cells.contention == 0].achieved_slowdown.iloc[0]
    s1 = cells[cells.contention == 0.5].achieved_slowdown.iloc[0]
    assert s1 > s0
    d0 = cells[cells.contention == 0].achieved_slowdown_decode.iloc[0]
    d1 = cells[cells.contention == 0.5].achieved_slowdown_decode.iloc[0]
    assert d0 == 1.0 and d1 > 1.0 and d1 != s1  # its own measurement, of the decode reference
    for col in ("accuracy", "flops", "latency_ms_mean", "flops_ratio"):
        assert pd.api.types.is_float_dtype(cells[col])
    assert (cells.flops_ratio <= cells.budget + 1e-9).all()


def test_resume_of_a_finished_run_does_nothing(finished_run):
    before = pd.read_parquet(finished_run / "cells.parquet")
    parts = {p: p.stat().st_mtime_ns for p in (finished_run / "parts").rglob("*")}
    assert len(parts) >= 12  # two per cell
    result = runner.invoke(app, ["sweep", "--resume", str(finished_run), "--no-report"])
    assert result.exit_code == 0, result.output
    assert {p: p.stat().st_mtime_ns for p in (finished_run / "parts").rglob("*")} == parts
    after = pd.read_parquet(finished_run / "cells.parquet")
    pd.testing.assert_frame_equal(
        before.sort_values("cell_id").reset_index(drop=True),
        after.sort_values("cell_id").reset_index(drop=True),
    )


def test_sigkilled_sweep_resumes_to_the_same_cells(random_llava_dir, finished_run, tmp_path):
    cmd = [
        sys.executable,
        "-c",
        "from adabench.cli import run; run()",
        *_sweep_args(random_llava_dir, tmp_path, "k"),
    ]
    proc = subprocess.Popen(
        cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True
    )
    deadline = time.monotonic() + 120
    parts = None
    while time.monotonic() < deadline:
        found = list(tmp_path.glob("*/parts/*.cell.parquet"))
        if found:
            parts = found[0].parent
            break
        time.sleep(0.2)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    assert parts is not None, "no cell finished before the deadline"
    run_dir = parts.parent
    time.sleep(1.0)
    result = runner.invoke(app, ["sweep", "--resume", str(run_dir), "--no-report"])
    assert result.exit_code == 0, result.output
    resumed = pd.read_parquet(run_dir / "cells.parquet")
    reference = pd.read_parquet(finished_run / "cells.parquet")
    assert sorted(resumed.cell_id) == sorted(reference.cell_id)
    merged = resumed.merge(reference, on="cell_id", suffixes=("", "_ref"))
    assert (merged.accuracy == merged.accuracy_ref).all()
    assert (merged.flops == merged.flops_ref).all()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--suites", "shapez"], "Did you mean 'shapes'"),
        (["--budgets", "1.5"], "budget must be in (0.0, 1.0]"),
        (["--contention", "2"], "contention level must be in [0.0, 1.0]"),
        (["--methods", "layer-dorp"], "Did you mean 'layer-drop'"),
        (["--models", "tinyy"], "Did you mean 'tiny'"),
        (["--repeats", "-1"], "repeats must be >= 1"),
    ],
)
def test_errors_exit_2_without_traceback(args, message, tmp_path):
    result = runner.invoke(app, ["sweep", "--out", str(tmp_path), "--device", "cpu", *args])
    assert result.exit_code == 2, result.output
    assert message in result.stderr
    assert "Traceback" not in result.output


def test_existing_run_folder_is_never_overwritten(random_llava_dir, tmp_path):
    from adabench.errors import UserError
    from adabench.store import new_run_dir

    first = new_run_dir(tmp_path, "same", now=__import__("datetime").datetime(2026, 1, 1))
    with pytest.raises(UserError):
        new_run_dir(tmp_path, "same", now=__import__("datetime").datetime(2026, 1, 1))
    assert first.exists()


def test_resume_refuses_changed_config(finished_run):
    result = runner.invoke(
        app, ["sweep", "--resume", str(finished_run), "--limit", "9", "--no-report"]
    )
    assert result.exit_code == 2
    assert "limit 9 (stored 4)" in result.stderr  # only grid values can change, with --extend
