"""User data that breaks things: awkward and broken image files, the `files` source, samples
without answers, repeated ids, prompts past the context window, suites folder warnings."""

from __future__ import annotations

import json

import numpy as np
import pytest

from adabench.data.images import check_images, read_image
from adabench.data.suites import get_spec, load_suite, validate_all
from adabench.errors import UserError
from tests.fixtures.user_images import BAD, GOOD, files_suite


def test_every_readable_kind_becomes_8bit_rgb(tmp_path, monkeypatch):
    files_suite(tmp_path, monkeypatch, list(GOOD))
    samples = {s.id: s for s in load_suite("photos")}
    for kind in GOOD:
        image = read_image(samples[kind])
        assert image.mode == "RGB", kind
    grey = np.asarray(read_image(samples["gray16"]))
    assert 150 < grey.mean() < 160  # 40000 / 257 = 155.6: scaled, not clipped to white
    first = np.asarray(read_image(samples["animated"]))
    assert tuple(first[0, 0]) == (255, 0, 0)  # the first frame
    assert read_image(samples["huge"]).size == (6000, 6000)


@pytest.mark.parametrize("kind", BAD)
def test_broken_image_is_one_line_naming_sample_and_file(tmp_path, monkeypatch, kind):
    paths = files_suite(tmp_path, monkeypatch, ["rgb", kind])
    (bad,) = [s for s in load_suite("photos") if s.id == kind]
    with pytest.raises(UserError) as err:
        read_image(bad)
    message = str(err.value)
    assert f"sample {kind!r}" in message and str(paths[kind]) in message
    assert "--skip-bad-samples" in message and "\n" not in message


def test_check_images_skips_and_lists(tmp_path, monkeypatch):
    files_suite(tmp_path, monkeypatch, ["rgb", "empty", "cmyk", "truncated"])
    samples = load_suite("photos")
    with pytest.raises(UserError, match="'empty'"):
        check_images(samples)
    good, bad = check_images(samples, skip_bad=True)
    assert [s.id for s in good] == ["rgb", "cmyk"]
    assert [b["sample_id"] for b in bad] == ["empty", "truncated"]
    assert all(b["image"].endswith(".png") and b["problem"] for b in bad)


def test_files_manifest_errors_name_the_line(tmp_path, monkeypatch):
    files_suite(tmp_path, monkeypatch, ["rgb"])
    manifest = tmp_path / "suites" / "data" / "test.jsonl"
    manifest.write_text('{"image": "images/rgb.png", "question": "q?", "answers": ["a"]}\n{oops\n')
    with pytest.raises(UserError, match=r"test.jsonl:2: not a JSON object"):
        load_suite("photos")
    manifest.write_text('{"image": "images/rgb.png", "answers": ["a"]}\n')
    with pytest.raises(UserError, match=r"test.jsonl:1: missing question"):
        load_suite("photos")


def test_files_csv_manifest(tmp_path, monkeypatch):
    files_suite(tmp_path, monkeypatch, ["rgb"])
    data = tmp_path / "suites" / "data"
    (data / "test.csv").write_text(
        "id,image,question,answers,family\nq1,images/rgb.png,What?,red|crimson,color\n"
    )
    yaml_path = tmp_path / "suites" / "photos.yaml"
    yaml_path.write_text(yaml_path.read_text().replace("data/test.jsonl", "data/test.csv"))
    (sample,) = load_suite("photos")
    assert sample.id == "q1" and sample.answers == ["red", "crimson"] and sample.family == "color"
    assert read_image(sample).size == (40, 32)


def test_empty_answers_are_refused_at_load_and_by_validate(tmp_path, monkeypatch):
    files_suite(tmp_path, monkeypatch, ["rgb"])
    manifest = tmp_path / "suites" / "data" / "test.jsonl"
    manifest.write_text(
        json.dumps({"id": "ok", "image": "images/rgb.png", "question": "q?", "answers": ["a"]}) + "\n"
        + json.dumps({"id": "blank", "image": "images/rgb.png", "question": "q?", "answers": []}) + "\n"
    )  # fmt: skip
    with pytest.raises(UserError, match=r"1 sample\(s\) without an answer: 'blank'"):
        load_suite("photos")
    row = {r["suite"]: r for r in validate_all()}["photos"]
    assert not row["ok"] and "'blank'" in row["problem"]


def test_hidden_answers_split_is_allowed():
    spec = get_spec("vqav2")
    assert spec.splits["testdev"]["hidden_answers"] is True


def test_repeated_ids_are_renamed_with_a_warning(tmp_path, monkeypatch, capsys):
    files_suite(tmp_path, monkeypatch, ["rgb"])
    manifest = tmp_path / "suites" / "data" / "test.jsonl"
    row = {"id": "same", "image": "images/rgb.png", "question": "q?", "answers": ["a"]}
    manifest.write_text("\n".join(json.dumps(row) for _ in range(3)) + "\n")
    ids = [s.id for s in load_suite("photos")]
    assert ids == ["same", "same#1", "same#2"]
    assert "2 repeated sample id(s) renamed" in capsys.readouterr().err


def test_mme_style_expected_duplicates_do_not_warn(tmp_path, monkeypatch, capsys):
    files_suite(tmp_path, monkeypatch, ["rgb"], extra_yaml="duplicate_ids: expected\n")
    manifest = tmp_path / "suites" / "data" / "test.jsonl"
    row = {"id": "same", "image": "images/rgb.png", "question": "q?", "answers": ["a"]}
    manifest.write_text("\n".join(json.dumps(row) for _ in range(2)) + "\n")
    assert [s.id for s in load_suite("photos")] == ["same", "same#1"]
    assert "repeated" not in capsys.readouterr().err


def test_missing_suites_dir_and_shadowing_warn(tmp_path, monkeypatch, capsys):
    from adabench.data import suites

    suites._warned.clear()
    monkeypatch.setenv("ADABENCH_SUITES_DIR", str(tmp_path / "nope"))
    assert "shapes" in suites.list_suites()
    assert "does not exist: only the shipped suites are used" in capsys.readouterr().err
    folder = tmp_path / "mine"
    folder.mkdir()
    (folder / "shapes.yaml").write_text(
        (suites._shipped_suite_dirs()[0] / "shapes.yaml").read_text()
    )
    monkeypatch.setenv("ADABENCH_SUITES_DIR", str(folder))
    assert get_spec("shapes").path == folder / "shapes.yaml"
    err = capsys.readouterr().err
    assert "is used instead of the shipped" in err and str(folder / "shapes.yaml") in err
