"""Real-benchmark suites on tiny local fixtures (tests/fixtures/suites, the lmms-lab schemas):
loader, prompts, metrics, suite aggregates, EvalAI export, fixture validation, missing data."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
from PIL import Image

from adabench.data import hf_suites, metrics, suite_metrics
from adabench.data.sample import Sample
from adabench.data.suites import get_spec, load_suite
from adabench.errors import UserError

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "suites"
HF_SUITES = ["vqav2", "gqa", "textvqa", "scienceqa", "pope", "mme", "mmbench"]
SHORT = "\nAnswer the question using a single word or phrase."
LETTER = "\nAnswer with the option's letter from the given choices directly."


@pytest.fixture(autouse=True)
def data_dir(monkeypatch):
    monkeypatch.setenv("ADABENCH_DATA_DIR", str(FIXTURES))


@pytest.mark.parametrize("name", HF_SUITES)
def test_every_split_loads_and_validates(name):
    spec = get_spec(name)
    assert hf_suites.validate_fixture(spec, FIXTURES) == []
    for split in spec.splits:
        samples = load_suite(name, split=split)
        assert samples and len({s.id for s in samples}) == len(samples)
        for s in samples:
            assert s.image.mode == "RGB"
            json.dumps(s.meta)  # JSON-friendly meta
            prompt = spec.render_prompt(s)
            assert prompt.startswith("USER: <image>\n") and prompt.endswith(" ASSISTANT:")


def test_vqav2_prompt_answers_and_limit():
    spec = get_spec("vqav2")
    s = load_suite("vqav2", split="test", limit=2)
    assert len(s) == 2 and s[0].id == "42000"
    assert spec.render_prompt(s[0]) == f"USER: <image>\nWhat color is the square?{SHORT} ASSISTANT:"
    assert s[0].answers[:8] == ["red"] * 8 and len(s[0].answers) == 10
    assert metrics.score(spec.metric_for(s[0].family), "Red", s[0].answers) == 1.0
    assert metrics.score("vqa", "orange", s[0].answers) == pytest.approx(0.3)
    assert load_suite("vqav2", split="testdev")[0].answers == []  # hidden test answers


def test_gqa_joins_images_and_exact_match():
    s = load_suite("gqa")
    assert [x.answers for x in s] == [["no"], ["the man"], ["blue"]]
    assert s[1].image.size == (32, 24)  # the wide image of n235859, joined on imageId
    assert metrics.score(get_spec("gqa").metric, "The man.", s[1].answers) == 1.0


def test_textvqa_vqa_accuracy_and_optional_ocr():
    spec = get_spec("textvqa")
    s = load_suite("textvqa")
    assert "Reference OCR" not in s[0].question
    assert metrics.score(spec.metric, "Dakota", s[0].answers) == pytest.approx(1.0)
    spec.extra["ocr"] = True
    row = {"question": "what is it?", "ocr_tokens": ["nous", "dakota"]}
    assert (
        hf_suites.build_question(spec, row, [])
        == f"what is it?\nReference OCR token: nous, dakota{SHORT}"
    )


def test_scienceqa_context_options_and_letter():
    spec = get_spec("scienceqa")
    s = load_suite("scienceqa")
    assert (
        s[0].question.startswith("Which of these states") and "Context:" not in s[0].question
    )  # empty hint
    assert s[2].question == ("Context: Two pairs of magnets are shown.\nThink about the magnetic force. "
                             "Which magnets are closer?\nA. Pair 1\nB. Pair 2\n"
                             f"C. neither; the distance is the same{LETTER}")  # fmt: skip
    assert [x.answers for x in s] == [["A"], ["A"], ["C"]]
    assert metrics.score(spec.metric, "C", s[2].answers) == 1.0


def test_pope_category_splits_and_aggregate():
    spec = get_spec("pope")
    assert [s.family for s in load_suite("pope", split="popular")] == ["popular", "popular"]
    s = load_suite("pope")
    preds = ["yes", "no", "yes", "yes", "Yes.", "no"]  # 1 FP, 1 unparsable
    agg = suite_metrics.aggregate_suite(spec, s, preds)
    assert agg["accuracy"] == pytest.approx(4 / 6)
    assert agg["precision"] == pytest.approx(2 / 3) and agg["recall"] == 1.0
    assert agg["f1"] == pytest.approx(0.8)
    assert agg["by_category"]["adversarial"]["f1"] == 1.0
    assert agg["by_category"]["popular"]["precision"] == 0.5


def test_mme_strips_suffix_and_scores():
    spec = get_spec("mme")
    s = load_suite("mme")
    assert s[0].question == f"Is there a train in this image?{SHORT}"
    assert s[1].id == "existence/000000006040.jpg#1"
    agg = suite_metrics.aggregate_suite(spec, s, ["Yes", "No", "Yes", "yes"])
    assert agg["categories"]["existence"]["score"] == 200.0
    assert agg["perception"] == 200.0 and agg["cognition"] == 50.0


def test_mmbench_circular_rotations_and_aggregate():
    spec = get_spec("mmbench")
    s = load_suite("mmbench")
    assert [x.id for x in s] == ["241", "241@1", "241@2", "241@3", "242", "242@1", "242@2"]
    assert (
        s[0].question
        == f"What is the main colour of the image?\nA. red\nB. green\nC. blue\nD. yellow{LETTER}"
    )
    assert s[1].question.split("\n")[1:3] == ["A. green", "B. blue"] and s[1].answers == ["D"]
    assert s[5].question.startswith("The object is small.\nWhich option")  # hint first
    gold = [x.answers[0] for x in s]
    assert gold == ["A", "D", "C", "B", "B", "A", "C"]
    agg = suite_metrics.aggregate_suite(spec, s, gold)
    assert agg == {"circular_accuracy": 1.0, "vanilla_accuracy": 1.0, "n_questions": 2}
    wrong_rotation = gold[:5] + ["B"] + gold[6:]
    agg = suite_metrics.aggregate_suite(spec, s, wrong_rotation)
    assert agg["circular_accuracy"] == 0.5 and agg["vanilla_accuracy"] == 1.0
    assert len(load_suite("mmbench", limit=1)) == 4  # limit counts questions


def test_suites_without_aggregate_return_none():
    assert suite_metrics.aggregate_suite(get_spec("vqav2"), [], []) is None


def test_evalai_export_format(tmp_path):
    s = load_suite("vqav2", split="testdev")
    rows = [
        {"sample_id": x.id, "prediction": p} for x, p in zip(s, ["Two dogs.", "Yes"], strict=True)
    ]
    path = suite_metrics.export_evalai(rows, tmp_path / "sub" / "vqav2_testdev.json")
    data = json.loads(path.read_text())
    assert data == [
        {"question_id": 262144000, "answer": "2 dogs"},
        {"question_id": 262145001, "answer": "yes"},
    ]
    full = suite_metrics.export_evalai(
        rows, tmp_path / "full.json", all_question_ids=[262144000, 7, 262145001]
    )
    assert [d["answer"] for d in json.loads(full.read_text())] == ["2 dogs", "", "yes"]


def test_expand_to_square_and_prepare_image():
    wide = Image.new("RGB", (32, 24), (255, 0, 0))
    sq = hf_suites.expand_to_square(wide, (1, 2, 3))
    assert sq.size == (32, 32)
    assert sq.getpixel((0, 0)) == (1, 2, 3) and sq.getpixel((0, 4)) == (255, 0, 0)
    assert sq.getpixel((0, 27)) == (255, 0, 0) and sq.getpixel((0, 28)) == (1, 2, 3)
    tall = hf_suites.expand_to_square(Image.new("RGB", (10, 20), (0, 0, 0)), (9, 9, 9))
    assert (
        tall.size == (20, 20)
        and tall.getpixel((4, 0)) == (9, 9, 9)
        and tall.getpixel((5, 0)) == (0, 0, 0)
    )
    assert hf_suites.expand_to_square(sq, (0, 0, 0)) is sq

    class Proc:
        image_processor = type("IP", (), {"image_mean": [0.48145466, 0.4578275, 0.40821073]})()

    spec = get_spec("vqav2")
    assert hf_suites.image_preprocess(spec) == "pad"
    padded = hf_suites.prepare_image(spec, wide, Proc())
    assert padded.size == (32, 32) and padded.getpixel((0, 0)) == (123, 117, 104)
    assert hf_suites.prepare_image(get_spec("shapes"), wide, Proc()) is wide


def test_validate_fixture_reports_schema_mismatch(tmp_path):
    spec = get_spec("vqav2")
    spec.fields = {**spec.fields, "question": "query", "answer_key": "text"}
    problems = hf_suites.validate_fixture(spec, FIXTURES)
    assert any("'query'" in p for p in problems) and any("no key 'text'" in p for p in problems)
    assert any("no fixture" in p for p in hf_suites.validate_fixture(get_spec("gqa"), tmp_path))
    assert hf_suites.validate_fixture(get_spec("shapes"), FIXTURES) == []


def test_missing_dataset_says_how_to_get_it(monkeypatch, tmp_path):
    import datasets

    monkeypatch.setenv("ADABENCH_DATA_DIR", str(tmp_path))

    def offline(*args, **kwargs):
        raise datasets.exceptions.DatasetNotFoundError("not cached and offline")

    monkeypatch.setattr(datasets, "load_dataset", offline)
    with pytest.raises(UserError) as err:
        load_suite("vqav2", limit=1)
    msg = str(err.value)
    assert "huggingface-cli download --repo-type dataset lmms-lab/VQAv2" in msg
    assert "ADABENCH_DATA_DIR" in msg and str(tmp_path / "lmms-lab/VQAv2/default/validation") in msg


def test_parquet_local_copy(tmp_path, monkeypatch):
    import datasets
    from datasets import load_from_disk

    monkeypatch.setattr(datasets.config, "HF_DATASETS_CACHE", tmp_path / "cache")  # keep ~ clean

    folder = tmp_path / "lmms-lab" / "POPE" / "default" / "test"
    folder.mkdir(parents=True)
    load_from_disk(str(FIXTURES / "lmms-lab/POPE/default/test")).to_parquet(
        str(folder / "part-0.parquet")
    )
    s = hf_suites.load_hf(get_spec("pope"), "random", None, data_dir=tmp_path)
    assert [x.id for x in s] == ["random/1", "random/2"] and s[0].image.size == (32, 32)


def test_aggregate_checks_lengths():
    with pytest.raises(UserError, match="one prediction per sample"):
        suite_metrics.pope_aggregate([Sample("a", None, "q", ["yes"])], [])
    assert math.isnan(suite_metrics.mme_aggregate(
        [Sample("x", None, "q", ["yes"], "existence", {"question_id": "x"}),
         Sample("x#1", None, "q", ["no"], "existence", {"question_id": "x"})], ["yes", "no"])["cognition"])  # fmt: skip


@pytest.mark.parametrize("name", ["vqav2", "gqa", "textvqa", "scienceqa", "pope", "mme", "mmbench"])
def test_eval_end_to_end_on_fixture(name, random_llava_dir):
    """`adabench eval` runs each suite's loader, prompt and metric offline with a tiny random model."""
    from typer.testing import CliRunner

    from adabench.cli import app

    args = [
        "eval",
        "--model",
        str(random_llava_dir),
        "--suite",
        name,
        "--limit",
        "2",
        "--device",
        "cpu",
        "--json",
    ]
    if name != "vqav2":  # vqav2 runs the command as documented; the others a little faster
        args += ["--warmup", "0", "--max-new-tokens", "2"]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    cell = json.loads(result.stdout)
    assert cell["suite"] == name and cell["n"] == (7 if name == "mmbench" else 2)
    assert 0.0 <= cell["accuracy"] <= 1.0
