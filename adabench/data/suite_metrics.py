"""Suite-level metrics computed from all of a suite's predictions at once, and result exports.

A suite YAML names one with `aggregate:` (registry names: `pope`, `mme`, `mmbench_circular`);
`aggregate_suite(spec, samples, predictions)` returns its dict, or None for suites without one.
`export_evalai(rows, path)` writes VQAv2 test-dev predictions in the EvalAI submission format.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from pathlib import Path

from adabench.data.metrics import choice_accuracy, mme_scores, pope_metrics
from adabench.data.sample import Sample, SuiteSpec
from adabench.data.vqa_normalize import normalize_vqa_answer
from adabench.errors import UserError
from adabench.registry import Registry

AGGREGATES: Registry[Callable[[list[Sample], list[str]], dict]] = Registry("aggregate metric")


def _check(samples: list[Sample], predictions: list[str]) -> None:
    if len(samples) != len(predictions) or not samples:
        raise UserError(f"an aggregate needs one prediction per sample (>0), got {len(samples)} samples "
                        f"and {len(predictions)} predictions")  # fmt: skip


@AGGREGATES.register("pope")
def pope_aggregate(samples: list[Sample], predictions: list[str]) -> dict:
    """Returns POPE's {accuracy, precision, recall, f1, yes_ratio} (fractions in [0, 1]) over all
    samples, as lmms-eval computes them, plus the same per category under `by_category`."""
    _check(samples, predictions)
    out = pope_metrics(predictions, [s.answers[0] for s in samples])
    by: dict[str, tuple[list[str], list[str]]] = {}
    for s, p in zip(samples, predictions, strict=True):
        preds, labels = by.setdefault(s.family or "all", ([], []))
        preds.append(p)
        labels.append(s.answers[0])
    out["by_category"] = {name: pope_metrics(p, lab) for name, (p, lab) in sorted(by.items())}
    return out


@AGGREGATES.register("mme")
def mme_aggregate(samples: list[Sample], predictions: list[str]) -> dict:
    """Returns MME's scores (see `metrics.mme_scores`): per-category acc / acc_plus / score and
    the perception (0..2000) and cognition (0..800) totals. The image id is
    `meta["question_id"]` (MME's image path), the category the sample's family."""
    _check(samples, predictions)
    records = [{"image_id": s.meta.get("question_id", s.id.split("#")[0]), "category": s.family,
                "prediction": p, "label": s.answers[0]} for s, p in zip(samples, predictions, strict=True)]  # fmt: skip
    return mme_scores(records)


@AGGREGATES.register("mmbench_circular")
def mmbench_circular(samples: list[Sample], predictions: list[str]) -> dict:
    """Returns MMBench circular evaluation: `circular_accuracy` (fraction of questions whose
    every rotation is answered right), `vanilla_accuracy` (fraction right on the unrotated
    question alone), both in [0, 1], and `n_questions`. Groups by `meta["circular_group"]`."""
    _check(samples, predictions)
    groups: dict[str, dict[int, float]] = {}
    for s, p in zip(samples, predictions, strict=True):
        group = str(s.meta.get("circular_group", s.id))
        groups.setdefault(group, {})[int(s.meta.get("circular_index", 0))] = choice_accuracy(
            p, s.answers
        )
    n = len(groups)
    return {
        "circular_accuracy": sum(all(v == 1.0 for v in g.values()) for g in groups.values()) / n,
        "vanilla_accuracy": sum(g.get(0, math.nan) == 1.0 for g in groups.values()) / n,
        "n_questions": n,
    }


def aggregate_suite(spec: SuiteSpec, samples: list[Sample], predictions: list[str]) -> dict | None:
    """Returns the suite's `aggregate:` metric dict over `predictions` (one per sample, same
    order), or None when the suite names none. Unknown names raise a did-you-mean UserError."""
    name = spec.extra.get("aggregate")
    if not name:
        return None
    return AGGREGATES.get(str(name))(samples, predictions)


def evalai_answer(prediction: str) -> str:
    """Returns a prediction as EvalAI's VQA answer processor writes it (lower case, punctuation,
    digits and articles normalized), as LLaVA's convert_vqav2_for_submission.py does."""
    return normalize_vqa_answer(prediction.lower())


def export_evalai(
    rows: list[dict], path: str | Path, all_question_ids: list[int] | None = None
) -> Path:
    """Writes a VQAv2 EvalAI submission: a JSON list of {"question_id": int, "answer": str}.

    `rows` carry `prediction` and `question_id` (or `sample_id`, the VQAv2 question id). With
    `all_question_ids` (e.g. every test2015 question), missing ones get answer "" as LLaVA's
    converter does, since EvalAI wants the full test set. Returns the path written.
    """
    answers: dict[int, str] = {}
    for row in rows:
        qid = row.get("question_id", row.get("sample_id"))
        if qid is None or "prediction" not in row:
            raise UserError(
                "export_evalai needs rows with `prediction` and `question_id` (or `sample_id`)"
            )
        answers[int(str(qid).split("#")[0])] = evalai_answer(str(row["prediction"]))
    ids = list(all_question_ids) if all_question_ids is not None else list(answers)
    out = [{"question_id": int(q), "answer": answers.get(int(q), "")} for q in ids]
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(out))
    return path
