"""Per-sample and benchmark-level accuracy metrics, matching lmms-eval 0.7.3 where it has one.

Per-sample scores in [0, 1] go through `score(metric, prediction, answers)` (registry names:
`vqa`, `exact_match`, `choice`, `yes_no`); `pope_metrics` and `mme_scores` aggregate a whole
benchmark the way lmms-eval's `pope` and `mme` tasks do. Agreement with lmms-eval is checked
against frozen fixtures in tests/fixtures/lmms_eval/.
"""

from __future__ import annotations

import math
import re
import statistics
import string
from collections.abc import Callable

from adabench.data.vqa_normalize import normalize_vqa_answer
from adabench.errors import UserError
from adabench.registry import Registry

METRICS: Registry[Callable[[str, list[str]], float]] = Registry("metric")

MME_PERCEPTION = ("existence", "count", "position", "color", "posters", "celebrity", "scene",
                  "landmark", "artwork", "OCR")  # fmt: skip
MME_COGNITION = ("commonsense_reasoning", "numerical_calculation", "text_translation",
                 "code_reasoning")  # fmt: skip


def _need_answers(answers: list[str], metric: str) -> None:
    if not answers:
        raise UserError(f"metric {metric!r} needs at least one reference answer, got none.")


def vqa_score(prediction: str, answers: list[str]) -> float:
    """Returns the VQAv2 accuracy in [0, 1], as lmms-eval 0.7.3's `vqav2` task computes it.

    Prediction and answers are normalized (`normalize_vqa_answer`); for each of the n answers,
    leave it out (by position, so repeated strings each count) and score min(1, matches / 3)
    against the other n - 1; return the mean of the n scores. With fewer than 10 answers the
    same formula runs over n subsets, so one answer always scores 0 and two at most 1/3.
    """
    _need_answers(answers, "vqa")
    pred = normalize_vqa_answer(prediction)
    hits = [normalize_vqa_answer(answer) == pred for answer in answers]
    total = sum(hits)
    # statistics.mean (exact rational sum) as in lmms-eval, so results agree bit for bit.
    return float(statistics.mean(min(1, float(total - hit) / 3) for hit in hits))


_ARTICLES_RE = re.compile(r"\b(a|an|the)\b")
_PUNCT_TABLE = str.maketrans("", "", string.punctuation)


def normalize_text(text: str) -> str:
    """Returns `text` lower-cased, without ASCII punctuation or articles, spaces collapsed."""
    text = text.lower().translate(_PUNCT_TABLE)
    return " ".join(_ARTICLES_RE.sub(" ", text).split())


def exact_match(prediction: str, answers: list[str], normalize: bool = True) -> float:
    """Returns 1.0 if the prediction equals any answer, else 0.0 (GQA-style).

    With `normalize`, both sides are lower-cased and stripped of punctuation, articles and
    extra spaces first (lmms-eval's gqa `ignore_case` + `ignore_punctuation`, plus articles
    and whitespace); without it, only surrounding whitespace is stripped.
    """
    _need_answers(answers, "exact_match")
    norm = normalize_text if normalize else str.strip
    pred = norm(prediction)
    return float(any(norm(answer) == pred for answer in answers))


def _choice_patterns(letters: str) -> list[re.Pattern[str]]:
    ls = re.escape(letters)
    return [
        # the whole reply is a letter: "B", "b", "(B)", "B.", "b)"
        re.compile(rf"^\(?([{ls}])\)?[.:)]?$", re.IGNORECASE),
        # "answer is B", "Answer: (C)", "option B", "the correct choice is b."
        re.compile(rf"\b(?i:answer|option|choice)\s*(?:is\s*)?:?\s*\(?([{ls}])\b(?![-'])"),
        re.compile(
            rf"\b(?:answer|option|choice)\s*(?:is\s*)?:?\s*\(?([{ls.lower()}])(?:\)|[.:]?$)",
            re.IGNORECASE,
        ),
        # the reply starts with a letter and a delimiter: "B. red", "C) two", "(A) cat"
        re.compile(rf"^\(([{ls}])\)"),
        re.compile(rf"^([{ls}])[.:)](?:\s|$)"),
        # "(B)" anywhere
        re.compile(rf"\(([{ls}])\)"),
    ]


