"""Broken user data and hostile environments from the CLI: every case is one line and exit 2
before anything is measured, or — where asked — skipped, listed and recorded."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pandas as pd
import pytest
from typer.testing import CliRunner

from adabench.cli import app
from tests.fixtures import make_run
from tests.fixtures.user_images import files_suite

runner = CliRunner()


def _sweep(out: Path, *extra: str, suite: str = "photos") -> list[str]:
    return ["sweep", "--models", "tiny", "--methods", "full", "--suites", suite, "--budgets", "1",
            "--contention", "0", "--limit", "4", "--repeats", "1", "--warmup", "0",
            "--device", "cpu", "--out", str(out), "--name", "u", "--no-report", *extra]  # fmt: skip


def _one_line_exit_2(result, *needles: str, started: bool = False) -> str:
    """Asserts exit 2 with one `error:` line holding `needles`, no traceback; with `started`
    False, that line is all of stderr (nothing ran before the refusal)."""
    assert result.exit_code == 2, result.output
    lines = result.stderr.strip().splitlines()
    errors = [line for line in lines if line.startswith("error:")]
    assert "Traceback" not in result.output and len(errors) == 1, result.stderr
    assert started or len(lines) == 1, result.stderr
    for needle in needles:
        assert needle in errors[0], errors[0]
    return errors[0]


def _run_dirs(out: Path) -> list[Path]:
    return [p for p in out.iterdir() if p.is_dir() and not p.is_symlink()] if out.exists() else []


def test_bad_image_stops_the_sweep_before_any_folder(tmp_path, monkeypatch):
    paths = files_suite(tmp_path, monkeypatch, ["rgb", "truncated", "cmyk"])
    out = tmp_path / "results"
    result = runner.invoke(app, _sweep(out))
    _one_line_exit_2(result, "sample 'truncated'", str(paths["truncated"]))
    assert _run_dirs(out) == []


def test_skip_bad_samples_finishes_and_records_them(tmp_path, monkeypatch):
    files_suite(tmp_path, monkeypatch, ["rgb", "empty", "cmyk", "palette"])
    out = tmp_path / "results"
    result = runner.invoke(app, _sweep(out, "--skip-bad-samples"))
    assert result.exit_code == 0, result.output
    (run_dir,) = _run_dirs(out)
    meta = json.loads((run_dir / "meta.json").read_text())
    (skipped,) = meta["skipped_samples"]["photos"]
    assert skipped["sample_id"] == "empty" and skipped["image"].endswith("empty.png")
    samples = pd.read_parquet(run_dir / "samples.parquet")
    assert sorted(samples.sample_id.unique()) == ["cmyk", "palette", "rgb"]
    assert int(pd.read_parquet(run_dir / "cells.parquet").n.iloc[0]) == 3
    assert "left out for an unreadable image" in result.stderr


def test_eval_bad_image_and_skip(tmp_path, monkeypatch):
    files_suite(tmp_path, monkeypatch, ["rgb", "corrupt"])
    args = ["eval", "--model", "tiny", "--suite", "photos", "--device", "cpu", "--warmup", "0"]
    _one_line_exit_2(runner.invoke(app, args), "sample 'corrupt'")
    result = runner.invoke(app, [*args, "--skip-bad-samples", "--json"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["n"] == 1


LONG = "Which colour is the shape in the picture? " * 60


def test_prompt_past_the_context_is_refused_before_measuring(tmp_path, monkeypatch):
    files_suite(tmp_path, monkeypatch, ["rgb", "cmyk"], questions={"cmyk": LONG})
    out = tmp_path / "results"
    err = _one_line_exit_2(runner.invoke(app, _sweep(out)), "sample 'cmyk'", "context of 128")
    assert "max_new_tokens 3" in err
    assert _run_dirs(out) == []
    args = ["eval", "--model", "tiny", "--suite", "photos", "--device", "cpu", "--warmup", "0"]
    _one_line_exit_2(runner.invoke(app, args), "sample 'cmyk'", "context of 128 positions")


def test_truncate_left_cuts_the_question_and_records_it(tmp_path, monkeypatch):
    files_suite(tmp_path, monkeypatch, ["rgb", "cmyk"], questions={"cmyk": LONG},
                extra_yaml="truncate: left\n")  # fmt: skip
    out = tmp_path / "results"
    result = runner.invoke(app, _sweep(out))
    assert result.exit_code == 0, result.output
    (run_dir,) = _run_dirs(out)
    samples = pd.read_parquet(run_dir / "samples.parquet").set_index("sample_id")
    assert samples.loc["rgb", "truncated_tokens"] == 0
    assert samples.loc["cmyk", "truncated_tokens"] > 100


def test_validate_a_files_suite_deeply(tmp_path, monkeypatch):
    files_suite(tmp_path, monkeypatch, ["rgb", "gray16", "animated", "one_pixel"])
    result = runner.invoke(app, ["suites", "validate", "photos", "--model", "tiny", "--json"])
    assert result.exit_code == 0, result.output
    checks = {r["check"]: r for r in json.loads(result.stdout)}
    assert set(checks) == {"load", "images", "context"} and all(r["ok"] for r in checks.values())
    assert runner.invoke(app, ["suites", "validate"]).exit_code == 0  # the shallow pass too


def test_validate_fails_on_broken_data(tmp_path, monkeypatch):
    files_suite(tmp_path, monkeypatch, ["rgb", "empty"], questions={"rgb": LONG})
    result = runner.invoke(app, ["suites", "validate", "photos", "--model", "tiny", "--json"])
    _one_line_exit_2(result, "test/images", "test/context")
    checks = {r["check"]: r for r in json.loads(result.stdout)}
    assert "empty" in checks["images"]["detail"] and "'rgb'" in checks["context"]["detail"]


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["--threads", "100000"], "threads must be in [1, "),
        (["--threads", "0"], "threads must be in [1, "),
        (["--contention-schedule", "0:1s,1.0:1s"], "give --slo-ms too"),
    ],
)
def test_sweep_settings_refused_before_the_folder(tmp_path, args, needle):
    out = tmp_path / "results"
    result = runner.invoke(app, _sweep(out, *args, suite="shapes"))
    _one_line_exit_2(result, needle)
    assert _run_dirs(out) == []


def test_out_naming_a_file_and_negative_samples(tmp_path):
    run_dir = make_run.make_run(tmp_path / "runs")
    afile = tmp_path / "afile"
    afile.write_text("x")
    _one_line_exit_2(runner.invoke(app, ["plot", str(run_dir), "--out", str(afile)]), "is a file")
    _one_line_exit_2(
        runner.invoke(app, ["suites", "show", "shapes", "--samples", "2", "--out", str(afile)]),
        "is a file",
    )


def test_negative_sample_count_is_a_one_line_usage_error(capsys, monkeypatch):
    from adabench import cli

    monkeypatch.setattr("sys.argv", ["adabench", "suites", "show", "shapes", "--samples", "-3"])
    with pytest.raises(SystemExit) as exit_:
        cli.run()
    err = capsys.readouterr().err.strip()
    assert exit_.value.code == 2 and len(err.splitlines()) == 1, err
    assert "--samples" in err and "0" in err


def test_run_folder_deleted_mid_sweep_stops_with_one_line(tmp_path, monkeypatch):
    from adabench.sweep import chunks

    real = chunks.write_chunk

    def write_then_delete(run_dir, *args, **kwargs):
        path = real(run_dir, *args, **kwargs)
        shutil.rmtree(run_dir)  # a user's `rm -rf` while the sweep runs
        return path

    monkeypatch.setattr(chunks, "write_chunk", write_then_delete)
    out = tmp_path / "results"
    result = runner.invoke(
        app, _sweep(out, "--methods", "full,layer-drop", "--budgets", "0.5", suite="shapes")
    )
    _one_line_exit_2(result, "was deleted during the sweep", "gone with it", started=True)
    assert _run_dirs(out) == []  # not re-created half-empty


def test_failed_figure_write_leaves_nothing_partial(tmp_path, monkeypatch):
    import errno

    from matplotlib.figure import Figure

    run_dir = make_run.make_run(tmp_path / "runs")

    def full_disk(self, fname, *args, **kwargs):
        Path(fname).write_bytes(b"%PDF-1.4 partial")
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(Figure, "savefig", full_disk)
    out = tmp_path / "figs"
    result = runner.invoke(app, ["plot", str(run_dir), "--out", str(out), "--format", "pdf"])
    _one_line_exit_2(result, "cannot write", "No space left on device", "nothing partial")
    assert list(out.iterdir()) == []


@pytest.fixture
def small_disk(tmp_path):
    """A 1.5 MiB tmpfs (root only; skipped where mounting is not allowed)."""
    mount = tmp_path / "disk"
    mount.mkdir()
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1536k", "tmpfs", str(mount)],
                          capture_output=True)  # fmt: skip
    if done.returncode != 0:
        pytest.skip("cannot mount a tmpfs here (not root, or no CAP_SYS_ADMIN)")
    yield mount
    subprocess.run(["umount", "-l", str(mount)], capture_output=True)


def test_report_and_plot_on_a_full_disk(tmp_path, small_disk):
    run_dir = make_run.make_run(tmp_path / "runs")
    copy = small_disk / run_dir.name
    shutil.copytree(run_dir, copy)
    filler = small_disk / "filler"
    free = shutil.disk_usage(small_disk).free
    filler.write_bytes(b"\0" * max(0, free - 48 * 1024))  # leave ~48 KiB: a figure won't fit
    for args in (["plot", str(copy), "--format", "pdf"], ["report", str(copy)]):
        result = runner.invoke(app, args)
        _one_line_exit_2(result, "No space left on device")
    assert [p for p in copy.rglob("*") if p.suffix in (".tmp", ".html", ".md")] == []
    assert [p for p in copy.rglob("*") if p.is_file() and p.stat().st_size == 0] == []
    for pdf in copy.rglob("*.pdf"):  # figures written before the disk filled are whole
        assert pdf.read_bytes().rstrip().endswith(b"%%EOF"), pdf
