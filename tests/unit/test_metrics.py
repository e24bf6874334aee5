"""Metrics: agreement with frozen lmms-eval 0.7.3 outputs, plus hand-built cases."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from adabench.data import vqa_normalize
from adabench.data.metrics import (
    METRICS,
    choice_accuracy,
    exact_match,
    extract_choice,
    mme_scores,
    parse_mme_answer,
    pope_metrics,
    score,
    vqa_score,
    yes_no_score,
)
from adabench.data.vqa_normalize import normalize_vqa_answer
from adabench.errors import UserError

FIXTURES = Path(__file__).parents[1] / "fixtures" / "lmms_eval"


def _load(name: str) -> dict:
    return json.loads((FIXTURES / name).read_text())


VQA = _load("vqav2.json")["cases"]
POPE = _load("pope.json")["cases"]
MME = _load("mme.json")


# --- agreement with lmms-eval 0.7.3 -------------------------------------------------------


def test_normalization_tables_match_lmms_eval():
    tables = _load("tables.json")
    assert tables["contractions"] == vqa_normalize.CONTRACTIONS
    assert tables["punctuations"] == vqa_normalize.PUNCTUATIONS
    assert set(vqa_normalize.ARTICLES) == set(tables["articles"])
    assert tables["number_map"] == vqa_normalize.NUMBER_MAP


def test_vqa_agrees_with_lmms_eval():
    assert len(VQA) >= 400
    bad = []
    for case in VQA:
        got = vqa_score(case["prediction"], case["answers"])
        if normalize_vqa_answer(case["prediction"]) != case["normalized"] or not math.isclose(
            got, case["score"], rel_tol=0, abs_tol=1e-9
        ):
            bad.append((case, got))
    assert not bad, f"{len(bad)} disagreements, first: {bad[0]}"


@pytest.mark.parametrize("source", ["lmms_eval", "lmms_eval_raw", "llava"])
def test_pope_agrees(source):
    checked = 0
    for case in POPE:
        expected = case.get(source)
        if expected is None:  # LLaVA divides by zero there; no raw labels for that case
            continue
        labels = case["labels_raw"] if source == "lmms_eval_raw" else case["labels"]
        parser = "llava" if source == "llava" else "lmms-eval"
        got = pope_metrics(case["predictions"], labels, parser=parser)
        for key in ("accuracy", "precision", "recall", "f1", "yes_ratio"):
            assert got[key] == pytest.approx(expected[key], abs=1e-9), (key, case)
        if "per_sample" in expected:
            per = [yes_no_score(p, [g]) for p, g in zip(case["predictions"], labels, strict=True)]
            assert per == expected["per_sample"]
        checked += 1
    assert checked >= 10


def test_mme_parse_agrees():
    for reply, expected in MME["parse"].items():
        assert parse_mme_answer(reply) == expected, reply


def test_mme_agrees():
    for case in MME["cases"]:
        got, expected = mme_scores(case["records"]), case["expected"]
        assert set(got["categories"]) == set(expected["categories"])
        for name, value in expected["categories"].items():
            assert got["categories"][name]["score"] == pytest.approx(value, abs=1e-9)
        for group in ("perception", "cognition"):
            if expected[group] is None:
                assert math.isnan(got[group])
            else:
                assert got[group] == pytest.approx(expected[group], abs=1e-9)


# --- VQA hand cases ----------------------------------------------------------------------


def test_vqa_leave_one_out_by_position():
    assert vqa_score("two", ["2"] * 10) == 1.0
    assert vqa_score("cat", ["cat"] * 2 + ["dog"] * 8) == pytest.approx(0.6)  # 8×(2/3)+2×(1/3)
    assert vqa_score("yes", ["yes"]) == 0.0  # one answer: the others are empty
    assert vqa_score("yes", ["yes", "yes"]) == pytest.approx(1 / 3)
    with pytest.raises(UserError, match="at least one"):
        vqa_score("yes", [])


def test_vqa_normalization_quirks():
    assert normalize_vqa_answer("The Dog.") == "dog"
    assert normalize_vqa_answer("3.5") == "3.5"
    assert normalize_vqa_answer("1,000") == "1000"
    assert normalize_vqa_answer("dont") == "don't"
    assert normalize_vqa_answer("hot-dog") == "hot dog"
    assert normalize_vqa_answer("." * 40) == "." * 8  # only 32 periods are removed


# --- exact match, choice, yes/no ---------------------------------------------------------


def test_exact_match():
    assert exact_match("The Red car.", ["red car"]) == 1.0
    assert exact_match("  blue ", ["red", "Blue!"]) == 1.0
    assert exact_match("an apple", ["apple"]) == 1.0
    assert exact_match("apples", ["apple"]) == 0.0
    assert exact_match("Red", ["red"], normalize=False) == 0.0
    assert exact_match(" red ", ["red"], normalize=False) == 1.0


@pytest.mark.parametrize(
    ("reply", "letter"),
    [
        ("B", "B"), ("(B)", "B"), ("B. red", "B"), ("The answer is B.", "B"), ("b", "B"),
        ("Answer: C", "C"), ("answer: (d)", "D"), ("C) two", "C"), ("(A) a cat", "A"),
        ("I think the correct option is D because...", "D"), ("the answer is b", "B"),
        ("I'd pick B", "B"), (" d. ", "D"), ("Answer: A because it is red", "A"),
        ("a red car", None), ("A cat", None), ("", None), ("E", None), ("A or B", None),
        ("the answer is a red car", None),
    ],
)  # fmt: skip
def test_extract_choice(reply, letter):
    assert extract_choice(reply) == letter


def test_choice_accuracy():
    assert choice_accuracy("The answer is B.", ["B"]) == 1.0
    assert choice_accuracy("(E) none", ["(E)"]) == 1.0  # letters grow to reach the gold one
    assert choice_accuracy("C", ["B"]) == 0.0
    with pytest.raises(UserError, match="letter"):
        choice_accuracy("C", ["blue"])


def test_yes_no_and_pope_quirks():
    assert yes_no_score(" Yes ", ["yes"]) == 1.0
    assert yes_no_score("Yes.", ["yes"]) == 0.0  # lmms-eval: exact match after lower/strip
    m = pope_metrics(["Yes.", "no", "yes"], ["yes", "yes", "no"])
    assert m["accuracy"] == 0.0
    assert m["recall"] == 0.0 and m["precision"] == 0.0 and m["f1"] == 0.0
    assert m["yes_ratio"] == pytest.approx(2 / 3)  # share of yes *labels*
    llava = pope_metrics(["Yes.", "no", "Yes, not sure."], ["yes", "yes", "no"], parser="llava")
    assert llava["accuracy"] == pytest.approx(2 / 3)
    assert llava["yes_ratio"] == pytest.approx(1 / 3)
    assert pope_metrics(["no"], ["no"], parser="llava")["precision"] == 0.0  # LLaVA: 0/0
    with pytest.raises(UserError, match="parser"):
        pope_metrics(["yes"], ["yes"], parser="llama")
    with pytest.raises(UserError, match="'yes' or 'no'"):
        pope_metrics(["yes"], ["maybe"])


# --- MME hand cases ----------------------------------------------------------------------


def _mme(cat, img, pred, label):
    return {"image_id": img, "category": cat, "prediction": pred, "label": label}


def test_mme_acc_and_acc_plus():
    records = [
        _mme("existence", "1", "Yes", "yes"), _mme("existence", "1", "No.", "no"),
        _mme("existence", "2", "yes", "yes"), _mme("existence", "2", "yes", "no"),
        _mme("code_reasoning", "7", "not sure", "no"), _mme("code_reasoning", "7", "??", "yes"),
    ]  # fmt: skip
    out = mme_scores(records)
    existence = out["categories"]["existence"]
    assert existence["acc"] == pytest.approx(0.75)
    assert existence["acc_plus"] == pytest.approx(0.5)
    assert existence["score"] == pytest.approx(125.0)
    assert out["categories"]["code_reasoning"] == pytest.approx(
        {"acc": 0.5, "acc_plus": 0.0, "score": 50.0}
    )
    assert out["perception"] == pytest.approx(125.0)
    assert out["cognition"] == pytest.approx(50.0)
    with pytest.raises(UserError, match="exactly 2"):
        mme_scores(records[:3])
    assert math.isnan(mme_scores(records[:4])["cognition"])


# --- registry ----------------------------------------------------------------------------


def test_registry_and_score():
    assert set(METRICS.names()) == {"vqa", "exact_match", "choice", "yes_no"}
    assert score("vqa", "Two", ["2"] * 10) == 1.0
    assert score("exact_match", "The cat", ["cat"]) == 1.0
    assert score("choice", "Answer: B", ["B"]) == 1.0
    assert score("yes_no", "no", ["No"]) == 1.0
    with pytest.raises(UserError, match="exact_match"):
        score("exact-match", "a", ["a"])