def extract_choice(prediction: str, letters: str = "ABCD") -> str | None:
    """Returns the multiple-choice letter (upper case) a reply gives, or None if it gives none.

    Understands "B", "b", "(B)", "B. red", "C) two", "The answer is B.", "Answer: C",
    "option (D)"; as a last resort a single distinct stand-alone capital letter ("I think B",
    but not the word "A" in "A cat").
    Lower-case letters count only when the reply is just the letter or they follow
    "answer/option/choice (is)" and end the reply, so the article "a" is not read as "A".
    """
    text = prediction.strip()
    letters = letters.upper()
    for pattern in _choice_patterns(letters):
        match = pattern.search(text)
        if match:
            return match.group(1).upper()
    alone = {
        match.group(1)
        for match in re.finditer(rf"(?<![\w'-])([{re.escape(letters)}])(?![\w'-])", text)
        # the words "A"/"I" before a lower-case word ("A cat") are not choices
        if not (match.group(1) in "AI" and re.match(r"\s+(?!or\b|and\b)[a-z]", text[match.end() :]))
    }
    return alone.pop() if len(alone) == 1 else None


def choice_accuracy(prediction: str, answers: list[str]) -> float:
    """Returns 1.0 if the letter extracted from `prediction` equals `answers[0]` ("B" or "(B)")."""
    _need_answers(answers, "choice")
    gold = answers[0].strip().strip("().").upper()
    if len(gold) != 1 or not gold.isalpha():
        raise UserError(f"metric 'choice' needs a letter as the first answer, got {answers[0]!r}.")
    letters = string.ascii_uppercase[: max(4, string.ascii_uppercase.index(gold) + 1)]
    return float(extract_choice(prediction, letters) == gold)


def _yes_no_label(label: str) -> str:
    gold = label.lower().strip()
    if gold not in ("yes", "no"):
        raise UserError(f"yes/no metrics need 'yes' or 'no' labels, got {label!r}.")
    return gold


def yes_no_score(prediction: str, answers: list[str]) -> float:
    """Returns 1.0 if the reply is exactly the yes/no label after lower() and strip(), else 0.0.

    This is lmms-eval's POPE per-sample score (its `pope_accuracy`), so "Yes." scores 0.
    """
    _need_answers(answers, "yes_no")
    return float(prediction.lower().strip() == _yes_no_label(answers[0]))


def parse_pope_llava(prediction: str) -> str:
    """Returns "yes" or "no" as LLaVA's eval_pope.py reads a reply: keep the text before the
    first ".", drop commas, split on " "; any word "No", "no" or "not" means no, else yes."""
    text = prediction.split(".")[0].replace(",", "")
    words = text.split(" ")
    return "no" if ("No" in words or "not" in words or "no" in words) else "yes"


def pope_metrics(predictions: list[str], labels: list[str], parser: str = "lmms-eval") -> dict:
    """Returns POPE's {accuracy, precision, recall, f1, yes_ratio}, each a fraction in [0, 1].

    parser="lmms-eval" follows lmms-eval 0.7.3's `pope` task, quirks included:
    - a reply counts only if `reply.lower().strip()` is exactly "yes" or "no"; anything else
      ("Yes.", "yes, there is") is wrong for accuracy and is neither TP, FP nor FN, so it
      does not lower precision or recall;
    - `yes_ratio` is the share of *labels* that are "yes" (not of predictions);
    - precision, recall and f1 are 0.0 where their denominator is 0.
    parser="llava" follows LLaVA's eval_pope.py: each reply becomes yes/no by
    `parse_pope_llava`, a label is negative iff it is "no", and `yes_ratio` is the share of
    predicted "yes"; where LLaVA would divide by zero this returns 0.0.
    """
    if parser not in ("lmms-eval", "llava"):
        raise UserError(f"unknown POPE parser {parser!r}. Choose from: lmms-eval, llava.")
    if len(predictions) != len(labels) or not labels:
        raise UserError(f"POPE needs as many predictions as labels (>0), got "
                        f"{len(predictions)} and {len(labels)}.")  # fmt: skip
    if parser == "llava":
        preds = [parse_pope_llava(p) for p in predictions]
        golds = ["no" if label == "no" else "yes" for label in labels]
    else:
        preds = [p.lower().strip() for p in predictions]
        golds = [_yes_no_label(label) for label in labels]
    pairs = list(zip(preds, golds, strict=True))
    tp = sum(p == "yes" and g == "yes" for p, g in pairs)
    fp = sum(p == "yes" and g == "no" for p, g in pairs)
    fn = sum(p == "no" and g == "yes" for p, g in pairs)
    precision = tp / (tp + fp) if tp + fp > 0 else 0.0
    recall = tp / (tp + fn) if tp + fn > 0 else 0.0
    f1 = 2 * (precision * recall) / (precision + recall) if precision + recall > 0 else 0.0
    yes_source = preds if parser == "llava" else golds
    return {
        "accuracy": sum(p == g for p, g in pairs) / len(pairs),
        "precision": precision,
        "recall": recall,
        "f1": f1,
        "yes_ratio": yes_source.count("yes") / len(pairs),
    }


