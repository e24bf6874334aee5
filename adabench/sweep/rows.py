"""Rows of the results tables: a sample's answer and FLOPs (`sample_content`), a cell's summary
(`cell_row`). Times in ms, FLOPs as FLOP = 2 × MAC (docs/measurement.md)."""

from __future__ import annotations

import math

import numpy as np

from adabench.data import metrics
from adabench.data.sample import Sample, SuiteSpec
from adabench.measure.stats import bootstrap_ci, spread_warning, summarize
from adabench.models import flops as flops_mod
from adabench.models.loading import LoadedModel
from adabench.models.methods import check_within_budget
from adabench.models.wrappers import wrapper_of
from adabench.sweep.cell_config import CellConfig


def sample_content(
    loaded: LoadedModel, spec: SuiteSpec, sample: Sample, gen, method, vision: int | None = None
) -> dict:
    """Returns what one generation answered and cost: prediction, score, FLOPs, plan, and the
    method's numeric/text info (e.g. kept visual tokens). Times are not included. `vision`: the
    sample's vision-side FLOPs for a variable-resolution wrapper (None: LLaVA-1.5's formula)."""
    tok = loaded.processor.tokenizer
    text = tok.decode(gen.token_ids, skip_special_tokens=True).strip()
    weights = loaded.weights
    if weights == "random" or not sample.answers:
        score = math.nan  # random weights (latency-only run) or hidden answers (VQAv2 test-dev)
    else:
        score = metrics.score(spec.metric_for(sample.family), text, sample.answers)
    fl = _generation_flops(
        loaded, gen.prompt_len, len(gen.token_ids), gen.plan, gen.full_prompt_len, vision
    )
    check_within_budget(method, fl["flops_ratio"], sample.id)
    extra_flops = (
        loaded.adallava.overhead_flops()
        if loaded.adallava is not None and method.NAME.startswith("adallava")
        else 0
    )
    return {
        "family": sample.family,
        "prediction": text,
        "answers": list(sample.answers),
        "score": score,
        "weights": weights,
        "new_tokens": len(gen.token_ids),
        "flops": fl["flops"] + extra_flops,
        "llm_flops": fl["llm_flops"],
        "flops_ratio": fl["flops_ratio"],
        "plan": gen.plan.describe(loaded.config.text_config.num_attention_heads),
        "truncated_tokens": int(sample.meta.get("truncated_tokens", 0)),
        "prompt_source": str(sample.meta.get("prompt_source", "suite")),
        **{k: v for k, v in gen.info.items() if isinstance(v, (int, float, str))},
    }


def _generation_flops(
    loaded: LoadedModel, prompt_len: int, new_tokens: int, plan, full_len: int, vision=None
) -> dict:
    """Returns `flops.generation_flops`, memoised per model on (lengths, plan): plans and lengths
    repeat across samples, and the analytic count is pure Python (harness overhead)."""
    memo = loaded.flops_memo
    key = (prompt_len, new_tokens, plan, full_len, vision)
    if key not in memo:
        memo[key] = flops_mod.generation_flops(
            loaded.config, prompt_len, new_tokens, plan, full_prompt_len=full_len, vision=vision
        )
    return memo[key]


def wrapper_columns(loaded: LoadedModel, rows: list[dict]) -> dict:
    """Returns a cell's `wrapper` (adabench's name of the model's HF class, e.g. "llava-next")
    and `prompt_source` (its sample rows' value: "suite" | "chat-template"; "mixed" when they
    differ, "unknown" when none says)."""
    sources = {str(r["prompt_source"]) for r in rows if r.get("prompt_source") is not None}
    source = sources.pop() if len(sources) == 1 else ("mixed" if sources else "unknown")
    return {"wrapper": wrapper_of(loaded.config).name, "prompt_source": source}


def repeat_spread_warning(rows: list[dict]) -> str:
    """Returns a timing-noise warning from the spread of *repeats of the same sample* (samples
    differ in length, so the spread across samples is not noise); "" with one repeat."""
    normalized = [
        x / np.mean(r) for r in (row["latency_ms_repeats"] for row in rows) if len(r) > 1 for x in r
    ]
    return (spread_warning(normalized) or "") if normalized else ""


def mean_with_ci(values: list[float], seed: int) -> tuple[float, float, float]:
    """Returns (mean, bootstrap CI low, high) of the finite `values` (NaN where too few)."""
    finite = [v for v in values if not math.isnan(v)]
    lo, hi = bootstrap_ci(finite, seed=seed) if len(finite) > 1 else (math.nan, math.nan)
    return (float(np.mean(finite)) if finite else math.nan), lo, hi


def cell_row(
    cfg: CellConfig, rows: list[dict], slowdown: float, peak_mem_mb: float, energy: float
) -> dict:
    """Returns the cell's summary row from its sample rows: accuracy and loyalty to `full`
    (the rows' `loyalty`, NaN without a `full` partner) with bootstrap CIs,
    latency mean/std/percentiles over every raw repeat (ms), FLOPs, memory (MB), energy (J).
    The paired ratio columns are added by `adabench.sweep.group.assemble`."""
    scores = [r["score"] for r in rows if not math.isnan(r["score"])]
    raw = [x for r in rows for x in r["latency_ms_repeats"]]
    lat = summarize(raw)
    lo, hi = bootstrap_ci(scores, seed=cfg.seed) if len(scores) > 1 else (math.nan, math.nan)
    per_token = [r["decode_ms_per_token"] for r in rows if not math.isnan(r["decode_ms_per_token"])]
    return {
        "cell_id": cfg.cell_id(),
        "suite": cfg.suite,
        "model": cfg.model,
        "method": cfg.method,
        "budget": cfg.budget,
        "contention": cfg.contention,
        "contention_kind": cfg.contention_kind,
        "achieved_slowdown": slowdown,
        "n": len(rows),
        "accuracy": float(np.mean(scores)) if scores else math.nan,
        "accuracy_ci_low": lo,
        "accuracy_ci_high": hi,
        **dict(
            zip(
                ("loyalty", "loyalty_ci_low", "loyalty_ci_high"),
                mean_with_ci([r.get("loyalty", math.nan) for r in rows], cfg.seed),
            )
        ),
        "flops": float(np.mean([r["flops"] for r in rows])),
        "llm_flops": float(np.mean([r["llm_flops"] for r in rows])),
        "flops_ratio": float(np.mean([r["flops_ratio"] for r in rows])),
        "flops_ratio_max": float(np.max([r["flops_ratio"] for r in rows])),
        "latency_ms_mean": lat["mean"],
        "latency_ms_std": lat["std"],
        "latency_ms_p50": lat["p50"],
        "latency_ms_p90": lat["p90"],
        "latency_ms_p99": lat["p99"],
        "latency_ms_cv": lat["cv"],
        "prefill_ms_mean": float(np.mean([r["prefill_ms"] for r in rows])),
        "decode_ms_per_token_mean": float(np.mean(per_token)) if per_token else math.nan,
        "overhead_ms_mean": float(np.mean([r["overhead_ms"] for r in rows])),
        "latency_ratio": math.nan,
        "peak_mem_mb": peak_mem_mb,
        "energy_j_mean": energy,
        "slo_ms": math.nan,
        "slo_attainment": math.nan,
        "split": cfg.split,
        "repeats": cfg.repeats,
        "distinct_plans": len({r["plan"] for r in rows}),
        "weights": rows[0].get("weights", "unknown") if rows else "unknown",
        "spread_warning": repeat_spread_warning(rows),
    }
