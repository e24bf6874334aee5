"""Loyalty: whether a method gives the `full` model's answer on the same sample (EffiVLM-Bench,
ACL 2025), beside accuracy, which hides a method that answers differently but lucky.

Per sample, by the suite's metric: for answer metrics, 1.0 when the two replies are the same
answer after the metric's own normalisation (exact_match: lower-case, no punctuation or
articles; choice: the extracted letter; yes_no: lower-case, stripped; vqa: the VQA answer
normalisation), else 0.0; for the fractional metric (vqa, scores in thirds) the agreement of the
scores, 1 − |score − full's score|, when both are known. `full` against itself is 1.
"""

from __future__ import annotations

import math
import string

from adabench.data import metrics
from adabench.data.vqa_normalize import normalize_vqa_answer

FRACTIONAL_METRICS = ("vqa",)
"""Metrics whose per-sample score is a fraction, not right/wrong: loyalty compares scores."""


def answer_key(metric: str, prediction: str) -> str:
    """Returns the answer `prediction` gives under `metric`'s normalisation (what two replies
    must share to count as the same answer)."""
    if metric == "exact_match":
        return metrics.normalize_text(prediction)
    if metric == "choice":
        return metrics.extract_choice(prediction, string.ascii_uppercase[:8]) or "?"
    if metric == "vqa":
        return normalize_vqa_answer(prediction)
    return prediction.lower().strip()  # yes_no, and any metric without its own normaliser


def agreement(
    metric: str,
    prediction: str,
    reference: str,
    score: float = math.nan,
    reference_score: float = math.nan,
) -> float:
    """Returns the loyalty of `prediction` to the `full` arm's `reference` reply on one sample,
    in [0, 1] (module docstring); fractional metrics use the scores when both are finite."""
    if metric in FRACTIONAL_METRICS and math.isfinite(score) and math.isfinite(reference_score):
        return 1.0 - abs(float(score) - float(reference_score))
    return float(answer_key(metric, prediction) == answer_key(metric, reference))