def parse_mme_answer(prediction: str) -> str:
    """Returns "yes", "no" or "other" as lmms-eval's mme task reads a reply (Otter's parser):
    lower, strip, drop every "."; "y"/"n" alone count; otherwise "yes" then "no" is looked for
    in the first 4 characters only ("not sure" → "no", "There is no" → "other")."""
    text = prediction.lower().strip().replace(".", "")
    if text in ("yes", "no"):
        return text
    if len(text) == 1:
        return {"y": "yes", "n": "no"}.get(text, "other")
    head = text[:4]
    return "yes" if "yes" in head else "no" if "no" in head else "other"


def _mme_category(items: dict[str, list[float]], category: str) -> dict[str, float]:
    total = 0.0
    for image_id, scores in items.items():
        if len(scores) != 2:
            raise UserError(f"MME needs exactly 2 questions per image; {category}/{image_id} "
                            f"has {len(scores)}.")  # fmt: skip
        total += sum(scores) / len(scores) * 100.0 + (sum(scores) == 2) * 100.0
    n = len(items)
    return {
        "acc": sum(sum(s) for s in items.values()) / (2 * n),
        "acc_plus": sum(sum(s) == 2 for s in items.values()) / n,
        "score": total / n,
    }


def mme_scores(records: list[dict]) -> dict:
    """Returns MME scores as lmms-eval 0.7.3's `mme` task computes them.

    `records` have `image_id`, `category`, `prediction`, `label` ("yes"/"no"); every
    (category, image) needs exactly two questions. Returns `{"categories": {name: {"acc",
    "acc_plus", "score"}}, "perception", "cognition"}`: `acc` is the fraction of questions
    right, `acc_plus` the fraction of images with both right (both in [0, 1]), `score` =
    (acc + acc_plus) × 100 (in [0, 200]); `perception`/`cognition` sum the scores of MME's
    perception categories / of all other categories (lmms-eval counts any category not in
    the perception list as cognition); NaN when no record falls in that group.
    """
    grouped: dict[str, dict[str, list[float]]] = {}
    for record in records:
        gold = record["label"].lower().strip().replace(".", "")
        if gold not in ("yes", "no"):
            raise UserError(f"MME labels must be 'yes' or 'no', got {record['label']!r}.")
        hit = float(parse_mme_answer(record["prediction"]) == gold)
        per_image = grouped.setdefault(record["category"], {})
        per_image.setdefault(str(record["image_id"]), []).append(hit)
    categories = {name: _mme_category(items, name) for name, items in grouped.items()}
    perception = [c["score"] for n, c in categories.items() if n in MME_PERCEPTION]
    cognition = [c["score"] for n, c in categories.items() if n not in MME_PERCEPTION]
    return {
        "categories": categories,
        "perception": sum(perception) if perception else math.nan,
        "cognition": sum(cognition) if cognition else math.nan,
    }


METRICS.register("vqa", vqa_score)
METRICS.register("exact_match", exact_match)
METRICS.register("choice", choice_accuracy)
METRICS.register("yes_no", yes_no_score)


def score(metric: str, prediction: str, answers: list[str]) -> float:
    """Returns the per-sample score in [0, 1] of `prediction` against `answers` by `metric`;
    an unknown metric name raises UserError with close matches."""
    return float(METRICS.get(metric)(prediction, answers))
