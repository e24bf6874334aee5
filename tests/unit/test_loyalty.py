"""Loyalty to `full` (adabench/data/loyalty.py): the same answer under each suite metric's own
normalisation, score agreement for the fractional VQA metric."""

from __future__ import annotations

import math

import pytest

from adabench.data.loyalty import agreement


@pytest.mark.parametrize(
    "metric,a,b,loyal",
    [
        ("exact_match", "The Red.", "red", 1.0),
        ("exact_match", "red", "blue", 0.0),
        ("choice", "(B) a cat", "B", 1.0),
        ("choice", "A", "B", 0.0),
        ("yes_no", " Yes", "yes", 1.0),
        ("yes_no", "yes", "no", 0.0),
        ("vqa", "two", "2", 1.0),  # no scores: the VQA answer normalisation decides
    ],
)
def test_same_answer_after_the_metrics_normalisation(metric, a, b, loyal):
    assert agreement(metric, a, b) == loyal


def test_fractional_metric_uses_the_agreement_of_the_scores():
    assert agreement("vqa", "2", "two", 1 / 3, 1.0) == pytest.approx(1 / 3)
    assert agreement("vqa", "cat", "dog", 0.6, 0.6) == 1.0
    assert agreement("exact_match", "cat", "dog", 1.0, 1.0) == 0.0  # 0/1 metrics compare answers
    assert agreement("vqa", "cat", "cat", math.nan, 1.0) == 1.0
