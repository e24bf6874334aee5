"""The body of `adabench eval`: load, run one cell, print a summary (or one JSON object)."""

from __future__ import annotations

import math

from adabench import console
from adabench.data.images import check_images
from adabench.data.suites import get_spec, load_suite
from adabench.errors import UserError
from adabench.models.factory import build_method
from adabench.models.loading import load_model
from adabench.sweep.cell import CellConfig, prepare_samples
from adabench.sweep.group import run_single
from adabench.sweep.suite_data import left_out_text


def evaluate_one(
    cfg: CellConfig,
    device: str,
    dtype: str,
    samples_out: str | None = None,
    as_json: bool = False,
    no_weights: bool = False,
    skip_bad_samples: bool = False,
) -> dict:
    """Runs the cell `cfg` on `device` and prints it (a table, or one JSON object with
    `as_json`); writes its sample rows to `samples_out` when given; returns the cell row."""
    model, method, budget, suite, split, seed = (
        cfg.model, cfg.method, cfg.budget, cfg.suite, cfg.split, cfg.seed
    )  # fmt: skip
    spec = get_spec(suite)
    samples = load_suite(suite, split=split, limit=cfg.limit, seed=0)
    samples, bad = check_images(samples, skip_bad_samples)  # a bad image: one line, or left out
    if bad:
        console.warn(
            f"{len(bad)} sample(s) left out for an unreadable image: " + left_out_text(bad)
        )
    if not samples:
        raise UserError(f"suite {suite!r}: no sample with a readable image is left")
    if no_weights:
        from adabench.models.catalog import config_for
        from adabench.models.no_weights import build_no_weights, center_random_scheduler_
        from adabench.sweep.grid import needs_adallava

        config_for(model)  # refuses an unsupported model from its config, before building it
        loaded = build_no_weights(
            model, device=device, dtype=dtype, seed=seed, adallava_variant=needs_adallava(method)
        )
    else:
        loaded = load_model(model, device=device, dtype=dtype)
    build_method(method, loaded, budget, cfg.method_args, seed)  # fail fast on a bad method/budget
    prepared = prepare_samples(loaded, spec, samples, cfg.max_new_tokens)
    if no_weights:
        center_random_scheduler_(loaded, prepared)
    console.log(
        f"eval {model} · {method} @ {budget} · {suite}/{split} · n={len(samples)} · {loaded.device}"
    )
    cell, rows = run_single(loaded, spec, samples, prepared, cfg)
    if samples_out:
        import pandas as pd

        pd.DataFrame(rows).to_parquet(samples_out)
    if as_json:
        console.print_json(cell)
    else:
        _print_summary(cell, rows)
    if cell.get("spread_warning"):
        console.warn(cell["spread_warning"])
    return cell


def _print_summary(cell: dict, rows: list[dict]) -> None:
    fams: dict[str, list[float]] = {}
    for r in rows:
        fams.setdefault(r["family"] or "all", []).append(r["score"])
    lines = [
        {
            "metric": "accuracy",
            "value": f"{cell['accuracy']:.3f} (95% CI {cell['accuracy_ci_low']:.3f} … {cell['accuracy_ci_high']:.3f}), n={cell['n']}",
        },
        *[
            {"metric": f"  accuracy · {k}", "value": f"{sum(v) / len(v):.3f} (n={len(v)})"}
            for k, v in sorted(fams.items())
            if not any(math.isnan(x) for x in v)
        ],
        {
            "metric": "latency",
            "value": f"{cell['latency_ms_mean']:.2f} ms ± {cell['latency_ms_std']:.2f} (p50 {cell['latency_ms_p50']:.2f}, p90 {cell['latency_ms_p90']:.2f}, p99 {cell['latency_ms_p99']:.2f})",
        },
        {"metric": "prefill (TTFT)", "value": f"{cell['prefill_ms_mean']:.2f} ms"},
        {"metric": "decode", "value": _fmt_ms(cell["decode_ms_per_token_mean"]) + " per token"},
        {
            "metric": "FLOPs",
            "value": f"{cell['flops'] / 1e6:.2f} MFLOP total, {cell['llm_flops'] / 1e6:.2f} MFLOP decoder, flops_ratio {cell['flops_ratio']:.3f}",
        },
        {"metric": "peak memory", "value": f"{cell['peak_mem_mb']:.1f} MB"},
        {"metric": "distinct plans", "value": str(cell["distinct_plans"])},
        {"metric": "wrapper", "value": f"{cell['wrapper']} · prompt {cell['prompt_source']}"},
    ]
    marking = " · weights: random (latency/FLOPs only)" if cell.get("weights") == "random" else ""
    console.print_table(
        lines, f"{cell['model']} · {cell['method']} @ {cell['budget']} · {cell['suite']}{marking}"
    )


def _fmt_ms(value: float) -> str:
    return "n/a" if math.isnan(value) else f"{value:.2f} ms"
